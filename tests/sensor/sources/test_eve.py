"""Suricata EVE events -> the packet path's records, joined on flow_id."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst

from sensor.flows import FlowRecord
from sensor.records import DnsMessage, HttpRequest, HttpResponse, Observation
from sensor.sources.eve import iter_eve_lines
from sensor.sources.logs import (
    IdentityEvent,
    LoggedTlsClientHello,
    LogRecord,
    ReadStats,
    flow_id_of,
    iter_log_records,
)

CORPUS = Path(__file__).resolve().parents[3] / ".." / "shared" / "corpus"
FID = 1234567890123456
TS = "2026-11-26T10:00:00.250000+0000"
TS_NS = 1795687200_250000000


def ev(event_type: str, src: tuple[str, int] = ("10.0.0.5", 50000),
       dst: tuple[str, int] = ("1.2.3.4", 443), proto: str = "TCP", **kw: Any) -> dict[str, Any]:
    return {"timestamp": TS, "flow_id": FID, "event_type": event_type, "src_ip": src[0],
            "src_port": src[1], "dest_ip": dst[0], "dest_port": dst[1], "proto": proto, **kw}


def read(events: list[dict[str, Any]], st: ReadStats | None = None) -> list[LogRecord]:
    return list(iter_eve_lines((json.dumps(e) for e in events), st or ReadStats()))


def test_tls_with_ja3_string_and_ja4_then_flow() -> None:
    tls = ev("tls", tls={"sni": "API.Anthropic.com", "version": "TLS 1.3",
                         "ja3": {"hash": "abc", "string": "771,4865-4866,0-10-11-65037,29-23,0"},
                         "ja4": "t13d0203h2_aaaaaaaaaaaa_bbbbbbbbbbbb",
                         "client_alpns": ["h2", "http/1.1"]})
    flow = ev("flow", app_proto="tls", flow={
        "pkts_toserver": 12, "pkts_toclient": 10, "bytes_toserver": 1300, "bytes_toclient": 5000,
        "start": "2026-11-26T10:00:00.000000+0000", "end": "2026-11-26T10:00:02.500000+0000",
        "reason": "timeout", "state": "closed"})
    o, f = read([tls, flow])
    assert isinstance(o, Observation) and o.kind == "tls.client_hello" and o.ts_ns == TS_NS
    h = o.payload
    assert isinstance(h, LoggedTlsClientHello)
    assert h.sni == "api.anthropic.com" and h.ja4 == "t13d0203h2_aaaaaaaaaaaa_bbbbbbbbbbbb"
    assert h.legacy_version == 771 and h.cipher_suites == (4865, 4866)
    assert h.extensions == (0, 10, 11, 65037) and h.has_ech
    assert h.supported_groups == (29, 23) and h.ec_point_formats == (0,)
    assert h.alpn == (b"h2", b"http/1.1") and h.supported_versions == (0x0304,)
    assert isinstance(f, FlowRecord) and f.key == o.flow_id == flow_id_of(str(FID))
    assert (f.client_ip, f.server_port, f.proto) == ("10.0.0.5", 443, 6)
    assert (f.packets_client_to_server, f.packets_server_to_client) == (12, 10)
    assert (f.bytes_client_to_server, f.bytes_server_to_client) == (1300, 5000)
    assert f.last_ns - f.first_ns == 2_500_000_000 and f.end_reason == "timeout"


def test_quic_event_needs_a_hello() -> None:
    st = ReadStats()
    recs = read([ev("quic", proto="UDP", quic={"version": "1"}),
                 ev("quic", proto="UDP", quic={"version": "1", "sni": "chatgpt.com",
                                               "ja4": "q13d0310h3_x_y",
                                               "extensions": [{"type": 16, "name": "alpn",
                                                               "values": ["h3"]}]})], st)
    (o,) = recs
    assert isinstance(o, Observation) and o.kind == "quic.client_hello" and o.transport == "udp"
    assert isinstance(o.payload, LoggedTlsClientHello) and o.payload.alpn == (b"h3",)
    assert st.ignored == 1


@pytest.mark.parametrize("version", [2, 3])
def test_dns_query_and_answer(version: int) -> None:
    if version == 2:
        q = {"type": "query", "id": 7, "rrname": "api.openai.com", "rrtype": "A", "tx_id": 0}
        a = {"version": 2, "type": "answer", "id": 7, "rrname": "api.openai.com", "rrtype": "A",
             "rcode": "NOERROR", "answers": [
                 {"rrname": "api.openai.com", "rrtype": "CNAME", "ttl": 300,
                  "rdata": "api.openai.com.cdn.cloudflare.net"},
                 {"rrname": "api.openai.com.cdn.cloudflare.net", "rrtype": "A", "ttl": 60,
                  "rdata": "162.159.140.245"}]}
    else:
        q = {"version": 3, "type": "request", "id": 7,
             "queries": [{"rrname": "api.openai.com", "rrtype": "A"}]}
        a = {"version": 3, "type": "response", "id": 7, "rcode": "NOERROR",
             "queries": [{"rrname": "api.openai.com", "rrtype": "A"}], "answers": [
                 {"rrname": "api.openai.com", "rrtype": "CNAME", "ttl": 300,
                  "rdata": "api.openai.com.cdn.cloudflare.net"},
                 {"rrname": "api.openai.com.cdn.cloudflare.net", "rrtype": "A", "ttl": 60,
                  "rdata": "162.159.140.245"}]}
    c, s = ("10.0.0.5", 40000), ("10.0.0.1", 53)
    # the answer event in packet direction (server -> client), as older Suricata logs it
    qo, ao = read([ev("dns", c, s, "UDP", dns=q), ev("dns", s, c, "UDP", dns=a)])
    assert isinstance(qo, Observation) and isinstance(qo.payload, DnsMessage)
    assert not qo.payload.is_response and qo.payload.questions[0].name == "api.openai.com"
    assert (qo.src_ip, qo.dst_port) == ("10.0.0.5", 53)
    assert isinstance(ao, Observation) and isinstance(ao.payload, DnsMessage)
    m = ao.payload
    assert m.is_response and m.rcode == 0 and (ao.src_port, ao.dst_ip) == (53, "10.0.0.5")
    assert [(x.rtype, x.ttl_s, x.value) for x in m.answers] == [
        (5, 300, "api.openai.com.cdn.cloudflare.net"), (1, 60, "162.159.140.245")]


def test_dns_grouped_answers_and_flow_oriented_answer() -> None:
    c, s = ("10.0.0.5", 40000), ("10.0.0.1", 53)
    a = {"version": 2, "type": "answer", "id": 1, "rrname": "x.example", "rrtype": "AAAA",
         "rcode": "NXDOMAIN", "grouped": {"AAAA": ["2001:db8::1"]}}
    (o,) = read([ev("dns", c, s, "UDP", dns=a)])  # logged client -> server
    assert isinstance(o, Observation) and isinstance(o.payload, DnsMessage)
    assert (o.src_ip, o.dst_ip) == ("10.0.0.1", "10.0.0.5") and o.payload.rcode == 3
    assert [(x.rtype, x.value) for x in o.payload.answers] == [(28, "2001:db8::1")]


def test_dns_v1_answer_per_event() -> None:
    c, s = ("10.0.0.5", 40000), ("10.0.0.1", 53)
    a = {"type": "answer", "id": 1, "rrname": "x.example", "rrtype": "CNAME", "ttl": 20,
         "rdata": "Y.example", "rcode": "NOERROR"}
    (o,) = read([ev("dns", s, c, "UDP", dns=a)])
    assert isinstance(o, Observation) and isinstance(o.payload, DnsMessage)
    assert [(x.name, x.rtype, x.ttl_s, x.value) for x in o.payload.answers] == [
        ("x.example", 5, 20, "y.example")]


def test_http_request_and_response() -> None:
    (req, resp) = read([ev("http", dst=("10.9.9.9", 8080), http={
        "hostname": "LLM.corp", "http_port": 8080, "url": "/v1/chat/completions",
        "http_user_agent": "openai-python/1.40", "http_method": "POST", "protocol": "HTTP/1.1",
        "status": 200, "http_content_type": "text/event-stream", "length": 99})])
    assert isinstance(req, Observation) and isinstance(req.payload, HttpRequest)
    assert (req.payload.host, req.payload.host_port) == ("llm.corp", 8080)
    assert req.payload.method == "POST" and req.payload.version == "HTTP/1.1"
    assert isinstance(resp, Observation) and isinstance(resp.payload, HttpResponse)
    assert resp.payload.content_type == "text/event-stream" and resp.src_port == 8080


def test_dhcp_and_krb5_identities() -> None:
    dhcp = ev("dhcp", ("0.0.0.0", 68), ("255.255.255.255", 67), "UDP", dhcp={
        "type": "request", "id": 1, "client_mac": "AA:BB:CC:00:11:22", "client_ip": "0.0.0.0",
        "requested_ip": "192.168.1.77", "hostname": "nas1\u0000", "dhcp_type": "request"})
    krb = ev("krb5", ("10.0.0.7", 49000), ("10.0.0.2", 88), "TCP", krb5={
        "msg_type": "KRB_AS_REQ", "cname": "testuser", "realm": "DEMO.LOCAL",
        "sname": "krbtgt/DEMO.LOCAL"})
    d, k = read([dhcp, krb])
    assert d == IdentityEvent("dhcp", TS_NS, "192.168.1.77", "aa:bb:cc:00:11:22", "nas1", None,
                              None, flow_id_of(str(FID)), "request")
    assert isinstance(k, IdentityEvent)
    assert (k.ip, k.user, k.realm, k.detail) == ("10.0.0.7", "testuser", "DEMO.LOCAL",
                                                 "KRB_AS_REQ")


def test_bad_and_unused_lines_are_counted(tmp_path: Path) -> None:
    p = tmp_path / "eve.json.gz"
    with gzip.open(p, "wt") as f:
        f.write(json.dumps(ev("stats", stats={})) + "\n")  # first line makes it EVE
        f.write("{not json\n[1,2]\n")
        f.write(json.dumps(ev("alert", alert={"signature": "x"})) + "\n")
        f.write(json.dumps({**ev("tls", tls={"sni": "a.b"}), "timestamp": "yesterday"}) + "\n")
    st = ReadStats()
    assert list(iter_log_records(p, st)) == []
    assert st.kinds[str(p)] == "eve" and st.ignored == 2
    assert st.skipped == {"eve: does not parse": 1, "eve: no event_type": 1,
                          "eve tls: bad value": 1}


@settings(max_examples=200, deadline=None)
@given(hst.dictionaries(hst.sampled_from(["dns", "tls", "quic", "http", "flow", "dhcp", "krb5",
                                          "src_port", "dest_port", "proto", "flow_id"]),
                        hst.one_of(hst.none(), hst.integers(), hst.text(max_size=8),
                                   hst.lists(hst.integers(), max_size=3),
                                   hst.dictionaries(hst.text(max_size=8),
                                                    hst.one_of(hst.text(max_size=8),
                                                               hst.integers()), max_size=4))),
       hst.sampled_from(["dns", "tls", "quic", "http", "flow", "dhcp", "krb5"]))
def test_hostile_events_never_raise(extra: dict[str, Any], et: str) -> None:
    st = ReadStats()
    read([{"timestamp": TS, "event_type": et, **extra}], st)
    assert st.lines == 1


@pytest.mark.corpus
def test_suricata_verify_eve_sample() -> None:
    p = CORPUS / "suricata-verify" / "tests" / "output-eve-fileinfo" / "expected" / "eve.json"
    if not p.is_file():
        pytest.skip("suricata-verify EVE sample not present")
    st = ReadStats()
    list(iter_log_records(p, st))
    assert st.kinds[str(p)] == "eve" and not st.skipped and st.lines > 0
