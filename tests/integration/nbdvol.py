"""Shared setup for the NBD integration tests: a cluster with volumes attached read-write to
spindle-block (client 4), plus small helpers to run external NBD tools with bounded time."""
import subprocess
import time
import traceback

import nbd

from cluster import Cluster, wait_until

MiB = 1024 * 1024
TOOL_TIMEOUT_S = 90


def attach_volumes(cluster, names, size):
    """Creates the volumes, attaches them read-write to client 4 and waits for the exports."""
    for name in names:
        cluster.post("VolumeCreate", {"name": name, "size": size, "template": "demo"})
    cluster.post("VolumesReassign", [{"volume": n, "rw": [4], "force": False} for n in names])

    def ready():
        for name in names:
            h = nbd.NBD()
            h.connect_uri(cluster.nbd_uri(name))
            h.shutdown()
        return True

    wait_until("the NBD exports", ready, timeout_s=30)


def connect(cluster, name, meta=True):
    h = nbd.NBD()
    if meta:
        h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
    h.connect_uri(cluster.nbd_uri(name))
    return h


def run(args, check=True, timeout=TOOL_TIMEOUT_S, **kw):
    """Runs a tool; on failure prints its output and raises."""
    p = subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise AssertionError(f"{args[0]} exited {p.returncode}\nstdout: {p.stdout[-3000:]}\n"
                             f"stderr: {p.stderr[-3000:]}")
    return p


class Checks:
    """Named checks that each record pass/fail, printed as 'N passed, M failed'."""

    def __init__(self):
        self.passed = 0
        self.failed = 0

    def run(self, name, fn, *args):
        try:
            fn(*args)
            self.passed += 1
            print(f"PASS {name}", flush=True)
        except Exception as e:  # noqa: BLE001 - reported, counted, next check runs
            self.failed += 1
            print(f"FAIL {name}: {e!r}", flush=True)

    def finish(self):
        print(f"{self.passed} passed, {self.failed} failed")
        return 0 if self.failed == 0 else 1


def cluster_main(body, keep=False):
    """Cluster up, body(cluster, checks), cluster cleaned up (its logs printed when a check
    failed); returns the exit code. An exception from setup or body counts as a failed check."""
    start = time.monotonic()
    cluster = Cluster(keep=keep)
    checks = Checks()
    try:
        cluster.up()
        body(cluster, checks)
    except Exception as e:  # noqa: BLE001 - setup failure counts as a failed check
        traceback.print_exc()
        checks.failed += 1
        print(f"FAIL setup/body: {e!r}")
    finally:
        if checks.failed:
            cluster.dump_logs()
        cluster.cleanup()
    print(f"took {time.monotonic() - start:.1f} s")
    return checks.finish()


def standard_main(volumes, size, body, keep=False):
    """cluster_main with `volumes` attached before body runs."""
    def attached_body(cluster, checks):
        attach_volumes(cluster, volumes, size)
        body(cluster, checks)
    return cluster_main(attached_body, keep)
