"""L2-L4 classification of a whole packet batch at once, with numpy.

Every packet of a batch goes through here; nothing in this module runs Python
code per packet. The result is a set of columns (addresses, ports, flags,
payload offsets) that the flow table aggregates and that select the few
packets worth decoding in Python.

Addresses are kept as two uint64 halves of an IPv6 address; IPv4 addresses
are IPv4-mapped (``::ffff:a.b.c.d``) so both families share one key space.

Tunnels (GRE incl. ERSPAN and TEB, VXLAN, Geneve, GTP-U, Teredo, AYIYA,
IP-in-IP, 6in4) are decapsulated: the columns describe the innermost packet,
because that is where the client and the AI service are.
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from sensor.nprows import gather_rows
from sensor.sources.batch import (
    LINKTYPE_C_HDLC,
    LINKTYPE_ETHERNET,
    LINKTYPE_IEEE802_11,
    LINKTYPE_IEEE802_11_RADIOTAP,
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_LOOP,
    LINKTYPE_NFLOG,
    LINKTYPE_NULL,
    LINKTYPE_PPP,
    LINKTYPE_PPP_HDLC,
    LINKTYPE_RAW,
    LINKTYPE_RAW_ALT,
)

I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]
U32 = npt.NDArray[np.uint32]
U16 = npt.NDArray[np.uint16]
U8 = npt.NDArray[np.uint8]
B = npt.NDArray[np.bool_]
A = npt.NDArray[Any]

PROTO_TCP = 6
PROTO_UDP = 17
_V4_MAPPED = np.uint64(0xFFFF00000000)
# pseudo link types used only inside this module for decapsulated payloads
_LT_IP = -1  # raw IP, version from the first nibble
_MAX_TUNNEL_DEPTH = 3

_ETH_IPV4 = 0x0800
_ETH_IPV6 = 0x86DD
_ETH_VLAN = (0x8100, 0x88A8, 0x9100)
_ETH_MPLS = (0x8847, 0x8848)
_ETH_PPPOE = 0x8864
_ETH_TEB = 0x6558

_IPV6_EXT = (0, 43, 60, 51, 44)  # hop-by-hop, routing, dest opts, AH, fragment


@dataclass(slots=True)
class Columns:
    """Per-packet L3/L4 facts for one batch (all arrays have the batch length)."""

    ok: B  # an IPv4/IPv6 header was parsed
    ip_version: U8
    proto: U8  # IP protocol of the innermost packet (6 TCP, 17 UDP...)
    src_hi: U64
    src_lo: U64
    dst_hi: U64
    dst_lo: U64
    sport: U16
    dport: U16
    tcp_flags: U8
    tcp_seq: U32
    ip_bytes: I64  # innermost IP total length (header + payload) as sent
    pay_off: I64  # absolute offset of the L4 payload in the batch buffer
    pay_len: I64  # captured L4 payload bytes (never beyond caplen or IP length)
    src_mac: U64  # outermost Ethernet source MAC (48 bits), 0 if none
    vlan: U16  # outermost 802.1Q VLAN id, 0 if none
    fragment: B  # a non-first IP fragment (no L4 header)
    tunnelled: B  # the columns describe a decapsulated inner packet
    frag_first: B  # the first fragment of a fragmented datagram (L4 header, partial payload)
    l3_off: I64  # absolute offset of the innermost IP header, -1 if none
    ip_end: I64  # end of the innermost IP packet in the buffer (within caplen)

    def __len__(self) -> int:
        return int(self.ok.shape[0])


def ip_text(hi: int, lo: int) -> str:
    """The text form of an address held as two 64-bit halves."""
    if hi == 0 and (lo >> 32) == 0xFFFF:
        v = lo & 0xFFFFFFFF
        return f"{v >> 24}.{(v >> 16) & 255}.{(v >> 8) & 255}.{v & 255}"
    return str(ipaddress.IPv6Address((hi << 64) | lo))


@functools.lru_cache(maxsize=65536)  # DNS answers repeat the same few addresses
def ip_halves(text: str) -> tuple[int, int]:
    """Inverse of :func:`ip_text`."""
    a = ipaddress.ip_address(text)
    v = (0xFFFF << 32) | int(a) if a.version == 4 else int(a)
    return v >> 64, v & 0xFFFFFFFFFFFFFFFF


# header bytes gathered per packet in one go: Ethernet + VLAN + IPv6 + TCP with options and
# the first payload bytes fit; reads beyond it go to the batch buffer
_BLOCK = 96


def _isin(a: A, values: tuple[int, ...]) -> B:
    """``np.isin`` for a handful of constants: a few comparisons, without its set-up cost."""
    out: B = a == values[0]
    for v in values[1:]:
        out |= a == v
    return out


_BE2 = np.dtype(">u2")
_BE4 = np.dtype(">u4")
_LE4 = np.dtype("<u4")
_BE8 = np.dtype(">u8")
_U1 = np.dtype("u1")


class _Reader:
    """Gathers from the batch at one position per packet.

    The first :data:`_BLOCK` bytes of every packet are copied once into a
    small ``(n, _BLOCK)`` block (one void-dtype gather costs about as much as
    one single-byte gather from the large buffer). A field at the same offset
    in every packet is then a strided view of the block, and a field at other
    positions is gathered from the cache-resident block (a 4- or 8-byte field
    in one gather, from the block viewed as words that start at every byte);
    only fields that end outside it read the batch buffer.

    Every packet gets a value: those of packets the caller does not select may
    be garbage (every read stays inside the buffer), so callers mask the values.
    Arithmetic stays in 32 bits, which halves the memory traffic of the hot path.
    """

    __slots__ = ("blk", "buf", "flat", "origin", "rowk", "words")

    def __init__(self, buf: U8, start: I64) -> None:
        self.buf = buf
        n = start.shape[0]
        m = buf.shape[0] - _BLOCK + 1  # buf is at least _BLOCK bytes (classify pads)
        # a packet closer than _BLOCK to the end: its window starts earlier (same bytes)
        origin = np.clip(start, 0, m - 1)
        self.blk: U8 = gather_rows(buf, origin, _BLOCK)
        self.flat: U8 = self.blk.reshape(-1)
        self.origin = origin
        self.rowk = np.arange(n, dtype=np.int64) * _BLOCK
        # unaligned word views: fancy indexing gathers them several times faster than
        # byte by byte (but not ``take``, which is slow on them)
        self.words: dict[np.dtype[Any], A] = {
            dt: np.ndarray((max(0, n * _BLOCK - dt.itemsize + 1),), dtype=dt, buffer=self.blk,
                           strides=(1,))
            for dt in (_BE4, _LE4, _BE8)}

    def _read(self, pos: I64, dt: np.dtype[Any], out: type[np.generic],
              rows: I64 | None = None) -> A:
        """The ``dt`` field at ``pos`` of every packet (of the packets ``rows`` if
        given), as an ``out`` array."""
        width = dt.itemsize
        if rows is None:
            rel = pos - self.origin
            rowk = self.rowk
        else:
            rel = pos - self.origin[rows]
            rowk = self.rowk[rows]
        if rel.shape[0] == 0:
            return np.zeros(0, dtype=out)
        lo = int(rel.min())
        hi = int(rel.max())
        if lo < 0:
            # real reads are never before the packet: these are the garbage positions of
            # packets the caller masks out (-1 + k), so any byte will do for them
            lo = int(np.where(rel >= 0, rel, hi).min())
            rel = np.maximum(rel, 0)
        inside = hi + width <= _BLOCK
        if inside and lo == hi and rows is None:  # one column of the block: a strided view
            col = np.ndarray((rel.shape[0],), dtype=dt, buffer=self.blk, offset=lo,
                             strides=(_BLOCK,))
            return col.astype(out)
        idx = rowk + (rel if inside else np.minimum(rel, _BLOCK - width))
        if width == 1:
            value: A = self.flat.take(idx).astype(out)
        elif width == 2:  # two byte gathers beat one unaligned word gather
            value = (self.flat.take(idx).astype(out) << 8) | self.flat.take(idx + 1)
        else:
            value = self.words[dt][idx].astype(out)
        if not inside:
            far = np.flatnonzero(rel + width > _BLOCK)
            if far.size:  # these end past the block: their bytes from the batch buffer
                fp = pos[far]
                v = np.zeros(far.size, dtype=np.uint64)
                for j in range(width):
                    shift = 8 * j if dt.byteorder == "<" else 8 * (width - 1 - j)
                    v |= self.buf.take(fp + j, mode="clip").astype(np.uint64) << np.uint64(shift)
                value[far] = v
        return value

    def u8(self, pos: I64) -> A:
        return self._read(pos, _U1, np.int32)

    def be16(self, pos: I64) -> A:
        return self._read(pos, _BE2, np.int32)

    def be32u(self, pos: I64) -> A:
        return self._read(pos, _BE4, np.uint32)

    def le32(self, pos: I64) -> A:
        return self._read(pos, _LE4, np.int64)

    def be32(self, pos: I64) -> A:
        return self._read(pos, _BE4, np.int64)

    def be64(self, pos: I64, rows: I64) -> A:
        return self._read(pos, _BE8, np.uint64, rows)

    def mac(self, pos: I64) -> A:
        """The 48-bit MAC address at ``pos`` (read as the low bytes of a 64-bit word)."""
        out: A = self._read(pos - 2, _BE8, np.uint64) & np.uint64(0xFFFF_FFFF_FFFF)
        return out


def classify(buf: U8, offsets: I64, caplens: npt.NDArray[np.int32],
             linktypes: npt.NDArray[np.int32]) -> Columns:
    """Classify every packet of a batch."""
    if buf.shape[0] < _BLOCK or not buf.flags.c_contiguous:
        padded = np.zeros(max(_BLOCK, buf.shape[0]), dtype=np.uint8)
        padded[: buf.shape[0]] = buf
        buf = padded
    start = offsets.astype(np.int64)
    ends = start + caplens.astype(np.int64)
    return _classify(_Reader(buf, start), start, ends, linktypes.astype(np.int64), 0)


def _classify(r: _Reader, start: I64, end: I64, lt: I64, depth: int) -> Columns:
    n = start.shape[0]
    l3, ethertype, src_mac, vlan = _link(r, start, end, lt)
    cols = _network(r, l3, ethertype, end, n)
    cols.src_mac = src_mac
    cols.vlan = vlan
    if depth < _MAX_TUNNEL_DEPTH:
        inner_off, inner_lt = _tunnel(r, cols, end)
        t = np.flatnonzero(inner_lt)
        if t.size:
            inner = _classify(_Reader(r.buf, inner_off[t]), inner_off[t], end[t], inner_lt[t],
                              depth + 1)
            good = inner.ok
            idx = t[good]
            for name in Columns.__slots__:
                if name in ("src_mac", "vlan", "tunnelled"):
                    continue
                getattr(cols, name)[idx] = getattr(inner, name)[good]
            cols.tunnelled[idx] = True
            # the outer VLAN/MAC describe where we saw it; keep an inner VLAN if no outer
            novlan = cols.vlan[idx] == 0
            if novlan.any():
                cols.vlan[idx[novlan]] = inner.vlan[good][novlan]
    return cols


def _ip_ethertype(code: A, v4: int, v6: int) -> A:
    """The IPv4/IPv6 ethertype for the codes ``v4``/``v6`` of another numbering, else 0."""
    out: A = np.where(code == v4, _ETH_IPV4, np.where(code == v6, _ETH_IPV6, 0))
    return out


def _link(r: _Reader, start: I64, end: I64, lt: I64) -> tuple[I64, I64, U64, U16]:
    """Find the L3 offset and its ethertype for each packet's link type."""
    n = start.shape[0]
    l3 = np.full(n, -1, dtype=np.int64)
    et = np.zeros(n, dtype=np.int64)
    mac = np.zeros(n, dtype=np.uint64)
    vlan = np.zeros(n, dtype=np.uint16)

    eth = (lt == LINKTYPE_ETHERNET) & (start + 14 <= end)
    if eth.any():
        e_et = r.be16(start + 12)
        pos = start + 14
        mac = np.where(eth, r.mac(start + 6), np.uint64(0))
        for _ in range(3):  # 802.1Q, QinQ (802.1ad), and one more
            tagged = eth & _isin(e_et, _ETH_VLAN) & (pos + 4 <= end)
            if not tagged.any():
                break
            tci = r.be16(pos)
            first = tagged & (vlan == 0)
            vlan = np.where(first, tci & 0x0FFF, vlan).astype(np.uint16)
            e_et = np.where(tagged, r.be16(pos + 2), e_et)
            pos = np.where(tagged, pos + 4, pos)
        # IEEE 802.3 length instead of an EtherType, then LLC/SNAP (AA AA 03, OUI 0)
        snap = eth & (e_et <= 1500) & (pos + 8 <= end)
        if snap.any():
            snap &= (r.be32u(pos) == 0xAAAA0300) & (r.be16(pos + 4) == 0)
            e_et = np.where(snap, r.be16(pos + 6), e_et)
            pos = np.where(snap, pos + 8, pos)
        pppoe = eth & (e_et == _ETH_PPPOE) & (pos + 8 <= end)
        if pppoe.any():
            ppp = r.be16(pos + 6)
            e_et = np.where(pppoe, _ip_ethertype(ppp, 0x21, 0x57), e_et)
            pos = np.where(pppoe, pos + 8, pos)
        mpls = eth & _isin(e_et, _ETH_MPLS)
        if mpls.any():
            # pop labels to the bottom of stack, then guess IPv4/IPv6 by nibble
            live = mpls.copy()
            for _ in range(8):
                live &= pos + 4 <= end
                bos = (r.u8(pos + 2) & 1) == 1
                pos = np.where(live, pos + 4, pos)
                live &= ~bos
                if not live.any():
                    break
            nib = r.u8(pos) >> 4
            e_et = np.where(mpls, _ip_ethertype(nib, 4, 6), e_et)
        l3 = np.where(eth, pos, l3)
        et = np.where(eth, e_et, et)

    wifi = _isin(lt, (LINKTYPE_IEEE802_11, LINKTYPE_IEEE802_11_RADIOTAP)) & (start + 8 <= end)
    if wifi.any():
        l3, et, mac = _wifi(r, start, end, lt, wifi, l3, et, mac)
    nflog = (lt == LINKTYPE_NFLOG) & (start + 8 <= end)
    if nflog.any():
        l3, et = _nflog(r, start, end, nflog, l3, et)

    sll = (lt == LINKTYPE_LINUX_SLL) & (start + 16 <= end)
    if sll.any():
        l3 = np.where(sll, start + 16, l3)
        et = np.where(sll, r.be16(start + 14), et)
    sll2 = (lt == LINKTYPE_LINUX_SLL2) & (start + 20 <= end)
    if sll2.any():
        l3 = np.where(sll2, start + 20, l3)
        et = np.where(sll2, r.be16(start), et)

    ppp = ((lt == LINKTYPE_PPP) | (lt == LINKTYPE_PPP_HDLC)) & (start + 4 <= end)
    if ppp.any():
        # optional address/control 0xff 0x03, then a 2-byte protocol (or 1 byte when compressed)
        ac = (r.u8(start) == 0xFF) & (r.u8(start + 1) == 0x03)
        pos = np.where(ac, start + 2, start)
        one = (r.u8(pos) & 1) == 1
        proto = np.where(one, r.u8(pos), r.be16(pos))
        et = np.where(ppp, _ip_ethertype(proto, 0x21, 0x57), et)
        l3 = np.where(ppp, pos + np.where(one, 1, 2), l3)
    chdlc = (lt == LINKTYPE_C_HDLC) & (start + 4 <= end)
    if chdlc.any():
        # Cisco HDLC: address, control, then an ethertype
        et = np.where(chdlc, r.be16(start + 2), et)
        l3 = np.where(chdlc, start + 4, l3)

    null = ((lt == LINKTYPE_NULL) | (lt == LINKTYPE_LOOP)) & (start + 4 <= end)
    if null.any():
        # the family is in the capturing host's byte order (NULL) or network order (LOOP)
        fam_le = r.le32(start)
        fam_be = r.be32(start)
        fam = np.where(fam_le < 256, fam_le, fam_be)
        v6 = _isin(fam, (10, 24, 28, 30))
        et = np.where(null, np.where(fam == 2, _ETH_IPV4, np.where(v6, _ETH_IPV6, 0)), et)
        l3 = np.where(null, start + 4, l3)

    raw = _isin(lt, (LINKTYPE_RAW, *LINKTYPE_RAW_ALT, _LT_IP)) & (start < end)
    if raw.any():
        nib = r.u8(start) >> 4
        et = np.where(raw, _ip_ethertype(nib, 4, 6), et)
        l3 = np.where(raw, start, l3)
    v4 = lt == LINKTYPE_IPV4
    et = np.where(v4, _ETH_IPV4, et)
    l3 = np.where(v4, start, l3)
    v6l = lt == LINKTYPE_IPV6
    et = np.where(v6l, _ETH_IPV6, et)
    l3 = np.where(v6l, start, l3)
    return l3, et, mac, vlan


def _wifi(r: _Reader, start: I64, end: I64, lt: I64, m: B, l3: I64, et: I64,
          mac: U64) -> tuple[I64, I64, U64]:
    """802.11 data frames (optionally behind radiotap) carrying LLC/SNAP."""
    rt = m & (lt == LINKTYPE_IEEE802_11_RADIOTAP)
    # radiotap: version 0, pad, little-endian total length
    rt_len = r.u8(start + 2) | (r.u8(start + 3) << 8)
    f = np.where(rt, start + rt_len, start)
    fc0 = r.u8(f)
    fc1 = r.u8(f + 1)
    data = m & (((fc0 >> 2) & 3) == 2) & ((fc1 & 0x40) == 0)  # data, not protected
    data &= (fc0 & 0x40) == 0  # subtypes with bit 2 set carry no payload (Null, QoS Null)
    hdr = np.where((fc1 & 3) == 3, 30, 24)
    qos = (fc0 & 0x80) != 0
    hdr = hdr + np.where(qos, 2, 0) + np.where(qos & ((fc1 & 0x80) != 0), 4, 0)
    llc = f + hdr
    data &= llc + 8 <= end
    data &= (r.be32u(llc) == 0xAAAA0300) & (r.be16(llc + 4) == 0)
    # source address: addr2 (transmitter) unless FromDS (addr3 holds the source then)
    src = np.where((fc1 & 3) == 2, f + 16, f + 10)
    mac = np.where(data, r.mac(src), mac)
    et = np.where(data, r.be16(llc + 6), et)
    l3 = np.where(data, llc + 8, l3)
    return l3, et, mac


def _nflog(r: _Reader, start: I64, end: I64, m: B, l3: I64, et: I64) -> tuple[I64, I64]:
    """Linux NFLOG: 4-byte header (family), then TLVs; the packet is TLV type 9."""
    fam = r.u8(start)
    pos = start + 4
    live = m.copy()
    found = np.zeros_like(m)
    for _ in range(16):  # TLVs before the payload: prefix, hw header, timestamps, ids...
        live &= ~found & (pos + 4 <= end)
        if not live.any():
            break
        # TLV length and type are in the capturing host's byte order (little-endian hosts)
        tlv_len = r.u8(pos) | (r.u8(pos + 1) << 8)
        tlv_type = r.u8(pos + 2) | (r.u8(pos + 3) << 8)
        live &= tlv_len >= 4
        hit = live & (tlv_type == 9)
        found |= hit
        l3 = np.where(hit, pos + 4, l3)
        pos = np.where(live & ~hit, pos + ((tlv_len + 3) & ~3), pos)
    et = np.where(found, _ip_ethertype(fam, 2, 10), et)
    return l3, et


def _network(r: _Reader, l3: I64, et: I64, end: I64, n: int) -> Columns:
    z64 = np.zeros(n, dtype=np.uint64)
    proto = np.zeros(n, dtype=np.int64)
    ipver = np.zeros(n, dtype=np.uint8)
    src_hi, src_lo, dst_hi, dst_lo = z64.copy(), z64.copy(), z64.copy(), z64.copy()
    l4 = np.full(n, -1, dtype=np.int64)
    ip_end = np.zeros(n, dtype=np.int64)
    ip_bytes = np.zeros(n, dtype=np.int64)
    frag = np.zeros(n, dtype=bool)
    first = np.zeros(n, dtype=bool)
    ok = np.zeros(n, dtype=bool)

    v4 = (et == _ETH_IPV4) & (l3 >= 0) & (l3 + 20 <= end)
    if v4.any():
        b0 = r.u8(l3)
        ihl = (b0 & 0x0F) * 4
        v4 &= ((b0 >> 4) == 4) & (ihl >= 20)
        tot = r.be16(l3 + 2)
        fo = r.be16(l3 + 6)
        v4 &= (tot >= ihl) | (tot == 0)  # 0: captured before segmentation offload (TSO)
        ok |= v4
        ipver = np.where(v4, 4, ipver).astype(np.uint8)
        proto = np.where(v4, r.u8(l3 + 9), proto)
        src_lo = np.where(v4, r.be32u(l3 + 12).astype(np.uint64) | _V4_MAPPED, src_lo)
        dst_lo = np.where(v4, r.be32u(l3 + 16).astype(np.uint64) | _V4_MAPPED, dst_lo)
        ip_bytes = np.where(v4, tot, ip_bytes)
        # TSO captures carry total length 0: fall back to the captured length
        ip_end = np.where(v4, np.where(tot == 0, end, l3 + tot), ip_end)
        ip_bytes = np.where(v4 & (tot == 0), end - l3, ip_bytes)
        nonfirst = v4 & ((fo & 0x1FFF) != 0)
        frag |= nonfirst
        first |= v4 & ~nonfirst & ((fo & 0x2000) != 0)
        l4 = np.where(v4 & ~nonfirst, l3 + ihl, l4)

    v6 = (et == _ETH_IPV6) & (l3 >= 0) & (l3 + 40 <= end)
    if v6.any():
        v6 &= (r.u8(l3) >> 4) == 6
        ok |= v6
        ipver = np.where(v6, 6, ipver).astype(np.uint8)
        plen = r.be16(l3 + 4)
        nh = r.u8(l3 + 6)
        i6 = np.flatnonzero(v6)  # addresses: gather for the IPv6 subset only
        b6 = l3[i6]
        src_hi[i6] = r.be64(b6 + 8, i6)
        src_lo[i6] = r.be64(b6 + 16, i6)
        dst_hi[i6] = r.be64(b6 + 24, i6)
        dst_lo[i6] = r.be64(b6 + 32, i6)
        ip_bytes = np.where(v6, np.where(plen == 0, end - l3, plen + 40), ip_bytes)
        ip_end = np.where(v6, np.where(plen == 0, end, l3 + 40 + plen), ip_end)
        pos = l3 + 40
        live = v6.copy()
        nonfirst6 = np.zeros(n, dtype=bool)
        for _ in range(6):
            ext = live & _isin(nh, _IPV6_EXT) & (pos + 8 <= end)
            if not ext.any():
                break
            is_frag = ext & (nh == 44)
            is_ah = ext & (nh == 51)
            hl = r.u8(pos + 1)
            length = np.where(is_frag, 8, np.where(is_ah, (hl + 2) * 4, (hl + 1) * 8))
            fo6 = r.be16(pos + 2)
            nonfirst6 |= is_frag & ((fo6 & 0xFFF8) != 0)
            first |= is_frag & ((fo6 & 0xFFF8) == 0) & ((fo6 & 1) == 1)
            nh = np.where(ext, r.u8(pos), nh)
            pos = np.where(ext, pos + length, pos)
            live = ext
        proto = np.where(v6, nh, proto)
        frag |= nonfirst6
        l4 = np.where(v6 & ~nonfirst6, pos, l4)

    ip_end = np.minimum(ip_end, end)
    sport = np.zeros(n, dtype=np.int64)
    dport = np.zeros(n, dtype=np.int64)
    flags = np.zeros(n, dtype=np.int64)
    seq = np.zeros(n, dtype=np.int64)
    pay_off = np.zeros(n, dtype=np.int64)
    pay_len = np.zeros(n, dtype=np.int64)

    tcp = ok & (proto == PROTO_TCP) & (l4 >= 0) & (l4 + 20 <= ip_end)
    udp = ok & (proto == PROTO_UDP) & (l4 >= 0) & (l4 + 8 <= ip_end)
    tu = tcp | udp
    if tu.any():
        ports = r.be32u(l4)  # both ports in one read: source << 16 | destination
        sport = np.where(tu, ports >> 16, sport)
        dport = np.where(tu, ports & 0xFFFF, dport)
    if tcp.any():
        seq = np.where(tcp, r.be32u(l4 + 4), seq)
        off_flags = r.be16(l4 + 12)  # data offset (high 4 bits) and flags in one read
        doff = (off_flags >> 12) * 4
        flags = np.where(tcp, off_flags & 0xFF, flags)
        tp = tcp & (doff >= 20)
        pay_off = np.where(tp, l4 + doff, pay_off)
        pay_len = np.where(tp, np.maximum(ip_end - (l4 + doff), 0), pay_len)
    if udp.any():
        pay_off = np.where(udp, l4 + 8, pay_off)
        pay_len = np.where(udp, np.maximum(ip_end - (l4 + 8), 0), pay_len)
    other = ok & (proto != PROTO_TCP) & (proto != PROTO_UDP) & (l4 >= 0)
    # GRE, IP-in-IP and others: keep the L4 offset for tunnel parsing
    pay_off = np.where(other, l4, pay_off)
    pay_len = np.where(other, np.maximum(ip_end - l4, 0), pay_len)

    return Columns(
        ok=ok,
        ip_version=ipver,
        proto=proto.astype(np.uint8),
        src_hi=src_hi,
        src_lo=src_lo,
        dst_hi=dst_hi,
        dst_lo=dst_lo,
        sport=sport.astype(np.uint16),
        dport=dport.astype(np.uint16),
        tcp_flags=flags.astype(np.uint8),
        tcp_seq=seq.astype(np.uint32),
        ip_bytes=ip_bytes,
        pay_off=pay_off,
        pay_len=pay_len,
        src_mac=z64,
        vlan=np.zeros(n, dtype=np.uint16),
        fragment=frag,
        tunnelled=np.zeros(n, dtype=bool),
        frag_first=first,
        l3_off=np.where(ok, l3, -1),
        ip_end=ip_end,
    )


def _tunnel(r: _Reader, c: Columns, end: I64) -> tuple[I64, I64]:
    """Inner offsets and link types of tunnelled packets (0 = not a tunnel)."""
    n = len(c)
    inner = np.zeros(n, dtype=np.int64)
    ilt = np.zeros(n, dtype=np.int64)
    p = c.pay_off
    plen = c.pay_len
    proto = c.proto
    sport = c.sport
    dport = c.dport
    # a fragmented outer datagram is decapsulated once reassembled (sensor/defrag.py)
    ok = c.ok & ~c.fragment & ~c.frag_first

    ipip = ok & _isin(proto, (4, 41)) & (plen >= 20)
    inner = np.where(ipip, p, inner)
    ilt = np.where(ipip, _LT_IP, ilt)

    # GRE, also carried in UDP (RFC 8086, port 4754)
    gre = ok & ((proto == 47) | ((proto == PROTO_UDP) & (dport == 4754))) & (plen >= 4)
    if gre.any():
        fl = r.be16(p)
        ptype = r.be16(p + 2)
        ver = fl & 7
        hl = 4 + np.where(fl & 0x8000, 4, 0) + np.where(fl & 0x2000, 4, 0) \
            + np.where(fl & 0x1000, 4, 0)
        # PPTP's enhanced GRE (version 1) carries PPP; v1 has key always and optional ack
        hl = np.where(ver == 1, 8 + np.where(fl & 0x1000, 4, 0) + np.where(fl & 0x0080, 4, 0), hl)
        pos = p + hl
        is_ip = gre & _isin(ptype, (_ETH_IPV4, _ETH_IPV6)) & (ver == 0)
        is_teb = gre & (ptype == _ETH_TEB) & (ver == 0)
        erspan2 = gre & (ptype == 0x88BE)
        erspan3 = gre & (ptype == 0x22EB)
        ppp = gre & (ptype == 0x880B) & (ver == 1)
        # PPP in PPTP: optional address/control ff03, then protocol (1 or 2 bytes)
        if ppp.any():
            b0 = r.u8(pos)
            pos = np.where(ppp & (b0 == 0xFF), pos + 2, pos)
            pb = r.u8(pos)
            pw = np.where(pb & 1, 1, 2)
            pproto = np.where(pw == 1, pb, r.be16(pos))
            ppp &= _isin(pproto, (0x21, 0x57))
            pos = np.where(ppp, pos + pw, pos)
        e3flags = r.u8(pos + 11)
        e3len = 12 + np.where(e3flags & 1, 8, 0)
        sel_ip = is_ip | ppp
        inner = np.where(sel_ip, pos, inner)
        ilt = np.where(sel_ip, _LT_IP, ilt)
        inner = np.where(is_teb, pos, inner)
        ilt = np.where(is_teb, LINKTYPE_ETHERNET, ilt)
        inner = np.where(erspan2, pos + 8, inner)
        ilt = np.where(erspan2, LINKTYPE_ETHERNET, ilt)
        inner = np.where(erspan3, pos + e3len, inner)
        ilt = np.where(erspan3, LINKTYPE_ETHERNET, ilt)

    udp = ok & (proto == PROTO_UDP)
    vx = udp & ((dport == 4789) | (dport == 8472)) & (plen >= 16)
    if vx.any():
        vx &= (r.u8(p) & 0x08) != 0  # VNI-present flag
        inner = np.where(vx, p + 8, inner)
        ilt = np.where(vx, LINKTYPE_ETHERNET, ilt)
    gpe = udp & (dport == 4790) & (plen >= 16)
    if gpe.any():
        # VXLAN-GPE: next protocol 1 IPv4, 2 IPv6, 3 Ethernet
        nxt = r.u8(p + 3)
        gpe_ip = gpe & ((nxt == 1) | (nxt == 2))
        gpe_eth = gpe & (nxt == 3)
        inner = np.where(gpe_ip | gpe_eth, p + 8, inner)
        ilt = np.where(gpe_eth, LINKTYPE_ETHERNET, np.where(gpe_ip, _LT_IP, ilt))
    gen = udp & (dport == 6081) & (plen >= 8)
    if gen.any():
        optlen = (r.u8(p) & 0x3F) * 4
        gtype = r.be16(p + 2)
        gen_eth = gen & (gtype == _ETH_TEB)
        gen_ip = gen & _isin(gtype, (_ETH_IPV4, _ETH_IPV6))
        inner = np.where(gen_eth | gen_ip, p + 8 + optlen, inner)
        ilt = np.where(gen_eth, LINKTYPE_ETHERNET, np.where(gen_ip, _LT_IP, ilt))
    gtp = udp & ((dport == 2152) | (sport == 2152)) & (plen >= 8)
    if gtp.any():
        f = r.u8(p)
        gtp &= ((f >> 5) == 1) & (r.u8(p + 1) == 0xFF)  # GTPv1, G-PDU
        opt = (f & 0x07) != 0
        pos = p + 8 + np.where(opt, 4, 0)
        # extension headers: length in 4-byte units, next type in the last byte
        nxt = np.where(gtp & ((f & 0x04) != 0), r.u8(p + 11), 0)
        live = gtp & (nxt != 0)
        for _ in range(4):
            if not live.any():
                break
            elen = r.u8(pos) * 4
            live &= elen > 0
            nnext = r.u8(pos + elen - 1)
            pos = np.where(live, pos + elen, pos)
            live &= nnext != 0
        nib = r.u8(pos) >> 4
        gtp &= (nib == 4) | (nib == 6)
        inner = np.where(gtp, pos, inner)
        ilt = np.where(gtp, _LT_IP, ilt)
    ter = udp & ((dport == 3544) | (sport == 3544)) & (plen >= 40)
    if ter.any():
        pos = p.copy()
        for _ in range(2):
            ind = r.be16(pos)
            auth = ter & (ind == 1)
            idlen = r.u8(pos + 2)
            aulen = r.u8(pos + 3)
            pos = np.where(auth, pos + 4 + idlen + aulen + 9, pos)
            orig = ter & (ind == 0)
            pos = np.where(orig, pos + 8, pos)
        ter &= (r.u8(pos) >> 4) == 6
        inner = np.where(ter, pos, inner)
        ilt = np.where(ter, _LT_IP, ilt)
    ay = udp & ((dport == 5072) | (sport == 5072)) & (plen >= 12)
    if ay.any():
        # RFC draft-massar-v6ops-ayiya: idlen/idtype, siglen/hash, auth/opcode, next header,
        # 4-byte epoch, then 2**idlen identity bytes and siglen*4 signature bytes
        b0 = r.u8(p)
        b1 = r.u8(p + 1)
        nh = r.u8(p + 3)
        hl = 8 + np.left_shift(1, b0 >> 4) + (b1 >> 4) * 4
        ay &= _isin(nh, (4, 41))
        inner = np.where(ay, p + hl, inner)
        ilt = np.where(ay, _LT_IP, ilt)
    return inner, ilt
