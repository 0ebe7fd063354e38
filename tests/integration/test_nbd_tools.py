#!/usr/bin/python3
"""Standard NBD tools against spindle-block on a real local cluster.

Proves: nbdinfo lists the exports, sees multi-conn, trim, zero and base:allocation, and its
--map shows data where written and holes after a trim; qemu-img info/convert/compare work
against an export both ways; qemu-io write -z / discard / flush leave the expected bytes;
fio with ioengine=nbd and numjobs=4 on one export writes and verifies its data.
"""
import json
import os
import random
import sys
import tempfile

from nbdvol import MiB, connect, run, standard_main

VOL, VOL2 = "tools-a", "tools-b"
SIZE = 64 * MiB


def check_list(cluster):
    out = run(["nbdinfo", "--list", f"nbd+unix:///?socket={cluster.nbd_socket}"]).stdout
    for name in (VOL, VOL2):
        assert f"export=\"{name}\"" in out or f"export: {name}" in out or name in out, out


def check_can(cluster):
    uri = cluster.nbd_uri(VOL)
    for feature in ("multi-conn", "trim", "zero", "flush", "fua", "write"):
        p = run(["nbdinfo", "--can", feature, uri], check=False)
        assert p.returncode == 0, f"--can {feature}: rc {p.returncode} {p.stderr}"
    info = json.loads(run(["nbdinfo", "--json", uri]).stdout)
    export = info["exports"][0]
    assert export["export-size"] == SIZE, export
    assert "base:allocation" in export.get("contexts", []), export
    assert export.get("block_size_minimum") == 512, export
    assert export.get("block_size_preferred") == 4096, export


def parse_map(text):
    """[(offset, length, type)] from nbdinfo --map's text output."""
    out = []
    for line in text.splitlines():
        f = line.split()
        if len(f) >= 3 and f[0].isdigit():
            out.append((int(f[0]), int(f[1]), int(f[2])))
    return out


def type_at(extents, offset):
    for off, length, t in extents:
        if off <= offset < off + length:
            return t
    raise AssertionError(f"no extent covers {offset}: {extents}")


def check_map(cluster):
    h = connect(cluster, VOL)
    h.pwrite(b"\x5a" * (8 * MiB), 0)
    h.trim(2 * MiB, 2 * MiB)  # (count, offset)
    h.zero(1 * MiB, 6 * MiB)  # without NO_HOLE: becomes a hole too
    h.flush()
    assert h.pread(4096, 2 * MiB) == bytes(4096)
    h.shutdown()
    extents = parse_map(run(["nbdinfo", "--map", cluster.nbd_uri(VOL)]).stdout)
    assert sum(e[1] for e in extents) == SIZE, extents
    assert type_at(extents, 0) == 0, extents  # data
    assert type_at(extents, 1 * MiB) == 0, extents
    for off in (2 * MiB, 3 * MiB, 6 * MiB + 4096):
        assert type_at(extents, off) == 3, (off, extents)  # hole,zero
    assert type_at(extents, 7 * MiB) == 0, extents
    assert type_at(extents, 32 * MiB) == 3, extents  # never written, second object


def check_qemu_img(cluster):
    uri = cluster.nbd_uri(VOL2)
    info = json.loads(run(["qemu-img", "info", "--output=json", "-f", "raw", uri]).stdout)
    assert info["virtual-size"] == SIZE, info
    with tempfile.TemporaryDirectory() as d:
        src, back = os.path.join(d, "src.img"), os.path.join(d, "back.img")
        rng = random.Random(3)
        with open(src, "wb") as f:
            f.truncate(SIZE)
            for off in range(0, SIZE, 4 * MiB):
                f.seek(off + rng.randrange(0, 2 * MiB) // 512 * 512)
                f.write(rng.randbytes(512 * rng.randrange(1, 2048)))
        run(["qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", src, uri])
        run(["qemu-img", "compare", "-f", "raw", "-F", "raw", src, uri])
        run(["qemu-img", "convert", "-f", "raw", "-O", "raw", uri, back])
        run(["qemu-img", "compare", "-f", "raw", "-F", "raw", back, src])


def check_qemu_io(cluster):
    uri = cluster.nbd_uri(VOL2)
    cmds = ["write -P 0xab 0 4M", "write -z 1M 1M", "discard 2M 1M", "flush",
            "read -P 0xab 0 1M", "read -P 0 1M 2M", "read -P 0xab 3M 1M",
            "write -z -u 3M 4096", "read -P 0 3M 4096"]
    args = ["qemu-io", "-f", "raw"]
    for c in cmds:
        args += ["-c", c]
    out = run(args + [uri])
    text = out.stdout + out.stderr
    assert "failed" not in text.lower() and "error" not in text.lower(), text


def check_fio(cluster):
    run(["fio", "--name=nbd4", "--ioengine=nbd", f"--uri={cluster.nbd_uri(VOL)}",
         "--rw=randwrite", "--bs=4k", "--size=8M", "--numjobs=4", "--offset_increment=16M",
         "--iodepth=8", "--verify=crc32c", "--verify_fatal=1", "--do_verify=1",
         "--group_reporting", "--verify_state_save=0"], timeout=120, cwd=cluster.dir)


def body(cluster, checks):
    checks.run("nbdinfo --list", check_list, cluster)
    checks.run("nbdinfo --can / --json", check_can, cluster)
    checks.run("nbdinfo --map after trim", check_map, cluster)
    checks.run("qemu-img info/convert/compare", check_qemu_img, cluster)
    checks.run("qemu-io write -z / discard / flush", check_qemu_io, cluster)
    checks.run("fio ioengine=nbd numjobs=4 verify", check_fio, cluster)


if __name__ == "__main__":
    sys.exit(standard_main([VOL, VOL2], SIZE, body))
