#!/usr/bin/python3
"""A real filesystem on a Spindle volume: nbdfuse exposes the export as a file, losetup makes it
a loop device, mkfs.ext4 + mount, a few hundred files written with checksums, unmount, detach,
restart every daemon of the cluster, then e2fsck -fn is clean and every checksum matches.

Needs root, /dev/fuse and loop devices (skips with a clear message when they are missing).
"""
import hashlib
import os
import random
import subprocess
import sys
import time

import nbd

from cluster import Cluster, wait_until
from nbdvol import MiB, Checks, attach_volumes, run

VOL = "fs-vol"
SIZE = 256 * MiB
FILES = 300
WAIT_S = 30


class Mounted:
    """nbdfuse + loop + ext4 mount of the export; undone by close() in reverse order."""

    def __init__(self, cluster, base):
        self.base = base
        self.fuse_dir = os.path.join(base, "fuse")
        self.mnt = os.path.join(base, "mnt")
        os.makedirs(self.fuse_dir, exist_ok=True)
        os.makedirs(self.mnt, exist_ok=True)
        self.image = os.path.join(self.fuse_dir, "disk")
        self.fuse = subprocess.Popen(["nbdfuse", self.image, cluster.nbd_uri(VOL)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.loop = None
        self.mounted = False
        deadline = time.monotonic() + WAIT_S
        while not (os.path.exists(self.image) and os.path.getsize(self.image) == SIZE):
            if self.fuse.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nbdfuse did not expose the export: {self.fuse.stderr.read()}")
            time.sleep(0.1)
        self.loop = run(["losetup", "-f", "--show", self.image]).stdout.strip()

    def mount(self):
        run(["mount", "-t", "ext4", self.loop, self.mnt])
        self.mounted = True

    def close(self):
        if self.mounted:
            run(["umount", self.mnt], check=False)
            self.mounted = False
        if self.loop:
            run(["losetup", "-d", self.loop], check=False)
            self.loop = None
        if self.fuse.poll() is None:
            run(["umount", self.fuse_dir], check=False)
            try:
                self.fuse.wait(timeout=WAIT_S)
            except subprocess.TimeoutExpired:
                self.fuse.kill()
                self.fuse.wait(timeout=WAIT_S)


def write_files(mnt):
    rng = random.Random(11)
    sums = {}
    for i in range(FILES):
        d = os.path.join(mnt, f"d{i % 10}")
        os.makedirs(d, exist_ok=True)
        data = rng.randbytes(rng.randrange(1, 96 * 1024))
        path = os.path.join(d, f"f{i:04}")
        with open(path, "wb") as f:
            f.write(data)
        sums[os.path.relpath(path, mnt)] = hashlib.sha256(data).hexdigest()
    os.sync()
    return sums


def verify_files(mnt, sums):
    bad = []
    for rel, want in sums.items():
        with open(os.path.join(mnt, rel), "rb") as f:
            if hashlib.sha256(f.read()).hexdigest() != want:
                bad.append(rel)
    assert not bad, f"{len(bad)} files differ, e.g. {bad[:5]}"


def missing_prerequisites():
    if os.geteuid() != 0:
        return "not root"
    for path in ("/dev/fuse", "/dev/loop-control"):
        if not os.path.exists(path):
            return f"{path} is missing"
    return None


def main():
    why = missing_prerequisites()
    if why:
        print(f"SKIP filesystem test: {why}\n0 passed, 0 failed")
        return 0
    cluster = Cluster()
    checks = Checks()
    m = None
    sums = {}
    try:
        cluster.up()
        attach_volumes(cluster, [VOL], SIZE)
        m = Mounted(cluster, cluster.dir)
        run(["mkfs.ext4", "-q", "-F", m.loop])
        m.mount()

        def write():
            sums.update(write_files(m.mnt))
            verify_files(m.mnt, sums)
        checks.run(f"mkfs.ext4, mount, write {FILES} files", write)
        m.close()
        m = None
        cluster.down()
        cluster.up()
        wait_export(cluster)
        m = Mounted(cluster, cluster.dir)
        checks.run("e2fsck -fn clean after restart",
                   lambda: run(["e2fsck", "-fn", m.loop], timeout=120))
        m.mount()
        checks.run("checksums match after restart", verify_files, m.mnt, sums)
    except Exception as e:  # noqa: BLE001 - counted as a failure
        checks.failed += 1
        print(f"FAIL setup: {e!r}")
    finally:
        if m:
            m.close()
        if checks.failed:
            cluster.dump_logs()
        cluster.cleanup()
    return checks.finish()


def wait_export(cluster):
    def ok():
        h = nbd.NBD()
        h.connect_uri(cluster.nbd_uri(VOL))
        h.shutdown()
        return True
    wait_until("the export after restart", ok, timeout_s=WAIT_S)


if __name__ == "__main__":
    sys.exit(main())
