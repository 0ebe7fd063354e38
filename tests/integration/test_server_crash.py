#!/usr/bin/env python3
"""Real-process crash test of spindle-server and its journaled disk store.

Twenty rounds of: spindle-wire-load writes random sizes (sub-4 KiB to 1 MiB, some straddling
objects) to one server's disk, logging each write before sending it and each acknowledgement;
the server is killed with SIGKILL at a random moment; it is restarted (journal replay); then
spindle-wire-load verify checks every object against the log: no acknowledged write lost, no
torn object (the bytes equal exactly the writes up to the version the server reports), no
checksum error. mgmt is deliberately absent: the server keeps serving data without it.
"""
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

BIN = os.environ.get("SPINDLE_BIN_DIR", os.path.join(os.path.dirname(__file__), "../../build/bin"))
ROUNDS = int(os.environ.get("SPINDLE_CRASH_ROUNDS", "20"))
DISK = 101


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


def main():
    work = tempfile.mkdtemp(prefix="spindle-crash-")
    server = None
    passed = failed = 0
    rng = random.Random(int(os.environ.get("SPINDLE_CRASH_SEED", "5")))
    try:
        disk = os.path.join(work, "disk.img")
        subprocess.run([os.path.join(BIN, "spindle-disk"), "init", "--file", disk, "--disk-id",
                        str(DISK), "--cluster-id", "crash.test", "--size", str(1 << 30)],
                       check=True, capture_output=True, timeout=60)
        port, api_port = free_port(), free_port()  # nothing listens on api_port: no mgmt
        conf = os.path.join(work, "storpool.conf")
        with open(conf, "w") as f:
            f.write(f"SP_CLUSTER_ID=crash.test\nSP_AUTH_TOKEN=1\nSP_API_HTTP_HOST=127.0.0.1\n"
                    f"SP_API_HTTP_PORT={api_port}\n[server1]\nSP_OURID=1\n"
                    f"SP_SERVER_PORT={port}\nSP_SERVER_DISKS={disk}\n")
        log = os.path.join(work, "writes.log")
        server_log = open(os.path.join(work, "server.log"), "ab")
        common = ["--server", f"127.0.0.1:{port}", "--disk", str(DISK), "--log", log]
        for rnd in range(1, ROUNDS + 1):
            server = subprocess.Popen([os.path.join(BIN, "spindle-server"), "--config", conf,
                                       "--node", "server1"], stdout=server_log,
                                      stderr=server_log)
            wait_port(port, server)
            verify = subprocess.run([os.path.join(BIN, "spindle-wire-load"), "verify", *common],
                                    capture_output=True, text=True, timeout=120)
            if rnd > 1:
                report = verify.stdout.strip()
                ok = verify.returncode == 0
                print(("PASS" if ok else "FAIL") + f" round {rnd - 1} after SIGKILL: {report}"
                      + ("" if ok else verify.stderr))
                passed, failed = passed + ok, failed + (not ok)
            writer = subprocess.Popen([os.path.join(BIN, "spindle-wire-load"), "write", *common,
                                       "--objects", "3", "--seconds", "30",
                                       "--seed", str(rng.randrange(1 << 40))],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0.2, 1.5))
            server.send_signal(signal.SIGKILL)
            server.wait(timeout=10)
            server = None
            writer.wait(timeout=30)
        # Final check after the last kill.
        server = subprocess.Popen([os.path.join(BIN, "spindle-server"), "--config", conf,
                                   "--node", "server1"], stdout=server_log, stderr=server_log)
        wait_port(port, server)
        verify = subprocess.run([os.path.join(BIN, "spindle-wire-load"), "verify", *common],
                                capture_output=True, text=True, timeout=120)
        ok = verify.returncode == 0
        print(("PASS" if ok else "FAIL") + f" round {ROUNDS} after SIGKILL: "
              f"{verify.stdout.strip()}{'' if ok else verify.stderr}")
        passed, failed = passed + ok, failed + (not ok)
        acked = sum(1 for line in open(log) if line.startswith("A "))
        print(f"acknowledged writes in the log: {acked}")
        if acked == 0:
            print("FAIL no write was acknowledged: the test proved nothing")
            failed += 1
    except Exception as e:  # noqa: BLE001 - reported as a failure
        print(f"FAIL {e!r}")
        failed += 1
    finally:
        if server is not None and server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=10)
        if failed:
            try:
                print(open(os.path.join(work, "server.log"), errors="replace").read()[-4000:])
            except OSError:
                pass
        shutil.rmtree(work, ignore_errors=True)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
