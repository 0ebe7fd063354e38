#!/usr/bin/python3
"""NBD protocol conformance of spindle-block, driven by libnbd (an independent client) through
every option and command we support, plus raw-socket checks of what libnbd cannot send.

Proves: LIST, INFO (size, block sizes), GO, STRUCTURED_REPLY, LIST/SET_META_CONTEXT with
base:allocation; READ (simple and structured, DF), WRITE (+FUA), FLUSH, TRIM, WRITE_ZEROES with
and without NO_HOLE, BLOCK_STATUS (+REQ_ONE) and DISC behave as proto.md says; errors come back
as NBD errors (structured error chunks when negotiated); several connections to one export see
each other's flushed writes (CAN_MULTI_CONN).
"""
import errno
import socket
import struct
import sys

import nbd

from nbdvol import MiB, connect, standard_main

VOL = "conf-a"
SIZE = 40 * MiB  # two objects, the second partly used
IHAVEOPT, NBDMAGIC, REPLY_MAGIC = 0x49484156454F5054, 0x4E42444D41474943, 0x3E889045565A9
OPT_STRUCTURED, OPT_LIST_META, OPT_SET_META = 8, 9, 10
REP_ACK, REP_META = 1, 4
ERR_INVALID, ERR_UNKNOWN = (1 << 31) | 3, (1 << 31) | 6


def expect_errno(fn, want):
    try:
        fn()
    except nbd.Error as e:
        assert e.errnum == want, f"errno {e.errnum} ({e.string}), want {want}"
        return
    raise AssertionError(f"no error, want errno {want}")


def check_options(cluster):
    h = nbd.NBD()
    h.set_opt_mode(True)
    h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
    h.connect_uri(cluster.nbd_uri(VOL))
    names = []
    h.opt_list(lambda name, desc: names.append(name))
    assert VOL in names, names
    contexts = []
    h.opt_list_meta_context(lambda name: contexts.append(name))
    assert contexts == ["base:allocation"], contexts
    h.opt_info()
    assert h.get_size() == SIZE
    assert h.get_block_size(nbd.SIZE_MINIMUM) == 512
    assert h.get_block_size(nbd.SIZE_PREFERRED) == 4096
    assert h.get_block_size(nbd.SIZE_MAXIMUM) == 32 * MiB
    h.set_export_name("no-such-export")
    expect_errno(h.opt_info, errno.ENOENT)
    h.set_export_name(VOL)
    h.opt_go()
    assert h.get_structured_replies_negotiated()
    assert h.can_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
    for can in (h.can_multi_conn, h.can_trim, h.can_zero, h.can_flush, h.can_fua, h.can_df):
        assert can(), can.__name__
    assert not h.is_read_only()
    h.shutdown()
    h = nbd.NBD()
    h.set_opt_mode(True)
    h.connect_uri(cluster.nbd_uri(VOL))
    h.opt_abort()


def extents_of(h, length, offset, flags=0):
    out = []

    def cb(metacontext, off, entries, err):
        assert metacontext == nbd.CONTEXT_BASE_ALLOCATION
        out.extend(zip(entries[0::2], entries[1::2]))
        return 0
    h.block_status(length, offset, cb, flags)
    return out


def check_commands(cluster):
    h = connect(cluster, VOL)
    data = bytes(range(256)) * 4096  # 1 MiB
    h.pwrite(data, 0, nbd.CMD_FLAG_FUA)
    h.pwrite(data, 33 * MiB)
    h.flush()
    assert h.pread(len(data), 0) == data, "read back after write"
    chunks = []

    def chunk(buf, off, status, err):
        chunks.append((off, len(buf), status))
        return 0
    got = h.pread_structured(8192, 4096, chunk, nbd.CMD_FLAG_DF)
    assert got == data[4096:12288], "structured read data"
    assert chunks == [(4096, 8192, nbd.READ_DATA)], chunks
    h.trim(256 * 1024, 64 * 1024)  # (count, offset)
    h.zero(512, 512, nbd.CMD_FLAG_NO_HOLE)
    h.zero(8192, 4096)
    want = bytearray(data)
    want[64 * 1024:320 * 1024] = bytes(256 * 1024)
    want[512:1024] = bytes(512)
    want[4096:12288] = bytes(8192)
    got = h.pread(len(data), 0)
    diff = [i for i in range(0, len(data), 512) if got[i:i + 512] != want[i:i + 512]]
    assert not diff, f"read back after trim/zero differs in sectors at {diff[:3]}..{diff[-3:]}"
    ext = extents_of(h, 2 * MiB, 0)
    assert sum(e[0] for e in ext) == 2 * MiB, ext
    assert ext[0] == (4096, 0), ext  # block 0: data (partly zeroed, still stored)
    assert ext[1] == (8192, 3), ext  # zeroed without NO_HOLE: hole
    one = extents_of(h, 2 * MiB, 0, nbd.CMD_FLAG_REQ_ONE)
    assert one == [(4096, 0)], one
    tail = extents_of(h, SIZE - 32 * MiB, 32 * MiB)
    assert tail[0] == (1 * MiB, 3) and tail[1] == (1 * MiB, 0), tail
    # Unaligned status request: the first extent starts at the asked offset.
    odd = extents_of(h, 8192, 1024)
    assert odd[0] == (3072, 0), odd
    h.shutdown()


def check_errors(cluster):
    for structured in (True, False):
        h = nbd.NBD()
        h.set_request_structured_replies(structured)
        h.set_strict_mode(0)  # let libnbd send what a careful client would not
        h.connect_uri(cluster.nbd_uri(VOL))
        assert h.get_structured_replies_negotiated() == structured
        expect_errno(lambda: h.pread(4096, SIZE), errno.EINVAL)
        expect_errno(lambda: h.pwrite(b"x" * 512, SIZE), errno.ENOSPC)
        expect_errno(lambda: h.pwrite(b"x" * 100, 0), errno.EINVAL)
        expect_errno(lambda: h.trim(512, SIZE), errno.ENOSPC)
        expect_errno(lambda: h.pread(512, 0, nbd.CMD_FLAG_NO_HOLE), errno.EINVAL)
        if not structured:
            expect_errno(lambda: extents_of(h, 4096, 0), errno.EINVAL)  # no meta context
        expect_errno(lambda: h.zero(4096, 0, nbd.CMD_FLAG_FAST_ZERO), errno.EINVAL)
        assert h.pread(512, 0) is not None  # still usable
        h.shutdown()


def check_multi_conn(cluster):
    hs = [connect(cluster, VOL, meta=False) for _ in range(4)]
    for i, h in enumerate(hs):
        h.pwrite(bytes([i + 1]) * 65536, 8 * MiB + i * 65536)
    hs[0].flush()
    for h in hs:
        for i in range(4):
            assert h.pread(65536, 8 * MiB + i * 65536) == bytes([i + 1]) * 65536
    for h in hs:
        h.shutdown()


def raw_client(cluster):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(cluster.nbd_socket)
    magic, opt, _flags = struct.unpack(">QQH", recv_exact(s, 18))
    assert (magic, opt) == (NBDMAGIC, IHAVEOPT)
    s.sendall(struct.pack(">I", 3))
    return s


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def option(s, opt, data=b""):
    s.sendall(struct.pack(">QII", IHAVEOPT, opt, len(data)) + data)
    replies = []
    while True:
        magic, o, rtype, length = struct.unpack(">QIII", recv_exact(s, 20))
        assert magic == REPLY_MAGIC and o == opt
        replies.append((rtype, recv_exact(s, length)))
        if rtype != REP_META:
            return replies


def meta_body(export, queries):
    b = struct.pack(">I", len(export)) + export.encode() + struct.pack(">I", len(queries))
    for q in queries:
        b += struct.pack(">I", len(q)) + q.encode()
    return b


def check_raw_meta(cluster):
    s = raw_client(cluster)
    # SET before STRUCTURED_REPLY is invalid; LIST works without it.
    assert option(s, OPT_SET_META, meta_body(VOL, ["base:allocation"]))[0][0] == ERR_INVALID
    listed = option(s, OPT_LIST_META, meta_body(VOL, ["base:"]))
    assert [r[0] for r in listed] == [REP_META, REP_ACK], listed
    assert listed[0][1][4:] == b"base:allocation"
    assert option(s, OPT_LIST_META, meta_body(VOL, ["other:x"])) == [(REP_ACK, b"")]
    assert option(s, OPT_STRUCTURED, b"x")[0][0] == ERR_INVALID
    assert option(s, OPT_STRUCTURED) == [(REP_ACK, b"")]
    sel = option(s, OPT_SET_META, meta_body(VOL, ["base:allocation", "qemu:dirty-bitmap:a"]))
    assert [r[0] for r in sel] == [REP_META, REP_ACK], sel
    assert struct.unpack(">I", sel[0][1][:4])[0] != 0
    assert option(s, OPT_SET_META, meta_body("nope", ["base:allocation"]))[0][0] == ERR_UNKNOWN
    assert option(s, OPT_SET_META, meta_body(VOL, ["x"]) + b"junk")[0][0] == ERR_INVALID
    s.close()


def body(cluster, checks):
    checks.run("options: LIST, INFO, GO, ABORT, meta contexts", check_options, cluster)
    checks.run("commands: READ/WRITE/FLUSH/TRIM/ZERO/BLOCK_STATUS", check_commands, cluster)
    checks.run("errors (structured and simple)", check_errors, cluster)
    checks.run("multi-conn: 4 connections, one flush", check_multi_conn, cluster)
    checks.run("raw LIST/SET_META_CONTEXT, STRUCTURED_REPLY", check_raw_meta, cluster)


if __name__ == "__main__":
    sys.exit(standard_main([VOL], SIZE, body))
