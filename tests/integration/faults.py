"""Fault injection on a local Spindle cluster (spindle-local), for test_faults.py and
bench/fault_soak.

FaultCluster extends cluster.Cluster with: the launcher's processes by name (mgmt, server1..3,
client4; PIDs from DIR/pids/NAME.pid), signals to them (kill -9, SIGSTOP/SIGCONT, SIGTERM),
restart (spindle-local up starts exactly the processes that are not running, with the
launcher's own arguments), waits on the API (service and disk up/down, volume recovered), and
a replica comparator: every object of a volume must have the same version, state and bytes
on every disk of its disk set.
"""
import json
import os
import signal
import subprocess
import time

from cluster import BIN, ApiError, Cluster, wait_until
from nbd_verify import OBJECT

MiB = 1024 * 1024
CLIENT = 4
TOOL_TIMEOUT_S = 120


def _alive(pid):
    """True while pid exists and is not a zombie (killed processes are reaped by init)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


class FaultCluster(Cluster):
    def up(self):
        self.ignored_sigterm = []  # processes stop() had to SIGKILL: a shutdown that hangs
        super().up()
        self.sections = self._sections()
        return self

    def _sections(self):
        """storpool.conf [sections] → {name: {key: value}}."""
        out, cur = {}, None
        with open(os.path.join(self.dir, "storpool.conf")) as f:
            for line in f:
                line = line.strip()
                if line.startswith("[") and line.endswith("]"):
                    cur = out.setdefault(line[1:-1], {})
                elif cur is not None and "=" in line and not line.startswith("#"):
                    k, v = line.split("=", 1)
                    cur[k] = v
        return out

    # ---- processes ----

    def servers(self):
        return sorted(int(s["SP_OURID"]) for n, s in self.sections.items()
                      if n.startswith("server"))

    def server_disks(self, sid):
        """{disk id: file} of server sid (the launcher names files <disk id>.img)."""
        files = self.sections[f"server{sid}"]["SP_SERVER_DISKS"].split(",")
        return {int(os.path.basename(f).split(".")[0]): f for f in files}

    def all_disks(self):
        return {d: f for s in self.servers() for d, f in self.server_disks(s).items()}

    def server_port(self, sid):
        return int(self.sections[f"server{sid}"]["SP_SERVER_PORT"])

    def pid(self, name):
        try:
            with open(os.path.join(self.dir, "pids", f"{name}.pid")) as f:
                return int(f.read().strip())
        except (FileNotFoundError, ValueError):
            return None

    def running(self, name):
        pid = self.pid(name)
        return pid is not None and _alive(pid)

    def signal(self, name, sig):
        pid = self.pid(name)
        if pid is None or not _alive(pid):
            raise RuntimeError(f"{name} is not running")
        os.kill(pid, sig)
        return pid

    def kill9(self, *names):
        """SIGKILL, then waits until each process is gone."""
        pids = [self.signal(n, signal.SIGKILL) for n in names]
        for n, pid in zip(names, pids):
            wait_until(f"{n} (pid {pid}) to die", lambda p=pid: not _alive(p), timeout_s=10)

    def stop(self, *names, timeout_s=15):
        """SIGTERM, bounded; SIGKILL after timeout_s."""
        for n in names:
            pid = self.pid(n)
            if pid is None or not _alive(pid):
                continue
            os.kill(pid, signal.SIGCONT)  # a stopped process cannot act on SIGTERM
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout_s
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _alive(pid):
                print(f"faults: {n} ignored SIGTERM for {timeout_s}s, SIGKILL", flush=True)
                self.ignored_sigterm.append(n)
                os.kill(pid, signal.SIGKILL)
                wait_until(f"{n} to die", lambda: not _alive(pid), timeout_s=10)

    def pause(self, name):
        self.signal(name, signal.SIGSTOP)

    def resume(self, name):
        self.signal(name, signal.SIGCONT)

    def start_server(self, sid):
        """Starts one server as spindle-local would (its log, its pid file), without waiting
        for the others: for cases that bring servers back one by one."""
        name = f"server{sid}"
        if self.running(name):
            return
        with open(os.path.join(self.dir, "log", f"{name}.log"), "a") as log:
            p = subprocess.Popen([os.path.join(BIN, "spindle-server"), "--config",
                                  os.path.join(self.dir, "storpool.conf"), "--node", name],
                                 stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        with open(os.path.join(self.dir, "pids", f"{name}.pid"), "w") as f:
            f.write(f"{p.pid}\n")

    def restart(self):
        """Starts every launcher process that is not running (spindle-local up) and waits
        until mgmt lists all servers and the client as running. Returns the seconds taken."""
        t = time.monotonic()
        try:
            self.local("up")
        except subprocess.CalledProcessError as e:
            raise RuntimeError(f"spindle-local up failed: {e.stderr.strip()}") from None
        return time.monotonic() - t

    # ---- state through the API ----

    def services(self):
        return self.get("ServicesList")

    def service_up(self, kind, sid):
        """kind: 'servers' or 'clients'."""
        return self.services()[kind].get(str(sid), {}).get("status") == "running"

    def disks(self):
        return self.get("DisksList")

    def disk_up(self, disk, disks=None):
        d = (disks or self.disks()).get(str(disk))
        return d is not None and d.get("generationLeft", 0) < 0

    def wait_disks(self, disks, up, timeout_s=30):
        """Waits until every disk in `disks` is up (or down); the seconds it took."""
        t = time.monotonic()

        def ok():
            ds = self.disks()
            return all(self.disk_up(d, ds) == up for d in disks)
        wait_until(f"disks {sorted(disks)} {'up' if up else 'down'}", ok, timeout_s=timeout_s,
                   interval_s=0.2)
        return time.monotonic() - t

    def wait_server(self, sid, up, timeout_s=30):
        t = time.monotonic()
        wait_until(f"server {sid} {'running' if up else 'down'}",
                   lambda: self.service_up("servers", sid) == up, timeout_s=timeout_s,
                   interval_s=0.2)
        return time.monotonic() - t

    def wait_api(self, timeout_s=30):
        wait_until("the API", lambda: self.services(), timeout_s=timeout_s, interval_s=0.2)

    def create_volume(self, name, size, replication=3):
        """Creates the volume on placement group `default`, attaches it read-write to the
        client and waits for its NBD export."""
        self.post("VolumeCreate", {"name": name, "size": size, "replication": replication,
                                   "placeAll": "default"})
        self.attach(name)

    def attach(self, name, timeout_s=30):
        self.post("VolumesReassign", [{"volume": name, "rw": [CLIENT], "force": False}])
        self.wait_export(name, timeout_s)

    def wait_export(self, name, timeout_s=30):
        """Waits until the client serves the (already attached) volume over NBD."""
        import nbd

        def ready():
            h = nbd.NBD()
            h.connect_uri(self.nbd_uri(name))
            h.shutdown()
            return True
        wait_until(f"the NBD export {name}", ready, timeout_s=timeout_s)

    def force_detach(self, name):
        self.post("VolumesReassign", [{"volume": name, "detach": [CLIENT], "force": True}])

    def volume_status(self, name):
        return self.get("VolumesGetStatus")[name]

    def tasks(self):
        try:
            return self.get("TasksList")
        except ApiError:
            return None

    def recovered(self, name):
        """(done, status): the volume is up with full redundancy and nothing syncing."""
        st = self.volume_status(name)
        tasks = self.tasks()
        done = (st.get("status") == "up" and not st.get("decreasedRedundancy")
                and not st.get("downDrives") and not st.get("missingDrives")
                and not st.get("syncingDataBytes") and not st.get("syncingMetaObjects")
                and not st.get("upSoonChainsCount") and not tasks)
        return done, st, tasks

    def wait_recovered(self, name, disks=None, timeout_s=90):
        """Waits until `disks` (default all) are up and the volume is recovered. Returns
        (seconds, recovered) where recovered describes what moved: the largest
        syncingDataBytes seen and the objects of the recovery tasks (TasksList), or n/a."""
        t = time.monotonic()
        disks = list(self.all_disks()) if disks is None else disks
        max_sync, task_objects, saw_tasks = 0, {}, False
        deadline = t + timeout_s
        last = None
        while time.monotonic() < deadline:
            try:
                ds = self.disks()
                if all(self.disk_up(d, ds) for d in disks):
                    done, st, tasks = self.recovered(name)
                    max_sync = max(max_sync, int(st.get("syncingDataBytes") or 0))
                    for task in tasks or []:
                        saw_tasks = True
                        key = (task.get("diskId"), task.get("transactionId"))
                        task_objects[key] = max(task_objects.get(key, 0),
                                                int(task.get("allObjects") or 0))
                    if done:
                        return time.monotonic() - t, self._recovered_text(
                            max_sync, task_objects, saw_tasks)
                    last = st
            except Exception as e:  # noqa: BLE001 - mgmt may be restarting; retried
                last = e
            time.sleep(0.2)
        raise TimeoutError(f"volume {name} not recovered within {timeout_s}s: {last}")

    @staticmethod
    def _recovered_text(max_sync, task_objects, saw_tasks):
        if not saw_tasks and not max_sync:
            return "n/a"
        parts = []
        if max_sync:
            parts.append(f"{max_sync / MiB:.1f} MiB syncing at most")
        if saw_tasks:
            n = sum(task_objects.values())
            parts.append(f"{n} objects in tasks (~{n * OBJECT / MiB:.0f} MiB)")
        return ", ".join(parts)

    def state_snapshot(self):
        """What must survive an mgmt restart: volumes, attachments, disks, placement."""
        vols = sorted((v["name"], v["size"], v["replication"]) for v in self.get("VolumesList"))
        att = sorted((a["volume"], a["client"], a["rights"]) for a in self.get("AttachmentsList"))
        return {"volumes": vols, "attachments": att, "disks": sorted(self.disks()),
                "templates": sorted(t["name"] for t in self.get("VolumeTemplatesList")),
                "sets": {v["name"]: self.get(f"VolumeDescribe/{v['name']}")["targetDiskSets"]
                         for v in self.get("VolumesList")}}

    # ---- replicas ----

    def layout(self, name):
        """(layer id, [disk set of object i]) of the volume."""
        d = self.get(f"VolumeDescribe/{name}")
        n = (d["size"] + OBJECT - 1) // OBJECT
        sets = d["targetDiskSets"]
        return d["id"], [sets[i % len(sets)] for i in range(n)]

    def disk_tool(self, *args):
        return subprocess.run([os.path.join(BIN, "spindle-disk"), *args], capture_output=True,
                              text=True, timeout=TOOL_TIMEOUT_S)

    def compare_replicas_online(self, name, layout=None):
        """With the servers running and no load: reads every object of the volume from every
        disk of its set (spindle-disk read-object: version, state, blocks, crc32c of the whole
        object) and returns the differences found. An object absent everywhere is fine."""
        layer, sets = layout or self.layout(name)
        disk_server = {int(k): v["serverId"] for k, v in self.disks().items()}
        problems = []
        for obj, dset in enumerate(sets):
            seen = {}
            for disk in dset:
                port = self.server_port(disk_server[disk])
                p = self.disk_tool("read-object", "--server", f"127.0.0.1:{port}", "--disk",
                                   str(disk), "--layer", str(layer), "--object", str(obj))
                if p.returncode != 0:
                    seen[disk] = ("error", p.stderr.strip()[-200:])
                else:
                    r = json.loads(p.stdout)
                    seen[disk] = (r["version"], r["state"], r["blocks_present"], r["crc32c"])
            if len(set(seen.values())) > 1:
                problems.append(f"object {obj} (layer {layer}) differs: {seen}")
        return problems

    def list_objects(self, file):
        """{(layer, object): (version, state, blocks)} of a disk file (servers stopped):
        `spindle-disk list-objects` when the tool has it, else `spindle-disk info`."""
        p = self.disk_tool("list-objects", "--file", file)
        out = {}
        if p.returncode == 0:
            for line in p.stdout.splitlines():
                f = line.split()
                if len(f) >= 5 and f[0].isdigit():
                    out[(int(f[0]), int(f[1]))] = (int(f[2]), f[3], int(f[4]))
            return out
        p = self.disk_tool("info", "--file", file)
        if p.returncode != 0:
            raise RuntimeError(f"spindle-disk info --file {file}: {p.stderr.strip()}")
        for o in json.loads(p.stdout)["objects"]:
            out[(o["layer"], o["object"])] = (o["version"], str(o["state"]),
                                              o["blocks_present"])
        return out

    def read_object_file(self, file, layer, obj):
        """(version, state, blocks, crc32c, zeroed-map crc) of one layer's object in a disk
        file (servers stopped), or ("error", message)."""
        p = self.disk_tool("read-object", "--file", file, "--layer", str(layer), "--object",
                           str(obj))
        if p.returncode != 0:
            return ("error", p.stderr.strip()[-200:])
        r = json.loads(p.stdout)
        return (r["version"], r["state"], r["blocks_present"], r["crc32c"],
                r.get("map_crc32c"))

    def compare_replicas_offline(self, name, layout):
        """Stops every server (SIGTERM, bounded), then compares what each disk file holds:
        every object of the volume's layer has the same (version, state, blocks) and the same
        bytes (spindle-disk read-object --file) on each disk of its set, and no disk outside
        the set holds it. Returns the differences."""
        layer, sets = layout
        self.stop(*[f"server{s}" for s in self.servers()])
        files = self.all_disks()
        listing = {d: self.list_objects(f) for d, f in files.items()}
        problems = []
        for obj, dset in enumerate(sets):
            seen = {d: listing[d].get((layer, obj)) for d in dset}
            if len(set(seen.values())) > 1:
                problems.append(f"object {obj} (layer {layer}) listed differently: {seen}")
            elif any(v is not None for v in seen.values()):
                content = {d: self.read_object_file(files[d], layer, obj) for d in dset}
                if len(set(content.values())) > 1:
                    problems.append(f"object {obj} (layer {layer}) bytes differ on the disk "
                                    f"files: {content}")
            strays = [d for d in files if d not in dset and (layer, obj) in listing[d]]
            if strays:
                problems.append(f"object {obj} (layer {layer}) also on disks {strays} "
                                f"outside its set {dset}")
        return problems

    def compare_replicas(self, name):
        """Both comparisons: bytes online, then the disk files with the servers stopped.
        Leaves the servers stopped."""
        layout = self.layout(name)
        return (self.compare_replicas_online(name, layout)
                + self.compare_replicas_offline(name, layout))
