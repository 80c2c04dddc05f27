"""Log sources: Zeek and Suricata EVE records as the packet path's records.

Readers (``sources.zeek``, ``sources.eve``) turn log lines into the same
:class:`~sensor.records.Observation` and :class:`~sensor.flows.FlowRecord`
objects the packet path makes, plus :class:`IdentityEvent` for DHCP and
Kerberos. A log's connection id (Zeek ``uid``, EVE ``flow_id``) becomes the
64-bit ``flow_id``/``key`` (:func:`flow_id_of`), so the pipeline joins a
flow with the observations that carried the same id.

Order contract: for one connection, observations are yielded before its
FlowRecord. Zeek writes conn.log when the connection ends, in another file, so
a set of Zeek logs is read app logs first, conn.log last (per rotation chunk).
"""

from __future__ import annotations

import calendar
import hashlib
import ipaddress
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sensor.findings import count_bounded
from sensor.flows import FlowRecord
from sensor.records import (
    DnsAnswer,
    DnsMessage,
    DnsQuestion,
    HttpRequest,
    HttpResponse,
    Observation,
    TlsClientHello,
)


@dataclass(frozen=True, slots=True)
class LoggedTlsClientHello(TlsClientHello):
    """A ClientHello known from a log line, not from its bytes.

    Lists the log does not carry are empty tuples. ``legacy_version`` and
    ``supported_versions`` are derived from the negotiated version when the
    log has no JA3 string; ``ja4``/``ja3`` are the fingerprints the log wrote
    (use them rather than recomputing from the partial lists).
    """

    ja4: str | None = None
    ja3: str | None = None


@dataclass(frozen=True, slots=True)
class IdentityEvent:
    """Who was at an address: DHCP lease/request or Kerberos principal."""

    kind: str  # "dhcp" | "kerberos"
    ts_ns: int
    ip: str | None  # the client's address (DHCP: assigned/requested/client addr)
    mac: str | None  # lower-case aa:bb:cc:dd:ee:ff
    hostname: str | None
    user: str | None  # Kerberos client principal without the realm
    realm: str | None
    flow_id: int
    detail: str | None = None  # DHCP message type / Kerberos request type


LogRecord = Observation | FlowRecord | IdentityEvent
_MAX_REASONS = 256  # distinct skip reasons kept (the count of a new one past this is dropped)


@dataclass(slots=True)
class ReadStats:
    """What a reader did: records read, lines skipped and why."""

    files: int = 0
    lines: int = 0
    records: int = 0  # log records turned into something
    observations: int = 0
    flows: int = 0
    identities: int = 0
    ignored: int = 0  # well-formed records of logs/events we do not use
    ts_unreadable: int = 0  # records kept with ts 0 (e.g. btest's XXXXXXXXXX.XXXXXX)
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> lines
    kinds: dict[str, str] = field(default_factory=dict)  # input path -> detected kind

    def skip(self, reason: str) -> None:
        count_bounded(self.skipped, reason, _MAX_REASONS)  # a reason may quote the input

    def count(self, rec: LogRecord) -> None:
        if isinstance(rec, Observation):
            self.observations += 1
        elif isinstance(rec, FlowRecord):
            self.flows += 1
        else:
            self.identities += 1


def flow_id_of(conn_id: str) -> int:
    """A stable unsigned 64-bit id from a log's connection id: the first 8
    bytes (big-endian) of blake2b(digest_size=8) of its UTF-8 text."""
    return int.from_bytes(hashlib.blake2b(conn_id.encode("utf-8", "surrogateescape"),
                                          digest_size=8).digest(), "big")


# -- time -------------------------------------------------------------------------


def seconds_ns(v: float) -> int:
    """Seconds (epoch or interval) to ns, rounded to the microsecond Zeek writes."""
    return round(v * 1e6) * 1000


def epoch_text_ns(s: str) -> int:
    """``1521911720.865716`` to ns (microsecond resolution, as logged)."""
    if s[-7:-6] == "." and s[:1] != "-":  # Zeek's 6 decimals: exact, and faster than float
        return int(s.replace(".", "")) * 1000
    return round(float(s) * 1e6) * 1000


_SECONDS: dict[str, int] = {}  # "YYYY-MM-DDTHH:MM:SS" -> epoch s: log lines share seconds


def iso_ns(s: str) -> int:
    """RFC 3339 / EVE timestamps to ns: ``2018-03-24T17:15:20.865716Z``,
    ``2016-06-08T20:01:52.875791+0000``, ``...+01:00``. ValueError if not one."""
    secs = _SECONDS.get(s[:19])
    if secs is None:
        if len(s) < 19 or s[4] != "-" or s[10] not in "Tt ":
            raise ValueError(f"not a timestamp: {s[:40]!r}")
        mo, d, h, mi, se = int(s[5:7]), int(s[8:10]), int(s[11:13]), int(s[14:16]), int(s[17:19])
        if not (1 <= mo <= 12 and 1 <= d <= 31 and h < 24 and mi < 60 and se < 61):
            raise ValueError(f"not a timestamp: {s[:40]!r}")
        secs = calendar.timegm((int(s[0:4]), mo, d, h, mi, se, 0, 0, 0))
        if len(_SECONDS) >= 4096:
            _SECONDS.clear()
        _SECONDS[s[:19]] = secs
    i = 19
    frac = 0
    if i < len(s) and s[i] == ".":
        j = i + 1
        while j < len(s) and s[j].isdigit():
            j += 1
        digits = s[i + 1:j][:9]
        frac = int(digits.ljust(9, "0")) if digits else 0
        i = j
    tz = s[i:]
    off = 0
    if tz and tz not in ("Z", "z"):
        sign = -1 if tz[0] == "-" else 1
        hhmm = tz[1:].replace(":", "")
        if tz[0] not in "+-" or len(hhmm) != 4 or not hhmm.isdigit():
            raise ValueError(f"bad offset in {s[:40]!r}")
        off = sign * (int(hhmm[:2]) * 3600 + int(hhmm[2:]) * 60)
    return (secs - off) * 1_000_000_000 + frac


# -- names and numbers ---------------------------------------------------------------

PROTO_NUMBERS = {"tcp": 6, "udp": 17, "icmp": 1, "icmp6": 58, "ipv6-icmp": 58, "sctp": 132}

RRTYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "HINFO": 13, "MX": 15,
           "TXT": 16, "AAAA": 28, "SRV": 33, "NAPTR": 35, "DS": 43, "RRSIG": 46,
           "NSEC": 47, "DNSKEY": 48, "NSEC3": 50, "SVCB": 64, "HTTPS": 65, "ANY": 255,
           "CAA": 257, "OPT": 41}
RCODES = {"NOERROR": 0, "FORMERR": 1, "SERVFAIL": 2, "NXDOMAIN": 3, "NOTIMP": 4,
          "REFUSED": 5, "YXDOMAIN": 6, "YXRRSET": 7, "NXRRSET": 8, "NOTAUTH": 9,
          "NOTZONE": 10, "BADVERS": 16}
TLS_VERSIONS = {"SSLv3": 0x0300, "TLSv10": 0x0301, "TLSv11": 0x0302, "TLSv12": 0x0303,
                "TLSv13": 0x0304, "TLS 1.0": 0x0301, "TLS 1.1": 0x0302, "TLS 1.2": 0x0303,
                "TLS 1.3": 0x0304, "SSLv2": 0x0200}
_CNAME, _A, _AAAA = 5, 1, 28
NAME_RTYPES = frozenset({2, _CNAME, 12, 15, 64, 65})  # NS CNAME PTR MX SVCB HTTPS: rdata names
_NAME_QTYPES = (_A, _AAAA, 64, 65)  # a name answering these is a CNAME in the chain


def rrtype_number(v: object) -> int:
    if isinstance(v, int):
        return v
    if isinstance(v, str):
        if v.isdigit():
            return int(v)
        if v.upper().startswith("TYPE") and v[4:].isdigit():
            return int(v[4:])
        return RRTYPES.get(v.upper(), 0)
    return 0


def rcode_number(v: object) -> int:
    if isinstance(v, int):
        return v
    if isinstance(v, str):
        return int(v) if v.isdigit() else RCODES.get(v.upper(), 0)
    return 0


def dns_name(v: str) -> str:
    return v.lower().rstrip(".") if v != "." else ""


def ip_family_type(v: str) -> int:
    """1 (A) / 28 (AAAA) when ``v`` is an address, else 0."""
    if not v or not (v[0].isdigit() or ":" in v):
        return 0
    try:
        return _A if ipaddress.ip_address(v).version == 4 else _AAAA
    except ValueError:
        return 0


def host_and_port(v: str | None) -> tuple[str | None, int | None]:
    """A Host header value: lower-case name, port stripped (``[v6]:p`` too)."""
    if not v:
        return None, None
    v = v.strip()
    if v.startswith("["):
        end = v.find("]")
        if end > 0:
            rest = v[end + 1:]
            port = int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
            return v[1:end].lower(), port
    if v.count(":") == 1:
        h, p = v.split(":", 1)
        return h.lower(), (int(p) if p.isdigit() and len(p) <= 5 else None)
    return v.lower(), None


def mac_norm(v: str | None) -> str | None:
    return v.lower() if v else None


# -- builders: the same records as the packet path ---------------------------------------


def tls_observation(ts_ns: int, fid: int, orig_h: str, orig_p: int, resp_h: str, resp_p: int,
                    *, quic: bool, sni: str | None, version: str | None,
                    alpn: tuple[str, ...] = (), ja4: str | None = None,
                    ja3_hash: str | None = None, ja3_string: str | None = None) -> Observation:
    """A ClientHello from a log row (Zeek ssl/quic.log, EVE tls/quic)."""
    legacy = 0
    supported: tuple[int, ...] = ()
    ciphers: tuple[int, ...] = ()
    exts: tuple[int, ...] = ()
    groups: tuple[int, ...] = ()
    points: tuple[int, ...] = ()
    parsed = _parse_ja3(ja3_string) if ja3_string else None
    if parsed is not None:
        legacy, ciphers, exts, groups, points = parsed
    neg = TLS_VERSIONS.get(version or "", 0)
    if not legacy and neg:
        legacy = min(neg, 0x0303)
    if neg == 0x0304:
        supported = (0x0304,)
    hello = LoggedTlsClientHello(
        legacy_version=legacy, cipher_suites=ciphers, compression_methods=(),
        extensions=exts, sni=sni.lower() if sni else None,
        alpn=tuple(a.encode("utf-8", "surrogateescape") for a in alpn),
        supported_versions=supported, signature_algorithms=(), supported_groups=groups,
        ec_point_formats=points, has_ech=0xFE0D in exts, ja4=ja4 or None, ja3=ja3_hash or None)
    return Observation("quic.client_hello" if quic else "tls.client_hello", ts_ns, orig_h, orig_p,
                       resp_h, resp_p, "udp" if quic else "tcp", fid, hello)


def _parse_ja3(s: str) -> tuple[int, tuple[int, ...], tuple[int, ...], tuple[int, ...],
                                  tuple[int, ...]] | None:
    parts = s.split(",")
    if len(parts) != 5:
        return None
    try:
        lists = [tuple(int(x) for x in p.split("-") if x) for p in parts[1:]]
        return int(parts[0]), lists[0], lists[1], lists[2], lists[3]
    except ValueError:
        return None


def dns_answers(query: str, qtype: int, values: list[tuple[str, int, int]]) -> tuple[
        DnsAnswer, ...]:
    """Answers from (value, rtype or 0 when unknown, ttl_s) triples.

    Zeek logs only the values: an address is A/AAAA, a name answering an
    address query is a CNAME of the chain (its owner the previous name), any
    other name has the query's type.
    """
    out = []
    owner = query
    for value, rtype, ttl in values:
        if not rtype:
            rtype = ip_family_type(value) or (_CNAME if qtype in _NAME_QTYPES else qtype)
        a = dns_answer(owner, rtype, ttl, value)
        out.append(a)
        if rtype == _CNAME:
            owner = a.value
    return tuple(out)


def dns_answer(owner: str, rtype: int, ttl: int, value: str) -> DnsAnswer:
    """One answer; a name value (:data:`NAME_RTYPES`) is written as :func:`dns_name`."""
    return DnsAnswer(owner, rtype, ttl, dns_name(value) if rtype in NAME_RTYPES else value)


def dns_observation(ts_ns: int, fid: int, src: str, sport: int, dst: str, dport: int,
                    transport: str, txid: int, is_response: bool, query: str | None,
                    qtype: int, qclass: int, rcode: int,
                    answers: tuple[DnsAnswer, ...]) -> Observation:
    qs = (DnsQuestion(dns_name(query), qtype, qclass),) if query is not None else ()
    msg = DnsMessage(txid=txid, is_response=is_response, opcode=0, rcode=rcode,
                     questions=qs, answers=answers)
    return Observation("dns", ts_ns, src, sport, dst, dport, transport, fid, msg)


def http_request(ts_ns: int, fid: int, orig_h: str, orig_p: int, resp_h: str, resp_p: int, *,
                 method: str | None, uri: str | None, version: str | None, host: str | None,
                 user_agent: str | None, content_type: str | None = None,
                 content_length: int | None = None) -> Observation:
    h, hp = host_and_port(host)
    if version and not version.startswith("HTTP"):
        version = "HTTP/" + version
    req = HttpRequest(method=method or "", target=uri or "", version=version or "",
                      host=h, host_port=hp, user_agent=user_agent, content_type=content_type,
                      content_length=content_length, authorization_scheme=None,
                      api_key_headers=(), accept=None, mcp_session_id=None,
                      mcp_protocol_version=None, last_event_id=None, header_bytes=0)
    return Observation("http.request", ts_ns, orig_h, orig_p, resp_h, resp_p, "tcp", fid, req)


def http_response(ts_ns: int, fid: int, orig_h: str, orig_p: int, resp_h: str, resp_p: int, *,
                  version: str | None, status: int, reason: str | None,
                  content_type: str | None = None,
                  content_length: int | None = None) -> Observation:
    if version and not version.startswith("HTTP"):
        version = "HTTP/" + version
    resp = HttpResponse(version=version or "", status=status, reason=reason or "", server=None,
                        content_type=content_type, content_length=content_length,
                        mcp_session_id=None, header_bytes=0)
    # a response travels server -> client, as on the wire
    return Observation("http.response", ts_ns, resp_h, resp_p, orig_h, orig_p, "tcp", fid, resp)


def flow_record(fid: int, proto: int, orig_h: str, orig_p: int, resp_h: str, resp_p: int,
                first_ns: int, duration_ns: int, orig_pkts: int, resp_pkts: int,
                orig_bytes: int, resp_bytes: int, *, vlan: int = 0, mac: str | None = None,
                end_reason: str = "end") -> FlowRecord:
    return FlowRecord(key=fid, proto=proto, client_ip=orig_h, client_port=orig_p,
                      server_ip=resp_h, server_port=resp_p, vlan=vlan, client_mac=mac,
                      first_ns=first_ns, last_ns=first_ns + duration_ns,
                      packets_client_to_server=orig_pkts, packets_server_to_client=resp_pkts,
                      bytes_client_to_server=orig_bytes, bytes_server_to_client=resp_bytes,
                      end_reason=end_reason)


# -- entry point --------------------------------------------------------------------------


def iter_log_records(path: str | Path, stats: ReadStats | None = None) -> Iterator[LogRecord]:
    """Every record of one log file or Zeek log directory, in the order the
    contract above gives. The kind is detected by content
    (:func:`sensor.sources.detect.detect_input`) and noted in ``stats.kinds``.

    Raises InputError at once (not at the first ``next``) when it is no log.
    """
    return iter_log_paths([path], stats)


def iter_log_paths(paths: list[str | Path], stats: ReadStats | None = None) -> Iterator[
        LogRecord]:
    """Several log inputs as one stream: all Zeek files and directories are read
    together (so conn.log given before ssl.log still comes after it), then each
    EVE file. InputError at once for an input that is no log."""
    from sensor.errors import InputError
    from sensor.sources.detect import detect_input
    from sensor.sources.eve import iter_eve
    from sensor.sources.zeek import iter_zeek, zeek_dir_files

    st = stats if stats is not None else ReadStats()
    zeek: list[Path] = []
    eve: list[Path] = []
    for raw in paths:
        p = Path(raw)
        kind = detect_input(p)
        st.kinds[str(p)] = kind
        if kind == "zeek-dir":
            zeek += zeek_dir_files(p)
        elif kind in ("zeek-tsv", "zeek-json"):
            zeek.append(p)
        elif kind == "eve":
            eve.append(p)
        else:
            raise InputError(f"{p}: not a Zeek log or Suricata EVE file (detected: {kind})")
    parts: list[Iterator[LogRecord]] = [iter_zeek(zeek, st)] if zeek else []
    parts += [iter_eve(p, st) for p in eve]
    return itertools.chain.from_iterable(parts)
