#!/usr/bin/python3
"""CLI integration test: runs every implemented `spindle` command against a real spindle-mgmt.

Starts spindle-mgmt on a free loopback port in a temp dir, registers three servers with two
disks each and one client through /spindle/1/ServiceRegister (heartbeating them while the test
runs), then drives the CLI: table output, `-j` data equal to the API's own `data`, and exit
codes for API errors (1) and usage errors (2). Prints "N passed, M failed"; exits 1 on failure.
Binaries come from $SPINDLE_BIN_DIR (default /work/main/build/bin).
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

BIN = os.environ.get("SPINDLE_BIN_DIR", "/work/main/build/bin")
TOKEN = "4242"
CMD_TIMEOUT_S = 30       # one CLI run
START_TIMEOUT_S = 20     # mgmt listening
HEARTBEAT_S = 1.0

passed = 0
failed = 0


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print(f"PASS {name}")
    else:
        failed += 1
        print(f"FAIL {name} {detail}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Api:
    def __init__(self, port):
        self.base = f"http://127.0.0.1:{port}"

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Authorization": "Storpool v1:" + TOKEN})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def data(self, call):
        status, reply = self.call("GET", "/ctrl/1.0/" + call)
        if status != 200 or "error" in reply:
            raise RuntimeError(f"{call}: {status} {reply}")
        return reply["data"]


SERVERS = [(1, [101, 102]), (2, [201, 202]), (3, [301, 302])]


def register_all(api):
    for sid, disks in SERVERS:
        body = {"type": "server", "id": sid, "nodeId": sid, "version": "0.1.0",
                "startTime": 1732440000, "addr": "127.0.0.1", "port": 47000 + sid,
                "disks": [{"id": d, "device": f"/tmp/disk{d}.img", "ssd": False,
                           "journaled": False, "sectorsCount": 8388608, "objectsCount": 127,
                           "objectsAllocated": 0, "objectsOnDiskSize": 0, "storedSize": 0,
                           "entriesCount": 127, "entriesAllocated": 0} for d in disks]}
        st, reply = api.call("POST", "/spindle/1/ServiceRegister", body)
        if st != 200 or "error" in reply:
            raise RuntimeError(f"ServiceRegister server {sid}: {st} {reply}")
    body = {"type": "client", "id": 1, "nodeId": 11, "version": "0.1.0",
            "startTime": 1732440000, "appliedGeneration": 0,
            "nbd": {"socket": "/tmp/none.sock", "host": "127.0.0.1", "port": 10809}}
    st, reply = api.call("POST", "/spindle/1/ServiceRegister", body)
    if st != 200 or "error" in reply:
        raise RuntimeError(f"ServiceRegister client: {st} {reply}")


class Cli:
    def __init__(self, conf):
        self.env = dict(os.environ, SP_CONFIG=conf)
        self.env.pop("SP_API_HTTP_PORT", None)
        self.env.pop("SP_AUTH_TOKEN", None)

    def run(self, *args, stdin=None, prog="spindle"):
        p = subprocess.run([os.path.join(BIN, prog), *args], input=stdin, capture_output=True,
                           text=True, env=self.env, timeout=CMD_TIMEOUT_S)
        return p.returncode, p.stdout, p.stderr

    def ok(self, name, *args, expect=None):
        """Runs a command that must succeed and whose stdout contains every string of expect."""
        rc, out, err = self.run(*args)
        good = rc == 0 and all(e in out for e in (expect or []))
        check(name, good, f"rc={rc} out={out!r} err={err!r}")
        return out

    def fails(self, name, code, *args):
        rc, out, err = self.run(*args)
        check(name, rc == code and (code != 1 or err.startswith("Error: ")),
              f"rc={rc} out={out!r} err={err!r}")

    def api_state(self, api, method, call):
        """'notImplemented' when mgmt answers so for the call, else 'ok'."""
        status, reply = api.call(method, "/ctrl/1.0/" + call,
                                 None if method == "GET" else {})
        err = reply.get("error") if isinstance(reply, dict) else None
        return "notImplemented" if err and err.get("name") == "notImplemented" else "ok"

    def unimplemented(self, name, *args):
        """A command whose call mgmt does not implement yet: exit 1, StorPool error on stderr."""
        rc, out, err = self.run(*args)
        check(name + " (notImplemented)", rc == 1 and "notImplemented" in err,
              f"rc={rc} out={out!r} err={err!r}")
        print(f"SKIP {name}: notImplemented by this spindle-mgmt")

    def same_json(self, name, api, call, *args):
        """`-j` prints the envelope; its data must equal what the API returns directly."""
        rc, out, err = self.run("-j", *args)
        try:
            got = json.loads(out)
            want = api.data(call)
            good = rc == 0 and "generation" in got and got["data"] == want
        except (ValueError, RuntimeError) as e:
            good, want = False, str(e)
        check(name, good, f"rc={rc} out={out[:400]!r} want={str(want)[:400]!r} err={err!r}")


def scenario(cli, api):
    cli.ok("service list", "service", "list", expect=["cluster", "server", "client"])
    cli.ok("server list", "server", "list", expect=["| server |"])
    cli.same_json("server list -j", api, "ServersList", "server", "list")
    out = cli.ok("disk list", "disk", "list",
                 expect=["| disk | server | size", "est.free", "allocated objects", "4 GiB"])
    check("disk list rows", all(f"|  {d} |" in out for _, ds in SERVERS for d in ds), out)
    cli.same_json("disk list -j", api, "DisksList", "disk", "list")
    cli.ok("disk describe", "disk", "101", "describe", expect=["| field", "sectorsCount"])
    cli.ok("server disk list", "server", "1", "disk", "list", expect=["101", "102"])
    cli.ok("client status", "client", "status", expect=["| client | status", "|      1 |"])

    add = []
    for _, ds in SERVERS:
        for d in ds:
            add += ["addDisk", str(d)]
    cli.ok("placementGroup create", "placementGroup", "hdd", *add, expect=["OK"])
    cli.ok("placementGroup list", "placementGroup", "list", expect=["| hdd"])
    cli.same_json("placementGroup list -j", api, "PlacementGroupsList", "placementGroup", "list")
    cli.ok("placementGroup disks", "placementGroup", "hdd", "list",
           expect=["| disk | 101 102 201 202 301 302 |"])
    cli.ok("placementGroup rmDisk", "placementGroup", "hdd", "rmDisk", "302", expect=["OK"])
    check("placementGroup rmDisk applied",
          302 not in api.data("PlacementGroupDescribe/hdd")["disks"])
    cli.ok("placementGroup addDisk", "placementGroup", "hdd", "addDisk", "302", expect=["OK"])
    cli.ok("placementGroup second", "placementGroup", "tmp", "addDisk", "101", expect=["OK"])
    cli.ok("placementGroup rename", "placementGroup", "tmp", "rename", "tmp2", expect=["OK"])
    cli.fails("placementGroup delete mismatch", 2, "placementGroup", "tmp2", "delete", "tmp")
    cli.ok("placementGroup delete", "placementGroup", "tmp2", "delete", "tmp2", expect=["OK"])
    check("placementGroup deleted", "tmp2" not in api.data("PlacementGroupsList"))

    cli.ok("template create", "template", "t1", "replication", "3", "placeAll", "hdd",
           expect=["OK"])
    cli.ok("template update", "template", "t1", "size", "10G", "iops", "1000", expect=["OK"])
    t1 = api.data("VolumeTemplateDescribe/t1")
    check("template updated", t1.get("size") == 10 << 30 and t1.get("replication") == 3, t1)
    cli.ok("template list", "template", "list", expect=["| template", "| t1 ", "10 GiB"])
    cli.same_json("template list -j", api, "VolumeTemplatesList", "template", "list")
    cli.ok("template describe", "template", "t1", "describe", expect=["placeAll"])

    cli.ok("volume create", "volume", "v1", "create", "size", "1G", "template", "t1",
           "tag", "env=test", expect=["OK"])
    cli.ok("volume create 2", "volume", "v2", "create", "size", "512M", "placeAll", "hdd",
           "replication", "2", expect=["OK"])
    cli.ok("volume list", "volume", "list", expect=["| volume", "| v1 ", "1 GiB", "env=test"])
    cli.same_json("volume list -j", api, "VolumesList", "volume", "list")
    cli.ok("volume v1 list", "volume", "v1", "list", expect=["| v1 "])
    cli.ok("volume describe", "volume", "v1", "describe", expect=["globalId"])
    cli.same_json("volume describe -j", api, "VolumeDescribe/v1", "volume", "v1", "describe")
    cli.ok("volume status", "volume", "status",
           expect=["| volume | size", "rdnd.", "on disk", "| v1 "])
    cli.ok("volume grow", "volume", "v1", "update", "size", "+1G", expect=["OK"])
    check("volume grown", api.data("VolumeDescribe/v1")["size"] == 2 << 30)
    cli.ok("volume tag", "volume", "v1", "update", "tag", "k=v", expect=["OK"])
    cli.ok("volume rename", "volume", "v2", "update", "rename", "v3", expect=["OK"])
    check("volume renamed", any(v["name"] == "v3" for v in api.data("VolumesList")))

    cli.ok("attach", "attach", "volume", "v1", "client", "1", expect=["OK"])
    cli.ok("volume attach ro", "volume", "v3", "attach", "client", "1", "mode", "ro",
           expect=["OK"])
    out = cli.ok("attach list", "attach", "list",
                 expect=["| client | volume | globalId | mode | tags", "RW", "RO"])
    cli.same_json("attach list -j", api, "AttachmentsList", "attach", "list")
    cli.ok("detach", "detach", "volume", "v1", "client", "1", expect=["OK"])
    cli.ok("detach all", "detach", "volume", "v3", "client", "all", expect=["OK"])
    check("detached", api.data("AttachmentsList") == [], api.data("AttachmentsList"))

    issue3_volume_commands(cli, api)
    issue3_admin_commands(cli, api)

    cli.fails("volume delete mismatch", 2, "volume", "v1", "delete", "v2")
    cli.ok("volume delete", "volume", "v1", "delete", "v1", expect=["OK"])
    cli.ok("volume delete 3", "volume", "v3", "delete", "v3", expect=["OK"])
    cli.fails("volume describe missing", 1, "volume", "v1", "describe")
    cli.fails("volume create no pg", 1, "volume", "vx", "create", "size", "1G", "placeAll",
              "nope")
    cli.ok("template delete", "template", "t1", "delete", "t1", expect=["OK"])
    cli.fails("unknown object", 2, "frobnicate")
    cli.fails("unknown verb", 2, "volume", "v1", "frobnicate")
    cli.fails("bad option", 2, "-x", "disk", "list")

    rc, out, err = cli.run(stdin="placementGroup list\n-j disk list\nquit\nvolume list\n")
    check("interactive", rc == 0 and out.startswith("StorPool> ") and "| hdd" in out
          and '"data"' in out and "| volume" not in out, out + err)
    rc, out, err = cli.run("disk", "list", prog="storpool")
    check("storpool alias", rc == 0 and "| disk |" in out, out + err)


def issue3_volume_commands(cli, api):
    """template status, volume quickStatus/usedSpace/info, vag, attach noWait (issue 3)."""
    if cli.api_state(api, "GET", "VolumeTemplatesStatus") == "ok":
        cli.ok("template status", "template", "status",
               expect=["| template | place head | place all | place tail | rdnd. | volumes | "
                       "snapshots/removing | size", "avail. head | flags |", "| t1 "])
        cli.same_json("template status -j", api, "VolumeTemplatesStatus", "template", "status")
    else:
        cli.unimplemented("template status", "template", "status")
    if cli.api_state(api, "GET", "VolumesGetStatusQuick") == "ok":
        cli.ok("volume quickStatus", "volume", "quickStatus",
               expect=["| volume | size", "| rdnd. | syncing | missing | status | flags |", "| v1 "])
        cli.same_json("volume quickStatus -j", api, "VolumesGetStatusQuick", "volume",
                      "quickStatus")
    else:
        cli.unimplemented("volume quickStatus", "volume", "quickStatus")
    if cli.api_state(api, "GET", "VolumesSpace") == "ok":
        cli.ok("volume usedSpace", "volume", "usedSpace",
               expect=["| volume | size", "| stored | used", "| v1 "])
        cli.same_json("volume usedSpace -j", api, "VolumesSpace", "volume", "usedSpace")
    else:
        cli.unimplemented("volume usedSpace", "volume", "usedSpace")
    if cli.api_state(api, "GET", "VolumeGetInfo/v1") == "ok":
        cli.ok("volume info", "volume", "v1", "info",
               expect=["volume v1:", "| disk | objects |", "| disk set"])
        cli.same_json("volume info -j", api, "VolumeGetInfo/v1", "volume", "v1", "info")
        cli.fails("volume info unknown", 1, "volume", "nope", "info")
    else:
        cli.unimplemented("volume info", "volume", "v1", "info")
    vag = api.data("VolumeDescribe/v1").get("id")
    if vag and cli.api_state(api, "GET", f"VagList/{vag}") == "ok":
        cli.ok("vag list", "vag", str(vag), "list", expect=["| vag ", "| disk sets", "| #"])
        cli.same_json("vag list -j", api, f"VagList/{vag}", "vag", str(vag), "list")
        cli.ok("vag update", "vag", str(vag), "update", "targetsCount", "64", expect=["OK"])
        sets = api.data(f"VagList/{vag}").get("targetDiskSets", [])
        check("vag update applied", len(sets) == 64, len(sets))
        cli.fails("vag unknown", 1, "vag", "999999", "list")
    elif vag:
        cli.unimplemented("vag list", "vag", str(vag), "list")
    cli.fails("vag targetsCount not a power of two", 2, "vag", "1", "update", "targetsCount",
              "3")
    if cli.api_state(api, "GET", "AttachmentsList") == "ok":
        rc, out, err = cli.run("attach", "volume", "v1", "client", "1", "noWait")
        if rc == 1 and "notImplemented" in err:
            print("SKIP attach noWait: VolumesReassignWait notImplemented")
            check("attach noWait (notImplemented)", True)
        else:
            check("attach noWait", rc == 0 and out == "OK\n", f"rc={rc} {out!r} {err!r}")
            check("attach noWait applied", any(a["volume"] == "v1" for a in
                                               api.data("AttachmentsList")))
            cli.ok("detach after noWait", "detach", "volume", "v1", "client", "all",
                   expect=["OK"])


def issue3_admin_commands(cli, api):
    """disk description/ignore/forget, faultSet list, kv, mgmtConfig (issue 3)."""
    if cli.api_state(api, "POST", "DiskSetDescription/4000") == "ok":
        cli.ok("disk description", "disk", "101", "description", "rack", "1", expect=["OK"])
        check("disk description applied",
              api.data("DiskDescribe/101").get("description") == "rack 1")
        cli.ok("disk description clear", "disk", "101", "description", expect=["OK"])
    else:
        cli.unimplemented("disk description", "disk", "101", "description", "x")
    cli.fails("disk description invalid", 2, "disk", "101", "description", "a.b")
    for verb in ("ignore", "forget"):
        call = "DiskIgnore" if verb == "ignore" else "DiskForget"
        if cli.api_state(api, "POST", f"{call}/4000") == "ok":
            cli.fails(f"disk {verb} unknown", 1, "disk", "4000", verb)
        else:
            cli.unimplemented(f"disk {verb}", "disk", "4000", verb)
    if cli.api_state(api, "GET", "FaultSetsList") == "ok":
        cli.ok("faultSet list", "faultSet", "list", expect=["| name | servers |"])
        cli.same_json("faultSet list -j", api, "FaultSetsList", "faultSet", "list")
    if cli.api_state(api, "GET", "KV") == "ok":
        cli.ok("kv create", "kv", "b1", "create", expect=["OK"])
        cli.ok("kv set", "kv", "b1", "set", "k1", "v1", "k2", "v2", expect=["OK"])
        cli.ok("kv list", "kv", "list", expect=["| bucket | version |", "| b1 "])
        cli.same_json("kv list -j", api, "KV", "kv", "list")
        cli.ok("kv bucket list", "kv", "b1", "list", expect=["bucket b1 version", "| k1  | v1 "])
        cli.same_json("kv bucket list -j", api, "KV/List/b1", "kv", "b1", "list")
        cli.ok("kv get", "kv", "b1", "get", "k2", expect=["| k2  | v2 "])
        version = api.data("KV/List/b1")["version"]
        cli.fails("kv set stale version", 1, "kv", "b1", "set", "k1", "x", "ifVersion",
                  str(version + 1000))
        cli.ok("kv unset", "kv", "b1", "unset", "k1", "ifVersion", str(version), expect=["OK"])
        check("kv unset applied", "k1" not in (api.data("KV/List/b1").get("pairs") or {}))
        cli.fails("kv delete mismatch", 2, "kv", "b1", "delete", "b2")
        cli.ok("kv delete", "kv", "b1", "delete", "b1", expect=["OK"])
        cli.fails("kv list unknown bucket", 1, "kv", "b1", "list")
    else:
        cli.unimplemented("kv list", "kv", "list")
    if cli.api_state(api, "GET", "MgmtConfigList") == "ok":
        cli.ok("mgmtConfig list", "mgmtConfig", "list",
               expect=["reuse server implicit on disk down"])
        cli.same_json("mgmtConfig list -j", api, "MgmtConfigList", "mgmtConfig", "list")
        cli.ok("mgmtConfig enable", "mgmtConfig", "reuseServerImplicitOnDiskDown", "enable",
               expect=["OK"])
        cli.ok("mgmtConfig shows enabled", "mgmtConfig", "list",
               expect=["reuse server implicit on disk down enabled"])
        cli.ok("mgmtConfig disable", "mgmtConfig", "reuseServerImplicitOnDiskDown", "disable",
               expect=["OK"])
        cli.fails("mgmtConfig foreign setting", 1, "mgmtConfig", "maxLocalRecoveryRequests", "2")
    else:
        cli.unimplemented("mgmtConfig list", "mgmtConfig", "list")
    cli.fails("mgmtConfig bad value", 2, "mgmtConfig", "reuseServerImplicitOnDiskDown", "maybe")


def main():
    mgmt = os.path.join(BIN, "spindle-mgmt")
    for prog in ("spindle", "spindle-mgmt"):
        if not os.access(os.path.join(BIN, prog), os.X_OK):
            print(f"missing {prog} in {BIN}")
            print("0 passed, 1 failed")
            return 1
    tmp = tempfile.mkdtemp(prefix="spindle-cli-")
    port = free_port()
    conf = os.path.join(tmp, "storpool.conf")
    with open(conf, "w") as f:
        f.write(f"SP_API_HTTP_HOST=127.0.0.1\nSP_API_HTTP_PORT={port}\nSP_AUTH_TOKEN={TOKEN}\n"
                f"SP_MGMT_DB={tmp}/mgmt.db\nSP_HEARTBEAT_TIMEOUT_MS=60000\n"
                "SP_CLUSTER_NAME=clitest\nSP_CLUSTER_ID=a.b\nSP_OURID=1\n")
    log = open(os.path.join(tmp, "mgmt.log"), "w")
    proc = subprocess.Popen([mgmt, "--config", conf], stdout=log, stderr=subprocess.STDOUT,
                            env=dict(os.environ, SP_CONFIG=conf))
    api = Api(port)
    stop = threading.Event()
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                api.call("GET", "/ctrl/1.0/ServicesList")
                break
            except (OSError, ValueError):
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("spindle-mgmt did not start; see " + log.name)
                time.sleep(0.1)
        register_all(api)

        def heartbeat():
            while not stop.wait(HEARTBEAT_S):
                try:
                    register_all(api)
                except (OSError, RuntimeError, ValueError):
                    pass
        threading.Thread(target=heartbeat, daemon=True).start()
        scenario(Cli(conf), api)
    except Exception as e:  # a setup failure counts as one failed check
        check("setup/run", False, repr(e))
    finally:
        stop.set()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()
        if failed == 0:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print("logs kept in", tmp)
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
