"""Select the packets worth decoding (numpy, whole batch) and decode them.

Only handshakes, DNS messages and HTTP heads reach Python, plus the next
segments of a stream whose handshake or head is still incomplete. TCP streams
are reassembled per direction only until the message is complete or a small
byte/segment budget is spent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from sensor.config import Settings
from sensor.decoders import dns as dns_dec
from sensor.decoders import http as http_dec
from sensor.decoders import quic as quic_dec
from sensor.decoders import tls as tls_dec
from sensor.decoders.link import PROTO_TCP, PROTO_UDP, Columns, ip_text
from sensor.errors import DecodeError, NeedMoreData
from sensor.records import Observation, Payload

I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]

_DIR_SALT = np.uint64(0x5BD1E9955BD1E995)


def _prefix_ints(prefixes: tuple[bytes, ...]) -> npt.NDArray[np.int64]:
    return np.array([int.from_bytes(p[:4], "big") for p in prefixes], dtype=np.int64)


# one selected packet: ts_ns, src_hi, src_lo, sport, dst_hi, dst_lo, dport, proto, flow key,
# and the sequence number of its first payload byte (a SYN's data starts at seq + 1: TFO)
_Pkt = tuple[int, int, int, int, int, int, int, int, int, int]


@dataclass(slots=True)
class _Stream:
    """One direction of a TCP stream being collected until a message completes."""

    kind: str  # "tls" | "http.request" | "dns.tcp"
    next_seq: int
    data: bytearray
    ooo: dict[int, bytes] = field(default_factory=dict)
    segments: int = 1


@dataclass(slots=True)
class _QuicConn:
    """Client Initials of one QUIC connection, until its ClientHello is complete."""

    crypto: quic_dec.CryptoReassembler
    key_dcid: bytes
    done: bool = False


@dataclass(slots=True)
class DissectStats:
    decode_errors: int = 0
    streams_abandoned: int = 0  # budget spent or table full before a message completed
    quic_undecryptable: int = 0  # long-header datagrams with no decryptable client Initial
    observations: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)


class Dissector:
    """Runs the sans-IO decoders on the selected packets of each batch."""

    def __init__(self, settings: Settings, emit: Callable[[Observation], None]) -> None:
        self.settings = settings
        self.emit = emit
        self.stats = DissectStats()
        self._streams: dict[int, _Stream] = {}  # direction key -> stream
        self._pending: U64 = np.zeros(0, dtype=np.uint64)
        self._pending_dirty = False
        self._http_prefixes = _prefix_ints(http_dec.HTTP_METHOD_PREFIXES)
        self._ip_cache: dict[tuple[int, int], str] = {}
        self._quic: dict[int, _QuicConn] = {}  # direction key -> connection

    def _ip(self, hi: int, lo: int) -> str:
        k = (hi, lo)
        t = self._ip_cache.get(k)
        if t is None:
            if len(self._ip_cache) > 65536:
                self._ip_cache.clear()
            t = self._ip_cache[k] = ip_text(hi, lo)
        return t

    def process(self, buf: npt.NDArray[np.uint8], c: Columns, ts_ns: I64, keys: U64,
                low_src: npt.NDArray[np.bool_]) -> None:
        if self._pending_dirty:
            self._pending = np.fromiter(self._streams.keys(), dtype=np.uint64,
                                        count=len(self._streams))
            self._pending_dirty = False
        L = c.pay_len
        has = c.ok & (L > 0)
        tcp = has & (c.proto == PROTO_TCP)
        udp = has & (c.proto == PROTO_UDP)
        dkeys = keys ^ (low_src.astype(np.uint64) * _DIR_SALT)

        # first and last payload bytes of every packet, as columns (32-bit arithmetic)
        p = c.pay_off

        def at(pos: I64) -> npt.NDArray[np.int32]:
            out: npt.NDArray[np.int32] = np.take(buf, pos, mode="clip").astype(np.int32)
            return out

        L4 = L >= 4
        w4 = np.where(L4, (at(p) << 24) | (at(p + 1) << 16) | (at(p + 2) << 8) | at(p + 3), -1)
        b0 = w4 >> 24
        b4 = at(p + 4)
        b5 = at(p + 5)
        tls_start = tcp & L4 & ((w4 >> 16) == 0x1603) & (((w4 >> 8) & 0xFF) <= 4) & (
            (L < 6) | (b5 == 1))
        # method prefixes start with an upper-case letter: test the few such packets only
        upper = np.flatnonzero(tcp & L4 & (b0 >= 0x41) & (b0 <= 0x5A))
        http_req = np.zeros_like(tcp)
        http_req[upper] = np.isin(w4[upper], self._http_prefixes)
        http_resp = tcp & (w4 == 0x48545450)  # "HTTP"
        sp = c.sport
        dp = c.dport
        dns_udp = udp & ((sp == 53) | (dp == 53) | (sp == 5353) | (dp == 5353) | (sp == 5355)
                         | (dp == 5355))
        dns_tcp = tcp & ((sp == 53) | (dp == 53))
        # QUIC long header with the fixed bit: Initials are picked out in Python
        quic = udp & (L >= 7) & ((b0 & 0xC0) == 0xC0) & ~dns_udp
        # only a start whose message may go on in later segments needs its stream followed:
        # a TLS record longer than this segment, an HTTP head not ending here, DNS/TCP
        rec_len = ((w4 & 0xFF) << 8) | b4
        e = p + L
        last4 = (at(e - 4) << 24) | (at(e - 3) << 16) | (at(e - 2) << 8) | at(e - 1)
        open_ended = (tls_start & (rec_len + 5 > L)) | (http_req & (last4 != 0x0D0A0D0A)) | dns_tcp
        follow_keys = dkeys[open_ended]
        if self._pending.size:
            follow_keys = np.concatenate((follow_keys, self._pending))
        follow = tcp & np.isin(dkeys, follow_keys) if follow_keys.size else np.zeros_like(tcp)
        # one code per packet; the first true test wins (same order as below)
        code = np.select([dns_udp, quic, tls_start, http_req, dns_tcp, http_resp, follow],
                         [1, 2, 3, 4, 5, 6, 7], 0)
        sel = np.flatnonzero(code)
        if sel.size == 0:
            return

        streams = self._streams
        buf_b = buf  # local for speed
        pkts = zip(ts_ns[sel].tolist(), c.src_hi[sel].tolist(), c.src_lo[sel].tolist(),
                   c.sport[sel].tolist(), c.dst_hi[sel].tolist(), c.dst_lo[sel].tolist(),
                   c.dport[sel].tolist(), c.proto[sel].tolist(), keys[sel].tolist(),
                   ((c.tcp_seq[sel].astype(np.int64) + ((c.tcp_flags[sel] >> 1) & 1))
                    & 0xFFFFFFFF).tolist(), strict=True)
        for pk, k, dk, o, n in zip(pkts, code[sel].tolist(), dkeys[sel].tolist(),
                                   p[sel].tolist(), L[sel].tolist(), strict=True):
            data = buf_b[o: o + n].tobytes()
            if k == 1:
                self._udp(pk, data)
                continue
            if k == 2:
                self._quic_datagram(dk, pk, data)
                continue
            st = streams.get(dk)
            if st is not None:
                self._continue(dk, st, pk, data)
            elif k == 3:
                self._start("tls", dk, pk, data)
            elif k == 4:
                self._start("http.request", dk, pk, data)
            elif k == 5:
                self._start("dns.tcp", dk, pk, data)
            elif k == 6:
                self._decode_once("http.response", pk, data)

    # -- TCP streams ---------------------------------------------------------

    def _start(self, kind: str, dk: int, pk: _Pkt, data: bytes) -> None:
        st = _Stream(kind, (pk[9] + len(data)) & 0xFFFFFFFF, bytearray(data))
        if not self._try(st, pk):
            if len(self._streams) >= self.settings.max_pending_streams:
                self.stats.streams_abandoned += 1
                return
            self._streams[dk] = st
            self._pending_dirty = True

    def _continue(self, dk: int, st: _Stream, pk: _Pkt, data: bytes) -> None:
        seq = pk[9]
        delta = (seq - st.next_seq) & 0xFFFFFFFF
        if delta == 0:
            st.data += data
            st.next_seq = (seq + len(data)) & 0xFFFFFFFF
            while st.next_seq in st.ooo:  # fill from out-of-order segments
                seg = st.ooo.pop(st.next_seq)
                st.data += seg
                st.next_seq = (st.next_seq + len(seg)) & 0xFFFFFFFF
        elif delta < 0x80000000:  # a later segment: keep it for when the gap fills
            if len(st.ooo) < self.settings.stream_segments:
                st.ooo[seq] = data
            st.segments += 1
            if st.segments > self.settings.stream_segments:
                self._drop(dk)
            return
        else:  # retransmission of bytes we have (or older): trim the overlap
            back = 0x100000000 - delta
            if back < len(data):
                st.data += data[back:]
                st.next_seq = (seq + len(data)) & 0xFFFFFFFF
            else:
                return
        st.segments += 1
        if self._try(st, pk):
            self._drop(dk, done=True)
        elif (len(st.data) > self.settings.stream_bytes
              or st.segments > self.settings.stream_segments):
            self._drop(dk)

    def _drop(self, dk: int, done: bool = False) -> None:
        if self._streams.pop(dk, None) is not None:
            self._pending_dirty = True
            if not done:
                self.stats.streams_abandoned += 1

    def _try(self, st: _Stream, pk: _Pkt) -> bool:
        """Decode what the stream holds; True when nothing more is awaited."""
        data = bytes(st.data)
        try:
            if st.kind == "tls":
                self._observe("tls.client_hello", tls_dec.client_hello_from_stream(data), pk)
                return True
            if st.kind == "http.request":
                self._observe("http.request", http_dec.parse_request_head(data), pk)
                return True
            msgs, used = dns_dec.parse_dns_tcp(data)
            for m in msgs:
                self._observe("dns", m, pk)
            del st.data[:used]
            return used > 0 and not st.data
        except NeedMoreData:
            return False
        except DecodeError:
            self.stats.decode_errors += 1
            return True

    def _decode_once(self, kind: str, pk: _Pkt, data: bytes) -> None:
        try:
            self._observe(kind, http_dec.parse_response_head(data), pk)
        except DecodeError:
            self.stats.decode_errors += 1

    # -- UDP -----------------------------------------------------------------

    def _udp(self, pk: _Pkt, data: bytes) -> None:
        try:
            msg = dns_dec.parse_dns(data)
        except DecodeError:
            self.stats.decode_errors += 1
            return
        self._observe("dns", msg, pk)

    def _quic_datagram(self, dk: int, pk: _Pkt, data: bytes) -> None:
        conn = self._quic.get(dk)
        if conn is not None and conn.done:
            return
        if not quic_dec.looks_like_quic_initial(data):
            return
        try:
            pkts = quic_dec.parse_initial_packets(data, conn.key_dcid if conn else None)
        except DecodeError:
            self.stats.quic_undecryptable += 1
            return
        for pkt in pkts:
            if conn is None or pkt.key_dcid != conn.key_dcid:
                # a Retry changes the keys and restarts the CRYPTO stream
                if len(self._quic) >= self.settings.max_pending_streams:
                    self._quic.clear()
                conn = self._quic[dk] = _QuicConn(quic_dec.CryptoReassembler(), pkt.key_dcid)
            for off, chunk in pkt.crypto:
                conn.crypto.add(off, chunk)
        if conn is None:
            return
        try:
            ch = conn.crypto.client_hello()
        except DecodeError:
            self.stats.decode_errors += 1
            conn.done = True
            return
        if ch is not None:
            conn.done = True
            self._observe("quic.client_hello", ch, pk)

    # -- output --------------------------------------------------------------

    def _observe(self, kind: str, payload: Payload, pk: _Pkt) -> None:
        self.stats.observations += 1
        self.stats.by_kind[kind] = self.stats.by_kind.get(kind, 0) + 1
        self.emit(Observation(
            kind=kind,
            ts_ns=pk[0],
            src_ip=self._ip(pk[1], pk[2]),
            src_port=pk[3],
            dst_ip=self._ip(pk[4], pk[5]),
            dst_port=pk[6],
            transport="tcp" if pk[7] == PROTO_TCP else "udp",
            flow_id=pk[8],
            payload=payload,
        ))
