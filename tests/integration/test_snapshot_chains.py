#!/usr/bin/env python3
"""Deep snapshot chains and snapshot deletion through NBD on a real local cluster (issue 5).

Case 1: a 6-deep chain. Volume V gets six rounds of random writes (4 KiB-aligned extents of
4 KiB..256 KiB, sub-4K writes aligned to 512, trims, zero writes, some across the 32 MiB object
boundary), each followed by a snapshot; a byte-exact model is kept per snapshot. V and every
snapshot (attached read-only) are compared with their models block by block; clones of s3 and
s6 are written to and checked against their own models while the snapshots read unchanged.

Case 2: on a fresh 4-deep chain (plus a written clone of s2) per order, the intermediate
snapshots are deleted oldest-first, newest-first and middle-out (with the clone deleted in
between); after every single delete every remaining volume, clone and snapshot must read
exactly what it read before. The volume and the clone stay attached on their NBD connections
through the deletes; the snapshots are attached afresh for each check. Finally the volume and
the clone are deleted and the chain's deleted snapshots must be collected.
"""
import random
import sys
import time

import nbd

from cluster import Cluster, wait_until
from test_snapshots import attach, export_ready as connect

MiB = 1024 * 1024
BLOCK = 4096
READ_CHUNK = 4 * MiB
OBJECT = 32 * MiB


class Results:
    """ok/FAIL lines; a failure does not stop the remaining checks."""

    def __init__(self):
        self.passed = 0
        self.failed = 0

    def ok(self, what):
        self.passed += 1
        print(f"ok   {what}", flush=True)

    def fail(self, what):
        self.failed += 1
        print(f"FAIL {what}", flush=True)

    def check(self, cond, what):
        (self.ok if cond else self.fail)(what)


def detach(cluster, h, name, snapshot=False):
    h.shutdown()
    key = "snapshot" if snapshot else "volume"
    cluster.post("VolumesReassign", [{key: name, "detach": [4], "force": True}])


def mutate(h, model, rng, count):
    """count random operations on h, mirrored into model; returns per-kind counts."""
    size = len(model)
    kinds = {"write": 0, "small": 0, "trim": 0, "zero": 0, "cross": 0}
    for i in range(count):
        r = rng.random()
        if r < 0.1:  # sub-4K write, 512-aligned, often not 4K-aligned
            n = rng.randrange(1, 8) * 512
            off = rng.randrange(0, (size - n) // 512 + 1) * 512
            kind = "small"
        else:
            n = rng.randrange(1, 65) * BLOCK
            off = rng.randrange(0, (size - n) // BLOCK + 1) * BLOCK
            if size > OBJECT and i % 7 == 3:  # across the object boundary
                off = OBJECT - rng.randrange(1, n // BLOCK + 1) * BLOCK
                kinds["cross"] += 1
            kind = "write" if r < 0.7 else "trim" if r < 0.85 else "zero"
            if kind != "write" and rng.random() < 0.3:  # trims and zeroes at 512 granularity
                n = rng.randrange(1, 16) * 512
                off = rng.randrange(0, (size - n) // 512 + 1) * 512
        if kind in ("write", "small"):
            data = rng.randbytes(n)
            h.pwrite(data, off)
            model[off:off + n] = data
        elif kind == "trim":
            h.trim(n, off)
            model[off:off + n] = bytes(n)
        else:
            h.zero(n, off, nbd.CMD_FLAG_NO_HOLE if rng.random() < 0.3 else 0)
            model[off:off + n] = bytes(n)
        kinds[kind] += 1
    h.flush()
    return kinds


def read_all(h, size):
    out = bytearray()
    for off in range(0, size, READ_CHUNK):
        out += h.pread(min(READ_CHUNK, size - off), off)
    return out


def diff(h, model, known):
    """None when h reads model; else a description of the differing blocks: count, first
    offsets, and which known model (name -> bytes) the first differing block matches."""
    got = read_all(h, len(model))
    if got == model:
        return None
    bad = [i for i in range(0, len(model), BLOCK) if got[i:i + BLOCK] != model[i:i + BLOCK]]
    first = bad[0]
    blk = got[first:first + BLOCK]
    like = [n for n, m in known.items() if m[first:first + BLOCK] == blk]
    if blk == bytes(BLOCK):
        like.append("zeros")
    sectors = [first + s for s in range(0, BLOCK, 512)
               if got[first + s:first + s + 512] != model[first + s:first + s + 512]]
    return (f"{len(bad)} blocks differ, first at offsets {[hex(b) for b in bad[:6]]}; "
            f"block {hex(first)} sectors {[hex(s) for s in sectors]} read like {like or '?'}")


def read_snapshot(cluster, name, model, known):
    h = attach(cluster, name, snapshot=True)
    try:
        return diff(h, model, known)
    finally:
        detach(cluster, h, name, snapshot=True)


def chain_names(cluster, prefix):
    return {s["name"]: s for s in cluster.get("SnapshotsList")
            if s["name"].startswith(prefix) or s.get("onVolume", "").startswith(prefix)}


def case_deep_chain(cluster, res, rng):
    size = 64 * MiB
    cluster.post("VolumeCreate", {"name": "cv", "size": size, "template": "demo"})
    h = attach(cluster, "cv")
    vol = bytearray(size)
    snaps = {}
    for i in range(1, 7):
        k = mutate(h, vol, rng, 45)
        name = f"cv-s{i}"
        cluster.post("VolumeSnapshot/cv", {"name": name})
        snaps[name] = bytes(vol)
        print(f"     layer {i}: {k}", flush=True)
    mutate(h, vol, rng, 30)  # the volume's own top layer
    known = dict(snaps, cv=bytes(vol))

    chain = [s["name"] for s in cluster.get("VolumeListSnapshots/cv")]
    res.check(chain == [f"cv-s{i}" for i in range(6, 0, -1)], f"case1 chain of cv is {chain}")
    d = diff(h, vol, known)
    res.check(d is None, f"case1 cv (7 layers) reads its model: {d or '16384 blocks'}")
    matched = 0
    for name, model in snaps.items():
        d = read_snapshot(cluster, name, model, known)
        if d:
            res.fail(f"case1 snapshot {name}: {d}")
        else:
            matched += 1
    res.check(matched == 6, f"case1 {matched}/6 snapshots read their models (ro attach)")

    clones = {}
    for src in ("cv-s3", "cv-s6"):
        name = "cc-" + src[3:]
        cluster.post("VolumeCreate", {"name": name, "parent": src})
        hc = attach(cluster, name)
        d = diff(hc, snaps[src], known)
        res.check(d is None, f"case1 clone {name} of {src} reads the snapshot before writes: "
                  f"{d or 'ok'}")
        model = bytearray(snaps[src])
        mutate(hc, model, rng, 40)
        clones[name] = (hc, model)
    known.update({n: bytes(m) for n, (_, m) in clones.items()})
    for name, (hc, model) in clones.items():
        d = diff(hc, model, known)
        res.check(d is None, f"case1 clone {name} reads its own writes over the chain: "
                  f"{d or 'ok'}")
    d = diff(h, vol, known)
    res.check(d is None, f"case1 cv unchanged by the clones' writes: {d or 'ok'}")
    matched = 0
    for name in ("cv-s3", "cv-s6", "cv-s5", "cv-s1"):
        d = read_snapshot(cluster, name, snaps[name], known)
        if d:
            res.fail(f"case1 snapshot {name} after the clone writes: {d}")
        else:
            matched += 1
    res.check(matched == 4, f"case1 {matched}/4 snapshots unchanged by the clones' writes")
    for name, (hc, _) in clones.items():
        detach(cluster, hc, name)
    detach(cluster, h, "cv")


def case_delete_order(cluster, res, rng, tag, order):
    """order: snapshot indexes 1..4 and "clone", deleted one at a time."""
    size = 32 * MiB
    v, p = f"{tag[:3]}v", f"{tag[:3]}-"  # old, new, mid
    cluster.post("VolumeCreate", {"name": v, "size": size, "template": "demo"})
    h = attach(cluster, v)
    vol = bytearray(size)
    snaps = {}
    for i in range(1, 5):
        mutate(h, vol, rng, 35)
        cluster.post("VolumeSnapshot/" + v, {"name": f"{p}s{i}"})
        snaps[f"{p}s{i}"] = bytes(vol)
    mutate(h, vol, rng, 25)
    clone = f"{p}c2"
    cluster.post("VolumeCreate", {"name": clone, "parent": f"{p}s2"})
    hc = attach(cluster, clone)
    cmodel = bytearray(snaps[f"{p}s2"])
    mutate(hc, cmodel, rng, 25)
    known = dict(snaps, **{v: bytes(vol), clone: bytes(cmodel)})
    gids = {n: cluster.get(f"Snapshot/{n}")[0]["globalId"] for n in snaps}

    live_snaps = dict(snaps)
    volumes = {v: (h, vol), clone: (hc, cmodel)}

    def verify(step):
        bad = 0
        for name, (hh, model) in volumes.items():
            d = diff(hh, model, known)
            if d:
                bad += 1
                res.fail(f"{tag} {step}: volume {name}: {d}")
        for name, model in live_snaps.items():
            d = read_snapshot(cluster, name, model, known)
            if d:
                bad += 1
                res.fail(f"{tag} {step}: snapshot {name}: {d}")
        n = len(volumes) + len(live_snaps)
        res.check(bad == 0, f"{tag} {step}: {n - bad}/{n} reads match "
                  f"({', '.join(list(volumes) + list(live_snaps))})")

    verify("before deletes")
    for step in order:
        if step == "clone":
            detach(cluster, hc, clone)
            cluster.post("VolumeDelete/" + clone)
            del volumes[clone]
            verify(f"after deleting clone {clone}")
            continue
        name = f"{p}s{step}"
        r = cluster.post("SnapshotDelete/" + name)
        del live_snaps[name]
        listed = {s["globalId"]: s for s in cluster.get("SnapshotsList")}
        s = listed.get(gids[name])
        # Every snapshot here still has the volume above it: kept, marked deleted.
        if s is not None and s["deleted"] and s["name"] == "*" + gids[name] \
                and "child" in r.get("info", ""):
            res.ok(f"{tag} {name} marked deleted, kept for its children "
                   f"(deleteBlocked {s.get('deleteBlocked')!r})")
        else:
            res.fail(f"{tag} {name} not marked deleted: "
                     f"{s and {k: s.get(k) for k in ('name', 'deleted', 'deleteBlocked')}} {r}")
        verify(f"after deleting {name}")

    # Remove the volume (and the clone if still there): the chain's deleted snapshots go.
    detach(cluster, h, v)
    cluster.post("VolumeDelete/" + v)
    del volumes[v]
    if clone in volumes:
        verify(f"after deleting volume {v}")
        detach(cluster, hc, clone)
        cluster.post("VolumeDelete/" + clone)
        del volumes[clone]
    for n in list(live_snaps):  # snapshots the order kept: deleted now, childless or not
        cluster.post("SnapshotDelete/" + n)

    def collected():
        ids = {s["globalId"] for s in cluster.get("SnapshotsList")}
        return not (ids & set(gids.values()))
    try:
        wait_until(f"{tag} chain collected", collected, timeout_s=15, interval_s=0.25)
        res.ok(f"{tag} every snapshot of the chain collected once the volume and clone are gone")
    except TimeoutError:
        rest = [s for s in cluster.get("SnapshotsList") if s["globalId"] in gids.values()]
        res.fail(f"{tag} snapshots not collected: "
                 f"{[{k: s.get(k) for k in ('name', 'deleted', 'deleteBlocked')} for s in rest]}")


def main():
    start = time.monotonic()
    cluster = Cluster()
    res = Results()
    rng = random.Random(int(sys.argv[1]) if len(sys.argv) > 1 else 55)
    try:
        cluster.up()
        t = time.monotonic()
        case_deep_chain(cluster, res, rng)
        print(f"     case 1 took {time.monotonic() - t:.1f} s", flush=True)
        for tag, order in (("oldest-first", [1, 2, 3, 4]), ("newest-first", [4, 3, 2, 1]),
                           ("middle-out", [2, 3, "clone", 1, 4])):
            t = time.monotonic()
            case_delete_order(cluster, res, rng, tag, order)
            print(f"     case 2 {tag} took {time.monotonic() - t:.1f} s", flush=True)
    except Exception as e:  # noqa: BLE001 - a setup failure counts as a failure
        import traceback
        traceback.print_exc()
        res.fail(f"setup/body: {e!r}")
    finally:
        if res.failed:
            cluster.dump_logs()
        cluster.cleanup()
    print(f"{res.passed} passed, {res.failed} failed; took {time.monotonic() - start:.1f} s")
    return 0 if res.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
