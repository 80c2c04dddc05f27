"""Open a capture file by content and read it as :class:`PacketBatch` es.

Formats are recognised by magic number, never by file name: classic pcap
(microsecond or nanosecond, either byte order), pcapng, and either of them
gzip-compressed.

Plain files are memory-mapped read-only; every batch's ``buf`` is a zero-copy
uint8 view of the whole file. Gzip files are decompressed in chunks of
``GZIP_CHUNK`` bytes; a batch's ``buf`` is then its chunk, **valid only until
the next batch is requested** (the caller must be done with a batch before it
asks for the next; memory stays bounded whatever the file size).

Damage (absurd lengths, a truncated last record, a truncated or corrupt gzip
stream...) ends reading: the packets before it are still yielded, and
``CaptureReader.damage`` tells where and why. There is deliberately no
attempt to resynchronise after damage.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import stat
import zlib
from collections.abc import Generator, Iterator
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Literal

import numpy as np
import numpy.typing as npt

from sensor.errors import InputError
from sensor.sources.batch import Damage, PacketBatch
from sensor.sources.pcap import (
    PCAP_MAGICS,
    PcapParser,
    RecordParser,
    Records,
    parse_pcap_header,
)
from sensor.sources.pcapng import SHB_MAGIC, PcapngParser, shb_byte_order

GZIP_CHUNK = 32 * 1024 * 1024  # decompressed bytes per chunk
_GZIP_READ = 1024 * 1024  # compressed bytes per read
# Bytes walked per parse call: bounds the Python list of positions while
# letting the walk run long uninterrupted stretches.
MIN_WINDOW = 64 * 1024
MAX_WINDOW = 16 * 1024 * 1024

_GZIP_MAGIC = b"\x1f\x8b"
_SNIFF = 64  # enough for a pcap header or the start of an SHB

_U8 = npt.NDArray[np.uint8]


def capture_kind(head: bytes) -> Literal["pcap", "pcapng"] | None:
    """Which capture format the (decompressed) first bytes of a file start, if any."""
    if head[:4] in PCAP_MAGICS:
        return "pcap"
    if head[:4] == SHB_MAGIC:
        return "pcapng"
    return None


def _sniff_kind(head: bytes, name: str) -> Literal["pcap", "pcapng"]:
    kind = capture_kind(head)
    if kind is not None:
        return kind
    if not head:
        raise InputError(f"{name}: empty file, not a capture")
    raise InputError(f"{name}: not a pcap/pcapng capture (starts with 0x{head[:4].hex()})")


def _make_parser(kind: str, head: bytes, name: str) -> RecordParser:
    if kind == "pcap":
        return PcapParser(parse_pcap_header(head, name))
    return PcapngParser(shb_byte_order(head, name))


class _Batcher:
    """Collects parsed records into batches of at most ``size`` packets."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.parts: list[Records] = []
        self.count = 0

    def add(self, recs: Records) -> None:
        if len(recs):
            self.parts.append(recs)
            self.count += len(recs)

    def take(self, buf: _U8, consumed: int | None, flush: bool) -> Iterator[PacketBatch]:
        """Yield full batches (and the remainder with ``flush``).

        ``bytes_consumed`` is ``consumed`` if given, else the end of the
        batch's last packet (plain files: that is the input offset).
        """
        while self.count >= self.size or (flush and self.count):
            allr = Records.concat(self.parts)
            n = min(self.size, len(allr))
            head, rest = allr.slice(0, n), allr.slice(n, len(allr))
            self.parts = [rest] if len(rest) else []
            self.count = len(rest)
            done = consumed if consumed is not None else int(head.offsets[-1] + head.caplens[-1])
            yield PacketBatch(
                buf, head.offsets, head.caplens, head.origlens, head.ts_ns, head.linktypes, done
            )


def _window(batch_packets: int, avg: float) -> int:
    return int(min(MAX_WINDOW, max(MIN_WINDOW, batch_packets * avg * 1.05)))


class CaptureReader:
    """A capture file opened by :func:`open_capture`."""

    def __init__(self, path: str, kind: str, head: bytes, gz: bool, size: int) -> None:
        self.path = path
        self.format = kind + (".gz" if gz else "")
        self.damage: Damage | None = None
        self.bytes_total: int | None = size
        self._kind = kind
        self._head = head
        self._gz = gz
        self._file: BinaryIO | None = open(path, "rb")  # noqa: SIM115 - closed in close()
        self._mm: mmap.mmap | None = None

    # -- public -----------------------------------------------------------

    def batches(self, batch_packets: int = 65536) -> Iterator[PacketBatch]:
        """Yield the packets in file order, ``batch_packets`` at most per batch.

        Never raises for damage: reading stops and :attr:`damage` is set.
        """
        if batch_packets < 1:
            raise ValueError("batch_packets must be >= 1")
        if self._file is None:
            raise ValueError(f"{self.path}: capture is closed")
        self.damage = None
        parser = _make_parser(self._kind, self._head, self.path)
        if self._gz:
            yield from self._gzip_batches(parser, batch_packets)
        else:
            yield from self._plain_batches(parser, batch_packets)

    def close(self) -> None:
        if self._mm is not None:
            # batches may still refer to it: then it is unmapped when they are freed
            with contextlib.suppress(BufferError):
                self._mm.close()
            self._mm = None
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> CaptureReader:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- plain files --------------------------------------------------------

    def _plain_batches(self, parser: RecordParser, batch_packets: int) -> Iterator[PacketBatch]:
        assert self._file is not None
        size = os.fstat(self._file.fileno()).st_size
        if size <= parser.header_len:
            return
        if self._mm is None:
            self._mm = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
            if hasattr(mmap, "MADV_SEQUENTIAL"):  # read-ahead, early page reuse
                self._mm.madvise(mmap.MADV_SEQUENTIAL)
        buf: _U8 = np.frombuffer(self._mm, dtype=np.uint8)
        mv = memoryview(self._mm)
        try:
            res = yield from _parse_span(
                parser, buf, mv, parser.header_len, size, True, batch_packets, None
            )
        finally:
            mv.release()
        if isinstance(res, tuple):
            self.damage = Damage(self.path, res[0], res[1])

    # -- gzip -----------------------------------------------------------

    def _gzip_batches(self, parser: RecordParser, batch_packets: int) -> Iterator[PacketBatch]:
        assert self._file is not None
        self._file.seek(0)
        carry = b""
        base = 0  # decompressed stream offset of carry[0]
        skip = parser.header_len
        for piece, cpos, trouble in _gunzip(self._file, GZIP_CHUNK):
            data = carry + piece if carry else piece
            final = trouble is not None
            if skip:  # the global header of a pcap file
                k = min(skip, len(data))
                data, skip, base = data[k:], skip - k, base + k
            buf: _U8 = np.frombuffer(data, dtype=np.uint8)
            mv = memoryview(data)
            res = yield from _parse_span(parser, buf, mv, 0, len(data), final, batch_packets, cpos)
            if isinstance(res, tuple):
                reason = f"{res[1]} ({trouble})" if trouble else res[1]
                self.damage = Damage(self.path, base + res[0], reason)
                return
            if final:
                if trouble:  # stream ended or broke exactly at a record boundary
                    self.damage = Damage(self.path, base + res, trouble)
                return
            carry = data[res:]
            base += res


def _parse_span(
    parser: RecordParser,
    buf: _U8,
    mv: memoryview,
    pos: int,
    end: int,
    final: bool,
    batch_packets: int,
    consumed: int | None,
) -> Generator[PacketBatch, None, int | tuple[int, str]]:
    """Parse ``buf[pos:end]`` in windows, yielding batches as they fill.

    Returns where parsing stopped (first byte of an incomplete record, or
    ``end``), or ``(offset, reason)`` on damage. The last, partial batch is
    flushed before returning. ``consumed``: see :meth:`_Batcher.take`.
    """
    bat = _Batcher(batch_packets)
    window = _window(batch_packets, 256.0)
    res: int | tuple[int, str] = pos
    while pos < end:
        walk_end = min(end, pos + window)
        r = parser.parse(buf, mv, pos, walk_end, end, final)
        bat.add(r.records)
        yield from bat.take(buf, consumed, flush=False)
        if r.damage is not None:
            res = r.damage
            break
        if r.next_pos <= pos:
            if walk_end >= end:
                break  # needs bytes beyond end (not final)
            window *= 2  # a record header straddled the window end
            continue
        if len(r.records):
            window = _window(batch_packets, (r.next_pos - pos) / len(r.records))
        pos = res = r.next_pos
    if consumed is None:  # plain file: the last batch reaches where parsing stopped
        consumed = res if isinstance(res, int) else res[0]
    yield from bat.take(buf, consumed, flush=True)
    return res


def _gunzip(f: BinaryIO, chunk: int) -> Iterator[tuple[bytes, int, str | None]]:
    """Decompress ``f`` into pieces of at most ``chunk`` bytes.

    Yields ``(piece, compressed offset, trouble)``; the last piece has
    ``trouble`` "" at a clean end, or a reason when the stream is truncated
    or corrupt. Concatenated gzip members are read as one stream; trailing
    zero padding is tolerated, other trailing bytes are "corrupt".
    """
    d = zlib.decompressobj(31)
    while True:
        out: list[bytes] = []
        size = 0
        trouble: str | None = None
        while size < chunk:
            if d.eof:
                data = d.unused_data or f.read(_GZIP_READ)
                while data and not data.strip(b"\x00"):
                    data = f.read(_GZIP_READ)
                if not data:
                    trouble = ""
                    break
                d = zlib.decompressobj(31)  # next gzip member
            elif d.unconsumed_tail:
                data = d.unconsumed_tail
            else:
                data = f.read(_GZIP_READ)
                if not data:
                    trouble = "gzip stream truncated"
                    break
            try:
                piece = d.decompress(data, chunk - size)
            except zlib.error as e:
                trouble = f"gzip stream corrupt: {e}"
                break
            out.append(piece)
            size += len(piece)
        yield b"".join(out), f.tell(), trouble
        if trouble is not None:
            return


def open_capture(path: str | Path) -> CaptureReader:
    """Open a pcap/pcapng (optionally gzip) file.

    Raises :class:`InputError` (one line) if the file cannot be read or is
    not a capture at all. A capture with only its header yields no batches.
    """
    name = str(path)
    try:
        st = os.stat(name)
        if not stat.S_ISREG(st.st_mode):
            raise InputError(f"{name}: cannot read: not a regular file")
        size = st.st_size
        with open(name, "rb") as f:
            head = f.read(_SNIFF)
            gz = head[:2] == _GZIP_MAGIC
            if gz:
                f.seek(0)
                head = _gunzip_head(f, name)
    except OSError as e:
        raise InputError(f"{name}: cannot read: {e.strerror or e}") from None
    kind = _sniff_kind(head, name)
    _make_parser(kind, head, name)  # validates the header
    try:
        return CaptureReader(name, kind, head, gz, size)
    except OSError as e:
        raise InputError(f"{name}: cannot read: {e.strerror or e}") from None


def _gunzip_head(f: BinaryIO, name: str) -> bytes:
    d = zlib.decompressobj(31)
    out = b""
    try:
        while len(out) < _SNIFF:
            data = d.unconsumed_tail or f.read(64 * 1024)
            if not data:
                break
            out += d.decompress(data, _SNIFF - len(out))
            if d.eof:
                break
    except zlib.error as e:
        raise InputError(f"{name}: corrupt gzip file: {e}") from None
    if not out:
        raise InputError(f"{name}: gzip file with no data")
    return out
