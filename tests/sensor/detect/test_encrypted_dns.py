"""ECH attribution by DNS, and encrypted_dns findings, through the whole pipeline."""

from __future__ import annotations

import pytest

from sensor.catalog.index import Catalog, default_signature_dir
from sensor.config import Settings
from sensor.enrich.fingerprints import ClientFingerprints, EncryptedDns
from sensor.findings import Finding
from sensor.pipeline import Pipeline
from sensor.sources.capture import open_capture
from tests.helpers.packets import Lab, client_hello_record

FP_DIR = default_signature_dir() / "fingerprints"


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load([default_signature_dir()])


def hunt(lab: Lab, tmp_path, catalog):
    pipe = Pipeline(Settings(), catalog, fingerprints=ClientFingerprints.load(FP_DIR),
                    encrypted_dns=EncryptedDns.load(FP_DIR))
    with open_capture(lab.write(tmp_path / "c.pcap")) as r:
        for b in r.batches(64):
            pipe.feed(b)
    return pipe.finish()


def test_ech_front_is_attributed_by_the_dns_answer(tmp_path, catalog):
    lab = Lab()
    lab.dns("10.0.0.5", "chatgpt.com", ["10.9.9.9"])
    lab.tcp("10.0.0.5", 50000, "10.9.9.9", 443,
            [client_hello_record("cloudflare-ech.com", ech=True)])
    # the same front without a lookup before it: nothing can be said
    lab.tcp("10.0.0.6", 50001, "10.9.9.8", 443,
            [client_hello_record("cloudflare-ech.com", ech=True)])
    found = [f for f in hunt(lab, tmp_path, catalog) if isinstance(f, Finding)]
    [f] = [f for f in found if f.flows]
    assert (f.client_ip, f.service.id) == ("10.0.0.5", "chatgpt")
    d = f.to_dict()
    assert d["attributed_by"] == ["dns.answer", "dns.query"]
    assert d["tls"]["ech"] is True
    assert {e["kind"] for e in d["evidence"]} >= {"dns.answer", "tls.ja4"}
    assert not any(f.client_ip == "10.0.0.6" for f in found)


def test_sni_still_wins_when_a_hello_carries_ech_grease(tmp_path, catalog):
    lab = Lab()
    lab.tcp("10.0.0.5", 50000, "10.9.9.9", 443, [client_hello_record("claude.ai", ech=True)])
    [f] = [f for f in hunt(lab, tmp_path, catalog) if isinstance(f, Finding)]
    d = f.to_dict()
    assert d["service"]["id"] == "claude" and d["attributed_by"] == ["tls.sni"]
    assert d["tls"]["ech"] is False


def test_encrypted_dns_per_client(tmp_path, catalog):
    lab = Lab()
    lab.tcp("10.0.0.5", 50000, "10.7.7.7", 853, [b"\x16\x03\x01\x00\x05hello"])  # DoT, any server
    lab.tcp("10.0.0.5", 50001, "10.9.9.9", 443, [client_hello_record("dns.google")])  # DoH name
    lab.tcp("10.0.0.6", 50002, "1.1.1.1", 443, [b"\x17\x03\x03\x00\x01x"])  # DoH address only
    lab.tcp("10.0.0.7", 50003, "10.9.9.9", 443, [client_hello_record("example.com")])
    found = [f.to_dict() for f in hunt(lab, tmp_path, catalog) if f.type == "encrypted_dns"]
    by = {f["client"]["ip"]: f for f in found}
    assert set(by) == {"10.0.0.5", "10.0.0.6"}
    assert by["10.0.0.5"]["encrypted_dns"] == {"protocols": ["doh", "dot"],
                                               "resolvers": ["Google Public DNS"]}
    assert by["10.0.0.5"]["counts"]["flows"] == 2
    assert by["10.0.0.6"]["encrypted_dns"]["resolvers"] == ["Cloudflare 1.1.1.1"]
    assert {e["kind"] for e in by["10.0.0.6"]["evidence"]} == {"ip.resolver"}
    ids = {f["id"] for f in found}
    assert len(ids) == 2
