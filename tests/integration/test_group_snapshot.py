#!/usr/bin/env python3
"""Group snapshots (VolumesGroupSnapshot) across two clients on a real local cluster (issue 5).

Volume A is attached read-write to client 4 (spindle-local's spindle-block), volume B to client
5 (a second spindle-block process this test starts). One writer puts marker i into block i of
A, waits for the ack, then marker i into block i of B, waits, then i+1, ... without pause, while
group snapshots of {A, B} are taken. Each pair of snapshots, attached read-only and read over
NBD, must hold a prefix of markers on each volume (block j holds marker j up to some a resp. b,
zeros after) with b in {a-1, a}: B never ahead of A, never more than one behind, and every pair
acknowledged before the call inside the snapshots. A third volume C on client 5, kept busy by
fio (512 KiB writes, queue depth 8, no I/O error allowed), is in each group before B: a client
that only switched layers, one volume after the other, switches B tens of ms after client 4
switched A, and B's snapshot runs ahead of A's (with mgmt's pause phase disabled this test
fails within three groups).

Also: the reply's shape (GroupSnapshotsResult + ApiOk), names and tags; a volume named twice,
an unknown volume and a taken name are refused before anything is paused; a group snapshot of
volumes nobody writes; the CLI's group_snapshot; and the abort paths: with client 5 stopped
(SIGSTOP) the call fails with a transient serviceUnavailable, commits nothing, and both volumes
take writes again once client 5 continues (SIGCONT); with a writer that heartbeats but never
answers the pause (client 6, registered by this test) the call fails the same way after mgmt's
10 s bound and client 4 lets its held writes go.
"""
import os
import signal
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
GROUPS = 10


class ExtraClient:
    """A second spindle-block (client `cid`) with its own workdir and NBD socket, stopped by PID."""

    def __init__(self, cluster, cid):
        self.cluster, self.cid = cluster, cid
        self.dir = os.path.join(cluster.dir, f"client{cid}")
        self.proc = None

    @property
    def socket(self):
        return os.path.join(self.dir, "nbd.sock")

    def uri(self, export):
        return f"nbd+unix:///{export}?socket={self.socket}"

    def start(self):
        os.makedirs(self.dir, exist_ok=True)
        conf = os.path.join(self.dir, "storpool.conf")
        with open(os.path.join(self.cluster.dir, "storpool.conf")) as f:
            globals_ = f.read().split("\n[", 1)[0]
        with open(conf, "w") as f:
            f.write(globals_ + f"\n[client{self.cid}]\nSP_OURID={self.cid}\nSP_WORKDIR={self.dir}\n"
                    "SP_BLOCK_NBD_PORT=0\n")
        log = open(os.path.join(self.cluster.dir, "log", f"client{self.cid}.log"), "ab")
        self.proc = subprocess.Popen([os.path.join(BIN, "spindle-block"), "--config", conf,
                                      "--node", f"client{self.cid}"], stdout=log,
                                     stderr=subprocess.STDOUT)
        log.close()
        wait_until(f"client {self.cid} up", lambda: self.cluster.get("ServicesList")["clients"]
                   .get(str(self.cid), {}).get("status") == "running", timeout_s=30)

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGCONT)
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=15)


def connect(uri):
    def attempt():
        h = nbd.NBD()
        h.connect_uri(uri)
        return h
    return wait_until(f"export {uri}", attempt, timeout_s=30)


def marker(i):
    return i.to_bytes(8, "little") + b"\x5a" * (BLOCK - 8)


class OrderedWriter:
    """Marker i to A (ack), then marker i to B (ack), i = 0, 1, ...; acked[v] = markers done."""

    def __init__(self, ha, hb):
        self.h = (ha, hb)
        self.acked = [0, 0]
        self.stop = threading.Event()
        self.error = None
        self.thread = threading.Thread(target=self.run)

    def run(self):
        try:
            i = 0
            while not self.stop.is_set() and (i + 1) * BLOCK <= SIZE:
                for v in (0, 1):
                    self.h[v].pwrite(marker(i), i * BLOCK)
                    self.acked[v] = i + 1
                i += 1
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.error = e


def prefix(h, limit):
    """Number of leading blocks holding markers 0, 1, ...; asserts zeros after them (up to
    `limit` blocks read)."""
    data = bytearray()
    while len(data) < limit * BLOCK:
        n = min(4 * MiB, limit * BLOCK - len(data))
        data += h.pread(n, len(data))
    n = 0
    while n < limit and data[n * BLOCK:(n + 1) * BLOCK] == marker(n):
        n += 1
    rest = data[n * BLOCK:]
    assert rest == bytes(len(rest)), f"block {n} holds {data[n * BLOCK:n * BLOCK + 8].hex()}, " \
        "not the next marker or zeros"
    return n


def check_reply(r, names):
    errs = T.check(r, "ApiOk") + T.check({"snapshots": r.get("snapshots")}, "GroupSnapshotsResult")
    assert not errs, errs[:5]
    got = [(s["volume"], s["snapshot"]) for s in r["snapshots"]]
    assert got == names, got
    for s in r["snapshots"]:
        assert s["snapshotGlobalId"] == s["remoteId"], s


def start_fio(uri):
    """Large sequential writes at queue depth 8 until stopped (SIGINT)."""
    return subprocess.Popen(["fio", "--name=busy", "--ioengine=nbd", f"--uri={uri}",
                             "--rw=write", "--bs=512k", "--iodepth=8", f"--size={SIZE}",
                             "--time_based", "--runtime=300"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def stop_fio(p):
    p.send_signal(signal.SIGINT)
    try:
        out, _ = p.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate(timeout=30)
    return p.returncode, out


def body(cluster, checks, c5):
    for v in ("ga", "gb", "gc"):
        cluster.post("VolumeCreate", {"name": v, "size": SIZE, "template": "demo"})
    cluster.post("VolumesReassign", [{"volume": "ga", "rw": [4]}, {"volume": "gb", "rw": [5]},
                                     {"volume": "gc", "rw": [5]}])
    ha, hb = connect(cluster.nbd_uri("ga")), connect(c5.uri("gb"))
    connect(c5.uri("gc")).shutdown()

    def under_writes():
        # gc, busy with large writes on client 5, is in the group before gb: a client that
        # merely switched layers one volume after the other would switch gb tens of ms after
        # client 4 switched ga, and gb's snapshot would run ahead of ga's.
        fio = start_fio(c5.uri("gc"))
        w = OrderedWriter(ha, hb)
        w.thread.start()
        cuts = []
        try:
            wait_until("first writes", lambda: w.acked[1] > 20 or w.error, timeout_s=30)
            for k in range(GROUPS):
                before = list(w.acked)
                t0 = time.monotonic()
                r = cluster.post("VolumesGroupSnapshot", {
                    "volumes": [{"volume": "ga", "name": f"ga-g{k}"},
                                {"volume": "gc", "name": f"gc-g{k}"},
                                {"volume": "gb", "name": f"gb-g{k}", "tags": {"side": "b"}}],
                    "tags": {"group": str(k)}})
                cuts.append((k, before, time.monotonic() - t0))
                check_reply(r, [("ga", f"ga-g{k}"), ("gc", f"gc-g{k}"), ("gb", f"gb-g{k}")])
                time.sleep(0.2)
        finally:
            w.stop.set()
            w.thread.join(timeout=60)
            rc, out = stop_fio(fio)
        assert w.error is None, f"writer failed: {w.error!r}"
        # fio stopped by SIGINT exits 0 or 128; what matters is that no I/O failed.
        assert rc in (0, 128) and "err= 0" in out, f"fio on gc: exit {rc}\n{out[-2000:]}"
        assert w.acked[1] > cuts[-1][1][1], "the writer did not go on after the snapshots"
        limit = w.acked[0] + 2
        items = [{"snapshot": f"g{s}-g{k}", "ro": [4]} for k, *_ in cuts for s in ("a", "b")]
        cluster.post("VolumesReassign", items)
        for k, before, took in cuts:
            hs = [connect(cluster.nbd_uri(f"g{s}-g{k}")) for s in ("a", "b")]
            a, b = (prefix(h, limit) for h in hs)
            for h in hs:
                h.shutdown()
            print(f"  group {k}: A holds {a}, B holds {b} markers ({before} acknowledged "
                  f"before the call, {took * 1000:.0f} ms)")
            assert b in (a - 1, a), f"group {k}: A {a}, B {b}: not one cut"
            assert a >= before[0] and b >= before[1], f"group {k}: acknowledged writes missing"
        cluster.post("VolumesReassign",
                     [{"snapshot": i["snapshot"], "detach": [4], "force": True} for i in items])
        # The volumes themselves hold everything written, across all the cuts.
        assert prefix(ha, limit) == w.acked[0] and prefix(hb, limit) == w.acked[1]
        tags = {s["name"]: s["tags"] for s in cluster.get("SnapshotsList")}
        assert tags["ga-g0"] == {"group": "0"}, tags
        assert tags["gb-g0"] == {"group": "0", "side": "b"}, tags
    checks.run(f"{GROUPS} group snapshots under ordered writes on two clients: one cut each",
               under_writes)

    def refused():
        for bad, want in (([{"volume": "ga"}, {"volume": "ga"}], "invalidParam"),
                          ([{"volume": "ga"}, {"volume": "nope"}], "objectNotFound"),
                          ([{"volume": "ga", "name": "ga-g0"}], "objectExists"),
                          ([], "invalidParam")):
            try:
                cluster.post("VolumesGroupSnapshot", {"volumes": bad})
            except ApiError as e:
                assert e.error["name"] == want, (bad, e.error)
                continue
            raise AssertionError(f"{bad} accepted")
    checks.run("bad groups refused (duplicate, unknown, taken name, empty)", refused)

    def idle_and_cli():
        for v in ("gi1", "gi2"):
            cluster.post("VolumeCreate", {"name": v, "size": 16 * MiB, "template": "demo"})
        gi2 = "~" + cluster.get("Volume/gi2")[0]["globalId"]
        r = cluster.post("VolumesGroupSnapshot", {"volumes": [{"volume": "gi1"},
                                                              {"volume": gi2}]})
        assert [s["volume"] for s in r["snapshots"]] == ["gi1", "gi2"], r
        for s, v in zip(r["snapshots"], ("gi1", "gi2")):
            assert s["snapshot"].startswith(v + "@"), r  # auto-named
        env = dict(os.environ, SP_CONFIG=os.path.join(cluster.dir, "storpool.conf"))
        p = subprocess.run([os.path.join(BIN, "spindle"), "group_snapshot", "tag", "t=1", "ga",
                            "name", "ga-cli", "gb", "name", "gb-cli"], capture_output=True,
                           text=True, timeout=60, env=env)
        assert p.returncode == 0 and "OK" in p.stdout, (p.stdout, p.stderr)
        names = {s["name"]: s for s in cluster.get("SnapshotsList")}
        assert names["ga-cli"]["tags"] == {"t": "1"} and "gb-cli" in names, names.keys()
    checks.run("group snapshot of unattached volumes; CLI group_snapshot", idle_and_cli)

    def aborted():
        before = {s["name"] for s in cluster.get("SnapshotsList")}
        c5.proc.send_signal(signal.SIGSTOP)
        t0 = time.monotonic()
        try:
            cluster.post("VolumesGroupSnapshot", {"volumes": [{"volume": "ga", "name": "ga-x"},
                                                              {"volume": "gb", "name": "gb-x"}]})
        except ApiError as e:
            took = time.monotonic() - t0
            assert e.error["name"] == "serviceUnavailable" and e.error["transient"], e.error
            print(f"  refused after {took:.1f} s: {e.error['descr']}")
            assert took < 15, took
        else:
            raise AssertionError("group snapshot with a stopped client succeeded")
        finally:
            c5.proc.send_signal(signal.SIGCONT)
        assert {s["name"] for s in cluster.get("SnapshotsList")} == before
        # Client 4 held ga's writes for the cut; both take writes again.
        ha.pwrite(b"\x11" * BLOCK, SIZE - BLOCK)
        wait_until("client 5 back", lambda: cluster.get("ServicesList")["clients"]["5"]
                   ["status"] == "running", timeout_s=30)
        hb.pwrite(b"\x22" * BLOCK, SIZE - BLOCK)
        assert ha.pread(BLOCK, SIZE - BLOCK) == b"\x11" * BLOCK
        assert hb.pread(BLOCK, SIZE - BLOCK) == b"\x22" * BLOCK
        r = cluster.post("VolumesGroupSnapshot", {"volumes": [{"volume": "ga", "name": "ga-y"},
                                                              {"volume": "gb", "name": "gb-y"}]})
        check_reply(r, [("ga", "ga-y"), ("gb", "gb-y")])
    checks.run("a client that stops: transient error, nothing committed, writes go on", aborted)

    def silent_writer():
        # Client 6 heartbeats (so it stays up) but never polls its state, so it never pauses.
        stop = threading.Event()

        def heartbeat():
            while not stop.is_set():
                cluster.api("POST", "/spindle/1/ServiceRegister", {"type": "client", "id": 6})
                stop.wait(0.5)
        hb6 = threading.Thread(target=heartbeat)
        hb6.start()
        try:
            wait_until("client 6 up", lambda: cluster.get("ServicesList")["clients"]["6"]
                       ["status"] == "running", timeout_s=30)
            cluster.post("VolumeCreate", {"name": "g6", "size": 16 * MiB, "template": "demo"})
            cluster.post("VolumesReassign", [{"volume": "g6", "rw": [6]}])
            t0 = time.monotonic()
            try:
                cluster.post("VolumesGroupSnapshot", {"volumes": [{"volume": "ga"},
                                                                  {"volume": "g6"}]})
            except ApiError as e:
                took = time.monotonic() - t0
                assert e.error["name"] == "serviceUnavailable" and e.error["transient"], e.error
                assert "6" in e.error["descr"] and 9 < took < 15, (took, e.error)
                print(f"  refused after {took:.1f} s: {e.error['descr']}")
            else:
                raise AssertionError("group snapshot with a silent writer succeeded")
            ha.pwrite(b"\x33" * BLOCK, SIZE - BLOCK)  # client 4 let ga's writes go again
            assert ha.pread(BLOCK, SIZE - BLOCK) == b"\x33" * BLOCK
            assert not [x for x in cluster.get("SnapshotsList") if x["onVolume"] == "g6"]
        finally:
            stop.set()
            hb6.join(timeout=30)
    checks.run("a writer that never pauses: refused after the 10 s bound, writes go on",
               silent_writer)
    ha.shutdown()
    hb.shutdown()


def main():
    def with_client5(cluster, checks):
        c5 = ExtraClient(cluster, 5)
        try:
            c5.start()
            body(cluster, checks, c5)
        finally:
            c5.stop()
    return cluster_main(with_client5)


if __name__ == "__main__":
    sys.exit(main())
