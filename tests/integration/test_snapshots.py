#!/usr/bin/env python3
"""Snapshots and clones through NBD on a real local cluster (mgmt, 3 servers, client 4).

Proves: a snapshot of an attached volume is taken without closing its NBD connection and holds
exactly the data written before it; a clone of the snapshot reads that data while the volume
reads the newer writes over it; a snapshot attached read-only exports its own data and refuses
writes; a 3-deep chain (with a trim in a middle layer) reads correctly block by block against a
reference model; a snapshot taken under a sequential writer holds a prefix of the acknowledged
writes; snapshots show in the listings and status with their snapshot-only fields; deleting a
snapshot with children is refused, a childless one is deleted.
"""
import os
import random
import subprocess
import sys
import threading
import time

import nbd

from cluster import BIN, ApiError, Cluster, wait_until
import sptypes as T
from nbdvol import MiB, Checks

SIZE = 64 * MiB
BLOCK = 4096
READ_CHUNK = 4 * MiB


def expect(ok, what):
    assert ok, what


def export_ready(cluster, name):
    def attempt():
        h = nbd.NBD()
        h.connect_uri(cluster.nbd_uri(name))
        return h
    return wait_until(f"export {name}", attempt, timeout_s=30)


def attach(cluster, name, snapshot=False):
    key = "snapshot" if snapshot else "volume"
    rights = "ro" if snapshot else "rw"
    cluster.post("VolumesReassign", [{key: name, rights: [4], "force": False}])
    return export_ready(cluster, name)


def random_writes(h, model, rng, count, max_len=256 * 1024):
    """count writes of random sector-aligned ranges (some across the object boundary)."""
    for i in range(count):
        n = rng.randrange(1, max_len // 512 + 1) * 512
        if i % 5 == 0:
            off = 32 * MiB - rng.randrange(1, n // 512 + 1) * 512  # crosses the boundary
        else:
            off = rng.randrange(0, (SIZE - n) // 512 + 1) * 512
        data = rng.randbytes(n)
        h.pwrite(data, off)
        model[off:off + n] = data
    h.flush()


def read_all(h):
    out = bytearray()
    for off in range(0, SIZE, READ_CHUNK):
        out += h.pread(READ_CHUNK, off)
    return out


def compare(h, model, what):
    got = read_all(h)
    bad = [i for i in range(0, SIZE, BLOCK) if got[i:i + BLOCK] != model[i:i + BLOCK]]
    assert not bad, f"{what}: {len(bad)} blocks differ, first at {bad[0]}"


def body(cluster, checks):
    rng = random.Random(5)
    cluster.post("VolumeCreate", {"name": "sv", "size": SIZE, "template": "demo"})
    h = attach(cluster, "sv")
    vol = bytearray(SIZE)
    random_writes(h, vol, rng, 60)  # pattern A
    s1 = bytes(vol)
    r = cluster.post("VolumeSnapshot/sv", {"name": "sv-s1"})
    checks.run("named snapshot has no autoName, has a globalId", expect,
               "autoName" not in r and "snapshotGlobalId" in r, r)
    random_writes(h, vol, rng, 40)  # pattern B, on the connection opened before the snapshot
    checks.run("volume reads B where written and A elsewhere (same connection)", compare, h, vol,
               "sv")

    cluster.post("VolumeCreate", {"name": "sv-c1", "parent": "sv-s1"})
    hc = attach(cluster, "sv-c1")
    checks.run("clone of the snapshot reads A", compare, hc, s1, "sv-c1")

    hs = attach(cluster, "sv-s1", snapshot=True)
    checks.run("snapshot attached read-only reads A", compare, hs, s1, "sv-s1")

    def refuses_writes():
        assert hs.is_read_only(), "snapshot export is not read-only"
        try:
            hs.pwrite(b"x" * 512, 0)
        except nbd.Error:
            return
        raise AssertionError("write to a snapshot succeeded")
    checks.run("snapshot export refuses writes", refuses_writes)

    # Chain sv -> s3 -> s2 (auto-named) -> s1, with a trim in the s3 layer.
    random_writes(h, vol, rng, 30)  # C
    s2 = bytes(vol)
    auto = cluster.post("VolumeSnapshot/sv", {})
    s2_name = auto.get("autoName", "")
    checks.run("auto-named snapshot is <volume>@<n>", expect, s2_name.startswith("sv@"), auto)
    random_writes(h, vol, rng, 30)  # D
    h.trim(1 * MiB, 31 * MiB + 512 * 1024)
    vol[31 * MiB + 512 * 1024:32 * MiB + 512 * 1024] = bytes(MiB)
    h.trim(4096 + 1536, 20 * MiB + 1024)  # partial blocks at both ends
    vol[20 * MiB + 1024:20 * MiB + 1024 + 4096 + 1536] = bytes(4096 + 1536)
    h.flush()
    s3 = bytes(vol)
    cluster.post("VolumeSnapshot/sv", {"name": "sv-s3"})
    random_writes(h, vol, rng, 30)  # E
    checks.run("3-deep chain: volume reads its model block by block", compare, h, vol, "sv")
    h2 = attach(cluster, s2_name, snapshot=True)
    checks.run("3-deep chain: auto snapshot reads its model", compare, h2, s2, s2_name)
    cluster.post("VolumeCreate", {"name": "sv-c3", "parent": "sv-s3"})
    hc3 = attach(cluster, "sv-c3")
    checks.run("3-deep chain: clone of sv-s3 reads its model (trim hides lower layers)", compare,
               hc3, s3, "sv-c3")
    c3 = bytearray(s3)
    random_writes(hc3, c3, rng, 20)
    checks.run("clone writes do not leak into the volume", compare, h, vol, "sv")
    checks.run("clone reads its own writes over the chain", compare, hc3, c3, "sv-c3")

    def listings():
        names = {s["name"] for s in cluster.get("SnapshotsList")}
        assert names == {"sv-s1", s2_name, "sv-s3"}, names
        chain = [s["name"] for s in cluster.get("VolumeListSnapshots/sv")]
        assert chain == ["sv-s3", s2_name, "sv-s1"], chain
        status = cluster.get("VolumesGetStatus")
        st = status["sv-s1"]
        assert st["snapshot"] is True and st["onVolume"] == "sv", st
        for k in ("autoName", "bound", "deleted", "transient", "recoveringFromRemote"):
            assert k in st, k
        assert status["sv"]["snapshot"] is False and "onVolume" not in status["sv"]
        assert cluster.get("Volume/sv-c3")[0]["parentName"] == "sv-s3"
        quick = cluster.get("VolumesGetStatusQuick")
        assert quick[s2_name]["snapshot"] is True
        d = cluster.get("SnapshotDescribe/sv-s1")
        assert d["targetDiskSets"] == cluster.get("VolumeDescribe/sv")["targetDiskSets"]
    checks.run("listings, status and describe show the snapshots", listings)

    def conforms():
        errs = []
        errs += T.check(cluster.get("SnapshotsList"), T.List("SnapshotSummary"), "SnapshotsList")
        errs += T.check(cluster.get("SnapshotDescribe/sv-s1"), "Snapshot", "SnapshotDescribe")
        for call, union in (("VolumesGetStatus", T.STATUS),
                            ("VolumesGetStatusQuick", T.STATUS_QUICK)):
            st = cluster.get(call)
            errs += T.check(st, T.Map(T.STATUS_KEY, union), call)
            for k, v in st.items():
                want = "Snapshot" if k.startswith("sv-s") or "@" in k else "Volume"
                alt = T.pick_name(union, v)
                if not alt or not alt.startswith(want):
                    errs.append(f"{call} {k}: picked {alt}")
        errs += T.check(cluster.post("VolumeSnapshot/sv-c3", {}), "ApiOkSnapshotCreate", "snap")
        assert not errs, errs[:5]
    checks.run("snapshot replies conform to the reference types (§4.7, §5 unions)", conforms)

    def delete_rules():
        for snap in ("sv-s1", "sv-s3"):
            try:
                cluster.post(f"SnapshotDelete/{snap}")
            except ApiError as e:
                assert "children" in str(e.error) or "child" in str(e.error), e.error
                continue
            raise AssertionError(f"{snap} with children was deleted")
        # A childless snapshot: snapshot the clone sv-c1, then delete the clone.
        cluster.post("VolumeSnapshot/sv-c1", {"name": "c1-last"})
        hc.shutdown()
        cluster.post("VolumesReassign", [{"volume": "sv-c1", "detach": [4], "force": True}])
        cluster.post("VolumeDelete/sv-c1")
        cluster.post("SnapshotDelete/c1-last")
        assert "c1-last" not in {s["name"] for s in cluster.get("SnapshotsList")}
    checks.run("delete refused while children exist; childless snapshot deleted", delete_rules)

    checks.run("snapshot under a sequential writer holds a prefix", snapshot_under_writes,
               cluster)
    checks.run("CLI: volume snapshot, snapshot list/delete, attach snapshot", cli_commands,
               cluster)
    for x in (h, hs, h2, hc3):
        x.shutdown()


def cli(cluster, *args):
    p = subprocess.run([os.path.join(BIN, "spindle"), *args], capture_output=True, text=True,
                       timeout=30, env=dict(os.environ, SP_CONFIG=os.path.join(cluster.dir, "storpool.conf")))
    assert p.returncode == 0, f"spindle {' '.join(args)}: {p.stdout} {p.stderr}"
    return p.stdout


def cli_commands(cluster):
    cli(cluster, "volume", "sv", "snapshot", "cli-s")
    out = cli(cluster, "snapshot", "list")
    assert "cli-s" in out and "sv-s1" in out, out
    cli(cluster, "volume", "cli-v", "create", "parent", "cli-s")
    cli(cluster, "volume", "cli-b", "create", "baseOn", "cli-v")
    cli(cluster, "attach", "snapshot", "cli-s", "client", "4")
    export_ready(cluster, "cli-s").shutdown()
    att = [a for a in cluster.get("AttachmentsList") if a["volume"] == "cli-s"]
    assert att and att[0]["snapshot"] is True and att[0]["rights"] == "ro", att
    cli(cluster, "detach", "snapshot", "cli-s", "client", "4")
    cli(cluster, "volume", "cli-b", "delete", "cli-b")
    assert {s["name"] for s in cluster.get("VolumeListSnapshots/cli-v")} >= {"cli-s"}
    p = subprocess.run([os.path.join(BIN, "spindle"), "snapshot", "cli-s", "delete", "cli-s"],
                       capture_output=True, text=True, timeout=30,
                       env=dict(os.environ, SP_CONFIG=os.path.join(cluster.dir, "storpool.conf")))
    assert p.returncode == 1 and "child" in p.stderr, (p.returncode, p.stderr)


def snapshot_under_writes(cluster):
    """Writer writes block i (marker i) only after block i-1 was acknowledged; the snapshot
    must hold blocks 0..k-1 for some k that covers every write acknowledged before the call."""
    cluster.post("VolumeCreate", {"name": "sw", "size": SIZE, "template": "demo"})
    h = attach(cluster, "sw")
    acked = [0]
    stop = threading.Event()

    def writer():
        i = 0
        while not stop.is_set() and (i + 1) * BLOCK <= SIZE:
            h.pwrite(i.to_bytes(8, "little") + b"\xab" * (BLOCK - 8), i * BLOCK)
            i += 1
            acked[0] = i
    t = threading.Thread(target=writer)
    t.start()
    try:
        wait_until("some writes", lambda: acked[0] > 50, timeout_s=20)
        before = acked[0]
        cluster.post("VolumeSnapshot/sw", {"name": "sw-s"})
        time.sleep(0.2)
    finally:
        stop.set()
        t.join(timeout=30)
    hs = attach(cluster, "sw-s", snapshot=True)
    got = read_all(hs)
    zero = bytes(BLOCK)
    k = 0
    while k * BLOCK < SIZE and got[k * BLOCK:(k + 1) * BLOCK] != zero:
        blk = got[k * BLOCK:(k + 1) * BLOCK]
        assert int.from_bytes(blk[:8], "little") == k, f"block {k} holds {blk[:8].hex()}"
        k += 1
    assert k >= before, f"snapshot holds {k} blocks, {before} were acknowledged before"
    assert got[k * BLOCK:] == bytes(SIZE - k * BLOCK), f"data after the prefix of {k} blocks"
    print(f"  snapshot cut after {k} blocks ({before} acknowledged before the call, "
          f"{acked[0]} in all)")
    hs.shutdown()
    h.shutdown()


def main():
    start = time.monotonic()
    cluster = Cluster()
    checks = Checks()
    try:
        cluster.up()
        body(cluster, checks)
    except Exception as e:  # noqa: BLE001 - setup failure counts as a failed check
        import traceback
        traceback.print_exc()
        checks.failed += 1
        print(f"FAIL setup/body: {e!r}")
    finally:
        if checks.failed:
            cluster.dump_logs()
        cluster.cleanup()
    print(f"took {time.monotonic() - start:.1f} s")
    return checks.finish()


if __name__ == "__main__":
    sys.exit(main())
