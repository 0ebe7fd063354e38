#!/usr/bin/env python3
"""Snapshots and clones through NBD on a real local cluster (mgmt, 3 servers, client 4).

Proves: a snapshot of an attached volume is taken without closing its NBD connection and holds
exactly the data written before it; a clone of the snapshot reads that data while the volume
reads the newer writes over it; a snapshot attached read-only exports its own data and refuses
writes; a 3-deep chain (with a trim in a middle layer) reads correctly block by block against a
reference model; a snapshot taken under a sequential writer holds a prefix of the acknowledged
writes; snapshots show in the listings and status with their snapshot-only fields; deleting a
snapshot with children marks it deleted and keeps its data for them (they read as before), a
childless one is deleted. Revert of an attached volume reads the snapshot's data on the same
NBD connection; freeze turns a volume into a snapshot that reads its data; SnapshotUpdate
renames, tags, binds; scheduled deletions happen on time (childless: gone; with children:
marked deleted); rebase that would need a layer merge answers notImplemented.
"""
import os
import random
import subprocess
import sys
import threading
import time

import nbd

from cluster import BIN, ApiError, wait_until
import sptypes as T
from nbdvol import MiB, cluster_main

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
        gid = cluster.get("Snapshot/sv-s3")[0]["globalId"]
        r = cluster.post("SnapshotDelete/sv-s3")
        assert "child" in r.get("info", ""), r
        snaps = {x["globalId"]: x for x in cluster.get("SnapshotsList")}
        d = snaps[gid]
        assert d["name"] == "*" + gid and d["deleted"] is True, d
        assert d.get("deleteBlocked") == "multiple children", d  # sv and sv-c3 read through it
        assert "sv-s3" not in {x["name"] for x in snaps.values()}
        errs = T.check(cluster.get("SnapshotsList"), T.List("SnapshotSummary"), "SnapshotsList")
        assert not errs, errs[:5]
        compare(h, vol, "sv after deleting sv-s3")
        compare(hc3, c3, "sv-c3 after deleting sv-s3")
        try:
            cluster.post("VolumeCreate", {"name": "x", "parent": "~" + gid})
        except ApiError as e:
            assert e.error["name"] == "objectNotFound", e.error
        else:
            raise AssertionError("cloned a deleted snapshot")
        # A childless snapshot: snapshot the clone sv-c1, then delete the clone.
        cluster.post("VolumeSnapshot/sv-c1", {"name": "c1-last"})
        hc.shutdown()
        cluster.post("VolumesReassign", [{"volume": "sv-c1", "detach": [4], "force": True}])
        cluster.post("VolumeDelete/sv-c1")
        cluster.post("SnapshotDelete/c1-last")
        assert "c1-last" not in {s["name"] for s in cluster.get("SnapshotsList")}
    checks.run("delete of a snapshot with children keeps it (deleted) and its data; childless "
               "snapshot deleted", delete_rules)

    checks.run("snapshot under a sequential writer holds a prefix", snapshot_under_writes,
               cluster)
    checks.run("CLI: volume snapshot, snapshot list/delete, attach snapshot", cli_commands,
               cluster)
    for x in (h, hs, h2, hc3):
        x.shutdown()
    chain_operations(cluster, checks, rng)


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
    gid = cluster.get("Snapshot/cli-s")[0]["globalId"]
    cli(cluster, "snapshot", "cli-s", "delete", "cli-s")  # has a child: marked deleted
    d = [x for x in cluster.get("SnapshotsList") if x["globalId"] == gid]
    assert d and d[0]["deleted"] is True, d
    cli(cluster, "volume", "cli-v", "delete", "cli-v")  # the transient snapshot goes with it
    d = [x for x in cluster.get("SnapshotsList") if x["globalId"] == gid]
    # cli-s is also sv's parent: kept, deleted, for that one child.
    assert d and d[0]["deleted"] and d[0].get("deleteBlocked") == "pending", d
    assert not [x for x in cluster.get("SnapshotsList") if x["transient"]]
    # snapshot update / rename / tag / bind, space, freeze, revertToSnapshot through the CLI.
    cli(cluster, "volume", "cli-f", "create", "size", "64M", "template", "demo")
    cli(cluster, "volume", "cli-f", "snapshot", "cli-f1")
    cli(cluster, "snapshot", "cli-f1", "rename", "cli-f2", "tag", "a=b")
    cli(cluster, "snapshot", "cli-f2", "update", "bind", "deleteAfter", "1d")
    s = cluster.get("Snapshot/cli-f2")[0]
    assert s["tags"] == {"a": "b"} and s["bound"] is True and s["targetDeleteDate"] > time.time()
    assert "cli-f2" in cli(cluster, "snapshot", "space")
    assert "cli-f2" in cli(cluster, "snapshot", "list")
    cli(cluster, "volume", "cli-f", "revertToSnapshot", "cli-f2")
    cli(cluster, "volume", "cli-f", "freeze")
    assert "cli-f" in {x["name"] for x in cluster.get("SnapshotsList")}
    assert "cli-f" not in {x["name"] for x in cluster.get("VolumesList")}


def api_error(fn, *args):
    try:
        fn(*args)
    except ApiError as e:
        return e.error
    raise AssertionError(f"{args} succeeded")


def chain_operations(cluster, checks, rng):
    """Revert, freeze, SnapshotUpdate, scheduled deletion, rebase on volume rv."""
    cluster.post("VolumeCreate", {"name": "rv", "size": SIZE, "template": "demo"})
    h = attach(cluster, "rv")
    vol = bytearray(SIZE)
    random_writes(h, vol, rng, 30)  # A
    a = bytes(vol)
    cluster.post("VolumeSnapshot/rv", {"name": "rv-a"})
    random_writes(h, vol, rng, 30)  # B
    b = bytes(vol)
    cluster.post("VolumeSnapshot/rv", {"name": "rv-b"})
    random_writes(h, vol, rng, 30)  # C

    def revert():
        r = cluster.post("VolumeRevert/rv", {"toSnapshot": "rv-a"})
        assert "info" not in r, r
        compare(h, a, "rv after revert to rv-a (same connection)")
        chain = [x["name"] for x in cluster.get("VolumeListSnapshots/rv")]
        assert chain == ["rv-a"], chain
        m = bytearray(a)
        random_writes(h, m, rng, 10)
        compare(h, m, "rv writes after the revert")
        # rv-b is a snapshot of rv, newer than rv-a: reverting to it is allowed too.
        cluster.post("VolumeRevert/rv", {"toSnapshot": "rv-b"})
        compare(h, b, "rv after revert to rv-b")
        hs = attach(cluster, "rv-a", snapshot=True)
        compare(hs, a, "rv-a unchanged by the reverts")
        hs.shutdown()
        cluster.post("VolumesReassign", [{"snapshot": "rv-a", "detach": [4], "force": True}])
        e = api_error(cluster.post, "VolumeRevert/rv", {"toSnapshot": "sv-s1"})
        assert e["name"] == "invalidParam" and "not a snapshot of" in e["descr"], e
        e = api_error(cluster.post, "VolumeRevert/rv", {"toSnapshot": "nope"})
        assert e["name"] == "objectNotFound", e
        e = api_error(cluster.post, "VolumeRevert/rv", {})
        assert e["name"] == "invalidParam", e
    checks.run("revert an attached volume: reads the snapshot's data on the same connection",
               revert)

    def update():
        cluster.post("SnapshotUpdate/rv-a", {"rename": "rv-a2", "tags": {"k": "v", "x": "y"}})
        s = cluster.get("Snapshot/rv-a2")[0]
        assert s["tags"] == {"k": "v", "x": "y"} and s["autoName"] is False, s
        assert "rv-a" not in {x["name"] for x in cluster.get("SnapshotsList")}
        cluster.post("SnapshotUpdate/rv-a2", {"rename": "rv-a", "tags": {"x": ""},
                                              "bind": True, "deleteAfter": 3600})
        s = cluster.get("Snapshot/rv-a")[0]
        assert s["tags"] == {"k": "v"} and s["bound"] is True, s
        assert abs(s["targetDeleteDate"] - (time.time() + 3600)) < 60, s
        cluster.post("SnapshotUpdate/rv-a", {"bind": False, "targetDeleteDate": 0})
        s = cluster.get("Snapshot/rv-a")[0]
        assert s["bound"] is False and "targetDeleteDate" not in s, s
        e = api_error(cluster.post, "SnapshotUpdate/rv-a", {"rename": "rv-b"})
        assert e["name"] == "objectExists", e
        e = api_error(cluster.post, "SnapshotUpdate/rv-a", {"replication": 1})
        assert e["name"] == "notImplemented", e
    checks.run("SnapshotUpdate: rename, tags, bind, delete date round trip", update)

    def rebase():
        cluster.post("VolumeRebase/rv", {"parentName": "rv-b"})  # its parent already: no-op
        e = api_error(cluster.post, "VolumeRebase/rv", {})
        assert e["name"] == "notImplemented" and "merge" in e["descr"], e
        e = api_error(cluster.post, "SnapshotRebase/rv-b", {})
        assert e["name"] == "notImplemented", e
        cluster.post("SnapshotRebase/rv-b", {"parentName": "rv-a"})
        e = api_error(cluster.post, "SnapshotRebase/rv-a", {"parentName": "rv-b"})
        assert e["name"] == "invalidParam", e  # not an ancestor
        compare(h, b, "rv after the refused rebases")
    checks.run("rebase: no-op onto the parent, notImplemented where data would move", rebase)

    def scheduled():
        # With a child (rv): marked deleted on time, its data kept for rv.
        r = cluster.post("VolumeSnapshot/rv", {"name": "rv-c", "deleteAfter": 2})
        gid = r["snapshotGlobalId"]
        assert cluster.get("Snapshot/rv-c")[0]["targetDeleteDate"] <= time.time() + 3
        cut = bytes(read_all(h))

        def marked():
            x = [s for s in cluster.get("SnapshotsList") if s["globalId"] == gid]
            return x and x[0]["deleted"] and x[0]["name"] == "*" + gid
        wait_until("rv-c marked deleted", marked, timeout_s=15, interval_s=0.25)
        compare(h, cut, "rv after its parent was deleted on schedule")
        # Childless: gone on time.
        cluster.post("VolumeCreate", {"name": "sd", "size": 1 * MiB, "template": "demo"})
        cluster.post("VolumeSnapshot/sd", {"name": "sd-s"})
        cluster.post("VolumeDelete/sd")
        cluster.post("SnapshotUpdate/sd-s", {"targetDeleteDate": int(time.time()) + 2})
        assert "sd-s" in {s["name"] for s in cluster.get("SnapshotsList")}
        wait_until("sd-s deleted", lambda: "sd-s" not in {
            s["name"] for s in cluster.get("SnapshotsList")}, timeout_s=15, interval_s=0.25)
        # Bound: collected with its last child.
        cluster.post("VolumeCreate", {"name": "bd", "size": 1 * MiB, "template": "demo"})
        cluster.post("VolumeSnapshot/bd", {"name": "bd-s", "bind": True})
        cluster.post("VolumeDelete/bd")
        assert "bd-s" not in {s["name"] for s in cluster.get("SnapshotsList")}
    checks.run("scheduled deletion on time; bound snapshot collected with its last child",
               scheduled)

    def freeze():
        e = api_error(cluster.post, "VolumeFreeze/rv")
        assert e["name"] == "invalidParam" or "read-write" in e["descr"], e
        data = bytes(read_all(h))
        gid = cluster.get("Volume/rv")[0]["globalId"]
        h.shutdown()
        cluster.post("VolumesReassign", [{"volume": "rv", "detach": [4], "force": True}])
        cluster.post("VolumeFreeze/rv")
        assert "rv" not in {v["name"] for v in cluster.get("VolumesList")}
        s = cluster.get("Snapshot/rv")[0]
        assert s["globalId"] == gid and s["onVolume"] == "rv", s
        hs = attach(cluster, "rv", snapshot=True)
        compare(hs, data, "frozen rv")
        hs.shutdown()
        cluster.post("VolumesReassign", [{"snapshot": "rv", "detach": [4], "force": True}])
        e = api_error(cluster.post, "VolumeFreeze/rv")
        assert e["name"] == "objectNotFound", e
    checks.run("freeze: refused while attached rw; the snapshot keeps name, id and data", freeze)


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
    return cluster_main(body)


if __name__ == "__main__":
    sys.exit(main())
