#!/usr/bin/env python3
"""Real-process test of on-disk corruption: detected by reads and by the background scrubber.

One spindle-server (no real mgmt: a fake one on loopback only records the heartbeat bodies)
gets known data written to one object over the wire protocol; once the flusher has written it
in place the server is stopped (SIGTERM), `spindle-disk block-offset` names where one block
lives in the disk file, and bytes of it are flipped there. After a restart: a READ covering
the block answers status 9 (corruption), never data; a READ of other blocks still returns the
written bytes; the scrubber (SP_SCRUB_BANDWIDTH_MB fast) logs the bad block and the heartbeat
lists it per disk in "scrub"."""
import http.server
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

BIN = os.environ.get("SPINDLE_BIN_DIR", os.path.join(os.path.dirname(__file__), "../../build/bin"))
DISK, LAYER, OBJECT, BAD_BLOCK = 101, 5, 3, 2
DATA_BYTES = 64 * 1024  # a small write: journaled first, written in place by the flusher
CORRUPTION = 9

# ---- CRC-32C and the wire protocol (docs/formats/wire.md) ----

_CRC_TABLE = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _CRC_TABLE.append(_c)


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = _CRC_TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def chunk_crcs(data):
    return [crc32c(data[i:i + 4096]) for i in range(0, len(data), 4096)]


class Wire:
    """One connection to a spindle-server; one request at a time."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.next_id = 1
        status, payload = self.call(1, struct.pack("<II", 3, 0))  # HELLO as a tool
        assert status == 0, payload

    def close(self):
        self.sock.close()

    def _recv(self, n):
        out = b""
        while len(out) < n:
            part = self.sock.recv(n - len(out))
            if not part:
                raise ConnectionError("server closed the connection")
            out += part
        return out

    def call(self, msg_type, payload):
        rid = self.next_id
        self.next_id += 1
        head = struct.pack("<IHHQIiI", 0x444E5053, 1, msg_type, rid, len(payload), 0, 0)
        self.sock.sendall(head + struct.pack("<I", crc32c(head)) + payload)
        resp = self._recv(32)
        magic, _, rtype, rrid, length, status, _ = struct.unpack("<IHHQIiI", resp[:28])
        assert magic == 0x444E5053 and rtype == msg_type | 0x8000 and rrid == rid, resp
        assert struct.unpack("<I", resp[28:])[0] == crc32c(resp[:28]), "response header crc"
        return status, self._recv(length)

    def write(self, offset, data, version):
        crcs = chunk_crcs(data)
        payload = struct.pack("<IIQQIIII", DISK, OBJECT, LAYER, version, offset, len(data), 0, 0)
        payload += struct.pack(f"<{len(crcs)}I", *crcs) + data
        return self.call(2, payload)

    def read(self, offset, length):
        """(status, data or error message); data is checked against the response's crcs."""
        status, payload = self.call(3, struct.pack("<IIIIIIQ", DISK, OBJECT, offset, length, 1,
                                                   0, LAYER))
        if status != 0:
            return status, payload.decode(errors="replace")
        _, n, _ = struct.unpack("<QII", payload[:16])
        chunks = (n + 4095) // 4096
        crcs = list(struct.unpack(f"<{chunks}I", payload[16:16 + 4 * chunks]))
        data = payload[16 + 4 * chunks:]
        assert len(data) == n and chunk_crcs(data) == crcs, "response data crcs"
        return 0, data


# ---- a fake mgmt that records heartbeat bodies ----

class FakeMgmt(http.server.BaseHTTPRequestHandler):
    bodies = []

    def do_POST(self):  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path.endswith("/ServiceRegister"):
            try:
                FakeMgmt.bodies.append(json.loads(body))
            except ValueError:
                pass
        # An error answer: the server keeps retrying and its recovery is not involved.
        reply = json.dumps({"error": {"name": "fakeMgmt", "descr": "test"}}).encode()
        self.send_response(503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


# ---- process helpers (as in test_server_crash.py) ----

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout_s=20):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError("server did not listen")


def wait_for(what, pred, timeout_s=15):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.1)
    raise TimeoutError(f"timed out waiting for {what}")


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
        raise RuntimeError("server did not stop on SIGTERM within 15 s")


class Checks:
    def __init__(self):
        self.passed = self.failed = 0

    def check(self, ok, what):
        print(("PASS " if ok else "FAIL ") + what)
        self.passed, self.failed = self.passed + bool(ok), self.failed + (not ok)


def main():
    work = tempfile.mkdtemp(prefix="spindle-corrupt-")
    checks = Checks()
    server = None
    httpd = None
    server_log_path = os.path.join(work, "server.log")
    try:
        disk = os.path.join(work, "disk.img")
        subprocess.run([os.path.join(BIN, "spindle-disk"), "init", "--file", disk, "--disk-id",
                        str(DISK), "--cluster-id", "corrupt.test", "--size", str(256 << 20)],
                       check=True, capture_output=True, timeout=60)
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeMgmt)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        port, api_port = free_port(), httpd.server_address[1]
        conf = os.path.join(work, "storpool.conf")
        with open(conf, "w") as f:
            f.write(f"SP_CLUSTER_ID=corrupt.test\nSP_AUTH_TOKEN=1\nSP_API_HTTP_HOST=127.0.0.1\n"
                    f"SP_API_HTTP_PORT={api_port}\nSP_SCRUB_BANDWIDTH_MB=1024\n[server1]\n"
                    f"SP_OURID=1\nSP_SERVER_PORT={port}\nSP_SERVER_DISKS={disk}\n")
        server_log = open(server_log_path, "ab")

        def start():
            proc = subprocess.Popen([os.path.join(BIN, "spindle-server"), "--config", conf,
                                     "--node", "server1"], stdout=server_log, stderr=server_log)
            wait_port(port, proc)
            return proc

        data = bytes((i * 7 + i // 4096) & 0xFF for i in range(DATA_BYTES))
        server = start()
        w = Wire(port)
        status, payload = w.write(0, data, 1)
        checks.check(status == 0 and struct.unpack("<Q", payload)[0] == 1, "write version 1")
        status, back = w.read(0, DATA_BYTES)
        checks.check(status == 0 and back == data, "read back before corruption")
        w.close()
        time.sleep(1.0)  # the flusher writes journaled blocks in place within 200 ms
        checks.check(stop(server) == 0, "server stops cleanly on SIGTERM")
        server = None

        r = subprocess.run([os.path.join(BIN, "spindle-disk"), "block-offset", "--file", disk,
                            "--layer", str(LAYER), "--object", str(OBJECT), "--block",
                            str(BAD_BLOCK)], capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"block-offset failed: {r.stderr}")
        where = json.loads(r.stdout)
        # A block still only in the journal would be rewritten in place by the next open.
        checks.check(where["dirtyBlocks"] == 0, f"block {BAD_BLOCK} is in place: {where}")
        with open(disk, "r+b") as f:
            f.seek(where["offset"] + 100)
            old = f.read(8)
            f.seek(where["offset"] + 100)
            f.write(bytes(b ^ 0xFF for b in old))
        r = subprocess.run([os.path.join(BIN, "spindle-disk"), "check", "--file", disk],
                           capture_output=True, text=True, timeout=60)
        checks.check(r.returncode == 1 and f"block {BAD_BLOCK}" in r.stdout,
                     "spindle-disk check reports the block")

        FakeMgmt.bodies.clear()  # only heartbeats of the restarted server count
        server = start()
        w = Wire(port)
        status, back = w.read(BAD_BLOCK * 4096, 4096)
        checks.check(status == CORRUPTION, f"read of the bad block: status {status} ({back!r:.120})")
        status, back = w.read(0, DATA_BYTES)
        checks.check(status == CORRUPTION, f"read across the bad block: status {status}")
        status, back = w.read(0, 2 * 4096)
        checks.check(status == 0 and back == data[:8192], "read of good blocks returns the data")
        status, back = w.read(3 * 4096, DATA_BYTES - 3 * 4096)
        checks.check(status == 0 and back == data[3 * 4096:], "read after the bad block too")
        w.close()

        line = f"scrub: disk {DISK} bad block layer {LAYER} object {OBJECT} block {BAD_BLOCK}"
        try:
            wait_for("the scrub log line", lambda: line in open(server_log_path,
                                                                errors="replace").read())
            checks.check(True, "scrubber logged: " + line)
        except TimeoutError:
            checks.check(False, "scrubber logged: " + line)

        def scrub_entry():
            for body in reversed(FakeMgmt.bodies):
                for d in body.get("disks", []):
                    s = d.get("scrub")
                    if d.get("id") == DISK and s and s.get("passes", 0) >= 1:
                        return s
            return None
        try:
            s = wait_for("a heartbeat with a scrub pass", scrub_entry)
            checks.check(s["badBlocks"] == [[LAYER, OBJECT, BAD_BLOCK]]
                         and s["verifiedBlocks"] >= DATA_BYTES // 4096,
                         f"heartbeat scrub entry: {s}")
        except TimeoutError:
            checks.check(False, f"heartbeat scrub entry ({len(FakeMgmt.bodies)} heartbeats)")
        checks.check(stop(server) == 0, "server with a running scrubber stops on SIGTERM")
        server = None
    except Exception as e:  # noqa: BLE001 - reported as a failure
        print(f"FAIL {e!r}")
        checks.failed += 1
    finally:
        if server is not None and server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=10)
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if checks.failed:
            try:
                print(open(server_log_path, errors="replace").read()[-4000:])
            except OSError:
                pass
        shutil.rmtree(work, ignore_errors=True)
    print(f"{checks.passed} passed, {checks.failed} failed")
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
