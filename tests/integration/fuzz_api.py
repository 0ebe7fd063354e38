#!/usr/bin/python3
"""Generator-based fuzzer over spindle-mgmt's request parser and router.

Usage: fuzz_api.py [BIN_DIR] [--seconds N] [--seed S]   (default 60 s; BIN_DIR or SPINDLE_BIN_DIR)
Starts a real spindle-mgmt (with three registered servers and a placement group, so calls reach
deep into the handlers) and, for the given time, sends random requests: known and unknown call
names with random path segments (raw '#', '~', '%', '/', dots, long names, numbers out of
range), GET/POST/other methods, mutated valid bodies (wrong types, nulls, unknown fields,
deep nesting, huge strings), bodies over the limit, missing/wrong tokens, and raw non-HTTP
garbage on the socket. Every HTTP reply must be StorPool JSON (200 with "data" and
"generation", or an "error" object with name/descr/transient); garbage may instead get a
closed connection. mgmt must stay alive throughout. Prints "N passed, M failed".
"""
import http.client
import json
import os
import random
import socket
import string
import sys
import tempfile
import time

from test_api import Mgmt, TOKEN, register

CALLS = ["ServicesList", "ServersList", "ServersListBlocked", "TasksList", "ClientsConfigDump",
         "DisksList", "DiskDescribe", "ServerDisksList", "DiskForget", "DiskIgnore",
         "DiskSetDescription", "PlacementGroupsList", "PlacementGroupDescribe",
         "PlacementGroupUpdate", "PlacementGroupDelete", "FaultSetsList", "FaultSetUpdate",
         "FaultSetDelete", "VolumeTemplatesList", "VolumeTemplatesStatus",
         "VolumeTemplateDescribe", "VolumeTemplateCreate", "VolumeTemplateUpdate",
         "VolumeTemplateDelete", "VolumesList", "Volume", "VolumeDescribe", "VolumeGetInfo",
         "VolumesGetStatus", "VolumesGetStatusQuick", "VolumesSpace", "VolumeCreate",
         "VolumeUpdate", "VolumeDelete", "SnapshotsList", "AttachmentsList", "VolumesReassign",
         "VagList", "VagUpdate", "KV", "MgmtConfigList", "MgmtConfigSet", "AlertsList",
         "NetworkPeersList", "VolumeSnapshot", "iSCSIConfig", "Frobnicate", ""]
FIELDS = ["name", "size", "sizeAdd", "replication", "placeAll", "placeHead", "placeTail",
          "template", "tags", "bw", "iops", "reuseServer", "rename", "shrinkOk", "addDisks",
          "rmDisks", "addServers", "description", "vagId", "targetsCount", "set",
          "runIfVersionIs", "reassign", "attachTimeout", "volume", "rw", "ro", "detach",
          "force", "reuseServerImplicitOnDiskDown", "parent", "baseOn", "zzz"]
# Calls that may legitimately block past the socket timeout.
BLOCKING = ("ClientConfigWait", "VolumesReassignWait", "ClientState")
RESULTS = {"passed": 0, "failed": 0}
FAILS = []


def fail(what):
    RESULTS["failed"] += 1
    if len(FAILS) < 20:
        FAILS.append(what)
        print("FAIL:", what, flush=True)


def rand_scalar(r):
    return r.choice([
        None, True, False, 0, -1, 1, 512, 3, 4, 2 ** 63 - 1, 2 ** 64, -2 ** 63, 1.5, 1e308,
        "", "-", "all", "parent", "hdd", "v1", "#v", "~a.b.c", "list", "status", "x" * 300,
        "a b", "\u00e9", "\x00", "1024", [], {}, [1, "2", None], {"a": "b"}])


def rand_value(r, depth=0):
    if depth < 3 and r.random() < 0.2:
        if r.random() < 0.5:
            return [rand_value(r, depth + 1) for _ in range(r.randint(0, 4))]
        return {r.choice(FIELDS): rand_value(r, depth + 1) for _ in range(r.randint(0, 4))}
    return rand_scalar(r)


def rand_segment(r):
    return r.choice([
        "v1", "hdd", "t3", "101", "0", "-1", "4096", "99999999999999999999", "#tmp", "~t1.c1.1",
        "*snap@1", "a%2Fb", "%", "%zz", "..", ".", "x" * 250, "List", "Get", "Set", "Create",
        "Delete", "b1", "list", "a:b", "é", ""] + ["".join(r.choice(string.printable[:94])
                                                          for _ in range(r.randint(1, 12)))])


def rand_path(r):
    prefix = r.choice(["/ctrl/1.0/"] * 8 + ["/ctrl/1.0/MultiCluster/",
                                            "/ctrl/1.0/RemoteCommand/home/",
                                            "/ctrl/1.0/RemoteCommand/x/", "/spindle/1/",
                                            "/", "/ctrl/", "/ctrl/1.0"])
    call = r.choice(CALLS + ["ServiceRegister", "ClientReport", "ClientConfigWait"])
    segs = [rand_segment(r) for _ in range(r.choice([0, 0, 1, 1, 2, 3, 6]))]
    path = prefix + "/".join([call] + segs)
    for ch in ("?", "#", "?json=%7B%7D", "?since=5&timeoutMs=1"):
        if r.random() < 0.05:
            path += ch
    return "".join(c for c in path if c.isascii() and c.isprintable() and c != " ")


def rand_body(r):
    kind = r.random()
    if kind < 0.15:
        return None
    if kind < 0.25:
        return bytes(r.getrandbits(8) for _ in range(r.randint(1, 200)))
    if kind < 0.28:
        return b"[" * 100000 + b"]" * 100000  # deep nesting
    if kind < 0.30:
        return b'{"name":"' + b"a" * (1 << 20) + b'"}'  # over the body limit
    body = {r.choice(FIELDS): rand_value(r) for _ in range(r.randint(0, 6))}
    if r.random() < 0.1:
        body = [body]
    text = json.dumps(body, separators=(",", ":")).encode()
    if r.random() < 0.1 and text:  # byte-level mutation
        i = r.randrange(len(text))
        text = text[:i] + bytes([r.getrandbits(8)]) + text[i + 1:]
    return text


def valid_storpool(status, raw):
    try:
        j = json.loads(raw)
    except ValueError:
        return f"not JSON: {raw[:200]!r}"
    if not isinstance(j, dict):
        return f"not an object: {raw[:200]!r}"
    if status == 200 and "error" not in j:
        return None if "data" in j and isinstance(j.get("generation"), int) else f"bad ok {j}"
    e = j.get("error")
    if not (isinstance(e, dict) and isinstance(e.get("name"), str)
            and isinstance(e.get("descr"), str) and isinstance(e.get("transient"), bool)):
        return f"bad error reply {status} {raw[:200]!r}"
    if status == 200:
        return f"error with status 200: {j}"
    return None


def http_case(m, r):
    method = r.choice(["GET"] * 4 + ["POST"] * 5 + ["PUT", "DELETE", "HEAD", "OPTIONS"])
    path = rand_path(r)
    body = rand_body(r)
    headers = {}
    tok = r.random()
    if tok < 0.85:
        headers["Authorization"] = f"Storpool v1:{TOKEN}"
    elif tok < 0.93:
        headers["Authorization"] = r.choice(["Storpool v1:", "Storpool v1:1", "Basic x", "",
                                             f"Storpool v1:{TOKEN}x"])
    if r.random() < 0.1:
        headers["Content-Type"] = r.choice(["application/json", "text/plain", "x/y"])
    conn = http.client.HTTPConnection("127.0.0.1", m.port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
        if method == "HEAD":
            RESULTS["passed"] += 1
            return
        err = valid_storpool(resp.status, raw)
        if err:
            fail(f"{method} {path[:120]} body={body[:80] if body else body!r}: {err}")
        else:
            RESULTS["passed"] += 1
    except (socket.timeout, TimeoutError):
        if any(b in path for b in BLOCKING):
            RESULTS["passed"] += 1
        else:
            fail(f"{method} {path[:120]}: timed out")
    except (ConnectionError, http.client.HTTPException) as e:
        # The server may close on a body it refuses to read (over the limit).
        if body is not None and len(body) > (1 << 20):
            RESULTS["passed"] += 1
        else:
            fail(f"{method} {path[:120]}: {e!r}")
    finally:
        conn.close()


def garbage_case(m, r):
    data = r.choice([
        bytes(r.getrandbits(8) for _ in range(r.randint(1, 4096))),
        b"GET /ctrl/1.0/DisksList HTTP/1.1\r\n" + b"X: " + b"y" * 100000 + b"\r\n\r\n",
        b"POST /ctrl/1.0/VolumeCreate HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n{",
        b"GET " + b"/a" * 20000 + b" HTTP/1.1\r\n\r\n",
        b"\r\n\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n",
        b"POST /ctrl/1.0/VolumeCreate HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"])
    try:
        with socket.create_connection(("127.0.0.1", m.port), timeout=5) as s:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            reply = b""
            while len(reply) < (1 << 20):
                chunk = s.recv(65536)
                if not chunk:
                    break
                reply += chunk
    except (ConnectionError, socket.timeout, TimeoutError, OSError):
        RESULTS["passed"] += 1  # refused or reset: acceptable for garbage
        return
    if not reply:
        RESULTS["passed"] += 1
        return
    head, _, body = reply.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 "):
        fail(f"garbage {data[:60]!r}: non-HTTP reply {reply[:100]!r}")
        return
    status = int(head.split(b" ")[1])
    err = valid_storpool(status, body) if body else "empty body"
    if err:
        fail(f"garbage {data[:60]!r}: {err}")
    else:
        RESULTS["passed"] += 1


def main():
    args = [a for a in sys.argv[1:]]
    seconds, seed = 60.0, int(time.time())
    if "--seconds" in args:
        i = args.index("--seconds")
        seconds = float(args[i + 1])
        del args[i:i + 2]
    if "--seed" in args:
        i = args.index("--seed")
        seed = int(args[i + 1])
        del args[i:i + 2]
    bin_dir = args[0] if args else os.environ.get("SPINDLE_BIN_DIR", "")
    if not os.path.exists(os.path.join(bin_dir, "spindle-mgmt")):
        print("usage: fuzz_api.py BIN_DIR [--seconds N] [--seed S]")
        return 2
    print(f"seed {seed}, {seconds:.0f} s")
    r = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="spindle_fuzz_") as work:
        m = Mgmt(bin_dir, work)
        m.start()
        try:
            for sid in (1, 2, 3):
                register(m, sid, [sid * 100 + 1, sid * 100 + 2])
            m.raw("POST", "/ctrl/1.0/PlacementGroupUpdate/hdd",
                  {"addDisks": [101, 102, 201, 202, 301, 302], "rmDisks": []})
            m.raw("POST", "/ctrl/1.0/VolumeTemplateCreate",
                  {"name": "t3", "replication": 3, "placeAll": "hdd", "size": 1 << 20})
            m.raw("POST", "/ctrl/1.0/KV/Create/b1", None)
            deadline = time.time() + seconds
            n = 0
            while time.time() < deadline:
                (garbage_case if r.random() < 0.08 else http_case)(m, r)
                n += 1
                if n % 200 == 0 and m.proc.poll() is not None:
                    fail(f"spindle-mgmt died (exit {m.proc.returncode}) after {n} requests")
                    break
            alive = m.proc.poll() is None
            if alive:
                st, j = m.raw("GET", "/ctrl/1.0/ServicesList")
                alive = st == 200
            (RESULTS.__setitem__("passed", RESULTS["passed"] + 1) if alive
             else fail("mgmt not answering after the run"))
            print(f"{n} requests")
        finally:
            m.stop()
            if RESULTS["failed"]:
                with open(os.path.join(work, "mgmt.log")) as f:
                    print("--- mgmt.log (tail) ---\n" + "".join(f.readlines()[-20:]))
    print(f"{RESULTS['passed']} passed, {RESULTS['failed']} failed")
    return 1 if RESULTS["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
