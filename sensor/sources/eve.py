"""Suricata EVE JSON (eve.json, plain or gzip) as observations and flows.

Events used: flow, dns (v1/v2 query/answer events and v3 request/response
events), tls, quic, http, dhcp, krb5; others are counted as ignored. The
``flow_id`` joins them: a flow event (written when the flow ends, after its
transaction events) becomes a FlowRecord whose ``key`` is the ``flow_id``
of the observations of the same flow.

Direction: transaction events are oriented client -> server (src = client),
except where Suricata logged them in packet direction (DNS answers in older
versions, fileinfo): when the source port is the service port and the
destination port is not, the event is taken as server -> client.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from sensor.records import DnsAnswer
from sensor.sources.logs import (
    PROTO_NUMBERS,
    IdentityEvent,
    LogRecord,
    ReadStats,
    dns_answer,
    dns_answers,
    dns_name,
    dns_observation,
    flow_id_of,
    flow_record,
    http_request,
    http_response,
    iso_ns,
    mac_norm,
    rcode_number,
    rrtype_number,
    tls_observation,
)
from sensor.sources.zeek import open_text

_DNS_PORTS = frozenset({53, 5353, 5355})
_KRB_PORTS = frozenset({88})
Addr = tuple[int, int, str, int, str, int]  # ts_ns, flow_id, client ip/port, server ip/port


def _client_first(e: dict[str, Any], ts: int, fid: int,
                  service_ports: frozenset[int] | None = None) -> Addr:
    src, sp = str(e.get("src_ip", "")), int(e.get("src_port") or 0)
    dst, dp = str(e.get("dest_ip", "")), int(e.get("dest_port") or 0)
    if service_ports is not None:
        swap = sp in service_ports and dp not in service_ports
    else:
        swap = sp < 1024 <= dp
    return (ts, fid, dst, dp, src, sp) if swap else (ts, fid, src, sp, dst, dp)


def _str(v: Any) -> str | None:
    return v if isinstance(v, str) and v else None


def _int(v: Any) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) else 0


def _answer(a: dict[str, Any]) -> DnsAnswer:
    return dns_answer(dns_name(str(a.get("rrname", ""))), rrtype_number(a.get("rrtype")),
                      _int(a.get("ttl")), str(a.get("rdata", "")))


class EveConverter:
    def __init__(self, st: ReadStats) -> None:
        self.st = st

    def convert(self, e: dict[str, Any]) -> list[LogRecord]:
        et = e.get("event_type")
        ts = iso_ns(str(e.get("timestamp", "")))
        fid_raw = e.get("flow_id")
        fid = flow_id_of(str(fid_raw)) if fid_raw is not None else 0
        if et == "flow":
            return self._flow(e, ts, fid)
        if et == "dns":
            return self._dns(e, ts, fid)
        if et == "tls":
            return self._tls(e, ts, fid, quic=False)
        if et == "quic":
            return self._tls(e, ts, fid, quic=True)
        if et == "http":
            return self._http(e, ts, fid)
        if et == "dhcp":
            return self._dhcp(e, ts, fid)
        if et == "krb5":
            return self._krb5(e, ts, fid)
        self.st.ignored += 1
        return []

    def _flow(self, e: dict[str, Any], ts: int, fid: int) -> list[LogRecord]:
        f = e.get("flow") or {}
        start = iso_ns(f["start"]) if isinstance(f.get("start"), str) else ts
        end = iso_ns(f["end"]) if isinstance(f.get("end"), str) else start
        vlan = e.get("vlan")
        eth = e.get("ether") or {}
        return [flow_record(
            fid, PROTO_NUMBERS.get(str(e.get("proto", "")).lower(), _int(e.get("proto"))),
            str(e.get("src_ip", "")), _int(e.get("src_port")), str(e.get("dest_ip", "")),
            _int(e.get("dest_port")), start, max(0, end - start),
            _int(f.get("pkts_toserver")), _int(f.get("pkts_toclient")),
            _int(f.get("bytes_toserver")), _int(f.get("bytes_toclient")),
            vlan=_int(vlan[0]) if isinstance(vlan, list) and vlan else 0,
            mac=mac_norm(_str(eth.get("src_mac")) if isinstance(eth, dict) else None),
            end_reason=str(f.get("reason") or "end"))]

    def _dns(self, e: dict[str, Any], ts: int, fid: int) -> list[LogRecord]:
        d = e.get("dns") or {}
        typ = d.get("type")
        is_resp = typ in ("answer", "response") or (typ is None and "answers" in d)
        if typ not in ("query", "request", "answer", "response", None):
            self.st.ignored += 1
            return []
        qs = d.get("queries") or d.get("query")
        q: dict[str, Any] = qs[0] if isinstance(qs, list) and qs and isinstance(
            qs[0], dict) else d
        query = q.get("rrname") if isinstance(q.get("rrname"), str) else None
        qtype = rrtype_number(q.get("rrtype"))
        ts0, f0, ch, cp, sh, sp = _client_first(e, ts, fid, _DNS_PORTS)
        transport = str(e.get("proto", "udp")).lower()
        txid = _int(d.get("id"))
        if not is_resp:
            return [dns_observation(ts0, f0, ch, cp, sh, sp, transport, txid, False, query,
                                    qtype, 1, 0, ())]
        answers: tuple[DnsAnswer, ...] = ()
        detailed = d.get("answers")
        if isinstance(detailed, list):
            answers = tuple(_answer(a) for a in detailed if isinstance(a, dict) and "rdata" in a)
        elif "rdata" in d:  # v1: one event per answer record
            answers = (_answer(d),)
        elif isinstance(d.get("grouped"), dict):
            vals = [(str(v), rrtype_number(k), 0) for k, vs in d["grouped"].items()
                    if isinstance(vs, list) for v in vs if not isinstance(v, dict)]
            answers = dns_answers(dns_name(query or ""), qtype, vals)
        return [dns_observation(ts0, f0, sh, sp, ch, cp, transport, txid, True, query, qtype, 1,
                                rcode_number(d.get("rcode")), answers)]

    def _tls(self, e: dict[str, Any], ts: int, fid: int, quic: bool) -> list[LogRecord]:
        t = e.get("quic" if quic else "tls") or {}
        ja3: dict[str, Any] = t["ja3"] if isinstance(t.get("ja3"), dict) else {}
        sni, ja4 = _str(t.get("sni")), _str(t.get("ja4"))
        if quic and not (sni or ja4 or ja3):
            self.st.ignored += 1  # a QUIC packet event without a ClientHello
            return []
        alpn: tuple[str, ...] = ()
        if isinstance(t.get("client_alpns"), list):
            alpn = tuple(str(a) for a in t["client_alpns"])
        elif isinstance(t.get("extensions"), list):
            for x in t["extensions"]:
                if isinstance(x, dict) and x.get("type") == 16 and isinstance(
                        x.get("values"), list):
                    alpn = tuple(str(a) for a in x["values"])
        return [tls_observation(*_client_first(e, ts, fid), quic=quic, sni=sni,
                                version=_str(t.get("version")) if not quic else None,
                                alpn=alpn, ja4=ja4, ja3_hash=_str(ja3.get("hash")),
                                ja3_string=_str(ja3.get("string")))]

    def _http(self, e: dict[str, Any], ts: int, fid: int) -> list[LogRecord]:
        h = e.get("http") or {}
        a = _client_first(e, ts, fid)
        host = _str(h.get("hostname"))
        port = h.get("http_port")
        if host and isinstance(port, int) and ":" not in host:
            host = f"{host}:{port}"
        out: list[LogRecord] = [http_request(
            *a, method=_str(h.get("http_method")), uri=_str(h.get("url")),
            version=_str(h.get("protocol")), host=host, user_agent=_str(h.get("http_user_agent")))]
        if isinstance(h.get("status"), int):
            out.append(http_response(*a, version=_str(h.get("protocol")), status=h["status"],
                                     reason=_str(h.get("status_string")),
                                     content_type=_str(h.get("http_content_type")),
                                     content_length=h.get("length")
                                     if isinstance(h.get("length"), int) else None))
        return out

    def _dhcp(self, e: dict[str, Any], ts: int, fid: int) -> list[LogRecord]:
        d = e.get("dhcp") or {}
        ip = None
        for k in ("assigned_ip", "requested_ip", "client_ip"):
            v = _str(d.get(k))
            if v and v != "0.0.0.0":
                ip = v
                break
        host = _str(d.get("hostname"))
        return [IdentityEvent("dhcp", ts, ip, mac_norm(_str(d.get("client_mac"))),
                              host.rstrip("\x00") or None if host else None, None, None, fid,
                              _str(d.get("dhcp_type")) or _str(d.get("type")))]

    def _krb5(self, e: dict[str, Any], ts: int, fid: int) -> list[LogRecord]:
        k = e.get("krb5") or {}
        cname = _str(k.get("cname"))
        if not cname or cname == "<empty>":
            self.st.ignored += 1
            return []
        a = _client_first(e, ts, fid, _KRB_PORTS)
        return [IdentityEvent("kerberos", ts, a[2], None, None, cname, _str(k.get("realm")),
                              fid, _str(k.get("msg_type")))]


def eve_line(line: str, st: ReadStats, conv: EveConverter) -> list[LogRecord]:
    """The records of one EVE line (counted in ``st``)."""
    st.lines += 1
    s = line.strip()
    if not s:
        return []
    try:
        e = json.loads(s)
    except ValueError:
        st.skip("eve: does not parse")
        return []
    if not isinstance(e, dict) or "event_type" not in e:
        st.skip("eve: no event_type")
        return []
    try:
        recs = conv.convert(e)
    except (ValueError, TypeError, KeyError, AttributeError, IndexError):
        st.skip(f"eve {e.get('event_type')}: bad value")
        return []
    if recs:
        st.records += 1
    for r in recs:
        st.count(r)
    return recs


def iter_eve_lines(lines: Iterable[str], st: ReadStats) -> Iterator[LogRecord]:
    conv = EveConverter(st)
    for line in lines:
        yield from eve_line(line, st, conv)


def iter_eve(path: Path, st: ReadStats) -> Iterator[LogRecord]:
    st.files += 1
    with open_text(path) as fh:
        yield from iter_eve_lines(fh, st)
