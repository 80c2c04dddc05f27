"""End to end through the pipeline on crafted traffic: attribution rules of the hunt."""

from __future__ import annotations

from pathlib import Path

import pytest

from sensor.catalog.index import Catalog, default_signature_dir
from sensor.config import Settings
from sensor.observations import observation_dict
from sensor.pipeline import Pipeline
from sensor.sources.capture import open_capture
from tests.helpers.packets import Lab, client_hello_record

CLIENT = "10.0.0.5"
CLIENT2 = "10.0.0.6"


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load([default_signature_dir()])


def hunt(path: Path, catalog: Catalog, settings: Settings | None = None):
    obs: list[dict] = []
    pipe = Pipeline(settings or Settings(), catalog, lambda o: obs.append(observation_dict(o)))
    with open_capture(path) as r:
        for b in r.batches(256):
            pipe.feed(b)
    return pipe.finish(), obs, pipe


def by_service(findings):
    return {(f.client_ip, f.service.id): f for f in findings}


def test_attribution_by_sni_host_dns_and_dns_only(tmp_path, catalog):
    lab = Lab()
    # 1. DNS then TLS with a ClientHello split over two TCP segments
    lab.dns(CLIENT, "api.openai.com", ["192.0.2.10"])
    ch = client_hello_record("api.openai.com", pad_to=1900)
    lab.tcp(CLIENT, 50000, "192.0.2.10", 443, [ch[:1000], ch[1000:], b"\x17\x03\x03" + b"x" * 50],
            [b"\x16\x03\x03" + b"y" * 200])
    # 2. a flow with no SNI/Host (e.g. ECH/resumption) to an address resolved for claude.ai
    lab.dns(CLIENT, "claude.ai", ["192.0.2.20"])
    lab.tcp(CLIENT, 50001, "192.0.2.20", 443, [b"\x17\x03\x03" + b"z" * 80], [b"\x17\x03\x03" * 9])
    # 3. cleartext HTTP to an AI API host
    lab.tcp(CLIENT2, 50002, "192.0.2.30", 80,
            [b"GET /v1/models HTTP/1.1\r\nHost: api.mistral.ai\r\nUser-Agent: curl/8\r\n\r\n"],
            [b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"])
    # 4. a DNS lookup with no connection after it
    lab.dns(CLIENT2, "api.perplexity.ai", ["192.0.2.40"])
    # 5. non-AI traffic: never a finding
    lab.dns(CLIENT, "www.example.com", ["192.0.2.50"])
    lab.tcp(CLIENT, 50003, "192.0.2.50", 443, [client_hello_record("www.example.com")])
    path = lab.write(tmp_path / "lab.pcap")

    findings, obs, pipe = hunt(path, catalog)
    got = by_service(findings)
    assert set(got) == {(CLIENT, "openai-api"), (CLIENT, "claude"), (CLIENT2, "mistral-api"),
                        (CLIENT2, "perplexity-api")}, got.keys()

    oa = got[(CLIENT, "openai-api")]
    ev = {(e[0], e[1]) for e in oa.evidence}
    assert ("tls.sni", "api.openai.com") in ev and ("dns.query", "api.openai.com") in ev
    assert oa.flows == 1 and oa.severity == "medium"
    assert oa.packets == 10  # 3 handshake + 3 data + 1 server data + 3 close
    assert (oa.server_ip, oa.server_port) == ("192.0.2.10", 443)
    assert oa.client_mac is not None

    cl = got[(CLIENT, "claude")]
    assert {e[0] for e in cl.evidence} >= {"dns.answer"} and cl.flows == 1

    mi = got[(CLIENT2, "mistral-api")]
    assert {(e[0], e[1]) for e in mi.evidence} == {("http.host", "api.mistral.ai")}

    px = got[(CLIENT2, "perplexity-api")]
    assert px.flows == 0 and px.severity == "low" and px.server_ip is None

    kinds = [o["kind"] for o in obs]
    assert kinds.count("tls.client_hello") == 2
    assert any(o["kind"] == "tls.client_hello" and o["sni"] == "api.openai.com" for o in obs)
    assert pipe.dissector.stats.decode_errors == 0


def test_dns_answer_after_flow_start_does_not_attribute(tmp_path, catalog):
    lab = Lab()
    lab.tcp(CLIENT, 50001, "192.0.2.20", 443, [b"\x17\x03\x03" + b"z" * 80])
    lab.wait(1)
    lab.dns(CLIENT, "claude.ai", ["192.0.2.20"])
    findings, _, _ = hunt(lab.write(tmp_path / "late.pcap"), catalog)
    f = by_service(findings)[(CLIENT, "claude")]
    assert f.flows == 0  # only the lookup counts


def test_other_client_resolution_does_not_attribute(tmp_path, catalog):
    lab = Lab()
    lab.dns(CLIENT2, "claude.ai", ["192.0.2.20"])
    lab.tcp(CLIENT, 50001, "192.0.2.20", 443, [b"\x17\x03\x03" + b"z" * 80])
    findings, _, _ = hunt(lab.write(tmp_path / "other.pcap"), catalog)
    assert (CLIENT, "claude") not in by_service(findings)


def test_findings_aggregate_per_client_and_service(tmp_path, catalog):
    lab = Lab()
    for i in range(5):
        lab.tcp(CLIENT, 51000 + i, "192.0.2.10", 443, [client_hello_record("api.openai.com")])
    findings, _, _ = hunt(lab.write(tmp_path / "agg.pcap"), catalog)
    assert len(findings) == 1 and findings[0].flows == 5
    assert findings[0].evidence[("tls.sni", "api.openai.com")] == 5


def test_idle_timeout_splits_flows_and_keeps_counts(tmp_path, catalog):
    lab = Lab()
    lab.tcp(CLIENT, 50000, "192.0.2.10", 443, [client_hello_record("api.openai.com")],
            close=False)
    lab.wait(1000)  # beyond the TCP idle timeout
    lab.tcp(CLIENT, 50009, "192.0.2.99", 443, [client_hello_record("www.example.com")])
    findings, _, pipe = hunt(lab.write(tmp_path / "idle.pcap"), catalog)
    assert pipe.flows.stats.flows_created == 2
    assert by_service(findings)[(CLIENT, "openai-api")].packets == 4


def test_flow_table_bound_evicts_and_counts(tmp_path, catalog):
    lab = Lab()
    for i in range(50):
        lab.tcp(CLIENT, 40000 + i, "192.0.2.10", 443, [client_hello_record("api.openai.com")],
                close=False)
    s = Settings(max_flows=10)
    findings, _, pipe = hunt(lab.write(tmp_path / "lru.pcap"), catalog, s)
    assert pipe.flows.stats.flows_evicted >= 40
    # evicted flows are exported, not lost: every flow still reaches the finding
    assert by_service(findings)[(CLIENT, "openai-api")].flows == 50
