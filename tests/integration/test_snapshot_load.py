#!/usr/bin/env python3
"""Snapshots of busy volumes on a real local cluster (issue 5).

A Python writer (libnbd, queue depth 1) writes sequence-numbered 4 KiB blocks round-robin over
a 4 MiB region of volume `lw`, recording when each write was issued and when its ack came back,
while 50 snapshots of `lw` are taken, recording when each request was sent and its answer
received. Meanwhile fio (ioengine=nbd, random 4 KiB writes at queue depth 8 with crc32c verify
of what it wrote) runs on volume `fv`, which is snapshotted as often.

Each snapshot of `lw`, attached read-only and read over NBD, must for every block hold the
newest write to it acknowledged before the snapshot request was sent, or a later one issued
before the answer came back — never an older one, never one issued after the answer, never a
torn or foreign block. fio must finish without an I/O or verify error. The writer's longest ack
gap around each snapshot (the I/O stall) is printed.
"""
import re
import signal
import subprocess
import sys
import threading
import time

import nbd

from cluster import wait_until
from nbdvol import MiB, cluster_main

BLOCK = 4096
REGION_BLOCKS = 1024  # 4 MiB written round-robin: every block is overwritten many times
SNAPSHOTS = 50


def connect(cluster, name):
    def attempt():
        h = nbd.NBD()
        h.connect_uri(cluster.nbd_uri(name))
        return h
    return wait_until(f"export {name}", attempt, timeout_s=30)


def payload(seq):
    b = seq % REGION_BLOCKS
    head = seq.to_bytes(8, "little") + b.to_bytes(8, "little")
    return head + bytes([seq % 251]) * (BLOCK - len(head))


class Writer:
    """QD1 writes seq = 1, 2, ... to block seq % REGION_BLOCKS; issued[seq], acked[seq] are
    time.monotonic() before the call and after it returned."""

    def __init__(self, h):
        self.h = h
        self.issued, self.acked = [0.0], [0.0]
        self.stop = threading.Event()
        self.error = None
        self.thread = threading.Thread(target=self.run)

    def run(self):
        try:
            seq = 1
            while not self.stop.is_set():
                data = payload(seq)
                self.issued.append(time.monotonic())
                self.h.pwrite(data, (seq % REGION_BLOCKS) * BLOCK)
                self.acked.append(time.monotonic())
                seq += 1
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.error = e


def check_snapshot(data, w, t_req, t_ans):
    """Per block: the newest write acked before t_req, or a later one issued before t_ans."""
    n = len(w.acked) - 1
    newest_acked = [0] * REGION_BLOCKS  # seq, 0 = none
    newest_issued = [0] * REGION_BLOCKS
    for seq in range(1, n + 1):
        b = seq % REGION_BLOCKS
        if w.acked[seq] < t_req:
            newest_acked[b] = seq
        if w.issued[seq] < t_ans:
            newest_issued[b] = seq
    for b in range(REGION_BLOCKS):
        blk = data[b * BLOCK:(b + 1) * BLOCK]
        if blk == bytes(BLOCK):
            assert newest_acked[b] == 0, f"block {b}: zeros, write {newest_acked[b]} was acked"
            continue
        seq = int.from_bytes(blk[:8], "little")
        assert 0 < seq <= n and blk == payload(seq) and seq % REGION_BLOCKS == b, \
            f"block {b}: not a write of this block ({blk[:16].hex()})"
        assert seq >= newest_acked[b], f"block {b}: write {seq}, but {newest_acked[b]} was acked"
        assert seq <= newest_issued[b], f"block {b}: write {seq} issued after the answer"


def start_fio(cluster, seconds):
    return subprocess.Popen(
        ["fio", "--name=fv", "--ioengine=nbd", f"--uri={cluster.nbd_uri('fv')}",
         "--rw=randwrite", "--bs=4k", "--iodepth=8", "--size=32M", "--verify=crc32c",
         "--verify_backlog=512", "--verify_fatal=1", "--verify_state_save=0", "--time_based",
         f"--runtime={seconds}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def body(cluster, checks):
    cluster.post("VolumeCreate", {"name": "lw", "size": 16 * MiB, "template": "demo"})
    cluster.post("VolumeCreate", {"name": "fv", "size": 32 * MiB, "template": "demo"})
    cluster.post("VolumesReassign", [{"volume": "lw", "rw": [4]}, {"volume": "fv", "rw": [4]}])
    h = connect(cluster, "lw")
    connect(cluster, "fv").shutdown()
    w = Writer(h)
    cuts = []  # (name, t_req, t_ans)
    fio = start_fio(cluster, 600)
    w.thread.start()
    try:
        wait_until("writes", lambda: len(w.acked) > 2 * REGION_BLOCKS or w.error, timeout_s=60)
        for k in range(SNAPSHOTS):
            t_req = time.monotonic()
            cluster.post("VolumeSnapshot/lw", {"name": f"lw-s{k}"})
            t_ans = time.monotonic()
            cuts.append((f"lw-s{k}", t_req, t_ans))
            cluster.post("VolumeSnapshot/fv", {"name": f"fv-s{k}"})
            time.sleep(0.05)
        time.sleep(0.2)
    finally:
        w.stop.set()
        w.thread.join(timeout=60)
        fio.send_signal(signal.SIGINT)
        try:
            fio_out, _ = fio.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            fio.kill()
            fio_out, _ = fio.communicate(timeout=30)
    print(f"  {len(w.acked) - 1} writes, {SNAPSHOTS} snapshots each of lw and fv in "
          f"{cuts[-1][2] - cuts[0][1]:.1f} s")

    def writer_ok():
        assert w.error is None, f"writer failed: {w.error!r}"
    checks.run("the writer never failed", writer_ok)

    def fio_ok():
        # SIGINT ends fio (exit 0 or 128); what matters is that no I/O or verify failed.
        assert fio.returncode in (0, 128) and "err= 0" in fio_out, fio_out[-3000:]
        m = re.search(r"issued rwts: total=(\d+),(\d+)", fio_out)
        assert m and int(m.group(1)) > 0 and int(m.group(2)) > 0, fio_out[-3000:]  # verify reads
        print(f"  fio: {m.group(2)} writes, {m.group(1)} verify reads")
    checks.run("fio with crc32c verify on fv: no I/O or verify error across 50 snapshots", fio_ok)

    def stalls():
        gaps = []
        for _, t_req, t_ans in cuts:
            acks = [t for t in w.acked if t_req - 0.05 <= t <= t_ans + 0.05]
            gaps.append(max((b - a for a, b in zip(acks, acks[1:])), default=t_ans - t_req))
        gaps.sort()
        lat = sorted(b - a for a, b in zip(w.issued[1:], w.acked[1:]))
        print(f"  write latency p50 {lat[len(lat) // 2] * 1e3:.2f} ms, p99 "
              f"{lat[int(len(lat) * 0.99)] * 1e3:.2f} ms; longest ack gap around a snapshot: "
              f"p50 {gaps[len(gaps) // 2] * 1e3:.1f} ms, max {gaps[-1] * 1e3:.1f} ms; snapshot "
              f"call p50 {sorted(a - r for _, r, a in cuts)[len(cuts) // 2] * 1e3:.1f} ms")
    checks.run("I/O stall printed", stalls)

    def snapshots_hold_acked_writes():
        cluster.post("VolumesReassign", [{"snapshot": n, "ro": [4]} for n, _, _ in cuts])
        for name, t_req, t_ans in cuts:
            hs = connect(cluster, name)
            data = hs.pread(REGION_BLOCKS * BLOCK, 0)
            hs.shutdown()
            check_snapshot(data, w, t_req, t_ans)
        cluster.post("VolumesReassign",
                     [{"snapshot": n, "detach": [4], "force": True} for n, _, _ in cuts])
        # The volume itself holds the last write of every block.
        check_snapshot(h.pread(REGION_BLOCKS * BLOCK, 0), w, float("inf"), float("inf"))
    checks.run(f"each of {SNAPSHOTS} snapshots holds every write acked before its request and "
               "none issued after its answer", snapshots_hold_acked_writes)
    h.shutdown()


def main():
    return cluster_main(body)


if __name__ == "__main__":
    sys.exit(main())
