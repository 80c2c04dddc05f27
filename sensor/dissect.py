"""Select the packets worth decoding (numpy, whole batch) and decode them.

Only handshakes, DNS messages and HTTP heads reach Python, plus the next
segments of a stream whose handshake or head is still incomplete. TCP streams
are reassembled per direction only until the message is complete or a small
byte/segment budget is spent. A connection whose client sends an HTTP request
head is followed in both directions by an ``HttpConversation`` until its byte
budget is spent (``http_stream.FLOW_BUDGET``), for request/response bodies.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from sensor.config import Settings
from sensor.decoders import dhcp as dhcp_dec
from sensor.decoders import dns as dns_dec
from sensor.decoders import h2c as h2c_dec
from sensor.decoders import http as http_dec
from sensor.decoders import http_stream
from sensor.decoders import kerberos as krb_dec
from sensor.decoders import quic as quic_dec
from sensor.decoders import tls as tls_dec
from sensor.decoders.link import PROTO_TCP, PROTO_UDP, Columns, ip_text
from sensor.errors import DecodeError, NeedMoreData
from sensor.npsets import member
from sensor.records import HttpRequest, HttpResponse, Observation, Payload, slot_builder

I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]

_DIR_SALT = np.uint64(0x5BD1E9955BD1E995)
_DIR_FLIP = int(_DIR_SALT)  # dk ^ _DIR_FLIP: the same flow's other direction
_HOSTNAME = re.compile(r"(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9_-]{1,63}")


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
class _HttpFlow:
    """An HTTP connection being followed in both directions."""

    conv: http_stream.HttpConversation
    client_dk: int  # direction key of the client's packets
    client_pk: _Pkt  # a client->server packet: addresses for the observations
    fin_client: bool = False
    last_ns: int = 0


# TCP flags
_FIN, _RST = 0x01, 0x04
# an HTTP connection quiet this long is reported and no longer followed (live captures)
HTTP_IDLE_NS = 120 * 1_000_000_000


@dataclass(slots=True)
class _QuicConn:
    """Client Initials of one QUIC connection, until its ClientHello is complete."""

    crypto: quic_dec.CryptoReassembler
    key_dcid: bytes
    done: bool = False


@dataclass(slots=True)
class _H2c:
    """A cleartext HTTP/2 connection followed for DoH: both directions' frame state."""

    client_dk: int
    dirs: dict[int, h2c_dec.H2cDirection] = field(default_factory=dict)
    bytes: int = 0


_MAX_H2C = 1024
_H2C_BUDGET = 1 << 20


@dataclass(slots=True)
class DissectStats:
    decode_errors: int = 0
    streams_abandoned: int = 0  # budget spent or table full before a message completed
    quic_undecryptable: int = 0  # long-header datagrams with no decryptable client Initial
    observations: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    http_conversations: int = 0  # connections followed in both directions
    http_budget_spent: int = 0  # ... until their byte budget ran out
    http_table_full: int = 0  # connections given up early to make room for a new one
    http_idle_ended: int = 0  # connections reported after HTTP_IDLE_NS without a packet
    http_gaps: int = 0  # messages abandoned because segments were missing
    http_errors: int = 0  # heads or chunked bodies that did not decode in a conversation


_observation: Callable[..., Observation] = slot_builder(Observation)  # one per message


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
        self._quic: dict[int, _QuicConn] = {}
        self._h2c: dict[int, _H2c] = {}  # flow key -> h2c connection
        self._http: dict[int, _HttpFlow] = {}  # flow key -> HTTP connection followed
        self._http_seen: dict[int, None] = {}  # flow keys whose budget is spent (bounded)
        self._http_keys: U64 = np.zeros(0, dtype=np.uint64)
        self._http_dirty = False
        self.http_budget = http_stream.FLOW_BUDGET
        # at most this many followed at once; each holds < http_budget bytes (usually far less)
        self.max_http_flows = max(1, min(4096, settings.max_pending_streams // 10))
        self.http_idle_ns = HTTP_IDLE_NS
        self._http_swept_ns = 0

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
        if self._http and ts_ns.size:
            self._http_sweep(int(ts_ns[0]))
        if self._http_dirty:
            self._http_keys = np.fromiter(self._http.keys(), dtype=np.uint64,
                                          count=len(self._http))
            self._http_dirty = False
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
        # DNS on another port (a local resolver on 5333, 5335...): a plausible header with one
        # question, checked on the few UDP packets that are nothing else
        dns_heur = np.zeros_like(udp)
        # (NetBIOS name service on 137 has the DNS layout but is not DNS)
        cand = np.flatnonzero(udp & ~dns_udp & (L >= 17) & ((b0 & 0xC0) != 0xC0)
                              & (sp != 137) & (dp != 137))
        if cand.size:
            pc = p[cand]
            hdr = np.stack([at(pc + k) for k in (2, 4, 5, 6, 8, 10, 12)])
            dns_heur[cand] = (((hdr[0] & 0x78) == 0) & (hdr[1] == 0) & (hdr[2] == 1)
                              & (hdr[3] == 0) & (hdr[4] == 0) & (hdr[5] == 0)
                              & (hdr[6] >= 1) & (hdr[6] <= 63))
        # attribution: DHCP leases and Kerberos principals (sensor/identity)
        dhcp = udp & ((sp == 67) | (dp == 67) | (sp == 68) | (dp == 68))
        dhcp6 = udp & ((sp == 546) | (dp == 546) | (sp == 547) | (dp == 547))
        krb_udp = udp & ((sp == 88) | (dp == 88))
        krb_tcp = tcp & ((sp == 88) | (dp == 88))
        # QUIC long header with the fixed bit: Initials are picked out in Python
        quic = udp & (L >= 7) & ((b0 & 0xC0) == 0xC0) & ~dns_udp
        # only a start whose message may go on in later segments needs its stream followed:
        # a TLS record longer than this segment, an HTTP head not ending here, DNS/TCP
        rec_len = ((w4 & 0xFF) << 8) | b4
        # an HTTP head that does not end in this segment: the last 4 bytes of the few heads
        hr = np.flatnonzero(http_req)
        head_open = np.zeros_like(http_req)
        if hr.size:
            e = p[hr] + L[hr]
            last4 = (at(e - 4) << 24) | (at(e - 3) << 16) | (at(e - 2) << 8) | at(e - 1)
            head_open[hr] = last4 != 0x0D0A0D0A
        open_ended = ((tls_start & (rec_len + 5 > L)) | head_open
                      | dns_tcp | krb_tcp)
        follow_keys = dkeys[open_ended]
        if self._pending.size:
            follow_keys = np.concatenate((follow_keys, self._pending))
        follow = tcp & member(dkeys, follow_keys) if follow_keys.size else np.zeros_like(tcp)
        # HTTP connections: every segment with payload, FIN or RST, both directions, of a
        # flow followed already or whose request head is in this batch
        http_keys = keys[http_req]
        if self._http_keys.size:
            http_keys = np.concatenate((http_keys, self._http_keys))
        if http_keys.size:
            seg = c.ok & (c.proto == PROTO_TCP) & ((L > 0) | ((c.tcp_flags & (_FIN | _RST)) != 0))
            http_flow = seg & member(keys, http_keys)
        else:
            http_flow = np.zeros_like(tcp)
        # cleartext HTTP/2 with prior knowledge (DNS over HTTPS in clear): its preface, and
        # every later segment of the few such connections
        h2c_keys = keys[tcp & (w4 == 0x50524920)]  # "PRI "
        if self._h2c:
            h2c_keys = np.concatenate((h2c_keys, np.fromiter(
                self._h2c.keys(), dtype=np.uint64, count=len(self._h2c))))
        h2c = tcp & member(keys, h2c_keys) if h2c_keys.size else np.zeros_like(tcp)
        # one code per packet; the first true test wins (same order as below)
        code = np.select([h2c, dns_udp, quic, tls_start, http_req, dns_tcp, http_resp, follow,
                          dhcp, dhcp6, krb_udp, krb_tcp, dns_heur],
                         [13, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], 0)
        sel = np.flatnonzero((code != 0) | http_flow)
        if sel.size == 0:
            return

        streams = self._streams
        buf_b = buf  # local for speed
        pkts = zip(ts_ns[sel].tolist(), c.src_hi[sel].tolist(), c.src_lo[sel].tolist(),
                   c.sport[sel].tolist(), c.dst_hi[sel].tolist(), c.dst_lo[sel].tolist(),
                   c.dport[sel].tolist(), c.proto[sel].tolist(), keys[sel].tolist(),
                   ((c.tcp_seq[sel].astype(np.int64) + ((c.tcp_flags[sel] >> 1) & 1))
                    & 0xFFFFFFFF).tolist(), strict=True)
        http_sel = http_flow[sel].tolist()
        flags_sel = c.tcp_flags[sel].tolist()
        for pk, k, dk, o, n, inhttp, fl in zip(
                pkts, code[sel].tolist(), dkeys[sel].tolist(), p[sel].tolist(),
                L[sel].tolist(), http_sel, flags_sel, strict=True):
            data = buf_b[o: o + n].tobytes()
            if inhttp:
                hf = self._http.get(pk[8])
                if hf is not None:
                    self._http_feed(hf, pk, dk, data, fl)
                    if k in (0, 4, 6):  # the conversation had it (a TLS start may follow CONNECT)
                        continue
                elif k == 0:
                    continue
            if k == 1:
                self._udp(pk, data)
                continue
            if k == 13:
                self._h2c_segment(pk, dk, data)
                continue
            if k == 2:
                self._quic_datagram(dk, pk, data)
                continue
            if 8 <= k <= 10:
                self._identity_datagram(k, pk, data)
                continue
            if k == 12:
                self._udp_heuristic(pk, data)
                continue
            st = streams.get(dk)
            if st is not None:
                self._continue(dk, st, pk, data)
            elif k == 3:
                self._start("tls", dk, pk, data)
            elif k == 4:
                self._http_start(pk, dk, data)
            elif k == 5:
                self._start("dns.tcp", dk, pk, data)
            elif k == 11:
                self._start("krb.tcp", dk, pk, data)
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
            if st.kind == "krb.tcp":
                krbs, used = krb_dec.parse_kerberos_tcp(data)
                for km in krbs:
                    self._observe("kerberos", km, pk)
            else:
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

    # -- HTTP connections ------------------------------------------------------

    def _http_sweep(self, now_ns: int) -> None:
        """Once per capture second: report and drop connections idle too long."""
        if now_ns - self._http_swept_ns < 1_000_000_000:
            return
        self._http_swept_ns = now_ns
        for key, hf in list(self._http.items()):
            if now_ns - hf.last_ns > self.http_idle_ns:
                self.stats.http_idle_ended += 1
                self._http_close(key, hf)

    def _http_close(self, key: int, hf: _HttpFlow) -> None:
        for ev in hf.conv.flush():
            self._http_event(hf, ev, hf.last_ns)
        self._http_end(key, hf)

    def _http_start(self, pk: _Pkt, dk: int, data: bytes) -> None:
        """A request head in a flow not followed: follow it, or decode the head alone."""
        if pk[8] in self._http_seen or self.max_http_flows <= 0:
            self._start("http.request", dk, pk, data)
            return
        if len(self._http) >= self.max_http_flows:
            # table full: the connection followed longest gives way (reported as it stands)
            self.stats.http_table_full += 1
            key = next(iter(self._http))
            self._http_close(key, self._http[key])
        self._http[pk[8]] = _HttpFlow(http_stream.HttpConversation(self.http_budget), dk, pk,
                                      last_ns=pk[0])
        self._http_dirty = True
        self.stats.http_conversations += 1
        self._http_feed(self._http[pk[8]], pk, dk, data, 0)

    def _http_feed(self, hf: _HttpFlow, pk: _Pkt, dk: int, data: bytes, flags: int) -> None:
        conv = hf.conv
        hf.last_ns = pk[0]
        from_client = dk == hf.client_dk
        events = conv.feed(from_client, pk[9], data, pk[0]) if data else []
        if flags & _RST or (flags & _FIN and (not from_client or hf.fin_client)):
            events += conv.flush()
        elif flags & _FIN:
            hf.fin_client = True
        for ev in events:
            self._http_event(hf, ev, pk[0])
        if conv.done:
            self._http_end(pk[8], hf)

    def _http_event(self, hf: _HttpFlow, ev: http_stream.HttpEvent, ts_ns: int) -> None:
        c = hf.client_pk
        if isinstance(ev, HttpResponse):
            pk: _Pkt = (ts_ns, c[4], c[5], c[6], c[1], c[2], c[3], c[7], c[8], c[9])
            self._observe("http.response", ev, pk)
            return
        pk = (ts_ns, c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9])
        self._observe("http.request" if isinstance(ev, HttpRequest) else "http.exchange", ev, pk)

    def _http_end(self, key: int, hf: _HttpFlow) -> None:
        st = hf.conv.stats
        self.stats.http_gaps += st.gaps
        self.stats.http_errors += st.errors
        if st.bytes_in >= hf.conv.budget:
            self.stats.http_budget_spent += 1
            if len(self._http_seen) >= self.settings.max_pending_streams:
                self._http_seen.clear()
            self._http_seen[key] = None
        del self._http[key]
        self._http_dirty = True

    def flush(self) -> None:
        """End of input: report what HTTP connections still hold (responses cut short...)."""
        for key, hf in list(self._http.items()):
            self._http_close(key, hf)

    # -- UDP -----------------------------------------------------------------

    def _udp(self, pk: _Pkt, data: bytes) -> None:
        try:
            msg = dns_dec.parse_dns(data)
        except DecodeError:
            self.stats.decode_errors += 1
            return
        self._observe("dns", msg, pk)

    def _h2c_segment(self, pk: _Pkt, dk: int, data: bytes) -> None:
        """h2c connections: DNS messages carried in DATA frames (DoH in clear)."""
        conn = self._h2c.get(pk[8])
        if conn is None:
            if not data.startswith(h2c_dec.PREFACE[:4]) or len(self._h2c) >= _MAX_H2C:
                return
            conn = self._h2c[pk[8]] = _H2c(dk)
        d = conn.dirs.get(dk)
        if d is None:
            d = conn.dirs[dk] = h2c_dec.H2cDirection(client=dk == conn.client_dk)
        conn.bytes += len(data)
        for _sid, body in d.feed(data):
            try:
                msg = dns_dec.parse_dns(body)
            except DecodeError:
                continue
            if msg.questions and _HOSTNAME.fullmatch(msg.questions[0].name):
                self._observe("dns", msg, pk)
        if conn.bytes > _H2C_BUDGET or all(x.dead for x in conn.dirs.values()):
            del self._h2c[pk[8]]

    def _udp_heuristic(self, pk: _Pkt, data: bytes) -> None:
        """DNS recognised by content on a port that is not DNS's: kept only if it parses
        completely into a query/response for a well-formed name (else: not DNS, silently)."""
        try:
            msg = dns_dec.parse_dns(data)
        except DecodeError:
            return
        if len(msg.questions) == 1 and _HOSTNAME.fullmatch(msg.questions[0].name):
            self.stats.by_kind["dns.heuristic"] = self.stats.by_kind.get("dns.heuristic", 0) + 1
            self._observe("dns", msg, pk)

    def _identity_datagram(self, k: int, pk: _Pkt, data: bytes) -> None:
        try:
            if k == 8:
                self._observe("dhcp", dhcp_dec.parse_dhcp(data), pk)
            elif k == 9:
                self._observe("dhcpv6", dhcp_dec.parse_dhcpv6(data), pk)
            else:
                self._observe("kerberos", krb_dec.parse_kerberos(data), pk)
        except DecodeError:
            self.stats.decode_errors += 1

    def _quic_datagram(self, dk: int, pk: _Pkt, data: bytes) -> None:
        conn = self._quic.get(dk)
        if conn is not None and conn.done:
            return
        if conn is None and dk ^ _DIR_FLIP in self._quic:
            return  # the server's Initials of a connection followed: other keys, no ClientHello
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
        self.emit(_observation(
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
