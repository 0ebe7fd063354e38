#!/usr/bin/env python3
"""Runs the NBD bad-input cases (test_nbd_bad_input.py) against a real local cluster: a
read-write and a read-only attachment served by spindle-block, backed by three real servers.
Also checks that a read-only export refuses writes while the read-write one takes them, and
that, as in StorPool, a detach is refused while the volume is open on the client unless it is
forced (a forced detach closes the open connection)."""
import os
import subprocess
import sys
import time

import nbd

from cluster import ApiError, Cluster, wait_until


def check_detach_in_use(cluster):
    """Returns the number of failed checks."""
    failed = 0
    h = nbd.NBD()
    h.connect_uri(cluster.nbd_uri("nbd-ro"))
    time.sleep(2.5)  # the client reports open volumes with its 1 s heartbeat
    try:
        cluster.post("VolumesReassign", [{"volume": "nbd-ro", "detach": [4], "force": False}])
        print("FAIL detach of an open volume was accepted")
        failed += 1
    except ApiError as e:
        ok = e.status >= 400 and "in use" in e.error.get("descr", "")
        print(("ok  " if ok else "FAIL") + f" detach of an open volume refused: {e.error}")
        failed += not ok
    cluster.post("VolumesReassign", [{"volume": "nbd-ro", "detach": [4], "force": True}])

    def closed():
        try:
            h.pread(512, 0)
            return False
        except nbd.Error:
            return True
    try:
        wait_until("the forced detach to close the connection", closed, timeout_s=10)
        print("ok   forced detach closed the open connection")
    except TimeoutError as e:
        print(f"FAIL {e}")
        failed += 1
    cluster.post("VolumesReassign", [{"volume": "nbd-rw", "detach": [4], "force": False}])
    print("ok   detach of a volume with no open connection")
    return failed

MiB = 1024 * 1024


def main():
    cluster = Cluster()
    rc = 1
    try:
        cluster.up()
        for name in ("nbd-rw", "nbd-ro"):
            cluster.post("VolumeCreate", {"name": name, "size": 64 * MiB, "template": "demo"})
        cluster.post("VolumesReassign", [{"volume": "nbd-rw", "rw": [4], "force": False},
                                         {"volume": "nbd-ro", "ro": [4], "force": False}])

        def exports_ready():
            for name in ("nbd-rw", "nbd-ro"):
                h = nbd.NBD()
                h.connect_uri(cluster.nbd_uri(name))
                h.shutdown()
            return True

        wait_until("both exports", exports_ready, timeout_s=30)
        # `spindle-local status` lists both exports with their rights and URIs.
        status = cluster.local("status").stdout
        listed = all(f"{n} ({r}): nbd+unix:///{n}?socket=" in status
                     for n, r in (("nbd-rw", "rw"), ("nbd-ro", "ro")))
        print(f"{'ok' if listed else 'FAIL'} spindle-local status lists the exports")
        if not listed:
            print(status)
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "test_nbd_bad_input.py")
        rc = subprocess.run(["/usr/bin/python3", script, "--socket", cluster.nbd_socket,
                             "--export", "nbd-rw", "--ro-export", "nbd-ro"],
                            timeout=300).returncode
        failed = check_detach_in_use(cluster) + (not listed)
        print(f"{4 - failed} passed, {failed} failed")
        if rc == 0 and failed:
            rc = 1
        if rc != 0:
            cluster.dump_logs()
    finally:
        cluster.cleanup()
    return rc


if __name__ == "__main__":
    sys.exit(main())
