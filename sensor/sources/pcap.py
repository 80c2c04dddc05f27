"""Classic libpcap files: global header and the record-header walk.

The walk is the sequential part of reading a capture (each record's length
says where the next starts), so it collects only the position of each
record's caplen field; everything else (timestamps, origlens, validation) is
gathered afterwards with numpy over the same buffer, without copying packet
bytes. The walk runs in the small optional C helper ``sensor._walk`` when it
was built, else in the pure-Python loops here, which define its behaviour.

Parsers here and in :mod:`sensor.sources.pcapng` share one interface
(:class:`RecordParser`): ``parse`` looks at ``buf[start:end]``, walks headers
that lie in ``[start, walk_end)`` and returns the complete records, where to
resume, and damage if any.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from sensor.errors import InputError
from sensor.nprows import gather_rows

try:  # built by setup.py when a C compiler is present; the Python walks are the fallback
    import sensor._walk as _cwalk
except ImportError:  # pragma: no cover - depends on the install
    _cwalk = None  # type: ignore[assignment]

# Larger than any sane snaplen (libpcap's MAXIMUM_SNAPLEN); bigger is damage.
MAX_CAPLEN = 262144

PCAP_HEADER_LEN = 24
_REC_HDR = 16

# magic as read little-endian -> (byte order, ns resolution)
_MAGICS: dict[int, tuple[str, bool]] = {
    0xA1B2C3D4: ("<", False),
    0xD4C3B2A1: (">", False),
    0xA1B23C4D: ("<", True),
    0x4D3CB2A1: (">", True),
}
PCAP_MAGICS = frozenset(m.to_bytes(4, "little") for m in _MAGICS)  # as the file starts

# LinkType field: low 16 bits are the LINKTYPE_ value; bits 16-25 reserved,
# bit 26 says the top 4 bits hold the FCS length in 16-bit words
# (libpcap LT_LINKTYPE / LT_FCS_LENGTH_PRESENT / LT_FCS_LENGTH).
LINKTYPE_MASK = 0x0000FFFF

_I64 = npt.NDArray[np.int64]
_I32 = npt.NDArray[np.int32]
_U8 = npt.NDArray[np.uint8]

_EMPTY64: _I64 = np.zeros(0, np.int64)
_EMPTY32: _I32 = np.zeros(0, np.int32)


@dataclass(slots=True)
class Records:
    """Complete records found in one parse call (offsets index ``buf``)."""

    offsets: _I64
    caplens: _I32
    origlens: _I32
    ts_ns: _I64
    linktypes: _I32

    def __len__(self) -> int:
        return int(self.offsets.shape[0])

    @classmethod
    def empty(cls) -> Records:
        return cls(_EMPTY64, _EMPTY32, _EMPTY32, _EMPTY64, _EMPTY32)

    def slice(self, a: int, b: int) -> Records:
        return Records(
            self.offsets[a:b],
            self.caplens[a:b],
            self.origlens[a:b],
            self.ts_ns[a:b],
            self.linktypes[a:b],
        )

    @classmethod
    def concat(cls, parts: list[Records]) -> Records:
        if len(parts) == 1:
            return parts[0]
        return cls(
            np.concatenate([p.offsets for p in parts]),
            np.concatenate([p.caplens for p in parts]),
            np.concatenate([p.origlens for p in parts]),
            np.concatenate([p.ts_ns for p in parts]),
            np.concatenate([p.linktypes for p in parts]),
        )


@dataclass(slots=True)
class Parsed:
    """Result of one parse call.

    ``next_pos`` is where the next call must start (the first record not
    returned). ``damage`` is ``(offset in buf, reason)``: reading must stop.
    """

    records: Records
    next_pos: int
    damage: tuple[int, str] | None = None


class RecordParser(Protocol):
    header_len: int

    def parse(
        self, buf: _U8, mv: memoryview, start: int, walk_end: int, end: int, final: bool
    ) -> Parsed:
        """Parse records starting at ``start``; ``mv`` is ``buf`` as a memoryview.

        Record headers that begin in ``[start, walk_end)`` are walked; a record
        is returned only if it ends by ``end``. With ``final`` (no more bytes
        will follow ``end``) an incomplete record is damage, otherwise it is
        left for the next call. ``start`` must be a record boundary.
        """
        ...


def walk(mv: memoryview, start: int, walk_end: int, order: str,
         use_c: bool | None = None) -> npt.NDArray[np.int64]:
    """Positions of caplen fields (record start + 8) of the records whose caplen field
    lies in ``[0, walk_end)``, then the position of the first record not walked.

    ``use_c`` None: the C helper when built. Both give the same positions.
    """
    return run_walk("pcap_walk", 16, walk_native, walk_struct, mv, start, walk_end, order,
                    use_c)


def run_walk(c_name: str, min_step: int, native: Callable[[memoryview, int, int], list[int]],
             other: Callable[[memoryview, int, int, str], list[int]], mv: memoryview,
             start: int, walk_end: int, order: str,
             use_c: bool | None) -> npt.NDArray[np.int64]:
    """A record walk by the C helper's ``c_name`` when built (and ``use_c`` is not False),
    else by the Python walk for the byte order; ``min_step``: the fewest bytes a step
    advances, which bounds how many positions there can be."""
    if use_c is None:
        use_c = _cwalk is not None
    if use_c:
        assert _cwalk is not None
        out = np.empty(max(0, walk_end - start) // min_step + 2, dtype=np.int64)
        n = getattr(_cwalk, c_name)(mv, start, walk_end, order != _NATIVE, out)
        return out[:n]
    pos = native(mv, start, walk_end) if order == _NATIVE else other(mv, start, walk_end, order)
    return np.array(pos, dtype=np.int64)


def walk_native(mv: memoryview, start: int, walk_end: int) -> list[int]:
    """Positions of caplen fields (record start + 8), native byte order.

    Four uint32 views at byte phases 0..3 give an aligned-index read at any
    offset; the loop ends when a caplen field is no longer inside
    ``[0, walk_end)`` (IndexError), so the last element is the position of
    the first record *not* walked. Every step adds >= 16, so it terminates.
    """
    views = tuple(mv[k : k + (walk_end - k) // 4 * 4].cast("I") for k in range(4))
    pos: list[int] = []
    ap = pos.append
    p = start + 8
    try:
        while True:
            ap(p)
            p += 16 + views[p & 3][p >> 2]
    except IndexError:
        pass
    return pos


def walk_struct(mv: memoryview, start: int, walk_end: int, order: str) -> list[int]:
    """Same as :func:`walk_native` for the non-native byte order (slower)."""
    uf = struct.Struct(order + "I").unpack_from
    mvw = mv[:walk_end]
    pos: list[int] = []
    ap = pos.append
    p = start + 8
    try:
        while True:
            ap(p)
            p += 16 + uf(mvw, p)[0]
    except struct.error:
        pass
    return pos


_NATIVE = "<" if np.little_endian else ">"


@dataclass(frozen=True, slots=True)
class PcapHeader:
    order: str  # struct/numpy byte-order char
    nanos: bool
    version: tuple[int, int]
    snaplen: int
    linktype: int  # LINKTYPE_ value (FCS bits masked off)
    fcs_len: int | None  # bytes of FCS per packet when the header says so


def parse_pcap_header(head: bytes, name: str) -> PcapHeader:
    """Decode a 24-byte pcap global header; InputError if it is not one."""
    kind = _MAGICS.get(int.from_bytes(head[:4], "little"))  # fewer than 4 bytes: no match
    if kind is None:
        raise InputError(f"{name}: not a pcap file (bad magic)")
    order, nanos = kind
    if len(head) < PCAP_HEADER_LEN:
        raise InputError(
            f"{name}: pcap global header truncated ({len(head)} of {PCAP_HEADER_LEN} bytes)"
        )
    major, minor, _zone, _sigfigs, snaplen, lt_field = struct.unpack(
        order + "HHiIII", head[4:PCAP_HEADER_LEN]
    )
    if major != 2:
        raise InputError(f"{name}: unsupported pcap version {major}.{minor}")
    fcs = 2 * (lt_field >> 28) if lt_field & 0x04000000 else None
    return PcapHeader(order, nanos, (major, minor), snaplen, lt_field & LINKTYPE_MASK, fcs)


class PcapParser:
    """Record parser for classic pcap (after the 24-byte global header)."""

    header_len = PCAP_HEADER_LEN

    def __init__(self, header: PcapHeader) -> None:
        self.header = header
        self._frac_mul = 1 if header.nanos else 1000
        self._u4 = np.dtype(header.order + "u4")

    def parse(
        self, buf: _U8, mv: memoryview, start: int, walk_end: int, end: int, final: bool
    ) -> Parsed:
        p = walk(mv, start, walk_end, self.header.order)
        # record i spans [p[i]-8, p[i+1]-8): caplen comes from the walk itself
        offs = p[:-1] - 8
        rec_end = p[1:] - 8
        cl = rec_end - offs - _REC_HDR
        n = len(offs)
        stop = n
        damage: tuple[int, str] | None = None
        bad = (cl > MAX_CAPLEN) | (rec_end > end)
        if n and bad.any():
            k = int(bad.argmax())
            stop = k
            o = int(offs[k])
            if cl[k] > MAX_CAPLEN:
                damage = (o, f"record caplen {int(cl[k])} exceeds {MAX_CAPLEN}")
            elif final:
                damage = (
                    o,
                    f"truncated record: caplen {int(cl[k])} but {end - o - _REC_HDR} bytes left",
                )
        next_pos = int(offs[stop]) if stop < n else int(p[-1]) - 8
        if damage is None and stop == n and final and walk_end >= end and next_pos < end:
            damage = (next_pos, f"truncated record header ({end - next_pos} of 16 bytes)")
        if stop == 0:
            return Parsed(Records.empty(), next_pos, damage)
        offs = offs[:stop]
        hdr = self._gather(buf, offs)
        ts = hdr[:, 0].astype(np.int64) * 1_000_000_000
        ts += hdr[:, 1].astype(np.int64) * self._frac_mul
        recs = Records(
            offs + _REC_HDR,
            cl[:stop].astype(np.int32),
            hdr[:, 3].astype(np.int64).clip(0, 2**31 - 1).astype(np.int32),
            ts,
            np.full(stop, self.header.linktype, np.int32),
        )
        return Parsed(recs, next_pos, damage)

    def _gather(self, buf: _U8, offs: _I64) -> npt.NDArray[np.uint32]:
        """The 16-byte record headers at ``offs`` as (n, 4) uint32 rows.

        One fancy index of n 16-byte rows (:func:`gather_rows`), not n*16 bytes.
        """
        hdr: npt.NDArray[np.uint32] = gather_rows(buf, offs, _REC_HDR).view(self._u4).astype(
            np.uint32)
        return hdr
