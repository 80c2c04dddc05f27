"""A durable on-disk queue of records (bytes) in msgpack segment files.

Layout of a spool directory::

    seg-000000000001.mpk   records, each one msgpack ``bin`` object, appended in order
    seg-000000000002.mpk   (a new segment per process start and every ``segment_bytes``)
    ack                    msgpack [segment, offset, index] of the first unacknowledged record

Durability (``fsync`` policy):

* every append is handed to the kernel at once (one ``write``), so a killed process
  (``kill -9``) loses nothing it accepted;
* ``"interval"`` (default) also fsyncs the open segment and the ack file at most every
  ``fsync_interval_s`` (1 s) and on flush/close: a power loss can lose that last window;
* ``"always"`` fsyncs after every append and ack (slow, for low volumes);
* ``"never"`` leaves it to the OS.

Overflow: when the segments exceed ``max_bytes``, whole oldest segments are deleted,
acknowledged or not; the records lost are counted in ``dropped`` and logged by the
owner. A torn record at the end of a segment (crash mid-write) is skipped.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import msgpack

from sensor.errors import InputError

FSYNC_POLICIES = ("interval", "always", "never")


@dataclass(frozen=True, slots=True)
class Cursor:
    seg: int
    offset: int
    index: int   # records before ``offset`` in this segment


class Spool:
    def __init__(self, directory: Path, *, segment_bytes: int = 4 << 20,
                 max_bytes: int = 256 << 20, fsync: str = "interval",
                 fsync_interval_s: float = 1.0) -> None:
        if fsync not in FSYNC_POLICIES:
            raise InputError(f"spool fsync policy must be one of {', '.join(FSYNC_POLICIES)}")
        self.dir = Path(directory)
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InputError(f"cannot create spool directory {self.dir}: {e.strerror}") from None
        # one process per spool: a second sensor on the same spool would interleave acks
        self._lockfd = os.open(self.dir / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lockfd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._lockfd)
            raise InputError(f"spool {self.dir} is in use by another process") from None
        self.max_bytes = max(max_bytes, 4096)
        self.segment_bytes = max(1024, min(segment_bytes, self.max_bytes // 4))
        self.fsync = fsync
        self.fsync_interval_s = fsync_interval_s
        self._lock = threading.Condition()
        self.dropped = 0
        self._counts: dict[int, int] = {}
        self._sizes: dict[int, int] = {}
        for p in sorted(self.dir.glob("seg-*.mpk")):
            seq = int(p.stem[4:])
            self._sizes[seq] = p.stat().st_size
            self._counts[seq] = self._count(p)
        self._ack = self._load_ack()
        # the first segment still on disk bounds the ack (older ones were dropped)
        if self._counts and self._ack.seg < min(self._counts):
            self._ack = Cursor(min(self._counts), 0, 0)
        self.replayed = self.pending()
        self._read = self._ack
        self._wseq = max([*self._counts, self._ack.seg, 0]) + 1
        self._wfd = -1
        self._open_segment(self._wseq)
        self._last_sync = time.monotonic()

    # -- helpers ---------------------------------------------------------------------
    def _path(self, seq: int) -> Path:
        return self.dir / f"seg-{seq:012d}.mpk"

    @staticmethod
    def _count(path: Path) -> int:
        n = 0
        up = msgpack.Unpacker(raw=False, max_buffer_size=1 << 30)
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                up.feed(chunk)
                try:
                    for _ in up:
                        n += 1
                except (ValueError, msgpack.UnpackException):
                    break
        return n

    def _load_ack(self) -> Cursor:
        try:
            raw = (self.dir / "ack").read_bytes()
            seg, off, idx = msgpack.unpackb(raw)
            return Cursor(int(seg), int(off), int(idx))
        except (OSError, ValueError, TypeError, msgpack.UnpackException):
            return Cursor(min(self._counts) if self._counts else 0, 0, 0)

    def _open_segment(self, seq: int) -> None:
        if self._wfd >= 0:
            if self.fsync != "never":
                os.fsync(self._wfd)
            os.close(self._wfd)
        self._wseq = seq
        self._wfd = os.open(self._path(seq), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._counts.setdefault(seq, 0)
        self._sizes.setdefault(seq, 0)

    def _sync_due(self) -> bool:
        """Whether the fsync policy asks for a sync now (the caller does it)."""
        if self.fsync == "always":
            return True
        now = time.monotonic()
        if self.fsync == "interval" and now - self._last_sync >= self.fsync_interval_s:
            self._last_sync = now
            return True
        return False

    def _write_ack(self, sync: bool) -> None:
        tmp = self.dir / "ack.tmp"
        data = msgpack.packb([self._ack.seg, self._ack.offset, self._ack.index])
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data)
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.dir / "ack")

    # -- producer side -----------------------------------------------------------------
    def append(self, payload: bytes) -> None:
        data = msgpack.packb(payload, use_bin_type=True)
        with self._lock:
            if self._sizes[self._wseq] + len(data) > self.segment_bytes \
                    and self._counts[self._wseq]:
                self._open_segment(self._wseq + 1)
            os.write(self._wfd, data)
            self._sizes[self._wseq] += len(data)
            self._counts[self._wseq] += 1
            if self._sync_due():
                os.fsync(self._wfd)
            if sum(self._sizes.values()) > self.max_bytes:
                self._drop_oldest()
            self._lock.notify_all()

    def _drop_oldest(self) -> None:
        while sum(self._sizes.values()) > self.max_bytes and len(self._sizes) > 1:
            seq = min(self._sizes)
            lost = self._counts[seq] - (self._ack.index if self._ack.seg == seq else 0)
            if self._ack.seg <= seq:
                self.dropped += max(lost, 0)
                nxt = min(s for s in self._sizes if s > seq)
                self._ack = Cursor(nxt, 0, 0)
                self._write_ack(sync=False)
            if self._read.seg <= seq:
                self._read = self._ack
            self._remove(seq)

    def _remove(self, seq: int) -> None:
        self._sizes.pop(seq, None)
        self._counts.pop(seq, None)
        self._path(seq).unlink(missing_ok=True)

    # -- consumer side -----------------------------------------------------------------
    def wait(self, timeout: float) -> None:
        """Block until something is appended (or ``timeout`` passes)."""
        with self._lock:
            if self._read_exhausted():
                self._lock.wait(timeout)

    def _read_exhausted(self) -> bool:
        return self._read.seg == self._wseq and self._read.offset >= self._sizes[self._wseq]

    def read(self, max_records: int = 500, max_bytes: int = 1 << 20) -> tuple[list[bytes], Cursor]:
        """Up to ``max_records`` records after the read cursor; advances it. Returns the
        records and the cursor just after them (pass it to :meth:`ack`). Only one thread
        reads; file reads happen outside the lock so appends are not held up."""
        out: list[bytes] = []
        nbytes = 0
        while len(out) < max_records and nbytes < max_bytes:
            with self._lock:
                cur = self._read
                size = self._sizes.get(cur.seg)
                later = [s for s in self._sizes if s > cur.seg]
                if size is None or (cur.offset >= size and cur.seg != self._wseq):
                    if not later:   # dropped or never existed, nothing after it
                        break
                    self._read = Cursor(min(later), 0, 0)
                    continue
                if cur.offset >= size:
                    break           # caught up with the writer
                finished = cur.seg != self._wseq
            try:   # segments are append-only: bytes below ``size`` do not change
                recs, used = self._read_seg(cur, max_records - len(out), max_bytes, size)
            except FileNotFoundError:
                continue            # dropped meanwhile: the loop moves on
            with self._lock:
                if self._read != cur:
                    continue        # rewound or dropped meanwhile: start over from there
                if not recs:        # torn or corrupt tail of a finished segment: skip it
                    if not finished:
                        break
                    self._read = Cursor(cur.seg, size, cur.index)
                    continue
                self._read = Cursor(cur.seg, cur.offset + used, cur.index + len(recs))
            out.extend(recs)
            nbytes += sum(len(r) for r in recs)
        with self._lock:
            return out, self._read

    def _read_seg(self, cur: Cursor, limit: int, max_bytes: int,
                  size: int) -> tuple[list[bytes], int]:
        want = min(max_bytes, size - cur.offset)
        while True:
            with open(self._path(cur.seg), "rb") as fh:
                fh.seek(cur.offset)
                data = fh.read(want)
            up = msgpack.Unpacker(raw=False, max_buffer_size=max(len(data), 1))
            up.feed(data)
            recs: list[bytes] = []
            used = 0
            try:
                while len(recs) < limit:
                    obj = up.unpack()
                    used = up.tell()
                    if isinstance(obj, bytes):
                        recs.append(obj)
            except msgpack.OutOfData:
                pass
            except (ValueError, msgpack.UnpackException):
                return recs, used if recs else 0
            if recs or want >= size - cur.offset:
                return recs, used
            want = min(want * 4, size - cur.offset)   # one record larger than the chunk

    def rewind(self) -> None:
        """Read again from the first unacknowledged record (after a failed delivery)."""
        with self._lock:
            self._read = self._ack

    def ack(self, upto: Cursor) -> None:
        """Everything before ``upto`` is delivered: persist that, delete spent segments."""
        with self._lock:
            if (upto.seg, upto.offset) <= (self._ack.seg, self._ack.offset):
                return
            if upto.seg not in self._sizes:   # dropped meanwhile; the drop moved the ack
                return
            self._ack = upto
            for seq in [s for s in self._sizes if s < upto.seg]:
                self._remove(seq)
            self._write_ack(self._sync_due())
            self._lock.notify_all()

    def pending(self) -> int:
        """Records appended and not yet acknowledged."""
        with self._lock:
            n = sum(c for s, c in self._counts.items() if s >= self._ack.seg)
            return max(n - self._ack.index, 0)

    def flush(self) -> None:
        """fsync the open segment and the ack file (policy permitting)."""
        with self._lock:
            if self.fsync != "never" and self._wfd >= 0:
                os.fsync(self._wfd)
                self._write_ack(sync=True)
                self._last_sync = time.monotonic()

    def close(self) -> None:
        with self._lock:
            if self._wfd < 0:
                return
            self.flush()
            os.close(self._wfd)
            self._wfd = -1
            # drop the empty segment this process opened, and spent ones
            if self._counts.get(self._wseq) == 0:
                self._remove(self._wseq)
            os.close(self._lockfd)   # releases the flock
            self._lock.notify_all()
