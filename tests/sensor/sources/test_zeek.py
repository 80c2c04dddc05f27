"""Zeek TSV and JSON logs -> the packet path's records."""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst

from sensor.errors import InputError
from sensor.flows import FlowRecord
from sensor.records import DnsMessage, HttpRequest, HttpResponse, Observation
from sensor.sources.logs import (
    IdentityEvent,
    LoggedTlsClientHello,
    LogRecord,
    ReadStats,
    flow_id_of,
    iter_log_paths,
    iter_log_records,
)
from sensor.sources.zeek import (
    RowConverter,
    ZeekLineParser,
    iter_zeek,
    order_files,
    unescape_tsv,
)

CORPUS = Path(__file__).resolve().parents[3] / ".." / "shared" / "corpus"
WRCCDC = CORPUS / "zeek-wrccdc-logs"


def tsv(path: str, fields: list[str], types: list[str], rows: list[list[str]],
        sep: str = "\t", set_sep: str = ",", close: bool = True) -> str:
    head = [f"#separator \\x{ord(sep):02x}", f"#set_separator{sep}{set_sep}",
            f"#empty_field{sep}(empty)", f"#unset_field{sep}-", f"#path{sep}{path}",
            f"#open{sep}2026-11-26-10-00-00", "#fields" + sep + sep.join(fields),
            "#types" + sep + sep.join(types)]
    body = [sep.join(r) for r in rows]
    tail = [f"#close{sep}2026-11-26-11-00-00"] if close else []
    return "\n".join(head + body + tail) + "\n"


CONN_F = ["ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto", "service",
          "duration", "orig_bytes", "resp_bytes", "conn_state", "orig_pkts", "orig_ip_bytes",
          "resp_pkts", "resp_ip_bytes", "tunnel_parents"]
CONN_T = ["time", "string", "addr", "port", "addr", "port", "enum", "string", "interval",
          "count", "count", "string", "count", "count", "count", "count", "set[string]"]
SSL_F = ["ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "version", "cipher",
         "server_name", "next_protocol", "established", "ja4"]
SSL_T = ["time", "string", "addr", "port", "addr", "port", "string", "string", "string",
         "string", "bool", "string"]
DNS_F = ["ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto", "trans_id",
         "rtt", "query", "qclass", "qtype", "rcode", "answers", "TTLs"]
DNS_T = ["time", "string", "addr", "port", "addr", "port", "enum", "count", "interval",
         "string", "count", "count", "count", "vector[string]", "vector[interval]"]
HTTP_F = ["ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "method", "host",
          "uri", "version", "user_agent", "status_code", "status_msg", "tags"]
HTTP_T = ["time", "string", "addr", "port", "addr", "port", "string", "string", "string",
          "string", "string", "count", "string", "set[enum]"]


def conn_row(uid: str, ts: str = "1764151200.123456", dur: str = "1.500000") -> list[str]:
    return [ts, uid, "10.0.0.5", "50000", "93.184.216.34", "443", "tcp", "ssl", dur, "500",
            "4000", "SF", "12", "1124", "10", "4520", "(empty)"]


def records(p: Path, st: ReadStats | None = None) -> list[LogRecord]:
    return list(iter_log_records(p, st))


def test_conn_to_flow_record(tmp_path: Path) -> None:
    p = tmp_path / "conn.log"
    p.write_text(tsv("conn", CONN_F, CONN_T, [conn_row("CAbc1")]))
    (rec,) = records(p)
    assert isinstance(rec, FlowRecord)
    assert rec.key == flow_id_of("CAbc1")
    assert (rec.proto, rec.client_ip, rec.client_port, rec.server_ip, rec.server_port) == (
        6, "10.0.0.5", 50000, "93.184.216.34", 443)
    assert rec.first_ns == 1764151200_123456000
    assert rec.last_ns == rec.first_ns + 1_500_000_000
    assert (rec.packets_client_to_server, rec.packets_server_to_client) == (12, 10)
    assert (rec.bytes_client_to_server, rec.bytes_server_to_client) == (1124, 4520)


def test_conn_fast_path_equals_line_parser(tmp_path: Path) -> None:
    rows = [conn_row(f"C{i}", ts=f"17641512{i:02d}.{i:06d}", dur="-" if i % 3 else "0.000870")
            for i in range(40)]
    rows[7][12] = "-"  # an unset count takes the typed path
    p = tmp_path / "conn.log"
    p.write_text(tsv("conn", CONN_F, CONN_T, rows))
    fast = records(p)
    st = ReadStats()
    parser = ZeekLineParser("conn", st, RowConverter(st))
    slow = [r for line in p.read_text().splitlines(keepends=True) for r in parser.feed(line)]
    assert len(fast) == 40 and fast == slow
    assert isinstance(fast[7], FlowRecord) and fast[7].packets_client_to_server == 0


def test_ssl_with_ja4_and_quic_dedupe(tmp_path: Path) -> None:
    (tmp_path / "ssl.log").write_text(tsv("ssl", SSL_F, SSL_T, [
        ["1764151200.000001", "Ct1", "10.0.0.5", "50001", "1.2.3.4", "443", "TLSv13",
         "TLS_AES_128_GCM_SHA256", "API.OpenAI.com", "h2", "T",
         "t13d1516h2_8daaf6152771_e5627efa2ab1"],
        ["1764151200.000002", "Cq1", "10.0.0.5", "50002", "1.2.3.5", "443", "TLSv13",
         "TLS_AES_128_GCM_SHA256", "quic.example", "-", "F", "-"],
    ]))
    (tmp_path / "quic.log").write_text(tsv(
        "quic", ["ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "version",
                 "server_name", "client_protocol"],
        ["time", "string", "addr", "port", "addr", "port", "string", "string", "string"],
        [["1764151200.000002", "Cq1", "10.0.0.5", "50002", "1.2.3.5", "443", "1",
          "quic.example", "h3"]]))
    st = ReadStats()
    obs = [r for r in iter_log_records(tmp_path, st) if isinstance(r, Observation)]
    assert [o.kind for o in obs] == ["quic.client_hello", "tls.client_hello"]
    q, t = obs
    assert q.transport == "udp" and q.payload.sni == "quic.example"  # type: ignore[union-attr]
    assert q.payload.alpn == (b"h3",)  # type: ignore[union-attr]
    hello = t.payload
    assert isinstance(hello, LoggedTlsClientHello)
    assert hello.sni == "api.openai.com" and hello.ja4 == "t13d1516h2_8daaf6152771_e5627efa2ab1"
    assert hello.supported_versions == (0x0304,) and hello.cipher_suites == ()
    assert not hello.has_ech and t.flow_id == flow_id_of("Ct1")
    assert st.ignored == 1  # ssl.log's row of the QUIC connection


def test_dns_query_and_response(tmp_path: Path) -> None:
    p = tmp_path / "dns.log"
    p.write_text(tsv("dns", DNS_F, DNS_T, [
        ["1764151200.000000", "Cd1", "10.0.0.5", "5353", "10.0.0.1", "53", "udp", "4660",
         "0.000870", "API.openai.com", "1", "1", "0",
         "api.openai.com.cdn.cloudflare.net,162.159.140.245,2606:4700::6812:1",
         "300.000000,60.000000,60.000000"],
        ["1764151201.000000", "Cd2", "10.0.0.5", "5354", "10.0.0.1", "53", "udp", "1", "-",
         "nothing.example", "1", "28", "-", "-", "-"],
    ]))
    q1, r1, q2 = records(p)
    assert isinstance(q1, Observation) and isinstance(r1, Observation)
    assert isinstance(q2, Observation)
    m1, m2 = q1.payload, r1.payload
    assert isinstance(m1, DnsMessage) and isinstance(m2, DnsMessage)
    assert not m1.is_response and m1.questions[0].name == "api.openai.com"
    assert (q1.src_ip, q1.dst_port) == ("10.0.0.5", 53)
    assert m2.is_response and (r1.src_ip, r1.src_port, r1.dst_ip) == ("10.0.0.1", 53, "10.0.0.5")
    assert r1.ts_ns == q1.ts_ns + 870_000
    assert [(a.name, a.rtype, a.ttl_s, a.value) for a in m2.answers] == [
        ("api.openai.com", 5, 300, "api.openai.com.cdn.cloudflare.net"),
        ("api.openai.com.cdn.cloudflare.net", 1, 60, "162.159.140.245"),
        ("api.openai.com.cdn.cloudflare.net", 28, 60, "2606:4700::6812:1")]
    assert isinstance(q2.payload, DnsMessage) and not q2.payload.is_response  # no reply seen


def test_http_request_and_response(tmp_path: Path) -> None:
    p = tmp_path / "http.log"
    p.write_text(tsv("http", HTTP_F, HTTP_T, [
        ["1764151200.5", "Ch1", "10.0.0.5", "50010", "10.9.9.9", "11434", "POST",
         "Ollama.local:11434", "/api/chat", "1.1", "python-requests/2.31", "200", "OK",
         "(empty)"]]))
    req, resp = records(p)
    assert isinstance(req, Observation) and isinstance(req.payload, HttpRequest)
    assert req.payload.host == "ollama.local" and req.payload.host_port == 11434
    assert req.payload.version == "HTTP/1.1" and req.payload.target == "/api/chat"
    assert req.ts_ns == 1764151200_500000000
    assert isinstance(resp, Observation) and isinstance(resp.payload, HttpResponse)
    assert resp.payload.status == 200 and resp.src_port == 11434 and resp.dst_ip == "10.0.0.5"


def test_tsv_escapes_separators_sets_and_empty(tmp_path: Path) -> None:
    assert unescape_tsv(r"a\x09b\x5cc\\x07") == "a\tb\\c\\x07"
    assert unescape_tsv(r"bad\xffbyte") == r"bad\xffbyte"  # non-ASCII escaped byte stays text
    # a '|' separator written in hex, ';' set separator, values with escapes and (empty)
    rows = [["1764151200.000000", "Cd1", "10.0.0.5", "5353", "10.0.0.1", "53", "udp", "1",
             "0.000100", r"we\x7cird\x07.example", "1", "1", "0", "1.1.1.1;2.2.2.2",
             "(empty)"]]
    p = tmp_path / "dns.log"
    p.write_text(tsv("dns", DNS_F, DNS_T, rows, sep="|", set_sep=";", close=False))
    recs = records(p)
    resp = recs[1]
    assert isinstance(resp, Observation) and isinstance(resp.payload, DnsMessage)
    assert resp.payload.questions[0].name == "we|ird\x07.example"
    assert [a.value for a in resp.payload.answers] == ["1.1.1.1", "2.2.2.2"]
    assert [a.ttl_s for a in resp.payload.answers] == [0, 0]  # (empty) TTL vector


def test_json_equals_tsv_and_accepts_nested_iso_epoch(tmp_path: Path) -> None:
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "conn.log").write_text(tsv("conn", CONN_F, CONN_T, [conn_row("Cj1")]))
    base = {"uid": "Cj1", "proto": "tcp", "duration": 1.5, "orig_pkts": 12, "resp_pkts": 10,
            "orig_ip_bytes": 1124, "resp_ip_bytes": 4520, "tunnel_parents": []}
    lines = [
        {"_path": "conn", "ts": 1764151200.123456, "id.orig_h": "10.0.0.5", "id.orig_p": 50000,
         "id.resp_h": "93.184.216.34", "id.resp_p": 443, **base},
        {"_path": "conn", "ts": "2025-11-26T10:00:00.123456Z",
         "id": {"orig_h": "10.0.0.5", "orig_p": 50000, "resp_h": "93.184.216.34",
                "resp_p": 443}, **base},
    ]
    j = tmp_path / "conn.json.gz"
    with gzip.open(j, "wt") as f:
        f.write("\n".join(json.dumps(x) for x in lines) + "\n")
    from_tsv = records(tmp_path / "t" / "conn.log")
    a, b = records(j)
    assert a == from_tsv[0]
    assert isinstance(b, FlowRecord) and b.first_ns == 1764151200_123456000 == a.first_ns


def test_bad_lines_are_counted_not_fatal(tmp_path: Path) -> None:
    text = tsv("conn", CONN_F, CONN_T, [conn_row("C1"), ["short", "row"], conn_row("C2")])
    first, rest = text.split("\n", 1)
    text = first + "\ngarbage before #fields\n" + rest
    p = tmp_path / "conn.log"
    p.write_text(text)
    st = ReadStats()
    recs = records(p, st)
    assert [r.key for r in recs if isinstance(r, FlowRecord)] == [flow_id_of("C1"),
                                                                 flow_id_of("C2")]
    assert st.skipped == {"tsv: data line before #fields": 1,
                          "tsv: field count differs from #fields": 1}


def test_btest_canonified_times_keep_the_record(tmp_path: Path) -> None:
    p = tmp_path / "http.log"
    p.write_text('### BTest baseline\n{"ts":XXXXXXXXXX.XXXXXX,"uid":"C1","id.orig_h":"1.1.1.1",'
                 '"id.orig_p":1,"id.resp_h":"2.2.2.2","id.resp_p":80,"method":"GET",'
                 '"host":"bro.org","uri":"/"}\n')
    st = ReadStats()
    (req,) = records(p, st)
    assert isinstance(req, Observation) and req.ts_ns == 0 and st.ts_unreadable == 1


def test_identity_events(tmp_path: Path) -> None:
    (tmp_path / "dhcp.log").write_text(tsv(
        "dhcp", ["ts", "uids", "client_addr", "mac", "host_name", "requested_addr",
                 "assigned_addr", "msg_types"],
        ["time", "set[string]", "addr", "string", "string", "addr", "addr", "vector[string]"],
        [["1764151200.000000", "Cb,Ca", "-", "00:0A:95:9D:68:16", "laptop-7", "-",
          "192.168.1.50", "REQUEST,ACK"]]))
    (tmp_path / "kerberos.log").write_text(tsv(
        "kerberos", ["ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p",
                     "request_type", "client", "service", "success"],
        ["time", "string", "addr", "port", "addr", "port", "string", "string", "string", "bool"],
        [["1764151201.000000", "Ck", "10.0.0.7", "49000", "10.0.0.2", "88", "AS",
          "alice/CORP.EXAMPLE", "krbtgt/CORP.EXAMPLE", "T"]]))
    d, k = records(tmp_path)
    assert d == IdentityEvent("dhcp", 1764151200_000000000, "192.168.1.50", "00:0a:95:9d:68:16",
                              "laptop-7", None, None, flow_id_of("Ca"), "REQUEST,ACK")
    assert isinstance(k, IdentityEvent)
    assert (k.ip, k.user, k.realm, k.detail) == ("10.0.0.7", "alice", "CORP.EXAMPLE", "AS")


def test_rotated_directory_order(tmp_path: Path) -> None:
    """Chunks in time order, live logs last; app logs before conn.log in each chunk, so a
    uid's observations come before its FlowRecord."""
    day = tmp_path / "2026-11-26"
    day.mkdir()
    for name, chunk in (("conn", "10:00:00-11:00:00"), ("ssl", "10:00:00-11:00:00"),
                        ("conn", "11:00:00-12:00:00")):
        (day / f"{name}.{chunk}.log.gz").write_bytes(b"")
    (tmp_path / "conn.log").write_bytes(b"")
    (tmp_path / "ssl.log").write_bytes(b"")
    got = [p.relative_to(tmp_path).as_posix() for p in order_files(tmp_path.rglob("*.log*"))]
    assert got == ["2026-11-26/ssl.10:00:00-11:00:00.log.gz",
                   "2026-11-26/conn.10:00:00-11:00:00.log.gz",
                   "2026-11-26/conn.11:00:00-12:00:00.log.gz", "ssl.log", "conn.log"]


def test_directory_joins_observations_before_flow(tmp_path: Path) -> None:
    day = tmp_path / "2026-11-26"
    day.mkdir()
    with gzip.open(day / "conn.10:00:00-11:00:00.log.gz", "wt") as f:
        f.write(tsv("conn", CONN_F, CONN_T, [conn_row("Cx")]))
    with gzip.open(day / "ssl.10:00:00-11:00:00.log.gz", "wt") as f:
        f.write(tsv("ssl", SSL_F, SSL_T, [["1764151200.100000", "Cx", "10.0.0.5", "50000",
                                           "93.184.216.34", "443", "TLSv12", "-", "claude.ai",
                                           "-", "T", "-"]]))
    st = ReadStats()
    o, f = iter_log_records(tmp_path, st)
    assert isinstance(o, Observation) and isinstance(f, FlowRecord) and o.flow_id == f.key
    assert st.kinds == {str(tmp_path): "zeek-dir"} and st.files == 2


def test_separate_inputs_are_ordered_together(tmp_path: Path) -> None:
    conn, ssl = tmp_path / "c.log", tmp_path / "s.log"  # names say nothing: #path does
    conn.write_text(tsv("conn", CONN_F, CONN_T, [conn_row("Cy")]))
    ssl.write_text(tsv("ssl", SSL_F, SSL_T, [["1764151200.100000", "Cy", "10.0.0.5", "50000",
                                              "93.184.216.34", "443", "TLSv12", "-", "x.ai",
                                              "-", "T", "-"]]))
    st = ReadStats()
    o, f = iter_log_paths([conn, ssl], st)
    assert isinstance(o, Observation) and isinstance(f, FlowRecord) and o.flow_id == f.key
    assert st.kinds == {str(conn): "zeek-tsv", str(ssl): "zeek-tsv"}
    with pytest.raises(InputError):
        iter_log_paths([tmp_path / "missing"])


@settings(max_examples=150, deadline=None)
@given(hst.lists(hst.text(max_size=40), max_size=30))
def test_hostile_lines_never_raise(lines: list[str]) -> None:
    st = ReadStats()
    parser = ZeekLineParser("conn", st, RowConverter(st))
    head = tsv("conn", CONN_F, CONN_T, []).splitlines()[:-1]
    for line in head + lines + ["\t".join(x) for x in [lines[:17]] if len(x) == 17]:
        parser.feed(line)
    assert st.lines == len(head) + len(lines) + (1 if len(lines) >= 17 else 0)


def test_an_empty_separator_line_keeps_the_default() -> None:
    # found by the test above: "#separator " then a data row used to split on ""
    st = ReadStats()
    parser = ZeekLineParser("conn", st, RowConverter(st))
    for line in ["#separator ", "#set_separator\t", "0", "a\tb"]:
        assert parser.feed(line) == []
    assert st.lines == 4


@pytest.mark.corpus
def test_wrccdc_tsv_and_json_give_identical_records() -> None:
    """Zeek 3.0.0 wrote the same WRCCDC events in TSV and JSON-streaming form."""
    if not WRCCDC.is_dir():
        pytest.skip(f"WRCCDC logs not present at {WRCCDC}")
    t0 = time.perf_counter()
    for name in ("dns", "ssl", "kerberos"):
        st_t, st_j = ReadStats(), ReadStats()
        a = list(iter_zeek([WRCCDC / "zeek-default" / f"{name}.log.gz"], st_t))
        b = list(iter_zeek([WRCCDC / "zeek-json" / f"{name}.json.gz"], st_j))
        assert len(a) > 10 and a == b, name
        assert not st_t.skipped and not st_j.skipped
        assert st_t.records == st_j.records
    assert time.perf_counter() - t0 < 60
