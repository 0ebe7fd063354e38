#!/usr/bin/python3
"""Drives a real spindle-mgmt through its StorPool-compatible API with an independent client.

Usage: test_api.py [BIN_DIR]   (or SPINDLE_BIN_DIR=...; the directory holding spindle-mgmt)
Starts spindle-mgmt on a free loopback port with a temp config and state dir, registers three
servers with two disks each through /spindle/1/ServiceRegister, then checks every call's
documented shape, that bad input gets a StorPool error with nothing changed, and that state and
generation survive a restart. Prints "N passed, M failed"; exits non-zero on any failure.
"""
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

TOKEN = "4242"
RESULTS = {"passed": 0, "failed": 0}
UP_FIELDS = ["id", "serverId", "ssd", "generationLeft", "model", "serial", "description",
             "softEject", "sectorsCount", "empty", "noFua", "noFlush", "noTrim", "isWbc",
             "journaled", "device", "entriesCount", "entriesAllocated", "entriesFree",
             "objectsCount", "objectsAllocated", "objectsFree", "objectsOnDiskSize",
             "scrubbingStartedBefore", "scrubbedBytes", "scrubbingBW", "scrubbingFinishAfter",
             "scrubbingPausedFor", "scrubbingPaused", "lastScrubCompleted"]
SUMMARY_FIELDS = ["name", "id", "parentName", "templateName", "size", "replication", "globalId",
                  "placeAll", "placeTail", "placeHead", "parentVolumeId",
                  "originalParentVolumeId", "visibleVolumeId", "templateId", "objectsCount",
                  "creationTimestamp", "flags", "tags", "bw", "iops"]
STATUS_FIELDS = ["status", "snapshot", "migrating", "decreasedRedundancy", "balancerBlocked",
                 "syncingDataBytes", "syncingMetaObjects", "downBytes", "upSoonChainsCount",
                 "downDrives", "missingDrives", "missingTargetDrives", "softEjectingDrives",
                 "storedSize", "onDiskSize"]


def check(cond, what):
    if cond:
        RESULTS["passed"] += 1
    else:
        RESULTS["failed"] += 1
        print("FAIL:", what, flush=True)


class Mgmt:
    def __init__(self, bin_dir, work):
        self.bin = os.path.join(bin_dir, "spindle-mgmt")
        self.work = work
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.conf = os.path.join(work, "storpool.conf")
        with open(self.conf, "w") as f:
            f.write(f"SP_AUTH_TOKEN={TOKEN}\nSP_API_HTTP_HOST=127.0.0.1\n"
                    f"SP_API_HTTP_PORT={self.port}\nSP_WORKDIR={work}\n"
                    f"SP_CLUSTER_NAME=home\nSP_CLUSTER_ID=t1.c1\n"
                    f"SP_HEARTBEAT_TIMEOUT_MS=600000\n")
        self.proc = None

    def start(self):
        log = open(os.path.join(self.work, "mgmt.log"), "a")
        env = {k: v for k, v in os.environ.items() if not k.startswith("SP_")}
        self.proc = subprocess.Popen([self.bin, "--config", self.conf], stdout=log, stderr=log,
                                     env=env)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError("spindle-mgmt exited at start; see mgmt.log")
                time.sleep(0.05)
        raise RuntimeError("spindle-mgmt did not listen within 10 s")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.proc = None

    def raw(self, method, path, body=None, token=TOKEN, raw_body=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=40)
        headers = {} if token is None else {"Authorization": f"Storpool v1:{token}"}
        data = raw_body if raw_body is not None else (
            None if body is None else json.dumps(body, separators=(",", ":")))
        if method == "POST" and data is None:
            headers["Content-Length"] = "0"
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        text = resp.read()
        conn.close()
        return resp.status, json.loads(text)

    def get(self, call):
        st, j = self.raw("GET", "/ctrl/1.0/" + call)
        check(st == 200 and "error" not in j, f"GET {call} -> {st} {j}")
        check(isinstance(j.get("generation"), int), f"GET {call} carries generation")
        return j.get("data")

    def post(self, call, body):
        st, j = self.raw("POST", "/ctrl/1.0/" + call, body)
        ok = st == 200 and isinstance(j.get("data"), dict) and j["data"].get("ok") is True
        check(ok, f"POST {call} {body} -> {st} {j}")
        if ok:
            check(j["data"]["generation"] == j["generation"], f"{call}: ApiOk generation")
        return j.get("data", {})

    def fails(self, method, path, body=None, **kw):
        """Calls and expects a StorPool error with nothing changed; returns the error name."""
        before = self.snapshot()
        st, j = self.raw(method, path, body, **kw)
        err = j.get("error", {})
        check(st >= 400 and isinstance(err.get("name"), str) and "descr" in err
              and isinstance(err.get("transient"), bool), f"{method} {path} {body} -> {st} {j}")
        check(self.snapshot() == before, f"{method} {path}: state unchanged")
        return err.get("name")

    def snapshot(self):
        out = {}
        for call in ("VolumesList", "SnapshotsList", "PlacementGroupsList", "VolumeTemplatesList",
                     "AttachmentsList", "FaultSetsList", "KV", "MgmtConfigList"):
            st, j = self.raw("GET", "/ctrl/1.0/" + call)
            out[call] = j.get("data")
            out["generation"] = j.get("generation")
        return out


def register(m, sid, disks, port_base=47000):
    body = {"type": "server", "id": sid, "nodeId": sid, "version": "0.1.0",
            "startTime": 1732440000, "addr": "127.0.0.1", "port": port_base + sid,
            "disks": [{"id": d, "device": f"/tmp/disk{d}.img", "ssd": False, "journaled": False,
                       "sectorsCount": 8388608, "objectsCount": 127, "objectsAllocated": 0,
                       "objectsOnDiskSize": 0, "storedSize": 0, "entriesCount": 127,
                       "entriesAllocated": 0} for d in disks]}
    st, j = m.raw("POST", "/spindle/1/ServiceRegister", body)
    check(st == 200 and j["data"]["ok"] and j["data"]["heartbeatIntervalMs"] > 0,
          f"register server {sid}: {st} {j}")


def test_services_and_disks(m):
    for sid in (1, 2, 3):
        register(m, sid, [sid * 100 + 1, sid * 100 + 2])
    st, j = m.raw("POST", "/spindle/1/ServiceRegister",
                  {"type": "client", "id": 7, "nodeId": 11, "version": "0.1.0",
                   "startTime": 1, "appliedGeneration": 0,
                   "nbd": {"socket": "/tmp/x.sock", "host": "127.0.0.1", "port": 10809}})
    check(st == 200, f"register client: {j}")
    s = m.get("ServicesList")
    check(s["clusterStatus"] == "running", "clusterStatus running")
    check(sorted(s["servers"]) == ["1", "2", "3"], f"servers {s['servers'].keys()}")
    srv = s["servers"]["2"]
    for f in ("id", "nodeId", "version", "startTime", "status", "missingDisks", "pendingDisks"):
        check(f in srv, f"Server.{f}")
    check(srv["status"] == "running", "server running")
    check(s["clients"]["7"]["status"] == "running", "client running")
    mg = list(s["mgmt"].values())
    check(len(mg) == 1 and mg[0]["active"] is True and 1 <= mg[0]["id"] <= 4095, f"mgmt {mg}")
    for k in ("bridges", "iscsiTargets"):
        check(s[k] == {}, k)
    check(m.get("ServersList")["clients"] == {}, "ServersList has no clients")
    disks = m.get("DisksList")
    check(sorted(disks) == ["101", "102", "201", "202", "301", "302"], f"disks {disks.keys()}")
    for d in disks.values():
        for f in UP_FIELDS:
            check(f in d, f"UpDiskSummary.{f} in disk {d.get('id')}")
        check(d["generationLeft"] == -1, "up disk generationLeft -1")
    check(disks["201"]["serverId"] == 2, "disk serverId")
    dd = m.get("DiskDescribe/201")
    check(dd["id"] == 201 and dd["objects"] == {}, "DiskDescribe")
    m.fails("GET", "/ctrl/1.0/DiskDescribe/999")
    m.fails("GET", "/ctrl/1.0/DiskDescribe/meow")
    # A disk owned by another server is refused.
    st, j = m.raw("POST", "/spindle/1/ServiceRegister",
                  {"type": "server", "id": 4, "addr": "127.0.0.1", "port": 1, "disks": [{"id": 101}]})
    check(st >= 400 and j["error"]["name"] == "invalidParam", f"stolen disk: {j}")


def test_placement_groups(m):
    m.post("PlacementGroupUpdate/hdd", {"addDisks": [101, 102, "201", 202, 301, 302],
                                        "rmDisks": []})
    pg = m.get("PlacementGroupDescribe/hdd")
    check(pg["name"] == "hdd" and pg["disks"] == [101, 102, 201, 202, 301, 302], f"pg {pg}")
    check(isinstance(pg["id"], int), "pg id")
    m.post("PlacementGroupUpdate/tmp", {"addDisks": [101], "rmDisks": []})
    m.post("PlacementGroupUpdate/tmp", {"rename": "tmp2", "addDisks": [], "rmDisks": [101]})
    pgs = m.get("PlacementGroupsList")
    check("tmp2" in pgs and "tmp" not in pgs and pgs["tmp2"]["disks"] == [], f"pgs {pgs}")
    m.post("PlacementGroupDelete/tmp2", None)
    check("tmp2" not in m.get("PlacementGroupsList"), "pg deleted")
    m.fails("POST", "/ctrl/1.0/PlacementGroupUpdate/bad.name", {"addDisks": [], "rmDisks": []})
    m.fails("POST", "/ctrl/1.0/PlacementGroupUpdate/x", {"addDisks": [999], "rmDisks": []})
    m.fails("POST", "/ctrl/1.0/PlacementGroupUpdate/x", {"addDisks": "101", "rmDisks": []})
    m.fails("POST", "/ctrl/1.0/PlacementGroupDelete/nope")


def test_templates(m):
    m.post("VolumeTemplateCreate", {"name": "t3", "replication": 3, "placeAll": "hdd",
                                    "size": 1 << 30, "iops": 1000})
    t = m.get("VolumeTemplateDescribe/t3")
    for f, v in (("name", "t3"), ("replication", 3), ("placeAll", "hdd"), ("placeHead", "hdd"),
                 ("placeTail", "hdd"), ("size", 1 << 30), ("iops", 1000), ("bw", "-"),
                 ("parentName", "")):
        check(t.get(f) == v, f"template.{f} = {t.get(f)!r}, want {v!r}")
    m.post("VolumeTemplateCreate", {"name": "tmp", "placeAll": "hdd"})
    t = m.get("VolumeTemplateDescribe/tmp")
    check(t["size"] == "-" and t["replication"] == "-", f"unset template fields {t}")
    m.post("VolumeTemplateUpdate/tmp", {"rename": "tmp2", "replication": 2})
    names = [x["name"] for x in m.get("VolumeTemplatesList")]
    check(sorted(names) == ["t3", "tmp2"], f"templates {names}")
    m.post("VolumeTemplateDelete/tmp2", None)
    m.fails("POST", "/ctrl/1.0/VolumeTemplateCreate", {"name": "t3", "placeAll": "hdd"})
    m.fails("POST", "/ctrl/1.0/VolumeTemplateCreate", {"name": "a.b", "placeAll": "hdd"})
    m.fails("POST", "/ctrl/1.0/VolumeTemplateCreate", {"name": "x", "placeAll": "nope"})
    m.fails("POST", "/ctrl/1.0/VolumeTemplateCreate", {"name": "x", "placeAll": "hdd",
                                                       "replication": 4})
    m.fails("POST", "/ctrl/1.0/PlacementGroupDelete/hdd")  # used by t3


def test_volumes(m):
    r = m.post("VolumeCreate", {"name": "v1", "size": 100 << 20, "template": "t3",
                                "tags": {"env": "test"}})
    check(r.get("name") == "v1", f"create name {r}")
    gid = r.get("globalId", "")
    check(gid.startswith("t1.c1.") and len(gid.split(".")) == 3, f"globalId {gid}")
    r2 = m.post("VolumeCreate", {"size": 512, "replication": 2, "placeAll": "hdd"})
    check(r2.get("name") == "~" + r2.get("globalId", "?"), f"anonymous volume {r2}")
    check(r2.get("globalId") != gid, "globalIds unique")
    m.post("VolumeCreate", {"name": "#tmp", "size": 4096, "replication": 1, "placeAll": "hdd"})
    vl = m.get("VolumesList")
    check(len(vl) == 3, f"VolumesList {len(vl)}")
    v = m.get("Volume/v1")
    check(isinstance(v, list) and len(v) == 1, "Volume/ is a one-element list")
    v = v[0]
    for f in SUMMARY_FIELDS:
        check(f in v, f"VolumeSummary.{f}")
    check(v["size"] == 100 << 20 and v["replication"] == 3 and v["templateName"] == "t3"
          and v["iops"] == 1000 and v["tags"] == {"env": "test"} and v["objectsCount"] == 4,
          f"v1 summary {v}")
    check(m.get("Volume/#tmp")[0]["name"] == "#tmp", "raw # in path")
    check(m.get("Volume/~" + gid)[0]["name"] == "v1", "~globalId lookup")
    d = m.get("VolumeDescribe/v1")
    check(len(d["targetDiskSets"]) == 32, "32 disk sets")
    servers = {101: 1, 102: 1, 201: 2, 202: 2, 301: 3, 302: 3}
    for ds in d["targetDiskSets"]:
        check(len(ds) == 3 and len({servers[x] for x in ds}) == 3, f"disk set {ds}")
    check(len(d["objects"]) == 4 and d["objects"][1] == d["targetDiskSets"][1], "objects")
    st = m.get("VolumesGetStatus")
    check(sorted(st) == sorted(x["name"] for x in vl), "status keys")
    s1 = st["v1"]
    for f in STATUS_FIELDS + SUMMARY_FIELDS:
        check(f in s1, f"VolumeStatus.{f}")
    check(s1["status"] == "up" and s1["decreasedRedundancy"] is False
          and s1["snapshot"] is False, f"v1 status {s1['status']}")
    mc = m.get("MultiCluster/VolumesList")
    check(all(x.get("clusterId") == "t1.c1" for x in mc), "MultiCluster adds clusterId")
    m.get("RemoteCommand/home/VolumesList")
    # Updates.
    m.post("VolumeUpdate/v1", {"sizeAdd": 512})
    check(m.get("Volume/v1")[0]["size"] == (100 << 20) + 512, "sizeAdd")
    m.fails("POST", "/ctrl/1.0/VolumeUpdate/v1", {"size": 512})  # shrink without shrinkOk
    m.post("VolumeUpdate/v1", {"size": 50 << 20, "shrinkOk": True})
    m.post("VolumeUpdate/~" + r2["globalId"], {"rename": "v2", "tags": {"a": "b"}})
    check(m.get("Volume/v2")[0]["tags"] == {"a": "b"}, "rename + tags")
    m.post("VolumeUpdate/v2", {"tags": {"a": ""}, "bw": 100})
    v2 = m.get("Volume/v2")[0]
    check(v2["tags"] == {} and v2["bw"] == 100, f"tag removed, bw set {v2}")
    name = m.fails("POST", "/ctrl/1.0/VolumeUpdate/v2", {"replication": 3})
    check(name == "notImplemented", f"relocation: {name}")


def test_bad_volume_input(m):
    base = {"name": "bad", "replication": 3, "placeAll": "hdd", "size": 1 << 20}
    for change in ({"name": "bad*"}, {"name": "list"}, {"name": "x" * 200}, {"size": 1000},
                   {"size": 0}, {"size": "1024"}, {"template": "nope"}, {"placeAll": "nope"},
                   {"placeTail": "nope"}, {"replication": 0}, {"replication": 4},
                   {"replication": "3"}, {"tags": {"bad tag": "x"}}, {"bw": -5}):
        m.fails("POST", "/ctrl/1.0/VolumeCreate", dict(base, **change))
    m.fails("POST", "/ctrl/1.0/VolumeCreate", {"name": "v1", "size": 512, "replication": 1,
                                              "placeAll": "hdd"})  # exists
    m.fails("POST", "/ctrl/1.0/VolumeCreate", {"name": "x", "size": 512})  # no placement
    m.post("PlacementGroupUpdate/one", {"addDisks": [101, 102], "rmDisks": []})
    msg_st, j = m.raw("POST", "/ctrl/1.0/VolumeCreate",
                      {"name": "y", "size": 512, "replication": 2, "placeAll": "one"})
    check(msg_st >= 400 and "Not enough servers or fault sets for replication 2"
          in j["error"]["descr"], f"not enough servers: {j}")
    m.fails("POST", "/ctrl/1.0/VolumeCreate", raw_body="{not json")
    m.fails("POST", "/ctrl/1.0/VolumeCreate", raw_body="[1,2]")
    m.fails("POST", "/ctrl/1.0/VolumeCreate", raw_body=" " * ((1 << 20) + 1) + "{}")
    m.fails("GET", "/ctrl/1.0/VolumesList", token="wrong")
    m.fails("GET", "/ctrl/1.0/VolumesList", token=None)
    check(m.fails("POST", "/ctrl/1.0/VolumeDelete/v1", token="") == "authFailed", "empty token")
    check(m.fails("GET", "/ctrl/1.0/FrobnicateAll") == "objectNotFound", "unknown call")
    check(m.fails("GET", "/ctrl/1.0/NetworkPeersList") == "notImplemented", "unimplemented")
    m.fails("GET", "/ctrl/1.0/RemoteCommand/elsewhere/VolumesList")
    m.fails("GET", "/ctrl/1.0/Volume/nope")
    m.fails("GET", "/ctrl/1.0/Volume/volume*")
    m.fails("POST", "/ctrl/1.0/VolumeDelete/nope")
    m.fails("GET", "/ctrl/1.0/VolumeCreate")  # wrong method


def test_attachments(m):
    m.post("VolumesReassign", [{"volume": "v1", "rw": [7], "force": False}])
    a = m.get("AttachmentsList")
    check(len(a) == 1 and a[0]["volume"] == "v1" and a[0]["client"] == 7
          and a[0]["rights"] == "rw" and a[0]["snapshot"] is False and a[0]["pos"] == 0
          and "globalId" in a[0], f"attachments {a}")
    m.fails("POST", "/ctrl/1.0/VolumeDelete/v1")  # attached
    m.fails("POST", "/ctrl/1.0/VolumesReassign", [{"volume": "v2", "rw": [7], "ro": [7],
                                                   "force": False}])
    m.fails("POST", "/ctrl/1.0/VolumesReassign", [{"volume": "v2", "rw": [99], "force": False}])
    m.fails("POST", "/ctrl/1.0/VolumesReassign", {"volume": "v2"})  # not an array
    m.fails("POST", "/ctrl/1.0/VolumesReassign", [{"volume": "v2", "rw": [0], "force": False}])
    # Internal long-poll shows the attachment with its disk map.
    gen = m.raw("GET", "/ctrl/1.0/VolumesList")[1]["generation"]
    st, j = m.raw("GET", "/spindle/1/ClientState/7?since=0&timeoutMs=1000")
    data = j.get("data", {})
    vols = data.get("volumes", [])
    check(st == 200 and len(vols) == 1 and vols[0]["name"] == "v1" and vols[0]["rights"] == "rw"
          and vols[0]["chain"] == [vols[0]["layerId"]] and len(vols[0]["targetDiskSets"]) == 32
          and vols[0]["readReplicas"] == 3,  # t3: head, all and tail all on hdd
          f"ClientState {j}")
    check(all(d["up"] and d["port"] > 0 for d in data.get("disks", {}).values())
          and len(data.get("disks", {})) == 6, "ClientState disks")
    t0 = time.time()
    st, j = m.raw("GET", f"/spindle/1/ClientState/7?since={gen}&timeoutMs=500")
    check(st == 200 and 0.4 <= time.time() - t0 < 5, "long-poll waits for timeoutMs")
    st, j = m.raw("POST", "/spindle/1/ClientReport/7", {"generation": gen})
    check(st == 200, f"ClientReport {j}")
    dump = m.get("ClientsConfigDump")
    check(dump and dump[0]["id"] == 7 and dump[0]["clientGeneration"] == gen, f"dump {dump}")
    m.post("VolumesReassign", [{"volume": "v1", "detach": "all", "force": False}])
    check(m.get("AttachmentsList") == [], "detach all")
    m.post("VolumesReassign", [{"volume": "v1", "ro": [7], "force": False}])
    m.post("VolumesReassign", [{"volume": "v1", "detach": [7], "force": False}])
    m.post("VolumeDelete/#tmp", None)
    check("#tmp" not in [x["name"] for x in m.get("VolumesList")], "deleted")


def test_down_server(m):
    """A server that re-registers without a disk leaves that disk down."""
    g0 = m.raw("GET", "/ctrl/1.0/DisksList")[1]["generation"]
    register(m, 3, [301])
    st, j = m.raw("GET", "/ctrl/1.0/DisksList")
    d = j["data"]["302"]
    check(j["generation"] == g0 + 1, "disk leaving is one new generation")
    check(d["generationLeft"] >= 0 and "sectorsCount" not in d, f"down disk summary {d}")
    s = m.get("VolumesGetStatus")["v1"]
    check(s["status"] == "up" and s["decreasedRedundancy"] is True and 302 in s["downDrives"],
          f"degraded status {s['status']} {s['downDrives']}")
    register(m, 3, [301, 302])
    check(m.get("DisksList")["302"]["generationLeft"] == -1, "disk back up")


def test_disk_calls(m):
    """DiskSetDescription shows in lists; DiskIgnore / DiskForget act on down disks only."""
    m.post("DiskSetDescription/101", {"description": "slot 1 - front"})
    check(m.get("DisksList")["101"]["description"] == "slot 1 - front", "description listed")
    for bad in ({"description": "x" * 31}, {"description": "a.b"}, {"description": 5}, {}):
        m.fails("POST", "/ctrl/1.0/DiskSetDescription/101", bad)
    m.fails("POST", "/ctrl/1.0/DiskSetDescription/9999", {"description": "x"})
    m.fails("POST", "/ctrl/1.0/DiskIgnore/101")  # up
    m.fails("POST", "/ctrl/1.0/DiskForget/101")  # up
    register(m, 3, [301])  # 302 leaves
    blocked = m.get("ServersListBlocked")
    check(blocked["servers"]["3"]["missingDisks"] == [302], f"missingDisks {blocked['servers']}")
    m.post("DiskIgnore/302", None)
    check(m.get("ServersListBlocked")["servers"]["3"]["missingDisks"] == [], "ignored disk")
    m.post("PlacementGroupUpdate/extra", {"addDisks": [302], "rmDisks": []})
    m.post("DiskForget/302", None)
    check("302" not in m.get("DisksList"), "forgotten disk gone")
    check(302 not in m.get("PlacementGroupDescribe/extra")["disks"], "forgotten disk left pg")
    m.fails("POST", "/ctrl/1.0/DiskForget/302")
    register(m, 3, [301, 302])
    m.post("PlacementGroupUpdate/hdd", {"addDisks": [302], "rmDisks": []})
    check(m.get("DisksList")["302"]["generationLeft"] == -1, "disk back")


def test_fault_sets(m):
    """Fault sets are listed and keep replicas apart: 3 servers in 2 fault sets hold rep 2 only."""
    m.post("FaultSetUpdate/rack1", {"addServers": [1, 2]})
    fs = m.get("FaultSetsList")
    check(fs == {"rack1": {"name": "rack1", "servers": [1, 2]}}, f"FaultSetsList {fs}")
    st, j = m.raw("POST", "/ctrl/1.0/VolumeCreate",
                  {"name": "fs3", "size": 512, "replication": 3, "placeAll": "hdd"})
    check(st >= 400 and "Not enough servers or fault sets for replication 3"
          in j.get("error", {}).get("descr", ""), f"rep 3 over 2 fault sets: {j}")
    m.post("VolumeCreate", {"name": "fs2", "size": 512, "replication": 2, "placeAll": "hdd"})
    servers = {101: 1, 102: 1, 201: 2, 202: 2, 301: 3, 302: 3}
    for ds in m.get("VolumeDescribe/fs2")["targetDiskSets"]:
        check(sum(servers[d] in (1, 2) for d in ds) == 1, f"fault sets apart {ds}")
    m.fails("POST", "/ctrl/1.0/FaultSetUpdate/rack2", {"addServers": [1]})  # in rack1
    m.fails("POST", "/ctrl/1.0/FaultSetUpdate/rack2", {"addServers": [99]})
    m.fails("POST", "/ctrl/1.0/FaultSetUpdate/bad.name", {"addServers": []})
    m.fails("POST", "/ctrl/1.0/FaultSetUpdate/rack2", {"addServers": [0]})
    m.fails("POST", "/ctrl/1.0/FaultSetUpdate/rack2", {"addServers": "1"})
    m.post("FaultSetUpdate/rack1", {"rename": "rackA", "rmServers": [2]})
    check(m.get("FaultSetsList") == {"rackA": {"name": "rackA", "servers": [1]}}, "renamed")
    m.post("FaultSetDelete/rackA", None)
    m.fails("POST", "/ctrl/1.0/FaultSetDelete/rackA")
    m.post("VolumeDelete/fs2", None)


def test_space_and_info(m):
    """Registered per-layer usage becomes storedSize/onDiskSize, VolumesSpace, DiskDescribe."""
    vid = m.get("Volume/v1")[0]["id"]
    sets = m.get("VolumeDescribe/v1")["targetDiskSets"]
    g0 = m.raw("GET", "/ctrl/1.0/VolumesList")[1]["generation"]
    for sid in (1, 2, 3):
        disks = [sid * 100 + 1, sid * 100 + 2]
        body = {"type": "server", "id": sid, "nodeId": sid, "version": "0.1.0",
                "startTime": 1732440000, "addr": "127.0.0.1", "port": 47000 + sid, "disks": []}
        for d in disks:
            objs = [{"layer": vid, "object": 0, "version": 3, "state": 1,
                     "storedBytes": 8192}] if d in sets[0] else []
            body["disks"].append({"id": d, "device": f"/tmp/disk{d}.img", "ssd": False,
                                  "journaled": False, "sectorsCount": 8388608,
                                  "objectsCount": 127, "objectsAllocated": len(objs),
                                  "usage": [{"layer": vid, "objects": len(objs),
                                             "storedBytes": 8192 * len(objs)}],
                                  "objectList": objs})
        st, j = m.raw("POST", "/spindle/1/ServiceRegister", body)
        check(st == 200, f"register with usage {j}")
    check(m.raw("GET", "/ctrl/1.0/VolumesList")[1]["generation"] == g0, "usage is not a change")
    s = m.get("VolumesGetStatus")["v1"]
    check(s["storedSize"] == 8192 and s["onDiskSize"] == 8192 * 3, f"sizes {s['storedSize']}")
    q = m.get("VolumesGetStatusQuick")["v1"]
    check("storedSize" not in q and q["status"] == "up" and "downDrives" in q, "quick status")
    sp = {x["name"]: x for x in m.get("VolumesSpace")}
    check(sp["v1"]["storedSize"] == 8192 and sp["v1"]["spaceUsed"] == 8192, f"space {sp['v1']}")
    for f in SUMMARY_FIELDS:
        check(f in sp["v1"], f"VolumeSpace.{f}")
    obj = list(m.get(f"DiskDescribe/{sets[0][0]}")["objects"].values())
    check(len(obj) == 1 and obj[0]["volume"] == "v1" and obj[0]["version"] == 3
          and obj[0]["storedSize"] == 8192 and obj[0]["state"] == 1, f"DiskObject {obj}")
    info = m.get("VolumeGetInfo/v1")
    check(info["disksCount"] == 6 and sum(info["objectsPerDisk"].values()) == 3 * 2
          and len(info["objectsPerDiskSet"]) == 32
          and sum(x["count"] for x in info["objectsPerDiskSet"]) == 2
          and sum(x["count"] for x in info["objectsPerChain"]) == 2, f"VolumeGetInfo {info}")
    ts = {t["name"]: t for t in m.get("VolumeTemplatesStatus")}["t3"]
    for f in ("volumesCount", "snapshotsCount", "removingSnapshotsCount", "size", "totalSize",
              "onDiskSize", "storedSize", "availablePlaceAll", "availablePlaceTail",
              "availablePlaceHead", "capacityPlaceAll", "capacityPlaceTail", "capacityPlaceHead",
              "stored"):
        check(f in ts, f"VolumeTemplateStatusDesc.{f}")
    check(ts["volumesCount"] == 1 and ts["storedSize"] == 8192
          and ts["capacityPlaceAll"] == 6 * 127 * (32 << 20) and ts["availablePlaceAll"] == 0,
          f"template status {ts}")
    for f in ("free", "capacity", "placeAll", "placeTail", "placeHead"):
        check(f in ts["stored"], f"stored.{f}")


def test_vag(m):
    """VagList shows a volume's table; VagUpdate resizes it without moving any object."""
    vid = m.get("Volume/v1")[0]["id"]
    before = m.get("VolumeDescribe/v1")
    vag = m.get(f"VagList/{vid}")
    for f in ("name", "chains", "diskSetsConstraintsViolated", "overrides", "placeAll",
              "placeTail", "placeHead", "replication", "targetDiskSets", "templateName"):
        check(f in vag, f"Vag.{f}")
    check(vag["targetDiskSets"] == before["targetDiskSets"], "vag table")
    m.post("VagUpdate", {"vagId": str(vid), "targetsCount": 64})
    after = m.get("VolumeDescribe/v1")
    check(len(after["targetDiskSets"]) == 64 and after["objects"] == before["objects"],
          "64 sets, objects unchanged")
    m.post("VagUpdate", {"vagId": str(vid), "targetsCount": 1024})
    check(len(m.get("VolumeDescribe/v1")["targetDiskSets"]) == 1024, "1024 sets")
    for bad in ({"vagId": str(vid), "targetsCount": 3}, {"vagId": str(vid), "targetsCount": 0},
                {"vagId": str(vid), "targetsCount": 65536}, {"vagId": "x", "targetsCount": 2},
                {"vagId": "99999", "targetsCount": 2}, {"targetsCount": 2}, {"vagId": str(vid)},
                {"vagId": str(vid), "targetsCount": "2"}):
        m.fails("POST", "/ctrl/1.0/VagUpdate", bad)
    m.fails("GET", "/ctrl/1.0/VagList/0")
    m.fails("GET", "/ctrl/1.0/VagList/abc")
    m.fails("GET", "/ctrl/1.0/VagList/99999")


def test_kv(m):
    """The KV store: buckets, versions, conditional set, empty value deletes."""
    m.post("KV/Create/app.cfg", None)
    check(m.get("KV")["buckets"].get("app.cfg") == 1, "bucket listed with version")
    m.post("KV/Set/app.cfg", {"set": {"a/b": "1", "k": "v"}})
    lst = m.get("KV/List/app.cfg")
    check(lst == {"name": "app.cfg", "version": 2, "pairs": {"a/b": "1", "k": "v"}}, f"{lst}")
    check(m.get("KV/Get/app.cfg/a/b")["pairs"] == {"a/b": "1"}, "key with /")
    st, j = m.raw("GET", "/ctrl/1.0/KV/Get/app.cfg/k")
    check(st == 200 and j["data"]["pairs"] == {"k": "v"}, f"KV/Get {j}")
    m.post("KV/Set/app.cfg", {"runIfVersionIs": 2, "set": {"k": ""}})
    check(m.get("KV/List/app.cfg")["pairs"] == {"a/b": "1"}, "empty value deletes")
    check(m.fails("POST", "/ctrl/1.0/KV/Set/app.cfg", {"runIfVersionIs": 2, "set": {"k": "x"}})
          == "runIfVersionIsMismatch", "version mismatch error name")
    for path, body in (("KV/Set/app.cfg", {"set": {"k": 1}}), ("KV/Set/app.cfg", {"set": []}),
                       ("KV/Set/app.cfg", {}), ("KV/Set/nope", {"set": {}}),
                       ("KV/Create/app.cfg", None), ("KV/Create/bad*name", None),
                       ("KV/Delete/nope", None), ("KV/Frob/app.cfg", None),
                       ("KV/Set/app.cfg", {"runIfVersionIs": "3", "set": {}})):
        m.fails("POST", "/ctrl/1.0/" + path, body)
    m.fails("GET", "/ctrl/1.0/KV/Get/app.cfg/missing")
    m.fails("POST", "/ctrl/1.0/KV/List/app.cfg")  # wrong method
    m.fails("GET", "/ctrl/1.0/KV/Create/x")  # wrong method
    m.post("KV/Delete/app.cfg", None)
    check(m.get("KV") == {"buckets": {}}, "bucket deleted")


def test_mgmt_config_reuse(m):
    """reuse server implicit on disk down: off → StorPool's error; on → created, flagged C."""
    check(m.get("MgmtConfigList") == {"reuseServerImplicitOnDiskDown": False}, "default off")
    register(m, 3, [])  # node 3's disks down: 2 servers left for replication 3
    m.post("PlacementGroupUpdate/hdd", {"addDisks": [], "rmDisks": []})
    st, j = m.raw("POST", "/ctrl/1.0/VolumeCreate",
                  {"name": "c1", "size": 512, "replication": 3, "placeAll": "hdd"})
    check(st >= 400 and j["error"]["descr"] ==
          "Not enough servers or fault sets for replication 3", f"off: {j}")
    m.post("MgmtConfigSet", {"reuseServerImplicitOnDiskDown": True})
    m.post("VolumeCreate", {"name": "c1", "size": 512, "replication": 3, "placeAll": "hdd"})
    s = m.get("VolumesGetStatus")["c1"]
    check(s["constraintsViolated"] is True, "flag C in status")
    check(m.get("VolumesGetStatusQuick")["c1"]["constraintsViolated"] is True, "flag C quick")
    vid = m.get("Volume/c1")[0]["id"]
    check(m.get(f"VagList/{vid}")["diskSetsConstraintsViolated"] is True, "vag flag")
    alerts = m.get("AlertsList")
    check(any(a["volume"] == "c1" for a in alerts), f"alert recorded {alerts}")
    check(m.get("Volume/v1") and m.get("VolumesGetStatus")["v1"]["constraintsViolated"] is False,
          "others not flagged")
    for bad in ({"reuseServerImplicitOnDiskDown": "yes"}, {"frob": 1}, {}):
        m.fails("POST", "/ctrl/1.0/MgmtConfigSet", bad)
    check(m.fails("POST", "/ctrl/1.0/MgmtConfigSet", {"maxLocalRecoveryRequests": 2})
          == "notImplemented", "StorPool setting absent from Spindle")
    m.post("MgmtConfigSet", {"reuseServerImplicitOnDiskDown": False})
    m.post("VolumeDelete/c1", None)
    register(m, 3, [301, 302])


def test_waits(m):
    """ClientConfigWait returns once the client reports; VolumesReassignWait honours attachTimeout."""
    gen = m.raw("GET", "/ctrl/1.0/VolumesList")[1]["generation"]
    m.raw("POST", "/spindle/1/ClientReport/7", {"generation": gen})
    t0 = time.time()
    w = m.get("ClientConfigWait/7")
    check(w[0]["configStatus"] == "ok" and w[0]["clientGeneration"] >= gen
          and time.time() - t0 < 5, f"ClientConfigWait current {w}")
    m.fails("GET", "/ctrl/1.0/ClientConfigWait/99")
    m.fails("GET", "/ctrl/1.0/ClientConfigWait/0")
    st, j = m.raw("POST", "/spindle/1/ServiceRegister",
                  {"type": "client", "id": 7, "nodeId": 11, "version": "0.1.0", "startTime": 1})
    t0 = time.time()
    r = m.post("VolumesReassignWait", {"reassign": [{"volume": "v1", "rw": [7], "force": False}],
                                       "attachTimeout": 0})
    check(time.time() - t0 < 3 and "7" in r.get("info", ""), f"attachTimeout 0: {r}")
    t0 = time.time()
    r = m.post("VolumesReassignWait", {"reassign": [{"volume": "v1", "detach": [7],
                                                     "force": False}], "attachTimeout": 1})
    check(0.9 <= time.time() - t0 < 5 and "7" in r.get("info", ""), f"attachTimeout 1: {r}")
    check(m.get("AttachmentsList") == [], "detached anyway")
    import threading
    def report():
        time.sleep(0.5)
        g = m.raw("GET", "/ctrl/1.0/VolumesList")[1]["generation"]
        m.raw("POST", "/spindle/1/ClientReport/7", {"generation": g})
    th = threading.Thread(target=report)
    th.start()
    r = m.post("VolumesReassignWait", {"reassign": [{"volume": "v1", "ro": [7], "force": False}],
                                       "attachTimeout": 10})
    th.join()
    check("info" not in r, f"client confirmed: {r}")
    m.post("VolumesReassign", [{"volume": "v1", "detach": "all", "force": False}])
    for bad in ({"reassign": {}}, {"reassign": [{"volume": "nope", "rw": [7], "force": False}]},
                {"reassign": [], "attachTimeout": -1}, {"reassign": [], "attachTimeout": "1"},
                {"attachTimeout": 1}):
        m.fails("POST", "/ctrl/1.0/VolumesReassignWait", bad)


def test_snapshot_calls(m):
    """Snapshot metadata calls: update, info, space, delete by id, revert, freeze, rebase, and
    their bad input (StorPool error, state unchanged)."""
    m.post("VolumeCreate", {"name": "sn", "size": 64 << 20, "replication": 3, "placeAll": "hdd"})
    r = m.post("VolumeSnapshot/sn", {"name": "sn-1", "deleteAfter": 600, "tags": {"a": "b"}})
    gid = r.get("snapshotGlobalId", "")
    s1 = m.get("Snapshot/sn-1")[0]
    check(abs(s1.get("targetDeleteDate", 0) - time.time() - 600) < 60, f"deleteAfter {s1}")
    m.post("SnapshotUpdate/sn-1", {"rename": "sn-2", "tags": {"a": "", "c": "d"}, "bind": True,
                                   "targetDeleteDate": 0, "bw": 10})
    s2 = m.get("Snapshot/~" + gid)[0]
    check(s2["name"] == "sn-2" and s2["tags"] == {"c": "d"} and s2["bound"] is True
          and "targetDeleteDate" not in s2 and s2["bw"] == 10, f"SnapshotUpdate {s2}")
    info = m.get("SnapshotGetInfo/sn-2")
    check(info["onVolume"] == "sn" and sum(info["objectsPerDisk"].values()) == 2 * 3
          and len(info["objectsPerDiskSet"]) == 32, f"SnapshotGetInfo {info}")
    sp = [x for x in m.get("SnapshotsSpace") if x["name"] == "sn-2"]
    check(len(sp) == 1 and sp[0]["spaceUsed"] == 0 and "storedSize" in sp[0], f"space {sp}")
    m.post("VolumeSnapshot/sn", {"name": "sn-3"})
    m.post("VolumeRebase/sn", {"parentName": "sn-3"})  # no-op
    m.post("SnapshotRebase/sn-3", {"parentName": "sn-2"})  # no-op
    m.post("VolumeRevert/sn", {"toSnapshot": "sn-2"})
    check(m.get("Volume/sn")[0]["parentName"] == "sn-2", "reverted")
    for path, body in (("VolumeRevert/sn", {}), ("VolumeRevert/sn", {"toSnapshot": 5}),
                       ("VolumeRevert/sn", {"toSnapshot": "bad name"}),
                       ("VolumeRevert/sn", {"toSnapshot": "nope"}),
                       ("VolumeRevert/nope", {"toSnapshot": "sn-2"}),
                       ("VolumeRevert/sn", None),
                       ("VolumeFreeze/sn", {"deleteAfter": -1}),
                       ("VolumeFreeze/sn", {"targetDeleteDate": "x"}),
                       ("VolumeFreeze/sn", {"deleteAfter": 5, "targetDeleteDate": 5}),
                       ("VolumeFreeze/nope", None),
                       ("VolumeRebase/sn", {"parentName": 1}),
                       ("VolumeRebase/sn", {"parentName": "nope"}),
                       ("VolumeRebase/sn", {}),  # needs a layer merge: notImplemented
                       ("SnapshotRebase/sn-3", {}),
                       ("SnapshotRebase/sn-2", {"parentName": "sn-3"}),  # not an ancestor
                       ("SnapshotUpdate/nope", {}), ("SnapshotUpdate/sn-2", {"rename": "sn-3"}),
                       ("SnapshotUpdate/sn-2", {"rename": "bad name"}),
                       ("SnapshotUpdate/sn-2", {"bind": "yes"}),
                       ("SnapshotUpdate/sn-2", {"tags": ["a"]}),
                       ("SnapshotUpdate/sn-2", {"template": "nope"}),
                       ("SnapshotUpdate/sn-2", {"replication": 2}),
                       ("SnapshotUpdate/sn-2", {"deleteAfter": 1.5}),
                       ("VolumeSnapshot/sn", {"deleteAfter": -5}),
                       ("VolumeSnapshot/sn", {"targetDeleteDate": 10 ** 15}),
                       ("SnapshotDeleteById/~" + gid, None),
                       ("SnapshotDeleteById/a.b.zz", None),
                       ("SnapshotDelete/nope", None)):
        m.fails("POST", "/ctrl/1.0/" + path, body)
    m.fails("GET", "/ctrl/1.0/SnapshotGetInfo/nope")
    check(m.fails("POST", "/ctrl/1.0/VolumeRebase/sn", {}) == "notImplemented", "rebase merge")
    # Freeze: the volume becomes a snapshot of the same name; then deleted by its global id.
    m.post("VolumeCreate", {"name": "fz", "size": 1 << 20, "replication": 1, "placeAll": "hdd"})
    m.post("VolumesReassign", [{"volume": "fz", "rw": [7], "force": False}])
    check(m.fails("POST", "/ctrl/1.0/VolumeFreeze/fz") == "invalidState", "freeze attached rw")
    m.post("VolumesReassign", [{"volume": "fz", "detach": [7], "force": False}])
    fz_gid = m.get("Volume/fz")[0]["globalId"]
    m.post("VolumeFreeze/fz", None)
    check("fz" not in [v["name"] for v in m.get("VolumesList")]
          and m.get("Snapshot/fz")[0]["globalId"] == fz_gid, "frozen")
    m.post("SnapshotDeleteById/" + fz_gid, None)
    check("fz" not in [v["name"] for v in m.get("SnapshotsList")], "deleted by id")
    # sn-2 (bound) and sn-3 (its child) go with the volume: sn-3 is deleted, then nothing
    # reads through sn-2.
    m.post("SnapshotDelete/sn-3", None)
    m.post("VolumeDelete/sn", None)
    left = [x["name"] for x in m.get("SnapshotsList")]
    check("sn-2" not in left and "sn-3" not in left, f"bound snapshot collected {left}")


def test_call_list(m):
    """GET /ctrl/1.0/ lists implemented and notImplemented calls."""
    d = m.get("")
    names = {c["call"] for c in d["implemented"]}
    for c in ("VolumeCreate", "KV", "VagUpdate", "VolumesReassignWait", "ClientConfigWait",
              "VolumeTemplatesStatus", "MgmtConfigSet"):
        check(c in names, f"{c} implemented")
    check("NetworkPeersList" in d["notImplemented"] and not names & set(d["notImplemented"]),
          "notImplemented disjoint")
    for c in d["notImplemented"]:  # each names the capability it belongs to
        st, j = m.raw("GET", f"/ctrl/1.0/{c}", None)
        err = j.get("error", {})
        check(st == 501 and err.get("name") == "notImplemented" and " needs " in err.get("descr", "")
              and "not built yet" not in err.get("descr", ""), f"{c} names its feature: {st} {j}")
    docs = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../docs/api.md")
    if os.path.exists(docs):
        text = open(docs).read()
        missing = [c for c in names if f"`{c}`" not in text]
        check(not missing, f"docs/api.md lists every implemented call; missing {missing}")


def test_bad_input_all(m):
    """Every implemented call: no/wrong token, wrong method, extra or invalid path arguments,
    bodies that are not JSON, not an object, or over the limit → StorPool error, state unchanged.
    Unknown body fields are ignored (as the bindings' decoders ignore unknown members)."""
    calls = m.get("")["implemented"]
    over = "{" + " " * (1 << 20) + "}"
    for c in calls:
        name, method, nargs = c["call"], c["method"], c["pathArgs"]
        if name in ("ClientConfigWait",):  # blocks on a valid id; covered in test_waits
            continue
        n = 1 if nargs == "*" else nargs
        path = "/ctrl/1.0/" + "/".join([name] + ["1"] * n)
        send = "GET" if method in ("GET", "*") else "POST"
        check(m.fails(send, path, token=None) == "authFailed", f"{name}: no token")
        check(m.fails(send, path, token="nope") == "authFailed", f"{name}: wrong token")
        if nargs == "*":
            continue
        m.fails("POST" if method == "GET" else "GET", path)
        m.fails(method, "/ctrl/1.0/" + "/".join([name] + ["1"] * (nargs + 1)))
        if nargs:
            for bad in ("list", "bad*name", "x" * 300, "a%25b"):
                m.fails(method, "/ctrl/1.0/" + "/".join([name] + [bad] * nargs),
                        {} if method == "POST" else None)
        if method == "POST":
            m.fails("POST", path, raw_body="{not json")
            m.fails("POST", path, raw_body=over)
            if name not in ("VolumesReassign",) and nargs == 0:
                m.fails("POST", path, raw_body="[1]")
    # Missing required fields and wrong types on the body-taking calls.
    for path, body in (("VolumeTemplateCreate", {"placeAll": "hdd"}),
                       ("VolumeTemplateCreate", {"name": 5}),
                       ("VolumeCreate", {"size": 512}),
                       ("VolumeCreate", {"name": "n", "size": 512.5, "replication": 1,
                                         "placeAll": "hdd"}),
                       ("VolumeCreate", {"name": "n", "size": 512, "replication": 1,
                                         "placeAll": "hdd", "tags": ["a"]}),
                       ("VolumeCreate", {"name": "n", "size": 512, "replication": 1,
                                         "placeAll": "hdd", "reuseServer": "yes"}),
                       ("VolumeCreate", {"name": "n", "size": 512, "replication": 1,
                                         "placeAll": "hdd", "iops": -1}),
                       ("VolumeCreate", {"name": "n", "size": 2 ** 70, "replication": 1,
                                         "placeAll": "hdd"}),
                       ("VolumeUpdate/v1", {"sizeAdd": 100}), ("VolumeUpdate/v1", {"rename": 1}),
                       ("VolumeUpdate/v1", {"rename": "list"}),
                       ("VolumeUpdate/v1", {"template": "nope"}),
                       ("VolumeTemplateUpdate/t3", {"replication": 0}),
                       ("VolumeTemplateUpdate/t3", {"rename": "a b"}),
                       ("PlacementGroupUpdate/hdd", {"addDisks": [4096]}),
                       ("PlacementGroupUpdate/hdd", {"addDisks": [-1]}),
                       ("PlacementGroupUpdate/hdd", {"rename": "x" * 128}),
                       ("VolumesReassign", [{"rw": [7], "force": False}]),
                       ("VolumesReassign", [{"volume": "v1", "rw": [4096], "force": False}]),
                       ("VolumesReassign", [{"volume": "v1", "rw": "7", "force": False}]),
                       ("DiskSetDescription/101", {"description": None})):
        m.fails("POST", "/ctrl/1.0/" + path, body)
    # Unknown fields are ignored: the call succeeds as if they were absent.
    r = m.post("VolumeCreate", {"name": "uf", "size": 512, "replication": 1, "placeAll": "hdd",
                                "frobnicate": {"x": 1}})
    check(r.get("name") == "uf" and "frobnicate" not in m.get("Volume/uf")[0], "unknown ignored")
    m.post("VolumeDelete/uf", None)


def test_restart(m):
    before = m.snapshot()
    m.stop()
    m.start()
    after = m.snapshot()
    check(after == before, "state and generation persist across restart")
    r = m.post("PlacementGroupUpdate/after", {"addDisks": [], "rmDisks": []})
    check(r.get("generation") == before["generation"] + 1, "generation continues after restart")


def test_fault_sets_config(m):
    """SP_FAULT_SETS defines fault sets at start: the named sets get exactly their servers (a
    listed server leaves an API-made set, which stays); a bad value stops mgmt with a message."""
    m.post("FaultSetUpdate/apiset", {"addServers": [2, 3]})
    with open(m.conf) as f:
        plain = f.read()
    try:
        m.stop()
        with open(m.conf, "w") as f:
            f.write(plain + "SP_FAULT_SETS=rackX:1,2; rackY:9\n")
        m.start()
        fs = m.get("FaultSetsList")
        check(fs == {"apiset": {"name": "apiset", "servers": [3]},
                     "rackX": {"name": "rackX", "servers": [1, 2]},
                     "rackY": {"name": "rackY", "servers": [9]}}, f"fault sets from config {fs}")
        gen = m.snapshot()["generation"]
        m.stop()
        m.start()  # the same configuration again changes nothing
        check(m.snapshot()["generation"] == gen, "reapplied fault sets are no change")
        for bad in ("rack.1:1", "rackX:1;rackY:1", "rackX", "rackX:0", "rackX:1,x", "r:"):
            m.stop()
            with open(m.conf, "w") as f:
                f.write(plain + f"SP_FAULT_SETS={bad}\n")
            try:
                m.start()
                started = True
            except RuntimeError:
                started = False
            with open(os.path.join(m.work, "mgmt.log")) as f:
                said = "SP_FAULT_SETS" in f.read()[-2000:]
            check(not started and said, f"SP_FAULT_SETS={bad} refused with a message")
    finally:
        m.stop()
        with open(m.conf, "w") as f:
            f.write(plain)
        m.start()
    for name in ("apiset", "rackX", "rackY"):
        m.post(f"FaultSetDelete/{name}", None)


def main():
    bin_dir = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("SPINDLE_BIN_DIR", "")
    if not os.path.exists(os.path.join(bin_dir, "spindle-mgmt")):
        print("usage: test_api.py BIN_DIR (containing spindle-mgmt)")
        return 2
    with tempfile.TemporaryDirectory(prefix="spindle_api_") as work:
        m = Mgmt(bin_dir, work)
        try:
            m.start()
            for t in (test_services_and_disks, test_placement_groups, test_templates,
                      test_volumes, test_bad_volume_input, test_attachments, test_down_server,
                      test_disk_calls, test_fault_sets, test_space_and_info, test_vag, test_kv,
                      test_mgmt_config_reuse, test_waits, test_snapshot_calls, test_call_list,
                      test_bad_input_all,
                      test_restart, test_fault_sets_config):
                try:
                    t(m)
                except Exception as e:  # a crash in one group fails it, the rest still run
                    check(False, f"{t.__name__} raised {e!r}")
        finally:
            m.stop()
            if RESULTS["failed"]:
                with open(os.path.join(work, "mgmt.log")) as f:
                    print("--- mgmt.log (tail) ---\n" + "".join(f.readlines()[-30:]))
    print(f"{RESULTS['passed']} passed, {RESULTS['failed']} failed")
    return 1 if RESULTS["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
