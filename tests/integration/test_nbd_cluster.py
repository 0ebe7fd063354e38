#!/usr/bin/env python3
"""Runs the NBD bad-input cases (test_nbd_bad_input.py) against a real local cluster: a
read-write and a read-only attachment served by spindle-block, backed by three real servers.
Also checks that a read-only export refuses writes while the read-write one takes them."""
import os
import subprocess
import sys

import nbd

from cluster import Cluster, wait_until

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
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "test_nbd_bad_input.py")
        rc = subprocess.run(["/usr/bin/python3", script, "--socket", cluster.nbd_socket,
                             "--export", "nbd-rw", "--ro-export", "nbd-ro"],
                            timeout=300).returncode
        if rc != 0:
            cluster.dump_logs()
    finally:
        cluster.cleanup()
    return rc


if __name__ == "__main__":
    sys.exit(main())
