"""The detector on the synthetic scenarios, settings, findings envelope, cost per flow."""

from __future__ import annotations

import time

import pytest

from sensor.errors import InputError
from sensor.findings import SCHEMA
from sensor.volume import evaluate, synth
from sensor.volume.detector import (
    BULK_UPLOAD,
    EXTRACTION,
    VolumeDetector,
    VolumeSettings,
    from_toml,
)
from sensor.volume.model import default_model_dir, load_model


@pytest.fixture(scope="module")
def model():
    return load_model(default_model_dir())


def _sc(name: str) -> evaluate.Scenario:
    return next(s for s in evaluate.SCENARIOS if s.name == name)


def test_fast_extraction_flagged_with_explanation(model) -> None:
    r = evaluate.run_scenario(_sc("extraction_fast"), model)
    assert r.detected and r.false_extraction_findings == 0
    f = next(d for d in r.findings if d["type"] == EXTRACTION)
    assert f["schema"] == SCHEMA and len(f["id"]) == 32
    assert f["client"]["ip"] == evaluate.SUSPECT and f["service"]["id"] == "openai-api"
    v = f["volume"]
    assert v["score"] >= v["threshold"]
    assert {a["id"] for a in v["atlas"]} >= {"AML.T0024", "AML.T0024.002"}
    top = v["top_contributions"][0]
    assert top["robust_z"] > 3 and "site median" in top["text"]
    assert f["severity"] in ("low", "medium", "high")
    assert f["counts"]["windows_flagged_5min"] + f["counts"]["windows_flagged_1h"] >= 1


def test_slow_extraction_flagged(model) -> None:
    r = evaluate.run_scenario(_sc("extraction_slow"), model)
    assert r.detected and r.false_extraction_findings == 0


@pytest.mark.parametrize("name", ["normal", "batch_sanctioned"])
def test_no_false_alarms(model, name: str) -> None:
    r = evaluate.run_scenario(_sc(name), model)
    assert r.extraction_findings == 0 and r.bulk_upload_findings == 0


def test_batch_flagged_when_not_sanctioned_nor_baselined(model) -> None:
    """The control for batch_sanctioned: the same job, unsanctioned, is flagged."""
    flows = evaluate.scenario_flows(_sc("batch_sanctioned"), 1001)
    det = VolumeDetector(model)
    for f in flows:
        det.on_flow(f.rec, f.service, False)
    det.flush()
    hits = [f for f in det.findings() if f.type == EXTRACTION]
    assert [f.client_ip for f in hits] == [evaluate.BATCH_HOST]


def test_bulk_upload_finding(model) -> None:
    r = evaluate.run_scenario(_sc("bulk_upload"), model)
    assert r.extraction_findings == 0
    b = [d for d in r.findings if d["type"] == BULK_UPLOAD]
    assert len(b) == 1 and b[0]["upload"]["largest_bytes_client_to_server"] >= 80_000_000
    assert b[0]["severity"] == "medium" and b[0]["upload"]["atlas"][0]["id"] == "AML.T0025"


def test_periodic_findings_do_not_change_the_result(model) -> None:
    flows = evaluate.scenario_flows(_sc("extraction_fast"), 1001)
    a, b = VolumeDetector(model), VolumeDetector(model)
    for i, f in enumerate(flows):
        a.on_flow(f.rec, f.service, f.sanctioned)
        b.on_flow(f.rec, f.service, f.sanctioned)
        if i % 40 == 0:
            b.findings()
    a.flush()
    b.flush()
    assert [f.to_dict() for f in a.findings()] == [f.to_dict() for f in b.findings()]


def test_findings_at_end_without_flush_equal_flush(model) -> None:
    flows = evaluate.scenario_flows(_sc("extraction_fast"), 1001)
    a = VolumeDetector(model)
    for f in flows:
        a.on_flow(f.rec, f.service, f.sanctioned)
    provisional = [f.id for f in a.findings()]
    a.flush()
    assert provisional == [f.id for f in a.findings()]


def test_cost_per_flow_is_small(model) -> None:
    flows = synth.generate([synth.office()], 5, 1)
    det = VolumeDetector(model)
    t = time.perf_counter()
    for f in flows:
        det.on_flow(f.rec, f.service, f.sanctioned)
    det.flush()
    det.findings()
    per_flow = (time.perf_counter() - t) / len(flows)
    assert per_flow < 2e-3  # generous for a loaded CI box; bench reports the real figure


def test_from_toml() -> None:
    s = from_toml({"lateness_s": 600, "bulk_upload_sanctioned": True, "model_dir": "/x"})
    assert s.lateness_s == 600.0 and s.bulk_upload_sanctioned and str(s.model_dir) == "/x"
    assert from_toml({}) == VolumeSettings()
    with pytest.raises(InputError, match=r"unknown setting model\.nope"):
        from_toml({"nope": 1})
    with pytest.raises(InputError, match=r"model\.entity_z must be a non-negative number"):
        from_toml({"entity_z": "high"})
    with pytest.raises(InputError, match="true or false"):
        from_toml({"enabled": 1})


def test_findings_match_the_schema(model) -> None:
    import json
    from pathlib import Path

    import jsonschema

    schema = json.loads((Path(__file__).resolve().parents[3] / "sensor" / "schemas"
                         / "finding.schema.json").read_text())
    found = []
    for name in ("extraction_fast", "bulk_upload"):
        found += evaluate.run_scenario(_sc(name), model).findings
    assert {d["type"] for d in found} == {EXTRACTION, BULK_UPLOAD}
    for d in found:
        jsonschema.validate(d, schema)


def _rec(client: str, first_s: float, last_s: float, up: int = 1000, dn: int = 2000,
         pk: int = 5):
    from sensor.flows import FlowRecord

    ns = 1_000_000_000
    return FlowRecord(1, 6, client, 40000, "192.0.2.1", 443, 0, None,
                      synth.DAY0_NS + int(first_s * ns), synth.DAY0_NS + int(last_s * ns),
                      pk, pk, up, dn, "idle")


def test_odd_flow_records_are_bounded(model) -> None:
    svc = synth.SERVICES["openai-api"]
    det = VolumeDetector(model)
    det.on_flow(_rec("10.0.0.1", 100, 50), svc, False)  # last before first
    det.on_flow(_rec("10.0.0.1", 0, 86400 * 365), svc, False)  # a year long: clipped to 1 h
    det.on_flow(_rec("10.0.0.2", 10, 10, 0, 0, 0), svc, False)  # empty
    assert all(len(e.base) <= 13 for e in det._ents.values())
    det.flush()
    assert det.findings() == []


def test_entity_limit_evicts(model) -> None:
    svc = synth.SERVICES["openai-api"]
    det = VolumeDetector(model, VolumeSettings(max_entities=8))
    for i in range(50):
        det.on_flow(_rec(f"10.0.1.{i}", i, i + 1), svc, False)
    assert len(det._ents) <= 8
    det.flush()
    det.findings()


def test_severity_rises_when_sustained(model) -> None:
    r = evaluate.run_scenario(_sc("extraction_fast"), model)
    f = next(d for d in r.findings if d["type"] == EXTRACTION)
    assert sum(f["volume"]["windows_flagged"].values()) >= 6 and f["severity"] == "high"
