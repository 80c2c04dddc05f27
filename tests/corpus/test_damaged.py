"""Every corpus capture is hunted in-process without an exception.

* Nothing but the documented InputError may come out of a hunt, and only at
  open (none of the corpus captures is refused at present).
* The known file-level damaged captures report ``reader.damage`` at the byte
  offset where an independent record walk finds the first bad record; no
  other capture reports damage.
* Every finding validates against sensor/schemas/finding.schema.json. The real
  catalog finds no AI service in the corpus, so the captures are hunted a
  second time with a decoy catalog naming common corpus domains as "AI
  services": that yields findings from SNIs, Host headers, DNS lookups and DNS
  correlation to validate.
"""

from __future__ import annotations

import json
import struct
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest

from sensor.catalog.index import Catalog
from sensor.sources.pcap import MAX_CAPLEN
from tests.corpus.conftest import REPO, HuntResult, run_hunt

pytestmark = pytest.mark.corpus

KNOWN_DAMAGED = frozenset({
    "ndpi/pcap/fuzz-2021-10-13.pcap",
    "suricata-verify/tests/bug-1450-04/tls_DER-incomplete-header.pcap",
    "suricata-verify/tests/bug-1450-05/tls_DER-incomplete-content.pcap",
    "suricata-verify/tests/http-mime-truncated/input.pcap",
})
# Captures the reader may refuse at open with InputError (none: all are real captures).
REFUSED_AT_OPEN: frozenset[str] = frozenset()

DECOY_CATALOG = """\
vendor: Corpus Decoy
services:
  - id: corpus-decoy-a
    name: Corpus decoy A
    category: llm-api
    hosts:
      - suffix: google.com
      - suffix: gstatic.com
      - suffix: cloudflare.com
      - suffix: wikimedia.org
      - exact: cloudflare-quic.com
    references: [https://example.org/corpus-decoy]
    examples: {match: [www.google.com], nomatch: [google.co]}
  - id: corpus-decoy-b
    name: Corpus decoy B
    category: chat-assistant
    hosts:
      - suffix: example.com
      - suffix: bro.org
      - suffix: zeek.org
      - suffix: microsoft.com
      - suffix: facebook.com
        role: telemetry
    references: [https://example.org/corpus-decoy]
    examples: {match: [www.example.com], nomatch: [example.co]}
"""


def first_bad_record(data: bytes) -> int | None:
    """Offset of the first classic-pcap record that is truncated or absurd."""
    order = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    pos = 24
    while pos < len(data):
        if len(data) - pos < 16:
            return pos
        (caplen,) = struct.unpack_from(order + "I", data, pos + 8)
        if caplen > MAX_CAPLEN or pos + 16 + caplen > len(data):
            return pos
        pos += 16 + caplen
    return None


@pytest.fixture(scope="module")
def all_results(captures: list[str], hunt: Callable[[str], HuntResult]) -> dict[str, HuntResult]:
    out: dict[str, HuntResult] = {}
    crashes: list[str] = []
    for c in captures:
        try:
            out[c] = hunt(c)
        except Exception:  # collect every crash, then fail once
            crashes.append(f"{c}: {traceback.format_exc(limit=-3)}")
    assert not crashes, "hunt raised:\n" + "\n".join(crashes)
    return out


def test_corpus_size(captures: list[str]) -> None:
    assert len(captures) >= 470
    assert set(captures) >= KNOWN_DAMAGED


def test_no_exception_but_input_error_at_open(all_results: dict[str, HuntResult]) -> None:
    refused = {c for c, r in all_results.items() if r.input_error is not None}
    assert refused == REFUSED_AT_OPEN, {c: all_results[c].input_error for c in refused}
    assert sum(len(r.observations) for r in all_results.values()) > 2000  # measured: 2409


def test_known_damaged_report_offset(all_results: dict[str, HuntResult], corpus: Path) -> None:
    for c in sorted(KNOWN_DAMAGED):
        dmg = all_results[c].damage
        assert dmg is not None, f"{c}: no damage reported"
        want = first_bad_record((corpus / c).read_bytes())
        assert want is not None
        assert dmg.byte_offset == want, f"{c}: damage at {dmg.byte_offset}, expected {want}"
        assert dmg.reason
        assert f"at byte {want}:" in str(dmg)


def test_only_known_damaged(all_results: dict[str, HuntResult]) -> None:
    damaged = {c: str(r.damage) for c, r in all_results.items() if r.damage is not None}
    assert set(damaged) == KNOWN_DAMAGED, damaged


@pytest.fixture(scope="module")
def finding_validator() -> jsonschema.protocols.Validator:
    schema = json.loads((REPO / "sensor" / "schemas" / "finding.schema.json").read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    validator: jsonschema.protocols.Validator = cls(schema)
    return validator


def _invalid(findings: list[dict[str, Any]], v: jsonschema.protocols.Validator) -> list[str]:
    return [f"{e.json_path}: {e.message}" for f in findings for e in v.iter_errors(f)]


def test_findings_validate_with_real_catalog(all_results: dict[str, HuntResult],
                                             finding_validator: jsonschema.protocols.Validator
                                             ) -> None:
    bad = {c: errs for c, r in all_results.items() if (errs := _invalid(r.findings,
                                                                        finding_validator))}
    assert not bad


def test_findings_validate_with_decoy_catalog(
        captures: list[str], corpus: Path, tmp_path_factory: pytest.TempPathFactory,
        finding_validator: jsonschema.protocols.Validator) -> None:
    d = tmp_path_factory.mktemp("decoy-signatures")
    (d / "decoy.yaml").write_text(DECOY_CATALOG, encoding="utf-8")
    catalog = Catalog.load([d])
    bad: dict[str, list[str]] = {}
    kinds: set[str] = set()
    n = 0
    for c in captures:
        r = run_hunt(corpus / c, c, catalog)
        n += len(r.findings)
        kinds.update(e["kind"] for f in r.findings for e in f["evidence"])
        if errs := _invalid(r.findings, finding_validator):
            bad[c] = errs
    assert not bad
    assert n >= 100
    assert {"tls.sni", "http.host", "dns.query", "dns.answer"} <= kinds


def test_no_ai_findings_on_corpus_without_ai_traffic(all_results: dict[str, HuntResult]) -> None:
    # MANIFEST.md: no capture of the corpus holds AI-service traffic, so every
    # finding made with the real catalog would be a false positive
    hits = {c: [f["service"]["id"] for f in r.findings] for c, r in all_results.items()
            if r.findings}
    assert hits == {}
