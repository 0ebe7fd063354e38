#!/usr/bin/python3
"""The fault suite of issue 6, on real processes with real faults (a fresh spindle-local
cluster per case: mgmt, servers 1-3 with two disks each, client 4 serving NBD).

Each case runs nbd_verify's load (8 writes in flight, 4 KiB..256 KiB, some straddling objects)
on a replication-3 volume, injects its fault, and at the end verifies every acknowledged write
through NBD and compares all replicas of every object byte for byte (the disk files, with
the servers stopped). Cases:
   1  kill -9 one server; I/O continues; restart; recovery; replicas identical
   2  kill -9 two of three servers; I/O continues on the last; both return and catch up
   3  kill -9 all servers: I/O errors or waits (nothing acknowledged meanwhile); restart;
      every acknowledged write is there
   4  SIGSTOP a server longer than the heartbeat timeout, SIGCONT: marked down, I/O continues,
      no stale read right after it rejoins, catches up
   9  kill -9 mgmt during I/O: I/O continues; mgmt restarts with its state
  10  force-detach the volume while the client writes: no write issued afterwards is
      acknowledged; every earlier acknowledged write is there
  11  flipped bytes in the replica reads come from, its scrubber off: the client's own check
      finds them, the server's check then fails that copy and has it repaired
  12  a write nobody acknowledged on one replica only, its server killed, the volume attached
      again and written, the server back: the replica ends with the acknowledged data
  13  two servers killed, writes go on with the third, it is killed too; the two come back
      first while the load writes: nothing is acknowledged until the third is back, nothing lost
Per case it prints the stall time (longest gap between acknowledgements after the fault),
the recovery time (restart → volume up with full redundancy, nothing syncing) and what was
recovered (TasksList / syncingDataBytes; n/a when neither shows anything).

Usage: test_faults.py [--case N]... [--load SECONDS] [--size MiB] [--keep]
Prints "N passed, M failed"; exits non-zero on any failure.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time
import traceback

import struct

from cluster import wait_until
from faults import CLIENT, MiB, FaultCluster
from test_corruption import Wire, chunk_crcs
from nbd_verify import Verifier

VOLUME = "faults"
HEARTBEAT_S = 5.0  # SP_HEARTBEAT_TIMEOUT_MS of spindle-local
STALL_LIMIT_S = 10.0  # "I/O stalls at most a few seconds": detection + replica timeout
RECOVERY_TIMEOUT_S = 90.0


class Run:
    """One case's checks and measurements."""

    def __init__(self, num, title, load_s, size, seed, keep):
        self.num = num
        self.title = title
        self.load_s = load_s
        self.size = size
        self.seed = seed
        self.keep = keep
        self.problems = []
        self.stall = None
        self.recovery = None
        self.recovered = "n/a"
        self.load = None
        self.t0 = time.monotonic()

    def say(self, msg):
        print(f"  [{time.monotonic() - self.t0:6.1f}s] {msg}", flush=True)

    def check(self, ok, what):
        self.say(("ok   " if ok else "FAIL ") + what)
        if not ok:
            self.problems.append(what)
        return ok

    def sleep(self, seconds):
        time.sleep(max(0.0, seconds))

    def line(self):
        fmt = lambda x: "n/a" if x is None else f"{x:.1f}s"  # noqa: E731
        load = self.load
        what = ("no load" if load is None else
                f"acked {load['acked']} writes, {load['ackedMiB']} MiB, failed {load['failed']}, "
                f"unknown {load['unknown']}")
        return (f"CASE {self.num:>2} {'PASS' if not self.problems else 'FAIL'}  "
                f"stall {fmt(self.stall)}  recovery {fmt(self.recovery)}  "
                f"recovered {self.recovered}  | {self.title}  ({what})")


def start_load(run, cluster, **kw):
    v = Verifier(cluster.nbd_uri(VOLUME), seed=run.seed, log=run.say, **kw)
    v.start()
    got = v.wait_acks(20, 30)
    run.check(got is not None, "load running (20 writes acknowledged)")
    return v


def server_disks(cluster, *sids):
    return [d for s in sids for d in cluster.server_disks(s)]


def stop_load(run, v, expect_errors=False):
    v.stop()
    run.load = v.summary()
    run.say(f"load: {run.load}")
    run.say(f"acks per second: {v.progress_text()}")
    if not expect_errors:
        run.check(run.load["failed"] == 0 and run.load["unknown"] == 0,
                  f"no write failed ({run.load['failed']} failed, {run.load['unknown']} lost)")


def verify_data(run, cluster, v, when):
    bad = v.verify(cluster.nbd_uri(VOLUME))
    run.check(not bad, f"{when}: {v.verified_blocks} blocks verified, {len(bad)} mismatches"
              + (f" (first at offset {bad[0][0]}: {bad[0][2]})" if bad else ""))


def pulled_by_recovery(cluster):
    """(objects, bytes) the servers' recovery passes pulled, from their logs."""
    objects = nbytes = 0
    for name in os.listdir(os.path.join(cluster.dir, "log")):
        if not name.startswith("server"):
            continue
        with open(os.path.join(cluster.dir, "log", name), errors="replace") as fh:
            for line in fh:
                m = re.search(r"recovery pass \d+ done: (\d+) objects, (\d+) bytes pulled", line)
                if m:
                    objects += int(m.group(1))
                    nbytes += int(m.group(2))
    return objects, nbytes


def wait_recovered(run, cluster, since):
    try:
        _, run.recovered = cluster.wait_recovered(VOLUME, timeout_s=RECOVERY_TIMEOUT_S)
        objects, nbytes = pulled_by_recovery(cluster)
        if objects:
            run.recovered = f"{nbytes / MiB:.1f} MiB in {objects} objects"
        run.recovery = time.monotonic() - since
        run.check(True, f"recovered {run.recovery:.1f}s after the fault ended ({run.recovered})")
    except TimeoutError as e:
        run.check(False, str(e))


def compare(run, cluster):
    """Replicas byte for byte on the disk files, with the servers stopped (they stay
    stopped). FaultCluster.compare_replicas_online does the same through running servers."""
    t = time.monotonic()
    problems = cluster.compare_replicas_offline(VOLUME, cluster.layout(VOLUME))
    for p in problems[:10]:
        run.say(f"  {p}")
    run.check(not problems, f"replicas identical ({len(problems)} differences, "
              f"{time.monotonic() - t:.1f}s)")
    # An operator's stop must end the server: one that had to be killed kept something open.
    run.check(not cluster.ignored_sigterm,
              f"every server ended on SIGTERM (killed instead: {cluster.ignored_sigterm})")


def stall_check(run, v, since, until=None, what="after the fault"):
    """The longest gap between acknowledgements in [since, until]; the case's stall time is
    the worst of these."""
    gap = v.longest_gap(since, until)
    run.stall = max(run.stall or 0.0, gap)
    run.check(gap <= STALL_LIMIT_S, f"I/O stalled {gap:.1f}s {what} (limit {STALL_LIMIT_S:.0f}s)")


def rejoin_checks(run, cluster, v, t_back, what):
    """Cases 4 and 5, once the server is reachable again: stop the load, no stale read right
    away, recovery, data and replicas."""
    stop_load(run, v)
    stall_check(run, v, t_back, v.t_end, f"after {what}")
    verify_data(run, cluster, v, f"right after {what} (no stale read)")
    wait_recovered(run, cluster, t_back)
    verify_data(run, cluster, v, "after recovery")
    compare(run, cluster)


def kill_servers_case(run, cluster, victims):
    """Cases 1 and 2: kill -9 `victims` under load, degraded I/O, restart, recovery."""
    v = start_load(run, cluster)
    run.sleep(run.load_s * 0.15)
    names = [f"server{s}" for s in victims]
    t_kill = v.mark(f"kill -9 {names}")
    cluster.kill9(*names)
    run.say(f"killed {names}")
    run.check(v.wait_acks(20, STALL_LIMIT_S * 2) is not None, "I/O continues after the kill")
    try:
        took = cluster.wait_disks(server_disks(cluster, *victims), up=False, timeout_s=20)
        run.check(True, f"disks of {names} marked down after {took:.1f}s")
    except TimeoutError as e:
        run.check(False, str(e))
    run.sleep(run.load_s * 0.35 - (time.monotonic() - t_kill))
    t_restart = v.mark("restart")
    stall_check(run, v, t_kill, t_restart)
    run.say(f"restart took {cluster.restart():.1f}s")
    run.sleep(run.load_s * 0.4)  # recovery while new writes continue
    stop_load(run, v)
    stall_check(run, v, t_restart, v.t_end, f"while {names} rejoined")
    wait_recovered(run, cluster, t_restart)
    verify_data(run, cluster, v, "after recovery")
    compare(run, cluster)


def case_1(run, cluster):
    """kill -9 one server under load, restart, recovery."""
    kill_servers_case(run, cluster, [2])


def case_2(run, cluster):
    """kill -9 two of three servers under load, restart both, recovery."""
    kill_servers_case(run, cluster, [1, 2])


def case_3(run, cluster):
    """kill -9 all servers: nothing acknowledged while they are dead; restart; all there."""
    v = start_load(run, cluster, reconnect_s=90)
    run.sleep(run.load_s * 0.2)
    servers = [f"server{s}" for s in cluster.servers()]
    t_kill = v.mark("kill -9 all servers")
    cluster.kill9(*servers)
    run.sleep(6)
    t_restart = v.mark("restart")
    late = v.acks_after(t_kill + 1.0)
    run.check(late == 0, f"no write acknowledged while every server was dead ({late})")
    run.say(f"restart took {cluster.restart():.1f}s")
    resumed = v.wait_acks(20, 60)
    run.check(resumed is not None, "I/O resumes after the restart"
              + (f" ({resumed:.1f}s)" if resumed is not None else ""))
    run.stall = v.longest_gap(t_kill)
    run.sleep(run.load_s * 0.3)
    stop_load(run, v, expect_errors=True)
    wait_recovered(run, cluster, t_restart)
    verify_data(run, cluster, v, "after restart")
    compare(run, cluster)


def case_4(run, cluster):
    """SIGSTOP a server past the heartbeat timeout, SIGCONT; no stale read after rejoin."""
    v = start_load(run, cluster)
    run.sleep(run.load_s * 0.15)
    t_stop = v.mark("SIGSTOP server3")
    cluster.pause("server3")
    try:
        took = cluster.wait_disks(server_disks(cluster, 3), up=False,
                                  timeout_s=HEARTBEAT_S + 10)
        run.check(True, f"disks of server3 marked down after {took:.1f}s")
    except TimeoutError as e:
        run.check(False, str(e))
    run.check(v.wait_acks(20, STALL_LIMIT_S) is not None, "I/O continues while it is stopped")
    run.sleep(HEARTBEAT_S + 3 - (time.monotonic() - t_stop))
    t_cont = v.mark("SIGCONT server3")
    cluster.resume("server3")
    stall_check(run, v, t_stop, t_cont)
    run.sleep(2.0)  # a few writes land while it rejoins, then read everything at once
    rejoin_checks(run, cluster, v, t_cont, "SIGCONT")


def case_9(run, cluster):
    """kill -9 mgmt during I/O: I/O continues; restart; state intact."""
    before = cluster.state_snapshot()
    v = start_load(run, cluster)
    run.sleep(run.load_s * 0.15)
    t_kill = v.mark("kill -9 mgmt")
    cluster.kill9("mgmt")
    run.check(v.wait_acks(20, STALL_LIMIT_S) is not None, "I/O continues without mgmt")
    run.sleep(run.load_s * 0.5 - (time.monotonic() - t_kill))
    t_restart = v.mark("restart mgmt")
    stall_check(run, v, t_kill, t_restart)
    took = cluster.restart()
    run.say(f"mgmt restarted, all services running again after {took:.1f}s")
    run.sleep(run.load_s * 0.2)
    stop_load(run, v)
    stall_check(run, v, t_restart, v.t_end, "while mgmt restarted")
    after = cluster.state_snapshot()
    run.check(before == after, "mgmt state intact after the restart"
              + ("" if before == after else f": {before} != {after}"))
    wait_recovered(run, cluster, t_restart)
    verify_data(run, cluster, v, "after the mgmt restart")
    compare(run, cluster)


def case_10(run, cluster):
    """Force-detach while the client writes: writes issued afterwards are all refused."""
    v = start_load(run, cluster, reconnect_s=5, max_reconnects=3)
    run.sleep(run.load_s * 0.2)
    t_detach = v.mark("force detach")
    cluster.force_detach(VOLUME)
    t_done = time.monotonic()
    run.say(f"VolumesReassign detach force took {t_done - t_detach:.2f}s")
    run.sleep(min(10.0, run.load_s * 0.3))
    stop_load(run, v, expect_errors=True)
    late = v.writes_acked_issued_after(t_done)
    run.check(not late, f"no write issued after the detach was acknowledged ({len(late)})")
    run.say(f"acknowledgements after the detach returned: {v.acks_after(t_done)} "
            f"(writes issued before it)")
    run.stall = None
    fenced_write_check(run, cluster)
    cluster.attach(VOLUME)
    verify_data(run, cluster, v, "after reattaching")
    compare(run, cluster)


def fenced_write_check(run, cluster):
    """The servers themselves refuse the detached client: a WRITE carrying its id, sent
    straight to a replica of object 0 at the next version, gets status 5 (permission
    denied) and changes nothing."""
    layer, sets = cluster.layout(VOLUME)
    disk = sets[0][0]
    port = cluster.server_port(cluster.disks()[str(disk)]["serverId"])
    w = Wire(port)
    try:
        status, payload = w.call(4, struct.pack("<IIQ", disk, 0, layer))  # OBJECT_INFO
        run.check(status == 0, f"OBJECT_INFO of object 0 on disk {disk}")
        version = struct.unpack("<Q", payload[:8])[0] + 1
        data = bytes(4096)
        crcs = chunk_crcs(data)

        def write(client):
            p = struct.pack("<IIQQIIII", disk, 0, layer, version, 0, len(data), 0, client)
            return w.call(2, p + struct.pack(f"<{len(crcs)}I", *crcs) + data)
        status, msg = write(CLIENT)
        run.check(status == 5, f"a write from the detached client {CLIENT} straight to disk "
                  f"{disk} is refused (status {status}: {msg[:100]!r})")
    finally:
        w.close()


def flip_block(run, cluster, disk, only=None, candidates=range(0, 8192, 7)):
    """Flips bytes of one stored block (the first of `candidates` stored) of the volume's objects on
    `disk` (its server stopped), of object `only` = (layer, object) if given:
    → (layer, object, block) or None."""
    f = os.path.join(cluster.dir, "disks", f"{disk}.img")
    for (layer, obj), (version, state, blocks) in sorted(cluster.list_objects(f).items()):
        if blocks == 0 or (only is not None and (layer, obj) != only):
            continue
        for block in candidates:
            p = cluster.disk_tool("block-offset", "--file", f, "--layer", str(layer), "--object",
                                  str(obj), "--block", str(block))
            if p.returncode != 0:
                continue
            r = json.loads(p.stdout)
            if r.get("dirtyBlocks", 0) != 0:
                run.say(f"disk {disk}: {r['dirtyBlocks']} blocks only in the journal")
            for _ in range(2):  # flip; if the check does not see it (a stale copy), undo
                with open(f, "r+b") as fh:
                    fh.seek(r["offset"] + 100)
                    data = fh.read(64)
                    fh.seek(r["offset"] + 100)
                    fh.write(bytes(b ^ 0xA5 for b in data))
                if cluster.disk_tool("check", "--file", f).returncode != 0:
                    return layer, obj, block
    return None


def case_6(run, cluster):
    """Flipped bytes in one replica's disk file: reads stay correct, the copy is repaired,
    and a check of the disk file then finds nothing."""
    v = start_load(run, cluster)
    run.sleep(run.load_s * 0.3)
    stop_load(run, v)
    cluster.stop("server3")
    flipped = [(d, flip_block(run, cluster, d)) for d in cluster.server_disks(3)]
    flipped = [(d, where) for d, where in flipped if where]
    run.check(bool(flipped), f"flipped bytes in {flipped} (disk, (layer, object, block))")
    t_restart = time.monotonic()
    run.say(f"restart took {cluster.restart():.1f}s")
    cluster.wait_disks(server_disks(cluster, 3), up=True, timeout_s=30)
    verify_data(run, cluster, v, "with a damaged replica")
    log = os.path.join(cluster.dir, "log", "server3.log")

    def repaired():
        with open(log, errors="replace") as fh:
            text = fh.read()
        return all(f"layer {w[0]} object {w[1]} repaired" in text for _, w in flipped)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not repaired():
        time.sleep(0.5)
    run.recovery = time.monotonic() - t_restart
    run.check(repaired(), f"the damaged objects were repaired from a peer ({run.recovery:.1f}s)")
    verify_data(run, cluster, v, "after the repair")
    compare(run, cluster)
    for d in cluster.server_disks(3):
        p = cluster.disk_tool("check", "--file", os.path.join(cluster.dir, "disks", f"{d}.img"))
        run.check(p.returncode == 0, f"spindle-disk check of disk {d} finds nothing"
                  + ("" if p.returncode == 0 else f": {(p.stdout + p.stderr)[-300:]}"))


def first_read_disk(cluster, obj, offset):
    """The disk the client reads `offset` of object `obj` from first (client/state.cc
    ReadOrder): of the object's disk set, the read tier's last readReplicas disks, by 1 MiB
    stretch of the offset."""
    st = cluster.api("GET", f"/spindle/1/ClientState/{CLIENT}?since=0&timeoutMs=0")
    vol = next(v for v in st["volumes"] if v["name"] == VOLUME)
    sets = vol["targetDiskSets"]
    dset = vol["overrides"].get(str(obj), sets[obj % len(sets)])
    tier = min(vol["readReplicas"], len(dset))
    return dset[len(dset) - tier + (offset // MiB) % tier]


def case_11(run, cluster):
    """Flipped bytes in a block of object 0 on the disk reads of it come from first, with that
    server's scrubber off. On memory stores (case 11 runs in /dev/shm where it can) the server
    sends the stored block without checking it; the client's check against the crcs stored at
    write time finds the mismatch and reads the replica again with the server checking, which
    fails that read (logged), has the copy repaired from a peer, and the client reads another
    replica: every acknowledged write reads back right."""
    v = start_load(run, cluster)
    run.sleep(run.load_s * 0.3)
    stop_load(run, v)
    layer, _ = cluster.layout(VOLUME)
    disk = first_read_disk(cluster, 0, 0)  # of object 0's first MiB
    sid = {int(k): d["serverId"] for k, d in cluster.disks().items()}[disk]
    name = f"server{sid}"
    cluster.stop(name)
    conf = os.path.join(cluster.dir, "storpool.conf")
    with open(conf) as fh:
        text = fh.read()
    run.check(f"[{name}]\n" in text, f"{name} has a section in storpool.conf (scrubber off there)")
    with open(conf, "w") as fh:
        fh.write(text.replace(f"[{name}]\n", f"[{name}]\nSP_SCRUB_BANDWIDTH_MB=0\n", 1))
    where = flip_block(run, cluster, disk, only=(layer, 0), candidates=range(MiB // 4096))
    run.check(where is not None, f"flipped bytes in object 0's first MiB on disk {disk}: {where}")
    run.say(f"restart took {cluster.restart():.1f}s")
    cluster.wait_disks([disk], up=True, timeout_s=30)
    t_read = time.monotonic()
    verify_data(run, cluster, v, "with the read replica damaged")
    log = os.path.join(cluster.dir, "log", f"{name}.log")

    def logged(what):
        with open(log, errors="replace") as fh:
            return what in fh.read()
    run.check(logged(f"read disk {disk}:"), f"{name} failed a checked read of disk {disk}")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not logged(f"layer {layer} object 0 repaired"):
        time.sleep(0.5)
    run.recovery = time.monotonic() - t_read
    run.check(logged(f"layer {layer} object 0 repaired"),
              f"object 0 repaired on disk {disk} from a peer ({run.recovery:.1f}s)")
    run.check(not logged("scrub: disk"), "the scrubber found nothing (it is off)")
    verify_data(run, cluster, v, "after the repair")
    compare(run, cluster)


def case_7(run, cluster):
    """kill -9 the client mid-write, restart it: replicas converge; the data is the acknowledged
    writes plus possibly the ones in flight, the same on every replica."""
    v = start_load(run, cluster, reconnect_s=30)
    run.sleep(run.load_s * 0.4)
    t_kill = v.mark("kill -9 client4")
    cluster.kill9("client4")
    run.sleep(1.0)
    stop_load(run, v, expect_errors=True)
    run.say(f"restart took {cluster.restart():.1f}s")
    cluster.wait_export(VOLUME)
    run.stall = None
    verify_data(run, cluster, v, "after the client restart")
    run.recovery = time.monotonic() - t_kill
    compare(run, cluster)


def case_8(run, cluster):
    """One server's disks fill up (another volume placed only there takes all their space):
    its writes fail with "no space", the disks go down and stay down while full, I/O goes on
    with the other replicas, nothing is corrupted; once the space is freed (the filling volume
    deleted) the disks come back, catch up, and every replica is identical."""
    import nbd
    disks = server_disks(cluster, 3)
    v = start_load(run, cluster)
    cluster.post("PlacementGroupUpdate/s3", {"addDisks": disks})
    cluster.post("VolumeCreate", {"name": "filler", "size": 1024 * MiB, "replication": 1,
                                  "placeAll": "s3"})
    cluster.post("VolumesReassign", [{"volume": "filler", "rw": [CLIENT], "force": False}])
    cluster.wait_export("filler")
    t_full = v.mark("filling server3's disks")
    h = nbd.NBD()
    h.connect_uri(cluster.nbd_uri("filler"))
    chunk, written, error = bytes(range(256)) * 4096, 0, None
    try:
        while written < 1024 * MiB:
            h.pwrite(chunk, written)
            written += len(chunk)
    except nbd.Error as e:
        error = str(e)
    finally:
        h.shutdown()
    run.check(error is not None, f"writes to the full disks fail after {written // MiB} MiB "
              f"({error})")
    with open(os.path.join(cluster.dir, "log", "client4.log"), errors="replace") as fh:
        run.check("no space" in fh.read(), "the client log names the cause (no space)")
    full = []
    deadline = time.monotonic() + 30
    while not full and time.monotonic() < deadline:
        full = [d for d in disks if not cluster.disk_up(d)]
        time.sleep(0.2)
    run.check(bool(full), f"the full disk(s) {full} are down")
    run.check(v.wait_acks(20, STALL_LIMIT_S) is not None, "I/O on the volume continues")
    run.sleep(3)
    run.check(full and all(not cluster.disk_up(d) for d in full),
              f"full disks {full} stay down while full")
    t_free = v.mark("free the space")
    cluster.post("VolumesReassign", [{"volume": "filler", "detach": [CLIENT], "force": True}])
    cluster.post("VolumeDelete/filler")
    try:
        took = cluster.wait_disks(disks, up=True, timeout_s=60)
        run.check(True, f"the disks are back {took:.1f}s after the space was freed")
    except TimeoutError as e:
        run.check(False, str(e))
    run.sleep(2)
    stop_load(run, v)
    stall_check(run, v, t_full, v.t_end, "while the disks filled and came back")
    wait_recovered(run, cluster, t_free)
    verify_data(run, cluster, v, "after the space was freed")
    compare(run, cluster)


def case_12(run, cluster):
    """A write nobody acknowledged sits on one replica only (its client went away with it in
    flight); that replica's server dies; the volume is attached again and written without
    it; the server comes back and takes writes before its recovery pass looks. The replica
    must end with the acknowledged data: its own write at the same version would otherwise
    pass for the acknowledged one (docs/decisions/0014)."""
    import nbd
    layer, sets = cluster.layout(VOLUME)
    victim = sets[0][-1]
    sid = next(s for s in cluster.servers() if victim in cluster.server_disks(s))
    acked = {b: bytes([0x40 + b]) * 4096 for b in range(4)}

    def write_blocks(blocks):
        h = nbd.NBD()
        h.connect_uri(cluster.nbd_uri(VOLUME))
        try:
            for b, data in blocks.items():
                h.pwrite(data, b * 4096)
        finally:
            h.shutdown()

    write_blocks(acked)
    cluster.post("VolumesReassign", [{"volume": VOLUME, "detach": [CLIENT], "force": False}])

    def export_gone():
        h = nbd.NBD()
        try:
            h.connect_uri(cluster.nbd_uri(VOLUME))
        except nbd.Error:
            return True
        h.shutdown()
        return False
    wait_until("the client to drop the export", export_gone, timeout_s=30)
    w = Wire(cluster.server_port(sid))
    try:
        status, info = w.call(4, struct.pack("<IIQ", victim, 0, layer))
        run.check(status == 0, f"object 0 on disk {victim}: OBJECT_INFO status {status}")
        version = struct.unpack_from("<Q", info)[0]
        stray = b"\x5a" * 4096
        payload = struct.pack("<IIQQIIII", victim, 0, layer, version + 1, 4096, 4096, 0, 0)
        payload += struct.pack("<I", chunk_crcs(stray)[0]) + stray
        status, _ = w.call(2, payload)
        run.check(status == 0, f"unacknowledged write (version {version + 1}) on disk {victim} "
                  f"only: status {status}")
    finally:
        w.close()
    cluster.kill9(f"server{sid}")
    try:
        took = cluster.wait_disks(server_disks(cluster, sid), up=False, timeout_s=HEARTBEAT_S + 15)
        run.check(True, f"disks of server{sid} marked down after {took:.1f}s")
    except TimeoutError as e:
        run.check(False, str(e))
    cluster.attach(VOLUME)
    acked[1] = b"\x61" * 4096  # where the stray write went
    write_blocks({1: acked[1]})
    t_restart = time.monotonic()
    run.say(f"restart took {cluster.restart():.1f}s")
    # Writes right away: the returning replica takes them on top of its copy.
    for i in range(40):
        acked[2 + i % 2] = bytes([0x70 + i]) * 4096
        write_blocks({2 + i % 2: acked[2 + i % 2]})
    wait_recovered(run, cluster, t_restart)
    h = nbd.NBD()
    h.connect_uri(cluster.nbd_uri(VOLUME))
    try:
        bad = [b for b, data in acked.items() if h.pread(4096, b * 4096) != data]
    finally:
        h.shutdown()
    run.check(not bad, f"acknowledged blocks read back ({len(bad)} wrong: {bad})")
    compare(run, cluster)


def case_13(run, cluster):
    """The replica that left last holds acknowledged writes the others lack: kill -9 two
    servers (writes go on with the third), then the third; bring the first two back alone
    while the load keeps writing, and only then the third. The two are recovering and no
    caught-up replica is reachable: they must take no write meanwhile, or the last one's
    recovery would take their copies over its acknowledged writes."""
    v = start_load(run, cluster, reconnect_s=90)
    run.sleep(run.load_s * 0.1)
    v.mark("kill -9 server1 and server2")
    cluster.kill9("server1", "server2")
    run.check(v.wait_acks(20, STALL_LIMIT_S * 2) is not None, "I/O continues on server3 alone")
    run.sleep(2)
    t_kill = v.mark("kill -9 server3")
    cluster.kill9("server3")
    run.sleep(1)
    for sid in (1, 2):
        cluster.start_server(sid)
    try:
        took = cluster.wait_disks(server_disks(cluster, 1, 2), up=True, timeout_s=30)
        run.check(True, f"server1 and server2 back (recovering) after {took:.1f}s")
    except TimeoutError as e:
        run.check(False, str(e))
    run.sleep(5)  # the load keeps trying meanwhile
    late = v.acks_after(t_kill + 1.0)
    run.check(late == 0, f"no write acknowledged without a caught-up replica ({late})")
    t_back = v.mark("server3 back")
    run.say(f"restart took {cluster.restart():.1f}s")
    run.check(v.wait_acks(20, 60) is not None, "I/O resumes once server3 is back")
    run.sleep(run.load_s * 0.2)
    stop_load(run, v, expect_errors=True)
    wait_recovered(run, cluster, t_back)
    verify_data(run, cluster, v, "after all came back")
    compare(run, cluster)


# Case 5's network: server 3 alone in a namespace the test creates, joined to the rest of the
# cluster (which listens on the root side's address) by a veth pair.
NS = f"spf{os.getpid()}"
VETH_ROOT, VETH_NS = f"{NS}a", f"{NS}b"
ROOT_ADDR, NS_ADDR = "198.18.0.1", "198.18.0.2"


def ip(*args, ns=None):
    cmd = (["ip", "netns", "exec", ns] if ns else []) + ["ip", *args]
    subprocess.run(cmd, check=True, capture_output=True, timeout=10)


def netns_up():
    ip("netns", "add", NS)
    ip("link", "add", VETH_ROOT, "type", "veth", "peer", "name", VETH_NS)
    ip("link", "set", VETH_NS, "netns", NS)
    ip("addr", "add", f"{ROOT_ADDR}/30", "dev", VETH_ROOT)
    ip("link", "set", VETH_ROOT, "up")
    ip("addr", "add", f"{NS_ADDR}/30", "dev", VETH_NS, ns=NS)
    ip("link", "set", VETH_NS, "up", ns=NS)
    ip("link", "set", "lo", "up", ns=NS)
    os.environ.update({"SPINDLE_HOST": ROOT_ADDR, "SPINDLE_SERVER3_HOST": NS_ADDR,
                       "SPINDLE_SERVER3_NETNS": NS})


def netns_down():
    for k in ("SPINDLE_HOST", "SPINDLE_SERVER3_HOST", "SPINDLE_SERVER3_NETNS"):
        os.environ.pop(k, None)
    for args in (("netns", "del", NS), ("link", "del", VETH_ROOT)):
        try:
            ip(*args)
        except subprocess.CalledProcessError:
            pass  # already gone (deleting the namespace removes the pair)


def case_5(run, cluster):
    """Network partition of one server (its namespace's link cut) for 10 s, then healed: I/O
    goes on without it, it is marked down, rejoins, catches up; no stale read."""
    v = start_load(run, cluster)
    run.sleep(run.load_s * 0.15)
    t_cut = v.mark("partition server3")
    ip("link", "set", VETH_NS, "down", ns=NS)
    run.check(v.wait_acks(20, STALL_LIMIT_S * 2) is not None, "I/O continues during the partition")
    try:
        took = cluster.wait_disks(server_disks(cluster, 3), up=False, timeout_s=HEARTBEAT_S + 10)
        run.check(True, f"disks of server3 marked down after {took:.1f}s")
    except TimeoutError as e:
        run.check(False, str(e))
    run.sleep(10 - (time.monotonic() - t_cut))
    t_heal = v.mark("heal the partition")
    ip("link", "set", VETH_NS, "up", ns=NS)
    stall_check(run, v, t_cut, t_heal, "during the partition")
    run.sleep(run.load_s * 0.3)
    rejoin_checks(run, cluster, v, t_heal, "healing")


CASES = {1: ("kill -9 one server", case_1),
         2: ("kill -9 two of three servers", case_2),
         3: ("kill -9 all servers mid-load", case_3),
         4: ("SIGSTOP a server past the timeout, SIGCONT", case_4),
         5: ("network partition of one server for 10 s", case_5),
         6: ("flipped bytes in one replica", case_6),
         7: ("kill -9 the client mid-write", case_7),
         8: ("one server's disks full", case_8),
         9: ("kill -9 mgmt during I/O", case_9),
         10: ("force-detach while the client writes", case_10),
         11: ("flipped bytes in the replica reads come from", case_11),
         12: ("a replica's own write at the acknowledged version", case_12),
         13: ("the replica that left last returns last", case_13)}


def run_case(num, load_s=16.0, size=128 * MiB, seed=None, keep=False):
    """A fresh cluster, a replication-3 volume attached to the client, the case. → Run."""
    title, body = CASES[num]
    run = Run(num, title, load_s, size, seed if seed is not None else num, keep)
    print(f"=== case {num}: {title}", flush=True)
    # Case 11 runs on memory stores where it can (see its docstring).
    shm = num == 11 and os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK)
    cluster = FaultCluster(keep=keep, base="/dev/shm" if shm else None)
    try:
        if num == 8:  # small disks, so that filling them is quick
            os.environ["SPINDLE_DISK_SIZE"] = str(320 * MiB)
        if num == 5:
            netns_up()
        try:
            cluster.up()
        finally:
            os.environ.pop("SPINDLE_DISK_SIZE", None)
        cluster.create_volume(VOLUME, size)
        body(run, cluster)
    except Exception as e:  # noqa: BLE001 - a broken case is a failed case, the next runs
        run.problems.append(f"{type(e).__name__}: {e}")
        run.say(f"FAIL {type(e).__name__}: {e}")
        traceback.print_exc()
    finally:
        if run.problems:
            cluster.dump_logs()
        if keep:
            print(f"  cluster kept in {cluster.dir}")
        try:
            cluster.cleanup()
        except Exception as e:  # noqa: BLE001 - cleanup must not hide the result
            print(f"  cleanup: {e!r}")
        if num == 5:
            netns_down()
    print(run.line(), flush=True)
    return run


def main():
    ap = argparse.ArgumentParser(description="issue 6 fault suite")
    ap.add_argument("--case", type=int, action="append", choices=sorted(CASES),
                    help="run only this case (repeatable); default: all")
    ap.add_argument("--load", type=float, default=float(os.environ.get("SPINDLE_FAULT_LOAD_S",
                                                                       "16")),
                    help="seconds of load per case (default 16)")
    ap.add_argument("--size", type=int, default=128, help="volume size in MiB (default 128)")
    ap.add_argument("--seed", type=int, help="load seed (default: the case number)")
    ap.add_argument("--keep", action="store_true", help="keep the cluster directories")
    a = ap.parse_args()
    runs = [run_case(n, a.load, a.size * MiB, a.seed, a.keep) for n in (a.case or CASES)]
    print("\nsummary:")
    for r in runs:
        print(r.line())
    failed = sum(1 for r in runs if r.problems)
    print(f"{len(runs) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
