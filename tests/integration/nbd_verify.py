#!/usr/bin/python3
"""Load generator and verifier over one NBD export, for the fault tests.

Keeps N asynchronous writes in flight (libnbd aio_pwrite) of mixed sizes (4 KiB..256 KiB,
4 KiB aligned, a share of them straddling 32 MiB object boundaries) at random offsets. The
bytes of write `seq` are a pure function of (seq, offset): every 4 KiB block starts with a
16-byte header (block offset, seq) followed by pseudo-random bytes seeded by seq, so any block
read back can be regenerated and checked.

The model is per 4 KiB block: the seq of the last acknowledged write covering it (absent: never
written, must read as zeros), plus the seqs of writes that were not acknowledged since then
(failed with an error, or lost with a dropped connection): such a write may or may not have
reached the disks, so the block may hold either. Writes in flight never overlap each other,
so an acknowledgement fixes the block's content: no ordering ambiguity.

Progress is recorded per second (acknowledged writes and bytes, errors); the "stall time" is
the longest gap between two acknowledgements (or from the last one to the end while writes
were waiting). The generator survives errors: failed writes are recorded and it keeps going;
a dropped connection is re-established (bounded); when it cannot be, the run ends with
`fatal` set.

Library:  v = Verifier(uri); v.start(); ...faults...; v.stop(); bad = v.verify()
CLI:      nbd_verify.py run --uri URI --seconds 30 [--inflight 8] [--state F] [--verify]
          nbd_verify.py verify --uri URI --state F
"""
import argparse
import collections
import json
import random
import struct
import sys
import threading
import time

import nbd

BLOCK = 4096
OBJECT = 32 * 1024 * 1024
HEADER = struct.Struct("<QQ")
ZERO_BLOCK = bytes(BLOCK)


def write_data(seq, offset, length):
    """The bytes of write `seq` at `offset`: regenerable from (seq, offset, length)."""
    data = bytearray(random.Random(seq).randbytes(length))
    for pos in range(0, length, BLOCK):
        HEADER.pack_into(data, pos, offset + pos, seq)
    return bytes(data)


class Write:
    __slots__ = ("seq", "offset", "length", "issued", "state", "done", "error")

    def __init__(self, seq, offset, length, issued):
        self.seq = seq
        self.offset = offset
        self.length = length
        self.issued = issued
        self.state = "inflight"  # then acked | failed | unknown
        self.done = None
        self.error = None


class Verifier:
    """One export, one generator thread. All times are time.monotonic()."""

    def __init__(self, uri, inflight=8, seed=1, min_len=BLOCK, max_len=256 * 1024,
                 straddle=0.2, area=None, reconnect_s=60.0, max_reconnects=50,
                 quarantine_s=10.0, log=None):
        self.uri = uri
        self.inflight = inflight
        self.rng = random.Random(seed)
        self.min_len = min_len
        self.max_len = max_len
        self.straddle = straddle
        self.area = area  # bytes at the start of the volume to write (None: all of it)
        self.reconnect_s = reconnect_s
        self.max_reconnects = max_reconnects
        self.quarantine_s = quarantine_s
        self.log = log or (lambda msg: print(f"nbd_verify: {msg}", flush=True))
        self.size = None
        self.next_seq = 1
        self.writes = {}  # seq -> Write (every write ever issued)
        self.acked = {}  # block -> seq of the last acknowledged write
        self.maybe = {}  # block -> set of unacknowledged seqs issued after that one
        self.busy = {}  # block -> seq of the write in flight on it
        self.quarantined = {}  # block -> until (lost writes that might still land)
        self.pending = {}  # cookie -> (Write, buffer)
        self.ack_times = []
        self.per_second = collections.defaultdict(lambda: [0, 0, 0])  # acked, bytes, errors
        self.t0 = None
        self.t_end = None
        self.reconnects = 0
        self.drops = []  # (time, reason)
        self.fatal = None
        self.fail_streak = 0  # consecutive failed writes: the generator backs off
        self.events = []  # (time, label) from mark()
        self._stop = threading.Event()
        self._thread = None
        self._h = None
        self._lock = threading.Lock()

    # ---- connection ----

    def _connect(self):
        h = nbd.NBD()
        h.connect_uri(self.uri)
        size = h.get_size()
        if self.size is None:
            self.size = size
            if self.area is None or self.area > size:
                self.area = size
        return h

    def _reconnect(self):
        """After a drop: retries until connected, stopped, or out of time/attempts."""
        if self.reconnects >= self.max_reconnects:
            self.fatal = f"gave up after {self.reconnects} reconnects"
            return False
        self.reconnects += 1
        deadline = time.monotonic() + self.reconnect_s
        last = None
        while time.monotonic() < deadline and not self._stop.is_set():
            try:
                self._h = self._connect()
                self.log(f"reconnected (#{self.reconnects})")
                return True
            except nbd.Error as e:
                last = e
                time.sleep(0.5)
        if not self._stop.is_set():
            self.fatal = f"could not reconnect within {self.reconnect_s}s: {last}"
        return False

    def _drop(self, reason):
        """The connection is gone: every write in flight has an unknown outcome."""
        now = time.monotonic()
        self.drops.append((now, str(reason)))
        self.log(f"connection dropped: {reason}")
        for w, _ in self.pending.values():
            self._finish(w, "unknown", now, str(reason))
        self.pending.clear()
        self._h = None  # libnbd closes a handle when it is garbage collected

    # ---- the model ----

    def _blocks(self, w):
        return range(w.offset // BLOCK, (w.offset + w.length) // BLOCK)

    def _finish(self, w, state, now, error=None):
        with self._lock:
            w.state = state
            w.done = now
            w.error = error
            for b in self._blocks(w):
                if self.busy.get(b) == w.seq:
                    del self.busy[b]
                if state == "acked":
                    self.acked[b] = w.seq
                    self.maybe.pop(b, None)
                else:
                    self.maybe.setdefault(b, set()).add(w.seq)
                    if state == "unknown":
                        self.quarantined[b] = now + self.quarantine_s
            sec = self.per_second[int(now - self.t0)]
            self.fail_streak = 0 if state == "acked" else self.fail_streak + 1
            if state == "acked":
                self.ack_times.append(now)
                sec[0] += 1
                sec[1] += w.length
            else:
                sec[2] += 1

    def _pick(self):
        """A random (offset, length) not overlapping writes in flight or quarantined."""
        now = time.monotonic()
        for _ in range(50):
            length = self.rng.choice((1, 1, 2, 4, 8, 16, 32, 64)) * BLOCK
            length = max(self.min_len, min(self.max_len, length))
            if self.area > OBJECT and self.rng.random() < self.straddle:
                boundary = self.rng.randrange(1, (self.area - 1) // OBJECT + 1) * OBJECT
                length = max(length, 2 * BLOCK)
                offset = boundary - self.rng.randrange(1, length // BLOCK) * BLOCK
            else:
                offset = self.rng.randrange(0, (self.area - length) // BLOCK + 1) * BLOCK
            if offset < 0 or offset + length > self.area:
                continue
            blocks = range(offset // BLOCK, (offset + length) // BLOCK)
            if any(b in self.busy or self.quarantined.get(b, 0) > now for b in blocks):
                continue
            return offset, length
        return None

    def _issue(self):
        picked = self._pick()
        if picked is None:
            return False
        offset, length = picked
        seq = self.next_seq
        self.next_seq += 1
        w = Write(seq, offset, length, time.monotonic())
        data = write_data(seq, offset, length)
        with self._lock:
            self.writes[seq] = w
            for b in self._blocks(w):
                self.busy[b] = seq
        try:
            cookie = self._h.aio_pwrite(data, offset)
        except nbd.Error as e:
            self._finish(w, "unknown" if self._dead() else "failed", time.monotonic(), str(e))
            if self._dead():
                self._drop(e)
            return False
        self.pending[cookie] = (w, data)
        return True

    def _dead(self):
        h = self._h
        return h is None or h.aio_is_dead() or h.aio_is_closed()

    def _reap(self):
        for cookie in list(self.pending):
            w, _ = self.pending[cookie]
            try:
                done = self._h.aio_command_completed(cookie)
            except nbd.Error as e:
                del self.pending[cookie]
                self._finish(w, "failed", time.monotonic(), str(e))
                continue
            if done:
                del self.pending[cookie]
                self._finish(w, "acked", time.monotonic())

    # ---- the generator thread ----

    def _run(self):
        try:
            while not self._stop.is_set():
                if self._h is None and not self._reconnect():
                    break
                # While writes fail, one at a time and slower: a failing volume answers at
                # once, and thousands of errors per second would only burn the CPU.
                room = self.inflight - len(self.pending)
                if self.fail_streak:
                    room = min(room, 1)
                    self._stop.wait(min(0.2, 0.01 * self.fail_streak))
                for _ in range(room):
                    if self._stop.is_set() or not self._issue():
                        break
                if self._h is None:
                    continue
                try:
                    self._h.poll(100)
                    self._reap()
                except nbd.Error as e:
                    self._drop(e)
                    continue
                if self._dead():
                    self._drop("connection closed")
        except Exception as e:  # noqa: BLE001 - reported through fatal
            self.fatal = f"generator crashed: {e!r}"
            self.log(self.fatal)

    def start(self):
        """Connects (raises if it cannot) and starts the generator thread."""
        self._h = self._connect()
        self.t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="nbd_verify", daemon=True)
        self._thread.start()
        return self

    def mark(self, label):
        """Records an event (a fault) so that reports can measure from it."""
        now = time.monotonic()
        self.events.append((now, label))
        return now

    def stop(self, drain_s=30.0):
        """Stops issuing, waits (bounded) for the writes in flight, then closes."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        deadline = time.monotonic() + drain_s
        while self.pending and self._h is not None and time.monotonic() < deadline:
            try:
                self._h.poll(100)
                self._reap()
            except nbd.Error as e:
                self._drop(e)
                break
            if self._dead():
                self._drop("connection closed")
                break
        if self.pending:
            self._drop(f"{len(self.pending)} writes still in flight after {drain_s}s")
        if self._h is not None:
            try:
                self._h.shutdown()
            except nbd.Error:
                pass
            self._h = None
        self.t_end = time.monotonic()

    def run_for(self, seconds):
        self.start()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and self._thread.is_alive():
            time.sleep(0.2)
        self.stop()

    def alive(self):
        return self._thread is not None and self._thread.is_alive()

    # ---- measurements ----

    def acked_count(self):
        return len(self.ack_times)

    def longest_gap(self, since=None, until=None):
        """The longest time without an acknowledgement within [since, until] (seconds)."""
        since = self.t0 if since is None else since
        until = (self.t_end or time.monotonic()) if until is None else until
        prev, gap = since, 0.0
        for t in self.ack_times:
            if t < since:
                continue
            if t > until:
                break
            gap = max(gap, t - prev)
            prev = t
        return max(gap, until - prev)

    def wait_acks(self, n, timeout_s):
        """Waits until n more writes are acknowledged; the time it took, or None."""
        start, base = time.monotonic(), len(self.ack_times)
        while time.monotonic() - start < timeout_s:
            if len(self.ack_times) >= base + n:
                return time.monotonic() - start
            if not self.alive():
                return None
            time.sleep(0.05)
        return None

    def acks_after(self, t):
        return sum(1 for x in self.ack_times if x > t)

    def all_writes(self):
        with self._lock:
            return list(self.writes.values())

    def writes_acked_issued_after(self, t):
        return [w for w in self.all_writes() if w.state == "acked" and w.issued > t]

    def summary(self):
        writes = self.all_writes()
        states = collections.Counter(w.state for w in writes)
        elapsed = (self.t_end or time.monotonic()) - self.t0
        acked_bytes = sum(w.length for w in writes if w.state == "acked")
        return {"seconds": round(elapsed, 1), "issued": len(self.writes),
                "acked": states["acked"], "failed": states["failed"],
                "unknown": states["unknown"], "ackedMiB": round(acked_bytes / 2**20, 1),
                "stall_s": round(self.longest_gap(), 2), "reconnects": self.reconnects,
                "fatal": self.fatal}

    def progress(self):
        """Per-second lines: second, acknowledged writes, MiB, errors."""
        last = max(self.per_second) if self.per_second else -1
        return [(s, *self.per_second.get(s, (0, 0, 0))) for s in range(last + 1)]

    def progress_text(self):
        return " ".join(f"{a}{'!' + str(e) if e else ''}" for _, a, _, e in self.progress())

    # ---- verification ----

    def expected(self, block):
        """The seqs the block may hold (0 = zeros)."""
        return {self.acked.get(block, 0)} | self.maybe.get(block, set())

    def verify(self, uri=None, chunk=1024 * 1024, max_report=20):
        """Reads every chunk holding a written block; returns the list of mismatches
        [(offset, expected seqs, what was found)]. Unwritten blocks must read as zeros."""
        blocks = set(self.acked) | set(self.maybe)
        chunks = sorted({b * BLOCK // chunk for b in blocks})
        h = nbd.NBD()
        h.connect_uri(uri or self.uri)
        cache = collections.OrderedDict()
        bad = []
        checked = 0
        try:
            for c in chunks:
                start = c * chunk
                length = min(chunk, self.size - start)
                data = h.pread(length, start)
                for pos in range(0, length, BLOCK):
                    b = (start + pos) // BLOCK
                    found = self._check_block(b, data[pos:pos + BLOCK], cache)
                    checked += 1
                    if found is not None:
                        bad.append((b * BLOCK, sorted(self.expected(b)), found))
        finally:
            try:
                h.shutdown()
            except nbd.Error:
                pass
        self.verified_blocks = checked
        for off, exp, found in bad[:max_report]:
            self.log(f"MISMATCH at {off} (object {off // OBJECT}): expected seq {exp}, {found}")
        return bad

    def _check_block(self, b, got, cache):
        """None when the block holds one of its expected contents, else a description."""
        exp = self.expected(b)
        if got == ZERO_BLOCK:
            return None if 0 in exp else "found zeros"
        off, seq = HEADER.unpack_from(got)
        if off != b * BLOCK or seq not in self.writes:
            return f"found garbage (header offset {off}, seq {seq})"
        if seq not in exp:
            return f"found seq {seq} ({self.writes[seq].state})"
        w = self.writes[seq]
        data = cache.get(seq)
        if data is None:
            data = write_data(seq, w.offset, w.length)
            cache[seq] = data
            if len(cache) > 64:
                cache.popitem(last=False)
        else:
            cache.move_to_end(seq)
        pos = b * BLOCK - w.offset
        return None if data[pos:pos + BLOCK] == got else f"seq {seq} header but wrong bytes"

    # ---- state file (CLI: run and verify in separate processes) ----

    def save(self, path):
        state = {"uri": self.uri, "size": self.size,
                 "writes": [[w.seq, w.offset, w.length, w.state] for w in self.writes.values()],
                 "acked": self.acked, "maybe": {b: sorted(s) for b, s in self.maybe.items()}}
        with open(path, "w") as f:
            json.dump(state, f)

    @classmethod
    def load(cls, path):
        with open(path) as f:
            state = json.load(f)
        v = cls(state["uri"])
        v.size = state["size"]
        for seq, offset, length, st in state["writes"]:
            w = Write(seq, offset, length, 0.0)
            w.state = st
            v.writes[seq] = w
        v.acked = {int(b): s for b, s in state["acked"].items()}
        v.maybe = {int(b): set(s) for b, s in state["maybe"].items()}
        return v


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="generate load, optionally verify")
    run.add_argument("--uri", required=True)
    run.add_argument("--seconds", type=float, default=30)
    run.add_argument("--inflight", type=int, default=8)
    run.add_argument("--seed", type=int, default=1)
    run.add_argument("--area", type=int, help="bytes at the volume start to write")
    run.add_argument("--state", help="save the model here (for a later verify)")
    run.add_argument("--verify", action="store_true", help="verify after the run")
    ver = sub.add_parser("verify", help="verify against a saved model")
    ver.add_argument("--uri", help="default: the one in the state file")
    ver.add_argument("--state", required=True)
    a = ap.parse_args()
    if a.cmd == "run":
        v = Verifier(a.uri, inflight=a.inflight, seed=a.seed, area=a.area)
        v.run_for(a.seconds)
        print(json.dumps(v.summary()))
        print("per second:", v.progress_text())
        if a.state:
            v.save(a.state)
        if v.fatal:
            return 1
    else:
        v = Verifier.load(a.state)
    if a.cmd == "verify" or a.verify:
        bad = v.verify(a.uri)
        print(f"verified {v.verified_blocks} blocks: {len(bad)} mismatches")
        return 1 if bad else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
