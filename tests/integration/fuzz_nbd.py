#!/usr/bin/python3
"""Fuzzes spindle-block's NBD endpoint for a bounded time with random and malformed handshakes,
options and requests, and checks that it keeps serving a well-behaved client throughout.

Proves: garbage greetings, bad client flags, unknown/oversized/truncated options, bad request
magic, unknown commands and flags, misaligned, oversized and past-the-end requests (with
simple and with structured replies) only ever cost the offending connection; a libnbd client
on another export writes and reads back correctly every couple of seconds and at the end, and
the fuzzed export itself still works afterwards.

  /usr/bin/python3 tests/integration/fuzz_nbd.py --duration 60 [--seed N]
(starts its own local cluster; --socket S --export E --check-export C uses a running one).
"""
import argparse
import os
import random
import socket
import struct
import sys
import time

import nbd

from cluster import Cluster
from nbdvol import MiB, attach_volumes

IHAVEOPT, NBDMAGIC, REPLY_MAGIC = 0x49484156454F5054, 0x4E42444D41474943, 0x3E889045565A9
REQUEST_MAGIC = 0x25609513
OPT_GO, OPT_STRUCTURED, OPT_SET_META = 7, 8, 10
REP_ACK, REP_INFO = 1, 3
SIZE = 64 * MiB
CHECK_EVERY_S = 2.0
IO_TIMEOUT_S = 5.0
MAX_FUZZ_PAYLOAD = 1 * MiB


class Fuzzer:
    def __init__(self, sock_path, export, rng):
        self.path = sock_path
        self.export = export
        self.rng = rng
        self.sessions = 0

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(IO_TIMEOUT_S)
        s.connect(self.path)
        return s

    def drain(self, s, wait_s=0.02):
        """Reads whatever the server sends within wait_s; never blocks longer."""
        s.settimeout(wait_s)
        try:
            while s.recv(65536):
                pass
        except (socket.timeout, ConnectionError, OSError):
            pass
        s.settimeout(IO_TIMEOUT_S)

    def blob(self, n):
        return self.rng.randbytes(n)

    def greeting(self, s):
        data = b""
        while len(data) < 18:
            chunk = s.recv(18 - len(data))
            if not chunk:
                raise ConnectionError("closed in greeting")
            data += chunk
        return data

    def opt(self, s, option, body, claimed=None):
        length = len(body) if claimed is None else claimed
        s.sendall(struct.pack(">QII", IHAVEOPT, option, length) + body)

    def read_opt_replies(self, s):
        """Reads option replies until a final one; returns its type."""
        while True:
            head = b""
            while len(head) < 20:
                chunk = s.recv(20 - len(head))
                if not chunk:
                    raise ConnectionError("closed")
                head += chunk
            magic, _opt, rtype, length = struct.unpack(">QIII", head)
            if magic != REPLY_MAGIC:
                raise AssertionError(f"bad option reply magic {magic:#x}")
            left = length
            while left:
                chunk = s.recv(min(left, 65536))
                if not chunk:
                    raise ConnectionError("closed")
                left -= len(chunk)
            if rtype not in (REP_INFO, 4, 2):
                return rtype

    def case_garbage_greeting(self, s):
        if self.rng.random() < 0.5:
            self.greeting(s)
        s.sendall(self.blob(self.rng.randrange(1, 64)))

    def case_bad_flags(self, s):
        self.greeting(s)
        s.sendall(struct.pack(">I", self.rng.choice([0, 2, 4, 0xffffffff, self.rng.getrandbits(32)])))

    def case_options(self, s):
        self.greeting(s)
        s.sendall(struct.pack(">I", 3))
        for _ in range(self.rng.randrange(1, 80)):
            choice = self.rng.random()
            option = self.rng.choice([0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 99,
                                      self.rng.getrandbits(32)])
            if choice < 0.1:
                s.sendall(self.blob(16))  # bad option magic
            elif choice < 0.2:
                self.opt(s, option, self.blob(16), claimed=self.rng.choice([5000, 1 << 31]))
            elif choice < 0.3:
                self.opt(s, option, self.blob(3), claimed=100)  # truncated, then silence
                return
            else:
                self.opt(s, option, self.blob(self.rng.randrange(0, 300)))
            self.drain(s)

    def go(self, s, structured):
        self.greeting(s)
        s.sendall(struct.pack(">I", 3))
        if structured:
            self.opt(s, OPT_STRUCTURED, b"")
            self.read_opt_replies(s)
            q = b"base:allocation"
            body = (struct.pack(">I", len(self.export)) + self.export.encode() +
                    struct.pack(">II", 1, len(q)) + q)
            self.opt(s, OPT_SET_META, body)
            self.read_opt_replies(s)
        body = struct.pack(">I", len(self.export)) + self.export.encode() + struct.pack(">H", 0)
        self.opt(s, OPT_GO, body)
        return self.read_opt_replies(s) == REP_ACK

    def random_request(self, s):
        r = self.rng
        magic = REQUEST_MAGIC if r.random() < 0.95 else r.getrandbits(32)
        cmd = r.choice([0, 1, 3, 4, 6, 7, 5, 8, 2 if r.random() < 0.05 else 0, r.getrandbits(16)])
        flags = r.choice([0, 0, 1, 2, 4, 8, 16, r.getrandbits(16)])
        offset = r.choice([0, r.randrange(0, SIZE), SIZE - 512, SIZE, SIZE + 4096,
                           (1 << 64) - 512, r.getrandbits(64), r.randrange(0, SIZE) | 1])
        length = r.choice([0, 1, 512, 4096, 4097, 65536, MAX_FUZZ_PAYLOAD, 64 * MiB,
                           r.getrandbits(32)])
        if offset < SIZE and offset + length > SIZE and cmd == 1 and r.random() < 0.5:
            length = SIZE - offset
        s.sendall(struct.pack(">IHHQQI", magic, flags, cmd, r.getrandbits(64), offset, length))
        if cmd == 1 and length <= MAX_FUZZ_PAYLOAD:
            s.sendall(self.blob(length) if r.random() < 0.9 else self.blob(length // 2))
        return magic == REQUEST_MAGIC

    def case_requests(self, s):
        if not self.go(s, structured=self.rng.random() < 0.5):
            return
        for _ in range(self.rng.randrange(1, 40)):
            if not self.random_request(s):
                break
            self.drain(s, 0.005)
        self.drain(s)

    def one(self):
        cases = [self.case_garbage_greeting, self.case_bad_flags, self.case_options,
                 self.case_requests, self.case_requests]
        s = self.connect()
        try:
            self.rng.choice(cases)(s)
            self.drain(s)
        except (ConnectionError, socket.timeout, OSError):
            pass  # the server may close a bad connection at any point
        finally:
            s.close()
        self.sessions += 1


def well_behaved(sock_path, export, rng):
    h = nbd.NBD()
    h.connect_uri(f"nbd+unix:///{export}?socket={sock_path}")
    off = rng.randrange(0, SIZE // 4096 - 16) * 4096
    data = rng.randbytes(65536)
    h.pwrite(data, off)
    h.flush()
    got = h.pread(len(data), off)
    h.shutdown()
    if got != data:
        raise AssertionError(f"read back differs at {off}")


def fuzz(sock_path, export, check_export, duration, seed):
    rng = random.Random(seed)
    f = Fuzzer(sock_path, export, rng)
    deadline = time.monotonic() + duration
    next_check = 0.0
    checks = 0
    while time.monotonic() < deadline:
        if time.monotonic() >= next_check:
            well_behaved(sock_path, check_export, rng)
            checks += 1
            next_check = time.monotonic() + CHECK_EVERY_S
        f.one()
    well_behaved(sock_path, check_export, rng)
    well_behaved(sock_path, export, rng)
    print(f"PASS {f.sessions} fuzzed connections in {duration} s (seed {seed}), "
          f"{checks + 2} well-behaved checks")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=60)
    ap.add_argument("--seed", type=int, default=int(os.environ.get("SP_FUZZ_SEED", time.time())))
    ap.add_argument("--socket")
    ap.add_argument("--export", default="fuzz-a")
    ap.add_argument("--check-export", default="fuzz-b")
    args = ap.parse_args()
    if args.socket:
        fuzz(args.socket, args.export, args.check_export, args.duration, args.seed)
        print("1 passed, 0 failed")
        return 0
    cluster = Cluster()
    ok = False
    try:
        cluster.up()
        attach_volumes(cluster, [args.export, args.check_export], SIZE)
        fuzz(cluster.nbd_socket, args.export, args.check_export, args.duration, args.seed)
        ok = True
    except Exception as e:  # noqa: BLE001 - reported as the failure
        print(f"FAIL fuzz (seed {args.seed}): {e!r}")
        cluster.dump_logs()
    finally:
        cluster.cleanup()
    print(f"{int(ok)} passed, {int(not ok)} failed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
