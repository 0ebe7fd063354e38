#!/usr/bin/python3
"""The benchmark helpers built with Spindle, run for real on small files.

Proves: `spindle-jdisk sync-floor` times rounds of lockstep writers (one and three, with and
without a shared sync), reports a p50 no larger than its p99 and a round rate that agrees with
the run time, removes its files, and refuses bad arguments with exit status 2 before it
creates anything.
"""
import json
import os
import subprocess
import sys
import tempfile

BIN = os.environ.get("SPINDLE_BIN_DIR",
                     os.path.join(os.path.dirname(__file__), "..", "..", "build", "bin"))
TOOL = os.path.join(BIN, "spindle-jdisk")


def sync_floor(d, *args, check=True):
    p = subprocess.run([TOOL, "sync-floor", "--dir", d, *args], capture_output=True, text=True,
                       timeout=60)
    if check:
        assert p.returncode == 0, f"rc {p.returncode}: {p.stderr}"
    return p


def check_rounds(d):
    for args, writers, one_sync in ((["--writers", "1"], 1, False),
                                    (["--writers", "3"], 3, False),
                                    (["--writers", "3", "--one-sync"], 3, True)):
        r = json.loads(sync_floor(d, "--seconds", "1", "--file-size", str(1 << 20), *args).stdout)
        assert r["writers"] == writers and r["one_sync"] == one_sync, r
        assert r["bs"] == 4096, r
        assert r["rounds"] > 10, r
        assert 0 < r["p50_us"] <= r["p90_us"] <= r["p99_us"], r
        # A one-second run: the rate is the rounds over about that second.
        assert 0.5 * r["rounds"] <= r["rounds_per_s"] <= 2 * r["rounds"], r
        assert os.listdir(d) == [], f"files left behind: {os.listdir(d)}"


def check_bad_arguments(d):
    for args in (["--writers", "0"], ["--writers", "17"], ["--bs", "1000"],
                 ["--file-size", "4096"], ["--file-size", str((1 << 20) + 512)]):
        p = sync_floor(d, "--seconds", "1", *args, check=False)
        assert p.returncode == 2, f"{args}: rc {p.returncode} {p.stdout} {p.stderr}"
        assert "sync-floor" in p.stderr, p.stderr
        assert os.listdir(d) == [], f"{args}: files created: {os.listdir(d)}"
    p = subprocess.run([TOOL, "sync-floor", "--dir", os.path.join(d, "missing"), "--seconds", "1"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and "sync-floor" in p.stderr, (p.returncode, p.stderr)


def main():
    passed = failed = 0
    with tempfile.TemporaryDirectory(prefix="spindle-bench-tools-", dir="/var/tmp") as d:
        for check in (check_rounds, check_bad_arguments):
            try:
                check(d)
                print(f"ok   {check.__name__}")
                passed += 1
            except AssertionError as e:
                print(f"FAIL {check.__name__}: {e}")
                failed += 1
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
