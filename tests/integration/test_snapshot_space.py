#!/usr/bin/env python3
"""Space accounting of volumes, snapshots and clones on a real local cluster (issue 5).

Writes known amounts through NBD into a volume (whole 4 KiB blocks in objects 0-2, a trim in
object 2), snapshots it, overwrites and extends it, clones the snapshot and writes the clone.
After each step VolumesSpace / SnapshotsSpace must show storedSize = the bytes written into
that layer (one copy; within one 4 KiB block per object touched), spaceUsed = storedSize for a
volume and for a childless snapshot, 0 for a snapshot with children, and VolumesGetStatus's
onDiskSize = storedSize x replication (all copies). Then the clone, the volume and the
snapshot are deleted one by one (the snapshot's spaceUsed becomes its storedSize once
childless) and every disk
must come back to the usage it had before anything was written (DisksList: objectsAllocated,
entriesAllocated, objectsOnDiskSize, `empty`).
"""
import sys

import nbd

from cluster import wait_until
from nbdvol import MiB, cluster_main

BLOCK = 4096
OBJECT = 32 * MiB
SIZE = 4 * OBJECT
REPLICATION = 3


def connect(cluster, name):
    def attempt():
        h = nbd.NBD()
        h.connect_uri(cluster.nbd_uri(name))
        return h
    return wait_until(f"export {name}", attempt, timeout_s=30)


def attach(cluster, name):
    cluster.post("VolumesReassign", [{"volume": name, "rw": [4]}])
    return connect(cluster, name)


def detach(cluster, h, name):
    h.shutdown()
    cluster.post("VolumesReassign", [{"volume": name, "detach": [4], "force": True}])


def space(cluster, call, name):
    for x in cluster.get(call):
        if x["name"] == name:
            return x
    raise AssertionError(f"{name} not in {call}")


def expect_space(cluster, call, name, stored, objects, used=None):
    """Waits (servers report usage with their heartbeats) until `name` shows storedSize within
    [stored, stored + one block per object touched] and spaceUsed as expected."""
    used = stored if used is None else used
    last = {}

    def ok():
        x = space(cluster, call, name)
        last.update(x)
        slack = BLOCK * objects
        good = stored <= x["storedSize"] <= stored + slack
        good = good and (x["spaceUsed"] == 0 if used == 0 else
                         used <= x["spaceUsed"] <= used + slack)
        # Each server reports its own disks: all copies are counted once all three reported.
        st = cluster.get("VolumesGetStatus")[name]
        last["onDiskSize"] = st["onDiskSize"]
        return good and st["onDiskSize"] == x["storedSize"] * REPLICATION
    try:
        wait_until(f"{name} storedSize {stored}", ok, timeout_s=30, interval_s=0.25)
    except TimeoutError:
        raise AssertionError(f"{call} {name}: storedSize {last.get('storedSize')} spaceUsed "
                             f"{last.get('spaceUsed')} onDiskSize {last.get('onDiskSize')}, want "
                             f"{stored} / {used} (+{objects} blocks)") from None
    print(f"  {call} {name}: storedSize {last['storedSize']}, spaceUsed {last['spaceUsed']}, "
          f"onDiskSize {last['onDiskSize']}")


def disk_usage(cluster):
    return {d: (x.get("objectsAllocated"), x.get("entriesAllocated"), x.get("objectsOnDiskSize"),
                x.get("empty")) for d, x in cluster.get("DisksList").items()}


def write_blocks(h, offsets, fill):
    for off in offsets:
        h.pwrite(bytes([fill]) * BLOCK, off)
    h.flush()


def body(cluster, checks):
    baseline = disk_usage(cluster)
    cluster.post("VolumeCreate", {"name": "sp", "size": SIZE, "template": "demo"})
    h = attach(cluster, "sp")
    # W1: object 0 one 400 KiB run, object 1 ten scattered blocks, object 2 1 MiB of which
    # 256 KiB are trimmed again.
    h.pwrite(b"\x01" * (100 * BLOCK), 0)
    write_blocks(h, [OBJECT + i * 997 * BLOCK for i in range(10)], 2)
    h.pwrite(b"\x03" * MiB, 2 * OBJECT + 5 * MiB)
    h.trim(256 * 1024, 2 * OBJECT + 5 * MiB + 256 * 1024)
    h.flush()
    w1 = 100 * BLOCK + 10 * BLOCK + MiB - 256 * 1024
    checks.run("volume: storedSize = bytes written (trim subtracted)", expect_space, cluster,
               "VolumesSpace", "sp", w1, 3)

    def disks_used():
        used = disk_usage(cluster)
        grew = [d for d in used if used[d][0] > baseline[d][0] and used[d][3] is False]
        assert len(grew) >= REPLICATION, (used, baseline)
    checks.run("the written disks show allocated objects", disks_used)

    cluster.post("VolumeSnapshot/sp", {"name": "sp-s1"})
    # W2 in the volume's new layer: 50 blocks over W1's in object 0, 20 new ones in object 3.
    write_blocks(h, [i * BLOCK for i in range(50)], 4)
    h.pwrite(b"\x05" * (20 * BLOCK), 3 * OBJECT + 7 * BLOCK)
    h.flush()
    w2 = 70 * BLOCK

    def after_snapshot():
        expect_space(cluster, "SnapshotsSpace", "sp-s1", w1, 3, used=0)
        expect_space(cluster, "VolumesSpace", "sp", w2, 2)
    checks.run("snapshot holds W1 (spaceUsed 0 with a child), volume only its new writes",
               after_snapshot)

    cluster.post("VolumeCreate", {"name": "spc", "parent": "sp-s1"})
    hc = attach(cluster, "spc")
    write_blocks(hc, [OBJECT + i * BLOCK for i in range(5)], 6)
    checks.run("clone: storedSize = its own writes", expect_space, cluster, "VolumesSpace", "spc",
               5 * BLOCK, 1)

    def deletes():
        detach(cluster, hc, "spc")
        cluster.post("VolumeDelete/spc")
        expect_space(cluster, "SnapshotsSpace", "sp-s1", w1, 3, used=0)  # sp still reads it
        detach(cluster, h, "sp")
        cluster.post("VolumeDelete/sp")
        expect_space(cluster, "SnapshotsSpace", "sp-s1", w1, 3)  # childless: all of it
        cluster.post("SnapshotDelete/sp-s1")
        assert not cluster.get("SnapshotsList") and not cluster.get("VolumesList")
        last = {}

        def empty_again():
            last.update(disk_usage(cluster))
            return last == baseline
        try:
            wait_until("disks back to their empty usage", empty_again, timeout_s=60,
                       interval_s=0.5)
        except TimeoutError:
            raise AssertionError(f"disks {last}, before {baseline}") from None
    checks.run("deletes: snapshot's spaceUsed follows its children; disks empty again at the end",
               deletes)


def main():
    return cluster_main(body)


if __name__ == "__main__":
    sys.exit(main())
