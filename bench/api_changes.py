#!/usr/bin/python3
"""Benchmark: volume create + update + delete per second against a real spindle-mgmt on its
embedded (SQLite, synchronous=FULL) store. Not a test.

Usage: api_changes.py [--bin BIN_DIR] [--seconds 10] [--threads 8] [--prefill 0]
Starts spindle-mgmt on a free loopback port in a temp dir, registers 3 servers x 2 disks,
optionally creates --prefill idle volumes (to show the cost does not grow with the state), then
runs --threads clients, each looping create -> update (sizeAdd) -> delete of its own volume,
for --seconds. Prints the acknowledged changes per second and the generation check.
"""
import argparse
import os
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../tests/integration"))
from test_api import Mgmt, register  # noqa: E402  (the test's process/HTTP helper)


def worker(m, idx, stop, counts, errors):
    n = 0
    while not stop.is_set():
        name = f"b{idx}-{n}"
        for method, path, body in (
                ("POST", "/ctrl/1.0/VolumeCreate",
                 {"name": name, "size": 1 << 20, "replication": 3, "placeAll": "hdd"}),
                ("POST", f"/ctrl/1.0/VolumeUpdate/{name}", {"sizeAdd": 512}),
                ("POST", f"/ctrl/1.0/VolumeDelete/{name}", None)):
            st, j = m.raw(method, path, body)
            if st != 200:
                errors.append((path, st, j))
                return
            counts[idx] += 1
        n += 1


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--bin", default=os.environ.get("SPINDLE_BIN_DIR",
                                                    os.path.join(here, "../build/bin")))
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--prefill", type=int, default=0)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="spindle_bench_") as work:
        m = Mgmt(a.bin, work)
        m.start()
        try:
            for sid in (1, 2, 3):
                register(m, sid, [sid * 100 + 1, sid * 100 + 2])
            m.raw("POST", "/ctrl/1.0/PlacementGroupUpdate/hdd",
                  {"addDisks": [101, 102, 201, 202, 301, 302], "rmDisks": []})
            for i in range(a.prefill):
                m.raw("POST", "/ctrl/1.0/VolumeCreate",
                      {"name": f"idle{i}", "size": 1 << 30, "replication": 3, "placeAll": "hdd"})
            g0 = m.raw("GET", "/ctrl/1.0/VolumesList")[1]["generation"]
            stop = threading.Event()
            counts = [0] * a.threads
            errors = []
            threads = [threading.Thread(target=worker, args=(m, i, stop, counts, errors))
                       for i in range(a.threads)]
            t0 = time.time()
            for t in threads:
                t.start()
            time.sleep(a.seconds)
            stop.set()
            for t in threads:
                t.join(timeout=60)
            dt = time.time() - t0
            g1 = m.raw("GET", "/ctrl/1.0/VolumesList")[1]["generation"]
            total = sum(counts)
            print(f"threads={a.threads} prefill={a.prefill} seconds={dt:.1f} "
                  f"changes={total} rate={total / dt:.0f} changes/s "
                  f"(generation +{g1 - g0}, errors {len(errors)})")
            if errors:
                print("first error:", errors[0])
            return 0 if not errors and g1 - g0 == total else 1
        finally:
            m.stop()


if __name__ == "__main__":
    sys.exit(main())
