"""IP fragment reassembly for the few fragmented datagrams a capture holds.

Fragments are rare on modern networks, so they are handled in Python: the
batch path flags them (``Columns.fragment`` / ``frag_first``), this module
puts each datagram back together, and the pipeline classifies and dissects
the reassembled packets as a small extra batch of raw IP packets.

Bounded: at most ``max_datagrams`` datagrams in progress (oldest dropped
first), ``max_bytes`` per datagram, ``timeout_ns`` per datagram (RFC 791
suggests 15 s; Linux uses 30 s). Overlapping fragments: the first copy of a
byte wins (as Linux and Zeek do); a datagram with holes never completes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field

_V4_HDR = struct.Struct("!BBHHHBBH4s4s")


@dataclass(slots=True)
class _Datagram:
    first_ns: int
    header: bytes = b""  # IP header to put in front of the payload (first fragment's)
    pieces: dict[int, bytes] = field(default_factory=dict)
    total: int | None = None  # payload length, known once the last fragment is seen
    size: int = 0
    next_hdr: int = 0  # IPv6: the protocol after the fragment header


@dataclass(slots=True)
class DefragStats:
    fragments: int = 0
    reassembled: int = 0
    dropped_timeout: int = 0
    dropped_overflow: int = 0
    malformed: int = 0


class Defragmenter:
    def __init__(self, max_datagrams: int = 8192, max_bytes: int = 65535,
                 timeout_ns: int = 30_000_000_000) -> None:
        self.max_datagrams = max_datagrams
        self.max_bytes = max_bytes
        self.timeout_ns = timeout_ns
        self.stats = DefragStats()
        self._open: dict[tuple[object, ...], _Datagram] = {}

    def add(self, packet: bytes, ts_ns: int) -> bytes | None:
        """Add one fragment (an IPv4 or IPv6 packet); the whole packet when complete."""
        self.stats.fragments += 1
        if not packet:
            self.stats.malformed += 1
            return None
        version = packet[0] >> 4
        if version == 4:
            return self._add_v4(packet, ts_ns)
        if version == 6:
            return self._add_v6(packet, ts_ns)
        self.stats.malformed += 1
        return None

    def expire(self, now_ns: int) -> None:
        old = [k for k, d in self._open.items() if now_ns - d.first_ns > self.timeout_ns]
        for k in old:
            del self._open[k]
        self.stats.dropped_timeout += len(old)

    # -- IPv4 --------------------------------------------------------------

    def _add_v4(self, p: bytes, ts_ns: int) -> bytes | None:
        if len(p) < 20:
            self.stats.malformed += 1
            return None
        vihl, _tos, tot, ident, fo, _ttl, proto, _ck, src, dst = _V4_HDR.unpack_from(p)
        ihl = (vihl & 0x0F) * 4
        if ihl < 20 or len(p) < ihl or tot < ihl:
            self.stats.malformed += 1
            return None
        payload = p[ihl:min(tot, len(p))]
        offset = (fo & 0x1FFF) * 8
        more = bool(fo & 0x2000)
        key = ("v4", src, dst, ident, proto)
        d = self._datagram(key, ts_ns)
        if offset == 0:
            d.header = p[:ihl]
        return self._piece(key, d, offset, more, payload, self._finish_v4)

    @staticmethod
    def _finish_v4(d: _Datagram, body: bytes) -> bytes:
        h = bytearray(d.header)
        struct.pack_into("!H", h, 2, len(h) + len(body))
        struct.pack_into("!H", h, 6, 0)  # no flags, offset 0
        return bytes(h) + body

    # -- IPv6 (fragment header right after the fixed header) -------------------

    def _add_v6(self, p: bytes, ts_ns: int) -> bytes | None:
        if len(p) < 48 or p[6] != 44:
            self.stats.malformed += 1  # extension headers before the fragment header
            return None
        plen = int.from_bytes(p[4:6], "big")
        end = min(40 + plen, len(p)) if plen else len(p)
        nh = p[40]
        fo = int.from_bytes(p[42:44], "big")
        ident = p[44:48]
        offset = fo & 0xFFF8
        more = bool(fo & 1)
        key = ("v6", p[8:24], p[24:40], ident)
        d = self._datagram(key, ts_ns)
        if offset == 0:
            d.header = p[:40]
            d.next_hdr = nh
        return self._piece(key, d, offset, more, p[48:end], self._finish_v6)

    @staticmethod
    def _finish_v6(d: _Datagram, body: bytes) -> bytes:
        h = bytearray(d.header)
        struct.pack_into("!H", h, 4, len(body))
        h[6] = d.next_hdr
        return bytes(h) + body

    # -- common --------------------------------------------------------------

    def _datagram(self, key: tuple[object, ...], ts_ns: int) -> _Datagram:
        d = self._open.get(key)
        if d is None:
            if len(self._open) >= self.max_datagrams:
                self._open.pop(next(iter(self._open)))  # oldest first
                self.stats.dropped_overflow += 1
            d = self._open[key] = _Datagram(ts_ns)
        return d

    def _piece(self, key: tuple[object, ...], d: _Datagram, offset: int, more: bool,
               payload: bytes, finish: Callable[[_Datagram, bytes], bytes]) -> bytes | None:
        if offset + len(payload) > self.max_bytes:
            del self._open[key]
            self.stats.dropped_overflow += 1
            return None
        if not more:
            d.total = offset + len(payload)
        if offset not in d.pieces:
            d.pieces[offset] = payload
            d.size += len(payload)
        if d.total is None or not d.header or d.size < d.total:
            return None
        body = bytearray()
        for off in sorted(d.pieces):
            chunk = d.pieces[off]
            if off > len(body):
                return None  # a hole: wait for the missing piece
            body += chunk[len(body) - off:]
        if len(body) < d.total:
            return None
        del self._open[key]
        self.stats.reassembled += 1
        return finish(d, bytes(body[: d.total]))
