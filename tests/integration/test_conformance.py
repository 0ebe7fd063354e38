#!/usr/bin/python3
"""API conformance: drives a real local cluster (spindle-mgmt + 3 spindle-server + spindle-block
client 4, via cluster.Cluster) with requests shaped exactly as StorPool's Python bindings send
them (one connection per request, only the Authorization header, compact JSON, nulls stripped,
empty lists present, no Content-Type, raw unencoded path arguments such as `#name` and
`~globalId`), and validates every reply field by field with sptypes.py (written from the
reference, not from Spindle's C++): the {"generation","data"} envelope, the ApiOk family, the
object types and the §5 unions (up/down disks, volume/snapshot status). Calls that answer
notImplemented must use StorPool's error shape with a non-2xx status.
Prints "N passed, M failed"; exits 1 on failure.
"""
import http.client
import json
import os
import signal
import sys
import time

import sptypes as T
from cluster import Cluster, wait_until

REQUEST_TIMEOUT_S = 30
DOWN_TIMEOUT_S = 30  # heartbeat timeout is 5 s in spindle-local; allow slack
# Members StorPool itself sends beyond the bindings' declarations (storpool-api.md §6.3,
# storpool.md §2.7); anything else undeclared is reported.
KNOWN_EXTRAS = {"agFreeNotTrimmed", "pendingErrorRecoveries", "scrubbing",
                "totalErrorsDetected", "testResults",
                # Spindle's documented extension: volume flag C (storpool.md §3.9)
                "constraintsViolated"}

passed = 0
failed = 0


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print(f"PASS {name}")
    else:
        failed += 1
        print(f"FAIL {name} {str(detail)[:1500]}")
    return cond


class Raw:
    """The bindings' HTTP exchange (storpool-api.md §1.2/§1.3), no project code."""

    def __init__(self, port, token):
        self.port, self.token = port, token
        self.last_generation = -1

    def request(self, method, path, body=None, token=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=REQUEST_TIMEOUT_S)
        try:
            # skip_host/skip_accept_encoding off: http.client adds Host and
            # Accept-Encoding: identity exactly like the bindings' library.
            conn.putrequest(method, path)
            auth = self.token if token is None else token
            conn.putheader("Authorization", f"Storpool v1:{auth}")
            data = b""
            if body is not None:
                data = json.dumps(body, separators=(",", ":"), ensure_ascii=True).encode()
            if method == "POST":
                conn.putheader("Content-Length", str(len(data)))
            conn.endheaders()
            if data:
                conn.send(data)
            r = conn.getresponse()
            raw = r.read()
            return r.status, raw
        finally:
            conn.close()

    def call(self, method, call, body=None):
        status, raw = self.request(method, "/ctrl/1.0/" + call, body)
        try:
            reply = json.loads(raw)
        except ValueError:
            reply = {"<not json>": raw[:200].decode(errors="replace")}
        return status, reply


def envelope_ok(name, status, reply, raw_api):
    """A success: HTTP 200, exactly {"generation": int64, "data": ...}, generation monotonic."""
    good = (status == 200 and isinstance(reply, dict) and set(reply) == {"generation", "data"}
            and not T.check(reply["generation"], "int64"))
    check(f"{name}: envelope", good, f"{status} {str(reply)[:300]}")
    if good:
        check(f"{name}: generation monotonic", reply["generation"] >= raw_api.last_generation,
              f"{reply['generation']} < {raw_api.last_generation}")
        raw_api.last_generation = max(raw_api.last_generation, reply["generation"])
    return good


def valid(name, value, t):
    extras = []
    errs = T.check(value, t, "data", extras)
    check(f"{name}: types", not errs, errs[:8])
    odd = sorted({e for e in extras if e.rsplit(".", 1)[-1] not in KNOWN_EXTRAS})
    check(f"{name}: no undeclared members", not odd, odd[:8])
    return not errs


class Suite:
    def __init__(self, cluster):
        self.c = cluster
        self.api = Raw(int(cluster.conf["SP_API_HTTP_PORT"]), cluster.conf["SP_AUTH_TOKEN"])
        self.implemented = None  # set of call names from GET /ctrl/1.0/, when served

    def get(self, call, t, name=None):
        """GET that must succeed; validates the envelope and data against t; returns data."""
        name = name or f"GET {call}"
        status, reply = self.api.call("GET", call)
        if not envelope_ok(name, status, reply, self.api):
            return None
        valid(name, reply["data"], t)
        return reply["data"]

    def post(self, call, body, req_type=None, ok_type="ApiOk", name=None):
        """POST with a body built the bindings' way; the reply must be an ApiOk(-subtype) whose
        generation equals the envelope's."""
        name = name or f"POST {call}"
        if req_type is not None:
            body = T.encode(req_type, body)
        status, reply = self.api.call("POST", call, body)
        if not envelope_ok(name, status, reply, self.api):
            return None
        data = reply["data"]
        if valid(name, data, ok_type):
            check(f"{name}: ApiOk generation = envelope generation",
                  data["generation"] == reply["generation"], reply)
        return data

    def error(self, method, call, body=None, name=None, want=None):
        """A call that must fail: non-2xx and StorPool's error shape."""
        name = name or f"{method} {call} fails"
        status, reply = self.api.call(method, call, body)
        good = not (200 <= status < 300)
        check(f"{name}: non-2xx", good, f"{status} {str(reply)[:300]}")
        if isinstance(reply, dict) and "error" in reply:
            valid(f"{name}: error", {"error": reply["error"]}, "ApiError")
            if want:
                check(f"{name}: error name {want}", reply["error"].get("name") == want, reply)
        else:
            check(f"{name}: error object", False, reply)
        return reply

    def available(self, method, call, body=None):
        """True when the call is implemented; a notImplemented answer must be well-formed."""
        base = call.split("/")[0]
        if base == "MultiCluster":
            base = call.split("/")[1]
        if self.implemented is not None and base not in self.implemented:
            self.error(method, call, body, name=f"{call} (not listed)")
            return False
        status, reply = self.api.call(method, call, body)
        err = reply.get("error") if isinstance(reply, dict) else None
        if err and err.get("name") == "notImplemented":
            check(f"{call} notImplemented: non-2xx", not (200 <= status < 300), status)
            valid(f"{call} notImplemented", {"error": err}, "ApiError")
            print(f"SKIP {call}: notImplemented")
            return False
        return True

    # ---- the calls -------------------------------------------------------------------------

    def call_list(self):
        status, reply = self.api.call("GET", "")
        if status == 200 and isinstance(reply, dict) and "data" in reply:
            data = reply["data"]
            names = set()
            items = data.get("implemented", data) if isinstance(data, dict) else data
            for item in items if isinstance(items, (list, dict)) else []:
                if isinstance(item, str):
                    names.add(item.split("/")[0])
                elif isinstance(item, dict):
                    n = item.get("call", item.get("name"))
                    if isinstance(n, str):
                        names.add(n.split("/")[0])
            missing = data.get("notImplemented", []) if isinstance(data, dict) else []
            check("GET /ctrl/1.0/: implemented and missing are disjoint",
                  not names & {m if isinstance(m, str) else m.get("call") for m in missing},
                  missing)
            check("GET /ctrl/1.0/: lists calls", len(names) > 10, str(data)[:300])
            self.implemented = names or None
        else:
            print(f"NOTE GET /ctrl/1.0/ gives no call list yet: {status} {str(reply)[:200]}")

    def services(self):
        cs = self.get("ServicesList", "ClusterStatus")
        if cs:
            check("ServicesList: 3 servers running", all(
                cs["servers"].get(str(s), {}).get("status") == "running" for s in (1, 2, 3)), cs)
            check("ServicesList: client 4 running",
                  cs["clients"].get("4", {}).get("status") == "running", cs)
            check("ServicesList: one active mgmt",
                  sum(1 for m in cs["mgmt"].values() if m.get("active")) == 1, cs)
            check("ServicesList: map keys are the ids", all(
                k == str(v.get("id")) for kind in ("mgmt", "clients", "servers")
                for k, v in cs[kind].items()), cs)
        sl = self.get("ServersList", "ClusterStatus")
        if sl:
            check("ServersList: servers listed", set(sl["servers"]) >= {"1", "2", "3"}, sl)
        self.get("TasksList", T.List("Task"))

    def disks(self, expect_down=()):
        disks = self.get("DisksList", T.Map("DiskId", T.DISK_SUMMARY))
        if not disks:
            return disks
        want = {101, 102, 201, 202, 301, 302}
        check("DisksList: the six disks", {int(k) for k in disks} == want, sorted(disks))
        for k, d in sorted(disks.items()):
            alt = T.pick_name(T.DISK_SUMMARY, d)
            expect = "DownDiskSummary" if int(k) in expect_down else "UpDiskSummary"
            check(f"DisksList {k}: is {expect}", alt == expect, f"{alt}: {d}")
            check(f"DisksList {k}: key = id", str(d.get("id")) == k, d)
            if expect == "UpDiskSummary":
                valid(f"DisksList {k} as UpDiskSummary", d, "UpDiskSummary")
            else:
                check(f"DisksList {k}: generationLeft >= 0", d.get("generationLeft", -1) >= 0, d)
        return disks

    def disk_calls(self):
        d = self.get("DiskDescribe/101", "Disk")
        if d:
            check("DiskDescribe: id 101 on server 1", d["id"] == 101 and d["serverId"] == 1, d)
        sd = self.get("ServerDisksList/1", T.Map("DiskId", T.DISK_SUMMARY))
        if sd is not None:
            check("ServerDisksList/1: its two disks", set(sd) == {"101", "102"}, sorted(sd))
        self.error("GET", "DiskDescribe/4000", name="DiskDescribe unknown disk")
        self.error("GET", "DiskDescribe/4096", name="DiskDescribe out of range")
        if self.available("POST", "DiskSetDescription/102", {"description": "conformance 1"}):
            self.post("DiskSetDescription/102", {"description": "conformance 1"},
                      "DiskDescUpdate")
            d = self.get("DiskDescribe/102", "Disk")
            check("DiskSetDescription applied", d and d["description"] == "conformance 1", d)
            self.post("DiskSetDescription/102", {"description": ""}, "DiskDescUpdate",
                      name="DiskSetDescription clear")

    def placement_groups(self):
        self.get("PlacementGroupsList", T.Map("PlacementGroupName", "PlacementGroup"))
        self.post("PlacementGroupUpdate/cf_pg", {"addDisks": [101, 201]},
                  "PlacementGroupUpdateDesc", name="PlacementGroupUpdate create")
        pg = self.get("PlacementGroupDescribe/cf_pg", "PlacementGroup")
        check("PlacementGroupDescribe: disks", pg and sorted(pg["disks"]) == [101, 201], pg)
        self.post("PlacementGroupUpdate/cf_pg", {"rename": "cf-pg2", "rmDisks": [201]},
                  "PlacementGroupUpdateDesc", name="PlacementGroupUpdate rename")
        pgs = self.get("PlacementGroupsList", T.Map("PlacementGroupName", "PlacementGroup"))
        if pgs:
            check("PlacementGroupsList: keys = names",
                  all(k == v.get("name") for k, v in pgs.items()), pgs)
            check("PlacementGroupsList: renamed", "cf-pg2" in pgs and "cf_pg" not in pgs, pgs)
        self.post("PlacementGroupDelete/cf-pg2", None)
        self.error("GET", "PlacementGroupDescribe/cf-pg2", name="PlacementGroupDescribe deleted")
        self.error("POST", "PlacementGroupUpdate/list", {"addDisks": [], "rmDisks": []},
                   name="PlacementGroupUpdate reserved name")
        if self.available("GET", "FaultSetsList"):
            self.get("FaultSetsList", T.Map("PlacementGroupName", "FaultSet"))

    def templates(self):
        self.get("VolumeTemplatesList", T.List("VolumeTemplateDesc"))
        self.post("VolumeTemplateCreate", {"name": "cf_t", "replication": 2, "placeAll": "default",
                                           "size": 1 << 30, "iops": None},
                  "VolumeTemplateCreateDesc")
        t = self.get("VolumeTemplateDescribe/cf_t", "VolumeTemplateDesc")
        check("VolumeTemplateDescribe: values", t and t["replication"] == 2
              and t["size"] == 1 << 30 and t["placeAll"] == "default", t)
        self.post("VolumeTemplateUpdate/cf_t", {"iops": 1000, "bw": "-"},
                  "VolumeTemplateUpdateDesc")
        t = self.get("VolumeTemplateDescribe/cf_t", "VolumeTemplateDesc")
        check("VolumeTemplateUpdate applied", t and t["iops"] == 1000, t)
        if self.available("GET", "VolumeTemplatesStatus"):
            st = self.get("VolumeTemplatesStatus", T.List("VolumeTemplateStatusDesc"))
            check("VolumeTemplatesStatus: has cf_t and demo",
                  st and {"cf_t", "demo"} <= {x["name"] for x in st}, st)

    def volumes(self):
        ok = self.post("VolumeCreate", {"name": "cf_v1", "size": 256 << 20, "template": "demo",
                                        "tags": {"env": "conf"}},
                       "VolumeCreateDesc", ok_type="ApiOkVolumeCreate")
        ok2 = self.post("VolumeCreate", {"name": "#cf_hash", "size": 128 << 20,
                                         "placeAll": "default", "replication": 2},
                        "VolumeCreateDesc", ok_type="ApiOkVolumeCreate",
                        name="VolumeCreate #name")
        gen = self.post("VolumeCreate", {"size": 64 << 20, "template": "demo"},
                        "VolumeCreateDesc", ok_type="ApiOkVolumeCreate",
                        name="VolumeCreate without name")
        anon = None
        if gen:
            anon = gen.get("name")
            check("VolumeCreate without name: generated name and globalId",
                  isinstance(anon, str) and isinstance(gen.get("globalId"), str), gen)
        vols = self.get("VolumesList", T.List("VolumeSummary"))
        names = {v["name"] for v in vols or []}
        check("VolumesList: created volumes", {"cf_v1", "#cf_hash"} <= names, names)
        if anon:
            check("VolumesList: the unnamed volume", anon in names, (anon, names))
        one = self.get("Volume/cf_v1", T.List("VolumeSummary"))
        check("Volume/{name}: one element", one and len(one) == 1 and one[0]["name"] == "cf_v1",
              one)
        v = self.get("VolumeDescribe/cf_v1", "Volume")
        if v:
            check("VolumeDescribe: size, tags, template", v["size"] == 256 << 20
                  and v.get("tags") == {"env": "conf"} and v["templateName"] == "demo", v)
            gid = v["globalId"]
            if ok and ok.get("globalId"):
                check("VolumeCreate globalId = VolumeDescribe globalId", ok["globalId"] == gid)
            byid = self.get(f"VolumeDescribe/~{gid}", "Volume", name="VolumeDescribe ~globalId")
            check("VolumeDescribe ~globalId: same volume", byid and byid["name"] == "cf_v1", byid)
        h = self.get("VolumeDescribe/#cf_hash", "Volume", name="VolumeDescribe #name")
        check("VolumeDescribe #name: raw # kept", h and h["name"] == "#cf_hash", h)
        self.get("MultiCluster/VolumesList", T.List("VolumeSummary"))
        self.get("MultiCluster/VolumeDescribe/cf_v1", "Volume")
        self.status_calls()
        self.post("VolumeUpdate/cf_v1", {"sizeAdd": 64 << 20}, "VolumeUpdateDesc",
                  name="VolumeUpdate sizeAdd")
        self.post("VolumeUpdate/cf_v1", {"size": 512 << 20, "tags": {"k": "v"}},
                  "VolumeUpdateDesc", name="VolumeUpdate size+tags")
        self.post("VolumeUpdate/#cf_hash", {"rename": "cf_v2"}, "VolumeUpdateDesc",
                  name="VolumeUpdate rename")
        v = self.get("VolumeDescribe/cf_v1", "Volume")
        check("VolumeUpdate applied", v and v["size"] == 512 << 20
              and v.get("tags", {}).get("k") == "v", v)
        self.error("POST", "VolumeUpdate/cf_v1", {"size": 256 << 20},
                   name="VolumeUpdate shrink without shrinkOk")
        self.error("GET", "VolumeDescribe/nope", name="VolumeDescribe unknown")
        self.error("POST", "VolumeCreate", {"name": "cf_v1", "size": 1 << 20, "template": "demo"},
                   name="VolumeCreate duplicate")
        self.error("POST", "VolumeCreate", {"name": "bad name", "size": 1 << 20},
                   name="VolumeCreate invalid name")
        return anon

    def status_calls(self):
        st = self.get("VolumesGetStatus", T.Map(T.STATUS_KEY, T.STATUS))
        for k, v in sorted((st or {}).items()):
            alt = T.pick_name(T.STATUS, v)
            check(f"VolumesGetStatus {k}: VolumeStatus", alt == "VolumeStatus", f"{alt} {v}")
            check(f"VolumesGetStatus {k}: key = name", v.get("name") == k, v)
        if self.available("GET", "VolumesGetStatusQuick"):
            q = self.get("VolumesGetStatusQuick", T.Map(T.STATUS_KEY, T.STATUS_QUICK))
            for k, v in sorted((q or {}).items()):
                alt = T.pick_name(T.STATUS_QUICK, v)
                check(f"VolumesGetStatusQuick {k}: VolumeStatusQuick",
                      alt == "VolumeStatusQuick", f"{alt} {v}")
        if self.available("GET", "VolumesSpace"):
            sp = self.get("VolumesSpace", T.List("VolumeSpace"))
            check("VolumesSpace: cf_v1 listed", sp and "cf_v1" in {x["name"] for x in sp}, sp)
        if self.available("GET", "VolumeGetInfo/cf_v1"):
            info = self.get("VolumeGetInfo/cf_v1", "VolumeInfo")
            if info:
                per_disk = sum(info["objectsPerDisk"].values())
                check("VolumeGetInfo: objects per disk add up to objects x replication",
                      per_disk == info["objectsCount"] * info["replication"], info)
                check("VolumeGetInfo: disksCount", info["disksCount"] == len(
                    [d for d, n in info["objectsPerDisk"].items() if n > 0]), info)
            self.get("VolumeGetInfo/#cf_hash", "VolumeInfo", name="VolumeGetInfo #name")

    def snapshots(self):
        """The snapshot calls of §3 (snapshots, revert, freeze, rebase) on cf_v1, validated."""
        if not self.available("GET", "SnapshotsList"):
            return
        r = self.post("VolumeSnapshot/cf_v1", {"name": "cf_s1", "tags": {"k": "v"},
                                               "deleteAfter": 3600},
                      "VolumeSnapshotDesc", ok_type="ApiOkSnapshotCreate")
        check("VolumeSnapshot: snapshotGlobalId", r and isinstance(r.get("snapshotGlobalId"), str),
              r)
        snaps = self.get("SnapshotsList", T.List("SnapshotSummary"))
        s1 = [x for x in snaps or [] if x["name"] == "cf_s1"]
        check("SnapshotsList: cf_s1 with its targetDeleteDate and tags",
              s1 and abs(s1[0].get("targetDeleteDate", 0) - time.time() - 3600) < 60
              and s1[0].get("tags") == {"env": "conf", "k": "v"}  # the volume's, plus its own
              and s1[0]["onVolume"] == "cf_v1", s1)
        if self.available("GET", "SnapshotsSpace"):
            sp = self.get("SnapshotsSpace", T.List("SnapshotSpace"))
            mine = [x for x in sp or [] if x["name"] == "cf_s1"]
            check("SnapshotsSpace: cf_s1 (with a child: spaceUsed 0)",
                  mine and mine[0]["spaceUsed"] == 0 and mine[0]["storedSize"] >= 0, sp)
            self.get("MultiCluster/SnapshotsSpace", T.List("SnapshotSpace"))
        if self.available("GET", "SnapshotGetInfo/cf_s1"):
            info = self.get("SnapshotGetInfo/cf_s1", "SnapshotInfo")
            if info:
                check("SnapshotGetInfo: objects per disk add up to objects x replication",
                      sum(info["objectsPerDisk"].values()) ==
                      info["objectsCount"] * info["replication"], info)
                check("SnapshotGetInfo: snapshot fields", info["onVolume"] == "cf_v1"
                      and info["deleted"] is False, info)
            self.get("MultiCluster/SnapshotGetInfo/cf_s1", "SnapshotInfo")
            self.error("GET", "SnapshotGetInfo/nope", name="SnapshotGetInfo unknown",
                       want="objectNotFound")
        if self.available("POST", "SnapshotUpdate/cf_s1", {}):
            self.post("SnapshotUpdate/cf_s1", {"rename": "cf_s2", "tags": {"k": "", "n": "m"},
                                               "bind": False, "deleteAfter": 0},
                      "SnapshotUpdateDesc")
            s2 = self.get("Snapshot/cf_s2", T.List("SnapshotSummary"))
            check("SnapshotUpdate: renamed, tags changed, date cleared", s2 and s2[0].get("tags")
                  == {"env": "conf", "n": "m"} and "targetDeleteDate" not in s2[0], s2)
            self.error("POST", "SnapshotUpdate/cf_s2", {"rename": "bad name"},
                       name="SnapshotUpdate invalid rename", want="invalidParam")
        if self.available("POST", "VolumeRebase/cf_v1", {"parentName": "cf_s2"}):
            self.post("VolumeRebase/cf_v1", {"parentName": "cf_s2"}, "VolumeRebaseDesc",
                      name="VolumeRebase onto its parent")
            self.error("POST", "VolumeRebase/cf_v1", {}, name="VolumeRebase needing a merge",
                       want="notImplemented")
        if self.available("POST", "SnapshotRebase/cf_s2", {}):
            self.post("SnapshotRebase/cf_s2", {}, "VolumeRebaseDesc",
                      name="SnapshotRebase of a base snapshot")
        if self.available("POST", "VolumeRevert/cf_v1", {"toSnapshot": "cf_s2"}):
            self.post("VolumeRevert/cf_v1", {"toSnapshot": "cf_s2"}, "VolumeRevertDesc")
            v = self.get("Volume/cf_v1", T.List("VolumeSummary"))
            check("VolumeRevert: cf_v1's parent is cf_s2", v and v[0]["parentName"] == "cf_s2", v)
            self.error("POST", "VolumeRevert/cf_v1", {"toSnapshot": "nope"},
                       name="VolumeRevert unknown snapshot", want="objectNotFound")
        if self.available("POST", "VolumeFreeze/cf_v1x"):
            self.post("VolumeCreate", {"name": "cf_fz", "size": 64 << 20, "template": "demo"},
                      "VolumeCreateDesc", ok_type="ApiOkVolumeCreate", name="VolumeCreate cf_fz")
            self.post("VolumeFreeze/cf_fz", None, name="VolumeFreeze (no body)")
            fz = self.get("Snapshot/cf_fz", T.List("SnapshotSummary"))
            check("VolumeFreeze: cf_fz is a snapshot", fz and fz[0]["onVolume"] == "cf_fz", fz)
            if fz and self.available("POST", "SnapshotDeleteById/" + fz[0]["globalId"] + "x"):
                self.post("SnapshotDeleteById/" + fz[0]["globalId"], None)
                left = self.get("SnapshotsList", T.List("SnapshotSummary"))
                check("SnapshotDeleteById: gone", left is not None and "cf_fz" not in
                      {x["name"] for x in left}, left)
        r = self.post("SnapshotDelete/cf_s2", None, name="SnapshotDelete with a child")
        snaps = self.get("SnapshotsList", T.List("SnapshotSummary"),
                         name="SnapshotsList with a deleted snapshot")
        dead = [x for x in snaps or [] if x.get("deleted")]
        check("SnapshotDelete with a child: kept, deleted, deleteBlocked",
              r and "info" in r and len(dead) == 1 and dead[0]["name"].startswith("*")
              and dead[0].get("deleteBlocked") == "pending", (r, dead))
        st = self.get("VolumesGetStatus", T.Map(T.STATUS_KEY, T.STATUS),
                      name="VolumesGetStatus with snapshots")
        for k, v in sorted((st or {}).items()):
            want = "SnapshotStatus" if v.get("snapshot") else "VolumeStatus"
            check(f"VolumesGetStatus {k}: {want}", T.pick_name(T.STATUS, v) == want, v)

    def attachments(self):
        self.get("AttachmentsList", T.List("AttachmentDesc"))
        self.post("VolumesReassign", [{"volume": "cf_v1", "rw": [4]}], T.List(T.REASSIGN))
        att = self.get("AttachmentsList", T.List("AttachmentDesc"))
        mine = [a for a in att or [] if a["volume"] == "cf_v1"]
        check("AttachmentsList: cf_v1 rw on client 4", len(mine) == 1 and mine[0]["client"] == 4
              and mine[0]["rights"] == "rw" and mine[0]["snapshot"] is False, att)
        self.get("MultiCluster/AttachmentsList", T.List("AttachmentDesc"))
        self.post("VolumesReassign", [{"volume": "cf_v1", "detach": [4]}], T.List(T.REASSIGN),
                  name="VolumesReassign detach")
        self.error("POST", "VolumesReassign", [{"volume": "nope", "rw": [4], "force": False}],
                   name="VolumesReassign unknown volume")
        self.error("POST", "VolumesReassign", {"volume": "cf_v1"},
                   name="VolumesReassign body not a list")
        body = {"reassign": [{"volume": "cf_v2", "ro": [4]}], "attachTimeout": 20}
        if self.available("POST", "VolumesReassignWait", T.encode("VolumesReassignWaitDesc",
                                                                   {"reassign": []})):
            self.post("VolumesReassignWait", body, "VolumesReassignWaitDesc")
            att = self.get("AttachmentsList", T.List("AttachmentDesc"))
            check("VolumesReassignWait: attached ro", any(
                a["volume"] == "cf_v2" and a["rights"] == "ro" for a in att or []), att)
            self.post("VolumesReassignWait",
                      {"reassign": [{"volume": "cf_v2", "detach": "all"}], "attachTimeout": 0},
                      "VolumesReassignWaitDesc", name="VolumesReassignWait detach all")
        clients = self.get("ClientsConfigDump", T.List("ClientConfigStatus"))
        check("ClientsConfigDump: client 4", clients and any(c["id"] == 4 for c in clients),
              clients)
        if self.available("GET", "ClientConfigWait/4"):
            w = self.get("ClientConfigWait/4", T.List("ClientConfigStatus"))
            check("ClientConfigWait/4: client 4 ok", w and any(
                c["id"] == 4 and c["configStatus"] == "ok" for c in w), w)

    def vags(self):
        if not self.available("GET", "VagList/1"):
            return
        status, reply = self.api.call("GET", "VagList/1")
        if status == 200:
            envelope_ok("VagList/1", status, reply, self.api)
            valid("VagList/1", reply["data"], "Vag")
        else:
            self.error("GET", "VagList/1", name="VagList/1 (no such VAG)")
        self.error("POST", "VagUpdate", {"vagId": "1", "targetsCount": 3},
                   name="VagUpdate targetsCount 3")

    def kv(self):
        if not self.available("GET", "KV"):
            return
        self.post("KV/Create/cf.bucket", None)
        self.post("KV/Set/cf.bucket", {"set": {"a/b:c": "1", "k": "v"}}, "KeyValueBucketSetDesc")
        b = self.get("KV/List/cf.bucket", "KeyValueBucket")
        check("KV/List: pairs", b and b.get("pairs") == {"a/b:c": "1", "k": "v"}, b)
        g = self.get("KV/Get/cf.bucket/a/b:c", "KeyValueBucket", name="KV/Get raw key with /")
        check("KV/Get: one pair", g and g.get("pairs") == {"a/b:c": "1"}, g)
        # §1.1 [infer]: a KvsKeyName may hold '?' too, sent raw; reported, not counted.
        self.api.call("POST", "KV/Set/cf.bucket", {"set": {"q?x": "2"}})
        status, reply = self.api.call("GET", "KV/Get/cf.bucket/q?x")
        if status != 200 or reply.get("data", {}).get("pairs") != {"q?x": "2"}:
            print(f"NOTE KV/Get with a raw '?' in the key: {status} {str(reply)[:200]}")
        b = self.get("KV/List/cf.bucket", "KeyValueBucket", name="KV/List after '?' key")
        lst = self.get("KV", "KeyValueBucketsList")
        check("KV: bucket listed with its version", lst and b and
              lst["buckets"].get("cf.bucket") == b["version"], (lst, b))
        if b:
            reply = self.error("POST", "KV/Set/cf.bucket",
                               {"runIfVersionIs": b["version"] + 100, "set": {"k": "x"}},
                               name="KV/Set version mismatch", want="runIfVersionIsMismatch")
            self.post("KV/Set/cf.bucket", {"runIfVersionIs": b["version"], "set": {"k": ""}},
                      "KeyValueBucketSetDesc", name="KV/Set conditional delete")
            b2 = self.get("KV/List/cf.bucket", "KeyValueBucket")
            check("KV/Set empty value deletes", b2 and "k" not in (b2.get("pairs") or {}), b2)
            del reply
        self.post("KV/Delete/cf.bucket", None)

    def not_implemented(self):
        for method, call in (("GET", "VolumeBalancerStatus"), ("GET", "iSCSIConfig"),
                             ("GET", "MaintenanceList"), ("GET", "VolumeRelocatorStatus")):
            status, reply = self.api.call(method, call)
            if status == 200 and "data" in reply:
                print(f"NOTE {call} is implemented")
                continue
            self.error(method, call, name=f"{call} unimplemented")
        self.error("GET", "NoSuchCall", name="unknown call")
        status, reply = self.api.request("GET", "/ctrl/1.0/ServicesList", token="0")
        check("bad token: non-2xx + error", status >= 400 and b'"error"' in reply, reply)

    def cleanup_objects(self, anon):
        for v in ("cf_v1", "cf_v2") + ((anon,) if anon else ()):
            self.post(f"VolumeDelete/{v}", None, name=f"VolumeDelete {v}")
        self.post("VolumeTemplateDelete/cf_t", None)

    def server_down(self):
        """Stops server 3 by its pid; its disks must turn into DownDiskSummary."""
        with open(os.path.join(self.c.dir, "pids", "server3.pid")) as f:
            pid = int(f.read().strip())
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)

        def down():
            status, reply = self.api.call("GET", "ServersList")
            return status == 200 and reply["data"]["servers"].get("3", {}).get("status") == "down"
        try:
            wait_until("server 3 down", down, timeout_s=DOWN_TIMEOUT_S, interval_s=0.5)
        except TimeoutError as e:
            check("server 3 reported down", False, e)
        self.get("ServersList", "ClusterStatus", name="ServersList with a server down")
        self.disks(expect_down=(301, 302))
        sd = self.get("ServerDisksList/3", T.Map("DiskId", T.DISK_SUMMARY),
                      name="ServerDisksList/3 down")
        for k, d in (sd or {}).items():
            check(f"ServerDisksList/3 {k}: DownDiskSummary",
                  T.pick_name(T.DISK_SUMMARY, d) == "DownDiskSummary", d)
            valid(f"ServerDisksList/3 {k}", d, "DownDiskSummary")
        forgot = False
        for verb in ("DiskIgnore", "DiskForget"):
            if self.available("POST", f"{verb}/4001"):
                forgot = self.post(f"{verb}/302", None) is not None
        if forgot:
            status, reply = self.api.call("GET", "DisksList")
            if status == 200:
                check("DiskForget: 302 gone from DisksList", "302" not in reply["data"],
                      sorted(reply["data"]))


def selftest():
    """The validator against the reference's own samples (§6.1, §6.3)."""
    ok = [("VolumeName", "x" * 199), ("PlacementGroupName", "p" * 127),
          ("DiskDescription", "d d" * 10), ("DiskId", 616), ("ServerId", 32767), ("ClientId", 4095),
          ("VolumeName", "0.-volume"), ("VolumeName", "#:"), ("SnapshotName", "*:"),
          ("GlobalVolumeId", "f00.b4r.quuxquuxqu8x")]
    bad = [("DiskId", "meow"), ("DiskId", 8086), ("ServerId", 0), ("ClientId", 4096),
           ("VolumeName", 'Volu"me'), ("VolumeName", "*vol"), ("VolumeName", "volume#"),
           ("SnapshotName", "#vol"), ("PlacementGroupName", "."), ("VolumeTemplateName", "#"),
           ("GlobalVolumeId", "a.a"), ("GlobalVolumeId", "a.a.a!"), ("VolumeName", "list"),
           ("VolumeName", "x" * 200), ("PlacementGroupName", "p" * 128), ("DiskId", True),
           ("DiskDescription", "d" * 31)]
    check("selftest: accepted samples", all(not T.check(v, t) for t, v in ok),
          [(t, v, T.check(v, t)) for t, v in ok if T.check(v, t)])
    check("selftest: rejected samples", all(T.check(v, t) for t, v in bad),
          [(t, v) for t, v in bad if not T.check(v, t)])
    down = {"id": 616, "serverId": 6, "ssd": False, "generationLeft": 1, "model": "m",
            "serial": "s", "description": "", "softEject": "off"}
    check("selftest: base-only disk is Down", T.pick_name(T.DISK_SUMMARY, down) ==
          "DownDiskSummary")
    up = dict(down, generationLeft=-1)
    check("selftest: up disk missing up fields is Down",
          T.pick_name(T.DISK_SUMMARY, up) == "DownDiskSummary")
    check("selftest: PlacementGroupUpdate body",
          T.encode("PlacementGroupUpdateDesc", {"addDisks": [101], "rename": None}) ==
          {"addDisks": [101], "rmDisks": []})


def main():
    selftest()
    cluster = Cluster()
    try:
        cluster.up()
        s = Suite(cluster)
        s.call_list()
        s.services()
        s.disks()
        s.disk_calls()
        s.placement_groups()
        s.templates()
        anon = s.volumes()
        s.snapshots()
        s.attachments()
        s.vags()
        s.kv()
        s.not_implemented()
        s.cleanup_objects(anon)
        s.server_down()
    except Exception as e:  # a crash counts as one failure
        import traceback
        traceback.print_exc()
        check("run", False, repr(e))
    finally:
        if failed:
            cluster.keep = True
            cluster.dump_logs()
            print("cluster dir kept:", cluster.dir)
        cluster.cleanup()
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
