"""JA4 client families and the encrypted-DNS / ECH data files."""

from __future__ import annotations

from pathlib import Path

import pytest

from sensor.catalog.index import default_signature_dir
from sensor.enrich.fingerprints import ClientFingerprints, EncryptedDns
from sensor.errors import InputError

FP_DIR = default_signature_dir() / "fingerprints"


def test_bundled_families_resolve_their_examples_and_hash_pairs():
    fps = ClientFingerprints.load(FP_DIR)
    assert fps.lookup("t13d1812h1_85036bcba153_d41ae481755e").family == "python"
    # another SNI/ALPN choice of the same library: only JA4_a differs
    assert fps.lookup("t13i0910h2_85036bcba153_d41ae481755e").family == "python"
    assert fps.lookup("t13d3112h2_e8f1e7e78f70_b26ce05bbdd6").family == "curl"
    chrome = fps.lookup("q13d0312h3_55b375c5d22e_06cda9e17597")
    assert chrome is not None and chrome.browser
    assert fps.lookup("t13d1516h2_000000000000_000000000000") is None
    assert fps.lookup("garbage") is None


def test_every_family_names_a_source():
    fps = ClientFingerprints.load(FP_DIR)
    fams = {*fps._full.values(), *fps._bc.values()}
    assert len(fams) >= 6
    assert all(f.source.strip() for f in fams)


def _write(tmp: Path, name: str, text: str) -> Path:
    (tmp / name).write_text(text)
    return tmp


def test_an_example_that_does_not_map_is_an_error(tmp_path):
    _write(tmp_path, "ja4-clients.yaml", """
families:
  - family: x
    source: test
    ja4_bc: [aaaaaaaaaaaa_bbbbbbbbbbbb]
    examples: [t13d0000h2_cccccccccccc_bbbbbbbbbbbb]
""")
    with pytest.raises(InputError, match=r"families\[0\]: example .* does not map to x"):
        ClientFingerprints.load(tmp_path)


def test_missing_source_and_bad_yaml_are_one_line_errors(tmp_path):
    _write(tmp_path, "ja4-clients.yaml", "families:\n  - family: x\n    ja4_bc: [a_b]\n")
    with pytest.raises(InputError, match="needs a 'source'"):
        ClientFingerprints.load(tmp_path)
    _write(tmp_path, "ja4-clients.yaml", "families: [\n")
    with pytest.raises(InputError, match=r"ja4-clients.yaml:\d+: not valid YAML"):
        ClientFingerprints.load(tmp_path)


def test_encrypted_dns_data():
    e = EncryptedDns.load(FP_DIR)
    assert e.doh_host("dns.google").name == "Google Public DNS"
    assert e.ips["1.1.1.1"].name == "Cloudflare 1.1.1.1"
    assert e.ips["2620:fe::fe"].name == "Quad9"
    assert e.ports[(853, 6)] == "dot" and e.ports[(853, 17)] == "doq"
    assert "cloudflare-ech.com" in e.ech_fronts
    assert e.doh_host("google.com") is None


def test_bad_resolver_address_is_reported(tmp_path):
    _write(tmp_path, "encrypted-dns.yaml",
           "doh_resolvers:\n  - {name: X, source: s, hosts: [a.b], ips: [999.1.1.1]}\n")
    with pytest.raises(InputError, match=r"doh_resolvers\[0\]\.ips: '999.1.1.1'"):
        EncryptedDns.load(tmp_path)
