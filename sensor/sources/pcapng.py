"""pcapng: block walk, sections, interfaces and packet blocks.

Blocks are 4-byte aligned, so the walk reads each block's total length
through one uint32 view and collects only word positions; types, lengths,
trailers and packet fields are then checked and gathered with numpy.
SHB and IDB blocks (rare) are handled in Python in stream order; interface
ids are mapped to a file-wide interface list so that packets of several
sections and interfaces are converted in a few vectorised steps.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from sensor.errors import InputError
from sensor.nprows import gather_rows
from sensor.sources.pcap import MAX_CAPLEN, Parsed, Records, run_walk

SHB = 0x0A0D0D0A
IDB = 0x00000001
PB = 0x00000002  # obsolete Packet Block
SPB = 0x00000003
EPB = 0x00000006
SHB_MAGIC = SHB.to_bytes(4, "big")  # the same in either byte order
# the SHB byte-order magic 0x1A2B3C4D as written in each order
_BOM_ORDER = {b"\x4d\x3c\x2b\x1a": "<", b"\x1a\x2b\x3c\x4d": ">"}

# Wireshark's limit; larger blocks are treated as damage (bounds memory
# when a block has to be carried between gzip chunks).
MAX_BLOCK = 16 * 1024 * 1024

_MIN_LEN = {SHB: 28, IDB: 20, PB: 32, SPB: 16, EPB: 32}

_I64 = npt.NDArray[np.int64]
_U8 = npt.NDArray[np.uint8]
_U64 = npt.NDArray[np.uint64]


def shb_byte_order(head: bytes, name: str) -> str:
    """Byte order of the SHB at the start of ``head``; InputError if none."""
    if len(head) < 12 or head[:4] != SHB_MAGIC:
        raise InputError(f"{name}: not a pcapng file (no section header block)")
    order = _BOM_ORDER.get(head[8:12])
    if order is None:
        raise InputError(f"{name}: pcapng section header has a bad byte-order magic")
    return order


@dataclass(frozen=True, slots=True)
class Interface:
    linktype: int
    snaplen: int
    tsresol: int  # byte value of if_tsresol (default 6 = microseconds)
    tsoffset: int  # seconds added to every timestamp


def parse_idb(body: bytes, order: str) -> Interface:
    """Decode an IDB body (bytes after type+length, before the trailer).

    Malformed options are ignored (the defaults stay), not fatal: the
    interface is still usable.
    """
    linktype, _res, snaplen = struct.unpack_from(order + "HHI", body, 0)
    tsresol, tsoffset = 6, 0
    i, n = 8, len(body)
    while i + 4 <= n:
        code, ln = struct.unpack_from(order + "HH", body, i)
        i += 4
        if code == 0 or i + ln > n:
            break
        if code == 9 and ln >= 1:
            tsresol = body[i]
        elif code == 14 and ln >= 8:
            tsoffset = struct.unpack_from(order + "q", body, i)[0]
        i += (ln + 3) & ~3
    return Interface(linktype, snaplen, tsresol, tsoffset)


def ticks_to_ns(ticks: _U64, tsresol: int) -> _I64:
    """Interface ticks -> ns (if_tsresol: MSB clear 10^-v, set 2^-v)."""
    v = tsresol & 0x7F
    if tsresol & 0x80:
        v = min(v, 63)
        whole = ticks >> np.uint64(v)
        frac = ticks & np.uint64((1 << v) - 1)
        if v > 30:  # keep frac * 1e9 inside 64 bits; loses only sub-ns
            frac >>= np.uint64(v - 30)
            v = 30
        ns = whole * np.uint64(10**9) + ((frac * np.uint64(10**9)) >> np.uint64(v))
    elif v <= 9:
        ns = ticks * np.uint64(10 ** (9 - v))
    elif v - 9 <= 19:
        ns = ticks // np.uint64(10 ** (v - 9))
    else:
        ns = np.zeros_like(ticks)
    return ns.astype(np.int64)


def walk(mv: memoryview, start: int, walk_end: int, order: str,
         use_c: bool | None = None) -> npt.NDArray[np.int64]:
    """Word positions (relative to ``start``) of the blocks, then the first not walked
    (see :func:`walk_native`); the C helper when built (``use_c`` None), same result."""
    return run_walk("pcapng_walk", 4, walk_native, walk_struct, mv, start, walk_end, order,
                    use_c)


def walk_native(mv: memoryview, start: int, walk_end: int) -> list[int]:
    """Word positions (relative to ``start``) of blocks; native byte order.

    Ends with the first block whose 8-byte header is not inside
    ``[start, walk_end)`` (IndexError). A length below 4 still advances one
    word so the loop always terminates; such blocks are flagged later.
    """
    v = mv[start : start + (walk_end - start) // 4 * 4].cast("I")
    pos: list[int] = []
    ap = pos.append
    w = 0
    try:
        while True:
            ap(w)
            w += (v[w + 1] >> 2) or 1
    except IndexError:
        pass
    return pos


def walk_struct(mv: memoryview, start: int, walk_end: int, order: str) -> list[int]:
    """As :func:`walk_native` for the non-native byte order."""
    uf = struct.Struct(order + "4xI").unpack_from
    mvw = mv[start:walk_end]
    pos: list[int] = []
    ap = pos.append
    w = 0
    try:
        while True:
            ap(w)
            w += (uf(mvw, w << 2)[0] >> 2) or 1
    except struct.error:
        pass
    return pos


class PcapngParser:
    """Record parser for pcapng; state (byte order, interfaces) spans calls."""

    header_len = 0  # the first SHB is parsed as a block like any other

    def __init__(self, order: str) -> None:
        self.order = order
        self.ifaces: list[Interface] = []  # every IDB of the file, in order
        self.sec_base = 0  # index in ifaces of the current section's interface 0
        self.last_ts = 0  # for SPBs, which carry no timestamp

    def parse(
        self, buf: _U8, mv: memoryview, start: int, walk_end: int, end: int, final: bool
    ) -> Parsed:
        order = self.order
        ws = walk(mv, start, walk_end, order)
        nwords = (end - start) // 4
        words = buf[start : start + nwords * 4].view(order + "u4")
        w = ws[:-1]
        stop = len(w)
        # stop reason for blocks[stop:]: None = resume there, str = damage
        why: str | None = None
        incomplete = False
        flip: str | None = None  # byte order of a following section
        flip_at = -1

        def cut(k: int, reason: str | None, inc: bool = False) -> None:
            nonlocal stop, why, incomplete
            if k < stop:
                stop, why, incomplete = k, reason, inc

        if stop:
            tl = gather_rows(words, w, 2)  # type, total length
            types = tl[:, 0]
            # An SHB starts a section that may use the other byte order:
            # stop there and re-walk with the right one.
            for s in np.flatnonzero(types == SHB).tolist():
                bo = 4 * int(w[s]) + 8
                if bo + 4 > end - start:
                    cut(s, None, True)
                    break
                new = _BOM_ORDER.get(bytes(mv[start + bo : start + bo + 4]))
                if new is None:
                    cut(s, "section header block with a bad byte-order magic")
                    break
                if new != order:
                    if s == 0:  # walked with the wrong order: redo
                        self.order = new
                        return self.parse(buf, mv, start, walk_end, end, final)
                    flip, flip_at = new, s
                    cut(s, None)
                    break
            lens = tl[:, 1].astype(np.int64)
            bad_len = (lens < 12) | (lens & 3 != 0) | (lens > MAX_BLOCK)
            if bad_len[:stop].any():
                k = int(bad_len[:stop].argmax())
                cut(k, f"bad block length {int(lens[k])}")
            past = 4 * w + lens > end - start
            if past[:stop].any():
                cut(int(past[:stop].argmax()), None, True)
            if stop:
                w, lens, types = w[:stop], lens[:stop], types[:stop]
                trailer = words[w + (lens >> 2) - 1]
                mism = trailer != lens
                if mism.any():
                    k = int(mism.argmax())
                    cut(k, f"block trailing length {int(trailer[k])} != {int(lens[k])}")
                for t, mn in _MIN_LEN.items():
                    short = (types[:stop] == t) & (lens[:stop] < mn)
                    if short.any():
                        k = int(short.argmax())
                        cut(k, f"block type {t} too short ({int(lens[k])} bytes)")
                w, lens, types = w[:stop], lens[:stop], types[:stop]
        if stop == 0:
            recs, pstop, pwhy = Records.empty(), 0, None
        else:  # w, lens, types already end at stop
            recs, pstop, pwhy = self._packets(buf, words, start, w, lens, types)
        if pstop < stop:
            stop, why, incomplete = pstop, pwhy, False
        if stop < len(ws) - 1:
            next_pos = start + 4 * int(ws[stop])
        else:
            next_pos = start + 4 * int(ws[-1])
            if final and walk_end >= end and next_pos < end:
                why = f"truncated block header ({end - next_pos} bytes left)"
        if incomplete and final:
            why = "truncated block (runs past the end of the data)"
        damage = (next_pos, why) if why is not None else None
        if flip is not None and stop == flip_at:
            self.order = flip
        return Parsed(recs, next_pos, damage)

    def _packets(
        self,
        buf: _U8,
        words: npt.NDArray[np.uint32],
        start: int,
        w: _I64,
        lens: _I64,
        types: npt.NDArray[np.uint32],
    ) -> tuple[Records, int, str | None]:
        """Apply SHB/IDB blocks and gather packet blocks among ``w``.

        Returns the records, and ``(index, reason)`` of the first block that
        is damage (``len(w)`` and None when all are fine).
        """
        n = len(w)
        if n == 0:
            return Records.empty(), 0, None
        is_shb = types == SHB
        is_idb = types == IDB
        nbefore = len(self.ifaces)
        # file-wide interface list: append this window's IDBs in order, and
        # note where each section (SHB) starts in that list
        sec_start = np.full(n, self.sec_base, np.int64)
        idb_cum = np.cumsum(is_idb)
        cut, bad_version = n, None
        for i in np.flatnonzero(is_shb | is_idb).tolist():
            o = start + 4 * int(w[i])
            if is_shb[i]:
                major = struct.unpack_from(self.order + "H", buf[o + 12 : o + 14].tobytes())[0]
                if major != 1:  # stop before this SHB; earlier blocks are still valid
                    cut, bad_version = i, f"unsupported pcapng version {major}"
                    break
                self.sec_base = nbefore + int(idb_cum[i])
                sec_start[i:] = self.sec_base
            else:
                body = buf[o + 8 : o + int(lens[i]) - 4].tobytes()
                self.ifaces.append(parse_idb(body, self.order))
        recs, k, why = self._gather(buf, words, start, w[:cut], lens[:cut], types[:cut],
                                    sec_start[:cut], nbefore + idb_cum[:cut])
        # damage among the gathered blocks comes first; else the unsupported section
        return (recs, k, why) if bad_version is None or k < cut else (recs, cut, bad_version)

    def _gather(
        self,
        buf: _U8,
        words: npt.NDArray[np.uint32],
        start: int,
        w: _I64,
        lens: _I64,
        types: npt.NDArray[np.uint32],
        sec_start: _I64,
        n_ifaces: _I64,
    ) -> tuple[Records, int, str | None]:
        is_epb = (types == EPB) | (types == PB)
        is_spb = types == SPB
        pk = np.flatnonzero(is_epb | is_spb)
        n = len(w)
        if len(pk) == 0:
            return Records.empty(), n, None
        pw = w[pk]
        plen = lens[pk]
        epb = is_epb[pk]
        spb = ~epb
        # EPB/PB: if_id, ts_hi, ts_lo, caplen, origlen at words 2..6; SPB: origlen at 2
        f = gather_rows(words, pw + 2, 5) if epb.all() else self._fields(words, pw, epb)
        if_id = f[:, 0].astype(np.int64)
        pb = types[pk] == PB
        if pb.any():
            raw = if_id[pb]
            if_id[pb] = (raw & 0xFFFF) if self.order == "<" else (raw >> 16)
        if_id[spb] = 0
        origlen = np.where(epb, f[:, 4], f[:, 0]).astype(np.int64)
        caplen = np.where(epb, f[:, 3].astype(np.int64), np.minimum(origlen, plen - 16))
        data_off = 4 * pw + np.where(epb, 28, 12)
        room = plen - np.where(epb, 32, 16)
        ok_if = if_id < (n_ifaces[pk] - sec_start[pk])
        gif = np.where(ok_if, sec_start[pk] + if_id, 0)
        bad_room = epb & (caplen > room)
        bad_cap = caplen > MAX_CAPLEN
        bad = ~ok_if | bad_room | bad_cap
        stop, why = n, None
        m = len(pk)
        if bad.any():
            j = int(bad.argmax())
            m, stop = j, int(pk[j])
            if not ok_if[j]:
                why = f"packet block references undefined interface {int(if_id[j])}"
            elif bad_room[j]:
                why = f"packet caplen {int(caplen[j])} exceeds its block"
            else:
                why = f"packet caplen {int(caplen[j])} exceeds {MAX_CAPLEN}"
        if m == 0:
            return Records.empty(), stop, why
        gif, epb, spb = gif[:m], epb[:m], spb[:m]
        table = self.ifaces
        linktype = (
            np.array([i.linktype for i in table], np.int32)[gif] if table else np.zeros(m, np.int32)
        )
        if spb.any():  # SPB caplen is also limited by its interface's snaplen
            snap = np.array([i.snaplen for i in table], np.int64)[gif]
            lim = spb & (snap > 0) & (caplen[:m] > snap)
            caplen[:m][lim] = snap[lim]
        ticks = (f[:m, 1].astype(np.uint64) << np.uint64(32)) | f[:m, 2].astype(np.uint64)
        ts = np.zeros(m, np.int64)
        groups = np.unique(gif[epb]).tolist()
        for g in groups:
            itf = table[g]
            off_ns = max(-(2**62), min(2**62, itf.tsoffset * 1_000_000_000))  # hostile offsets
            if len(groups) == 1 and epb.all():  # the common case: no masks needed
                ts = ticks_to_ns(ticks, itf.tsresol) + off_ns
                break
            sel = epb & (gif == g)
            ts[sel] = ticks_to_ns(ticks[sel], itf.tsresol) + off_ns
        if spb.any():  # no timestamp: repeat the previous packet's
            idx = np.where(epb, np.arange(m), -1)
            np.maximum.accumulate(idx, out=idx)
            ts = np.where(idx >= 0, ts[np.maximum(idx, 0)], self.last_ts)
        self.last_ts = int(ts[-1])
        recs = Records(
            start + data_off[:m],
            caplen[:m].astype(np.int32),
            origlen[:m].clip(0, 2**31 - 1).astype(np.int32),
            ts,
            linktype,
        )
        return recs, stop, why

    @staticmethod
    def _fields(
        words: npt.NDArray[np.uint32], pw: _I64, epb: npt.NDArray[np.bool_]
    ) -> npt.NDArray[np.uint32]:
        # SPBs may be only 16 bytes: read their one field, never past the block
        f = np.zeros((len(pw), 5), np.uint32)
        f[epb] = gather_rows(words, pw[epb] + 2, 5)
        f[~epb, 0] = words[pw[~epb] + 2]
        return f
