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
