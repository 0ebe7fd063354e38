#!/usr/bin/python3
"""spindle-mgmt killed with SIGKILL in the middle of a burst of mixed changes, restarted.

Usage: test_mgmt_crash.py [BIN_DIR]   (or SPINDLE_BIN_DIR; the directory holding spindle-mgmt)
Several threads each drive their own volumes and KV bucket with a fixed cycle of changes
(create, two-field update, two-key KV set, delete), 1000 changes in all. Part-way through,
mgmt gets SIGKILL; it is restarted and the burst finishes. Checks: every acknowledged change
is present; the one change each thread had in flight is either wholly there or wholly absent
(never half-applied); acknowledged generations are unique, grow per thread, and the generation
after the restart is at least the largest acknowledged one. Prints "N passed, M failed".
"""
import os
import signal
import sys
import tempfile
import threading
import time

from test_api import Mgmt, check, register, RESULTS

THREADS = 6
TOTAL = 1000
KILL_AFTER = 400


class Worker:
    """One thread's cycle of changes and the model of what it has made so far."""

    def __init__(self, idx):
        self.idx = idx
        self.step = 0
        self.volumes = {}  # name -> (size, tags)
        self.kv = {}
        self.gens = []
        self.in_flight = None  # (before, after) models of an unacknowledged change

    def model(self):
        return ({k: (v[0], dict(v[1])) for k, v in self.volumes.items()}, dict(self.kv))

    def next_change(self):
        """The request for this step and the model after it."""
        n, i = self.step, self.idx
        vols, kv = self.model()
        names = sorted(vols, key=lambda x: int(x.split("_")[1]))
        kind = n % 4
        if kind == 1 and not names or kind == 3 and len(names) < 2:
            kind = 0
        if kind == 0:
            name = f"c{i}_{n}"
            req = ("POST", "/ctrl/1.0/VolumeCreate",
                   {"name": name, "size": 1 << 20, "replication": 3, "placeAll": "hdd",
                    "tags": {"step": str(n)}})
            vols[name] = (1 << 20, {"step": str(n)})
        elif kind == 1:
            name = names[-1]
            req = ("POST", f"/ctrl/1.0/VolumeUpdate/{name}",
                   {"sizeAdd": 512, "tags": {"step": str(n), "also": str(n)}})
            size, tags = vols[name]
            vols[name] = (size + 512, dict(tags, step=str(n), also=str(n)))
        elif kind == 2:
            req = ("POST", f"/ctrl/1.0/KV/Set/b{i}", {"set": {"a": str(n), "b": str(n)}})
            kv.update(a=str(n), b=str(n))
        else:
            name = names[0]
            req = ("POST", f"/ctrl/1.0/VolumeDelete/{name}", None)
            del vols[name]
        return req, (vols, kv)


def actual(m, w):
    """This worker's volumes and bucket as mgmt shows them."""
    vl = m.raw("GET", "/ctrl/1.0/VolumesList")[1]["data"]
    vols = {v["name"]: (v["size"], v["tags"]) for v in vl if v["name"].startswith(f"c{w.idx}_")}
    kv = m.raw("GET", f"/ctrl/1.0/KV/List/b{w.idx}")[1]["data"].get("pairs", {})
    return vols, kv


def run(m, w, budget, stop):
    while not stop.is_set():
        with budget["lock"]:
            if budget["left"] <= 0:
                return
            budget["left"] -= 1
        (method, path, body), after = w.next_change()
        w.in_flight = (w.model(), after)
        try:
            st, j = m.raw(method, path, body)
        except Exception:  # connection refused / reset: mgmt died under us
            return
        if st != 200:
            check(False, f"worker {w.idx} step {w.step}: {st} {j}")
            w.in_flight = None
            return
        w.volumes, w.kv = after
        w.gens.append(j["data"]["generation"])
        w.in_flight = None
        w.step += 1


def burst(m, workers, budget, kill_after=None):
    stop = threading.Event()
    threads = [threading.Thread(target=run, args=(m, w, budget, stop)) for w in workers]
    for t in threads:
        t.start()
    if kill_after is not None:
        deadline = time.time() + 120
        while sum(len(w.gens) for w in workers) < kill_after and time.time() < deadline:
            time.sleep(0.005)
        os.kill(m.proc.pid, signal.SIGKILL)
        m.proc.wait(timeout=10)
        m.proc = None
        stop.set()
    for t in threads:
        t.join(timeout=120)
        check(not t.is_alive(), "worker thread finished")


def resolve(m, w):
    """After the restart: the acknowledged model must be there, or the in-flight change whole."""
    got = actual(m, w)
    acked = w.model()
    if w.in_flight is None:
        check(got == acked, f"worker {w.idx}: state == acknowledged changes")
        return
    before, after = w.in_flight
    check(got in (before, after), f"worker {w.idx}: in-flight change half-applied: {got} "
          f"not in ({before}, {after})")
    print(f"worker {w.idx}: in-flight change {'applied' if got == after else 'absent'}")
    if got == after:  # it made it before the kill: count it and move on
        w.volumes, w.kv = after
        w.step += 1
    w.in_flight = None


def main():
    bin_dir = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("SPINDLE_BIN_DIR", "")
    if not os.path.exists(os.path.join(bin_dir, "spindle-mgmt")):
        print("usage: test_mgmt_crash.py BIN_DIR (containing spindle-mgmt)")
        return 2
    with tempfile.TemporaryDirectory(prefix="spindle_crash_") as work:
        m = Mgmt(bin_dir, work)
        try:
            m.start()
            for sid in (1, 2, 3):
                register(m, sid, [sid * 100 + 1, sid * 100 + 2])
            m.post("PlacementGroupUpdate/hdd", {"addDisks": [101, 102, 201, 202, 301, 302],
                                                "rmDisks": []})
            workers = [Worker(i) for i in range(THREADS)]
            for w in workers:
                m.post(f"KV/Create/b{w.idx}", None)
            budget = {"left": TOTAL, "lock": threading.Lock()}
            burst(m, workers, budget, kill_after=KILL_AFTER)
            acked = [g for w in workers for g in w.gens]
            check(len(acked) >= KILL_AFTER, f"{len(acked)} changes acknowledged before the kill")
            in_flight = sum(w.in_flight is not None for w in workers)
            print(f"killed after {len(acked)} acknowledged changes, {in_flight} in flight")
            m.start()
            gen_after = m.raw("GET", "/ctrl/1.0/VolumesList")[1]["generation"]
            check(gen_after >= max(acked), f"generation {gen_after} >= acked {max(acked)}")
            for w in workers:
                resolve(m, w)
            budget["left"] = TOTAL - sum(w.step for w in workers)
            burst(m, workers, budget)
            acked = [g for w in workers for g in w.gens]
            check(len(set(acked)) == len(acked), "acknowledged generations are unique")
            for w in workers:
                check(w.gens == sorted(w.gens), f"worker {w.idx}: generations grow")
                check(actual(m, w) == w.model(), f"worker {w.idx}: final state matches")
            check(sum(w.step for w in workers) == TOTAL, "all changes made")
            check(min(g for w in workers for g in w.gens if g > 0) > 0, "generations positive")
        finally:
            m.stop()
            if RESULTS["failed"]:
                with open(os.path.join(work, "mgmt.log")) as f:
                    print("--- mgmt.log (tail) ---\n" + "".join(f.readlines()[-30:]))
    print(f"{RESULTS['passed']} passed, {RESULTS['failed']} failed")
    return 1 if RESULTS["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
