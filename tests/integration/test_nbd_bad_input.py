#!/usr/bin/python3
"""Bad NBD input gets an NBD error or a closed connection, never a crash or a hang.

Proves that spindle-block survives garbage at the handshake, bad
option and request magic, oversized options and requests, out-of-range offsets and writes to
a read-only export: each gets an NBD error reply or its connection closed, other connections
keep being served, and afterwards a fresh libnbd client still writes and reads back data.

Needs a running NBD endpoint with a read-write export and a read-only export:
  /usr/bin/python3 tests/integration/test_nbd_bad_input.py \
      --socket DIR/nbd.sock --export vol1 --ro-export ro1
(defaults from SP_NBD_SOCKET, SP_NBD_EXPORT, SP_NBD_RO_EXPORT); test_nbd_cluster.py runs it
against a local cluster it starts. With `spindle-local up --dir DIR`, use DIR/nbd.sock and the attached volume's name; without a
read-only attachment pass --ro-export '' to skip that case.
"""
import argparse
import os
import socket
import struct
import sys

import nbd

IHAVEOPT = 0x49484156454F5054
NBDMAGIC = 0x4E42444D41474943
OPT_REPLY_MAGIC = 0x3E889045565A9
REQUEST_MAGIC = 0x25609513
SIMPLE_REPLY_MAGIC = 0x67446698
OPT_GO = 7
REP_ACK = 1
REP_ERR_UNKNOWN = (1 << 31) | 6
CMD_READ, CMD_WRITE = 0, 1
EPERM, EINVAL, ENOSPC = 1, 22, 28
TIMEOUT_S = 10


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def closed_by_server(s):
    """True when the server closed the connection (EOF or reset) within TIMEOUT_S."""
    try:
        while True:
            if not s.recv(65536):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


def connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(TIMEOUT_S)
    s.connect(path)
    magic, opt, flags = struct.unpack(">QQH", recv_exact(s, 18))
    assert magic == NBDMAGIC and opt == IHAVEOPT, "bad greeting"
    assert flags & 1, "server is not fixed newstyle"
    s.sendall(struct.pack(">I", 3))  # FIXED_NEWSTYLE | NO_ZEROES
    return s


def send_option(s, option, data):
    s.sendall(struct.pack(">QII", IHAVEOPT, option, len(data)) + data)


def read_option_reply(s):
    magic, option, rtype, length = struct.unpack(">QIII", recv_exact(s, 20))
    assert magic == OPT_REPLY_MAGIC, "bad option reply magic"
    return option, rtype, recv_exact(s, length)


def go(s, name):
    """NBD_OPT_GO; returns (size, flags) or the error reply type as an int."""
    raw = name.encode()
    send_option(s, OPT_GO, struct.pack(">I", len(raw)) + raw + struct.pack(">H", 0))
    size = flags = None
    while True:
        _, rtype, data = read_option_reply(s)
        if rtype == REP_ACK:
            return size, flags
        if rtype & (1 << 31):
            return rtype
        if struct.unpack(">H", data[:2])[0] == 0:  # NBD_INFO_EXPORT
            size, flags = struct.unpack(">QH", data[2:12])


def request(s, cmd, offset, length, payload=b"", cookie=1, magic=REQUEST_MAGIC):
    s.sendall(struct.pack(">IHHQQI", magic, 0, cmd, cookie, offset, length) + payload)


def simple_reply(s, read_length=0):
    magic, error, cookie = struct.unpack(">IIQ", recv_exact(s, 16))
    assert magic == SIMPLE_REPLY_MAGIC, "bad reply magic"
    data = recv_exact(s, read_length) if error == 0 and read_length else b""
    return error, cookie, data


def open_export(path, name):
    s = connect(path)
    r = go(s, name)
    assert isinstance(r, tuple), f"GO {name} refused: {r:#x}"
    return s, r[0], r[1]


def case_garbage_handshake(args):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(TIMEOUT_S)
    s.connect(args.socket)
    recv_exact(s, 18)
    s.sendall(os.urandom(4096))
    assert closed_by_server(s), "garbage handshake not closed"


def case_bad_option_magic(args):
    s = connect(args.socket)
    s.sendall(struct.pack(">QII", 0x1122334455667788, OPT_GO, 0))
    assert closed_by_server(s), "bad option magic not closed"


def case_oversized_option(args):
    s = connect(args.socket)
    s.sendall(struct.pack(">QII", IHAVEOPT, OPT_GO, 1 << 20))
    assert closed_by_server(s), "1 MiB option not refused"


def case_unknown_export(args):
    s = connect(args.socket)
    assert go(s, "no-such-volume-xyz") == REP_ERR_UNKNOWN


def case_bad_request_magic(args):
    s, _, _ = open_export(args.socket, args.export)
    request(s, CMD_READ, 0, 512, magic=0xDEADBEEF)
    assert closed_by_server(s), "bad request magic not closed"


def case_oversized_requests(args):
    s, _, _ = open_export(args.socket, args.export)
    request(s, CMD_READ, 0, 64 << 20, cookie=7)
    error, cookie, _ = simple_reply(s)
    assert (error, cookie) == (EINVAL, 7), f"64 MiB read: error {error}"
    request(s, CMD_WRITE, 0, 64 << 20, cookie=8)  # no payload follows: must close or EINVAL
    try:
        error, _, _ = simple_reply(s)
        assert error == EINVAL, f"64 MiB write: error {error}"
    except (ConnectionError, ConnectionResetError):
        pass


def case_out_of_range(args):
    s, size, _ = open_export(args.socket, args.export)
    request(s, CMD_READ, size, 4096, cookie=3)
    error, _, _ = simple_reply(s)
    assert error in (EINVAL, 75), f"read past end: error {error}"
    request(s, CMD_READ, (1 << 64) - 512, 4096, cookie=4)
    error, _, _ = simple_reply(s)
    assert error in (EINVAL, 75), f"read at 2^64-512: error {error}"
    request(s, CMD_WRITE, size - 512, 4096, payload=b"\0" * 4096, cookie=5)
    error, _, _ = simple_reply(s)
    assert error in (EINVAL, ENOSPC), f"write past end: error {error}"
    request(s, CMD_READ, 0, 4096, cookie=6)  # the connection still serves
    error, cookie, data = simple_reply(s, 4096)
    assert (error, cookie, len(data)) == (0, 6, 4096)


def case_read_only(args):
    s, _, flags = open_export(args.socket, args.ro_export)
    assert flags & 2, "read-only export does not advertise READ_ONLY"
    request(s, CMD_WRITE, 0, 4096, payload=b"x" * 4096, cookie=9)
    error, _, _ = simple_reply(s)
    assert error == EPERM, f"write to read-only export: error {error}"
    request(s, CMD_READ, 0, 4096, cookie=10)
    error, _, _ = simple_reply(s, 4096)
    assert error == 0


def case_fresh_client_works(args):
    h = nbd.NBD()
    h.connect_uri(f"nbd+unix:///{args.export}?socket={args.socket}")
    pattern = os.urandom(65536)
    offset = h.get_size() // 2 // 4096 * 4096
    h.pwrite(pattern, offset)
    h.flush()
    assert h.pread(len(pattern), offset) == pattern
    h.shutdown()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--socket", default=os.environ.get("SP_NBD_SOCKET"))
    p.add_argument("--export", default=os.environ.get("SP_NBD_EXPORT", "vol1"))
    p.add_argument("--ro-export", default=os.environ.get("SP_NBD_RO_EXPORT", "ro1"))
    args = p.parse_args()
    if not args.socket:
        p.error("--socket (or SP_NBD_SOCKET) is required")
    cases = [case_garbage_handshake, case_bad_option_magic, case_oversized_option,
             case_unknown_export, case_bad_request_magic, case_oversized_requests,
             case_out_of_range]
    if args.ro_export:
        cases.append(case_read_only)
    cases.append(case_fresh_client_works)
    keep = open_export(args.socket, args.export)[0]  # must survive everything below
    failed = 0
    for case in cases:
        try:
            case(args)
            print(f"ok   {case.__name__}")
        except Exception as e:  # report every case, then fail
            failed += 1
            print(f"FAIL {case.__name__}: {e!r}")
    request(keep, CMD_READ, 0, 512, cookie=99)
    error, cookie, _ = simple_reply(keep, 512)
    if (error, cookie) != (0, 99):
        failed += 1
        print("FAIL connection opened before the bad input stopped being served")
    print(f"{len(cases) + 1 - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
