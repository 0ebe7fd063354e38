"""Ceph RBD target for bench/run: a throwaway single-host cluster on loopback.

One mon, one mgr and three BlueStore OSDs on files inside the profile's work directory, pool
size 3 (min_size 2), one RBD image; fio talks to it with ioengine=rbd (librbd in fio's
process). Nothing under /etc/ceph is read or written: every daemon and client gets
--conf/CEPH_CONF pointing at the generated ceph.conf, whose run, log, data and admin-socket
paths all lie in the temp directory. Every daemon runs in the foreground (-f) as a child of
this script, is stopped by its PID, and every wait is bounded.
"""
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid

MiB = 1024 * 1024
GiB = 1024 * MiB
PACKAGES = ["ceph-mon", "ceph-mgr", "ceph-osd", "ceph-common", "fio"]
BINARIES = ["ceph-mon", "ceph-mgr", "ceph-osd", "ceph", "ceph-authtool", "monmaptool", "rbd"]
NBD_PACKAGES = ["qemu-utils", "qemu-block-extra"]  # qemu-nbd and its rbd driver, for ceph-nbd
QEMU_RBD_GLOB = "/usr/lib/*/qemu/block-rbd.so"
NUM_OSDS = 3
POOL, IMAGE, PG_NUM = "rbd", "bench", 32
OSD_MEMORY_TARGET = GiB
CMD_TIMEOUT = 120        # s, any one ceph/rbd/mkfs command
UP_TIMEOUT = 120         # s, OSDs up / PGs active+clean
STOP_TIMEOUT = 20        # s, per daemon after SIGTERM before SIGKILL
INSTALL_TIMEOUT = 900    # s, apt-get


def ensure_installed(nbd):
    """Installs Debian's Ceph packages (and qemu-nbd's rbd driver if nbd) when missing;
    checks that fio has the rbd engine."""
    have = all(shutil.which(b) for b in BINARIES + ["fio"])
    if nbd:
        have = have and shutil.which("qemu-nbd") and glob.glob(QEMU_RBD_GLOB)
    if not have:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], check=True, capture_output=True,
                       timeout=INSTALL_TIMEOUT, env=env)
        pkgs = PACKAGES + (NBD_PACKAGES if nbd else [])
        subprocess.run(["apt-get", "install", "-y", "-qq", *pkgs], check=True,
                       capture_output=True, timeout=INSTALL_TIMEOUT, env=env)
    eng = subprocess.run(["fio", "--enghelp"], capture_output=True, text=True, timeout=30)
    if "rbd" not in eng.stdout.split():
        raise RuntimeError("this fio has no rbd ioengine")


def free_ports(n):
    """n distinct free loopback ports (all held open while choosing, so none repeats)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def conf_text(d, fsid, mon_addrs, block_size):
    daemon = {name: [f"admin_socket = {d}/run/$cluster-$name.asok",
                     f"log_file = {d}/log/$name.log",
                     f"pid_file = {d}/run/$name.pid"]
              for name in ("mon", "mgr", "osd")}
    lines = [
        "[global]", f"fsid = {fsid}", f"mon_host = {mon_addrs}", "mon_initial_members = a",
        "public_addr = 127.0.0.1", "cluster_addr = 127.0.0.1",
        "auth_cluster_required = cephx", "auth_service_required = cephx",
        "auth_client_required = cephx", f"run_dir = {d}/run",
        f"mon_data = {d}/mon/$cluster-$id", f"mgr_data = {d}/mgr/$cluster-$id",
        f"osd_data = {d}/osd/$cluster-$id",
        "osd_pool_default_size = 3", "osd_pool_default_min_size = 2",
        "osd_pool_default_pg_autoscale_mode = off", "osd_crush_chooseleaf_type = 0",
        "mon_allow_pool_delete = true", "mon_warn_on_pool_no_redundancy = false",
        "auth_allow_insecure_global_id_reclaim = false",
        "", "[client]", f"keyring = {d}/admin.keyring",
        # librbd's default write-around cache acks writes before any OSD has them; the
        # other targets have no client cache, so measure the cluster, not the client buffer.
        "rbd_cache = false",
        "", "[mon]", *daemon["mon"],
        "", "[mgr]", *daemon["mgr"],
        "", "[osd]", *daemon["osd"], "osd_objectstore = bluestore",
        f"bluestore_block_path = {d}/osd/$cluster-$id.block", "bluestore_block_create = true",
        f"bluestore_block_size = {block_size}", f"osd_memory_target = {OSD_MEMORY_TARGET}",
        "bluestore_fsck_on_mount = false", ""]
    return "\n".join(lines)


class Ceph:
    """bench/run target 'ceph'; same interface as run's Target (setup/fio_args/teardown/pids)."""
    name = "ceph"

    def __init__(self, workdir, size):
        self.workdir, self.size, self.pids = workdir, size, []
        self.procs = {}  # daemon name -> Popen
        self.dir = os.path.join(workdir, "ceph")
        self.conf = os.path.join(self.dir, "ceph.conf")

    def runs(self, job):
        return True

    # --- helpers --------------------------------------------------------------------------
    def sh(self, *cmd, timeout=CMD_TIMEOUT):
        r = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)}: exit {r.returncode}: {r.stderr.strip()[-2000:]}")
        return r.stdout

    def ceph(self, *args):
        return self.sh("ceph", "--conf", self.conf, "--connect-timeout", "30", *args)

    def ceph_json(self, *args):
        return json.loads(self.ceph(*args, "--format", "json"))

    def start(self, name, cmd):
        log = open(os.path.join(self.dir, "log", f"{name}.stderr"), "wb")
        self.procs[name] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def wait_for(self, what, pred):
        deadline = time.monotonic() + UP_TIMEOUT
        while time.monotonic() < deadline:
            for name, p in self.procs.items():
                if p.poll() is not None:
                    raise RuntimeError(f"{name} exited with {p.returncode} while waiting for "
                                       f"{what}; see {self.dir}/log")
            try:
                if pred():
                    return
            except (RuntimeError, subprocess.TimeoutExpired, ValueError):
                pass
            time.sleep(0.5)
        raise RuntimeError(f"timed out after {UP_TIMEOUT}s waiting for {what}")

    # --- bootstrap ------------------------------------------------------------------------
    def setup(self):
        ensure_installed(nbd=self.name == "ceph-nbd")
        for sub in ("run", "log", "mon", "mgr", "osd"):
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)
        try:
            self.bootstrap()
        except BaseException:
            self.dump_logs()
            self.teardown()
            raise

    def dump_logs(self, lines=15):
        """Prints the tail of every daemon log to stderr (the temp dir is removed after)."""
        logdir = os.path.join(self.dir, "log")
        for f in sorted(os.listdir(logdir)):
            with open(os.path.join(logdir, f), errors="replace") as fh:
                tail = fh.readlines()[-lines:]
            print(f"--- {f}\n" + "".join(tail), file=sys.stderr)

    def bootstrap(self):
        d, fsid = self.dir, str(uuid.uuid4())
        v2, v1 = free_ports(2)
        addrs = f"[v2:127.0.0.1:{v2},v1:127.0.0.1:{v1}]"
        with open(self.conf, "w") as f:
            f.write(conf_text(d, fsid, addrs, max(2 * self.size, GiB)))
        self.make_keyrings()
        self.sh("monmaptool", "--create", "--fsid", fsid, "--addv", "a", addrs,
                f"{d}/monmap")
        self.sh("ceph-mon", "--conf", self.conf, "--mkfs", "-i", "a", "--monmap",
                f"{d}/monmap", "--keyring", f"{d}/mon.keyring")
        self.start("mon.a", ["ceph-mon", "--conf", self.conf, "-f", "-i", "a"])
        self.wait_for("the monitor", lambda: self.ceph_json("mon", "stat") is not None)
        self.start_mgr()
        for _ in range(NUM_OSDS):
            self.start_osd()
        self.wait_for(f"{NUM_OSDS} OSDs up",
                      lambda: self.ceph_json("osd", "stat")["num_up_osds"] == NUM_OSDS)
        self.make_pool()
        self.pids = [p.pid for n, p in self.procs.items() if n.startswith(("mon", "osd"))]
        os.environ["CEPH_CONF"] = self.conf  # fio's librbd reads the conf named here

    def make_keyrings(self):
        d = self.dir
        self.sh("ceph-authtool", "--create-keyring", f"{d}/mon.keyring", "--gen-key",
                "-n", "mon.", "--cap", "mon", "allow *")
        self.sh("ceph-authtool", "--create-keyring", f"{d}/admin.keyring", "--gen-key",
                "-n", "client.admin", "--cap", "mon", "allow *", "--cap", "osd", "allow *",
                "--cap", "mgr", "allow *", "--cap", "mds", "allow *")
        self.sh("ceph-authtool", f"{d}/mon.keyring", "--import-keyring", f"{d}/admin.keyring")

    def start_mgr(self):
        data = os.path.join(self.dir, "mgr", "ceph-x")
        os.makedirs(data, exist_ok=True)
        self.ceph("auth", "get-or-create", "mgr.x", "mon", "allow profile mgr", "osd",
                  "allow *", "mds", "allow *", "-o", os.path.join(data, "keyring"))
        self.start("mgr.x", ["ceph-mgr", "--conf", self.conf, "-f", "-i", "x"])

    def start_osd(self):
        osd_uuid = str(uuid.uuid4())
        osd_id = self.ceph("osd", "new", osd_uuid).strip()
        data = os.path.join(self.dir, "osd", f"ceph-{osd_id}")
        os.makedirs(data, exist_ok=True)
        # --no-mon-config: the OSD has no key in the mon yet; everything is in ceph.conf.
        self.sh("ceph-osd", "--conf", self.conf, "-i", osd_id, "--mkfs", "--mkkey",
                "--no-mon-config", "--osd-uuid", osd_uuid, "--osd-objectstore", "bluestore",
                timeout=300)
        self.ceph("auth", "add", f"osd.{osd_id}", "osd", "allow *", "mon", "allow profile osd",
                  "mgr", "allow profile osd", "-i", os.path.join(data, "keyring"))
        self.start(f"osd.{osd_id}", ["ceph-osd", "--conf", self.conf, "-f", "-i", osd_id])

    def make_pool(self):
        self.ceph("osd", "pool", "create", POOL, str(PG_NUM), str(PG_NUM), "replicated")
        self.ceph("osd", "pool", "set", POOL, "size", "3")
        self.ceph("osd", "pool", "set", POOL, "min_size", "2")
        self.ceph("osd", "pool", "application", "enable", POOL, "rbd")
        self.wait_for("PGs active+clean", self.pgs_clean)
        self.sh("rbd", "--conf", self.conf, "create", "--size", f"{self.size // MiB}M",
                f"{POOL}/{IMAGE}")

    def pgs_clean(self):
        stat = self.ceph_json("pg", "stat")
        states = stat.get("pg_summary", stat).get("num_pg_by_state", [])
        total = sum(s["num"] for s in states)
        clean = sum(s["num"] for s in states if s["name"] == "active+clean")
        return total >= PG_NUM and clean == total

    # --- bench/run interface --------------------------------------------------------------
    def fio_args(self):
        return ["--ioengine=rbd", "--clientname=admin", f"--pool={POOL}",
                f"--rbdname={IMAGE}", f"--size={self.size}"]

    def memory(self):
        """Resident memory (MiB) of each daemon, for the report."""
        out = {}
        for name, p in self.procs.items():
            try:
                with open(f"/proc/{p.pid}/status") as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            out[name] = int(line.split()[1]) // 1024
            except OSError:
                pass
        return out

    def teardown(self):
        if self.procs:
            print(f"[ceph] daemon RSS MiB: {self.memory()}", file=sys.stderr)
        os.environ.pop("CEPH_CONF", None)
        # The NBD front end first (it is a client), then OSDs, mgr, mon: each by its PID.
        rank = {"qem": 0, "osd": 1, "mgr": 2, "mon": 3}
        order = sorted(self.procs, key=lambda n: rank[n[:3]])
        for name in order:
            p = self.procs[name]
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(timeout=STOP_TIMEOUT)
        self.procs = {}
        shutil.rmtree(self.dir, ignore_errors=True)


class CephNbd(Ceph):
    """The same cluster served over NBD by qemu-nbd's rbd driver (qemu-block-extra), so fio
    uses ioengine=nbd as against nbdkit and Spindle: an NBD-to-NBD comparison. qemu-nbd runs
    librbd in its own process; its CPU counts with the daemons'."""
    name = "ceph-nbd"

    def setup(self):
        super().setup()
        self.sock = os.path.join(self.dir, "nbd.sock")
        # cache=none also turns librbd's cache off (qemu sets rbd_cache from its cache mode).
        spec = f"rbd:{POOL}/{IMAGE}:id=admin:conf={self.conf}"
        try:
            self.start("qemu-nbd", ["qemu-nbd", "--format=raw", "--cache=none", "--persistent",
                                    "--shared=4", f"--socket={self.sock}", spec])
            self.wait_for("qemu-nbd's socket", lambda: os.path.exists(self.sock))
        except BaseException:
            self.dump_logs()
            self.teardown()
            raise
        self.pids.append(self.procs["qemu-nbd"].pid)

    def fio_args(self):
        return ["--ioengine=nbd", f"--uri=nbd+unix:///?socket={self.sock}",
                f"--size={self.size}"]
