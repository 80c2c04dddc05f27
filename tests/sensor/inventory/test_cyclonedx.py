"""The AI-BOM passes the official CycloneDX 1.6 JSON schema (vendored, no network)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from sensor.inventory.cyclonedx import build_bom
from sensor.inventory.store import Inventory
from tests.sensor.inventory._lab import SAMPLE, cdx_errors, hunt, lab_capture

NOW = 1_800_000_000 * 10**9


def _bom(findings: list[dict[str, Any]], db: Path) -> dict[str, Any]:
    with Inventory(db) as inv:
        inv.record(findings, NOW)
        inv.record_run(["capture.pcap"], {"signatures": "abc123"}, {"packets": 1}, now_ns=NOW)
        return build_bom(inv.assets(), inv.meta(), now_ns=NOW)


def _by_ref(bom: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {x["bom-ref"]: x for x in bom["components"] + bom["services"]}


def _prop(obj: dict[str, Any], name: str) -> list[str]:
    return [p["value"] for p in obj.get("properties", []) if p["name"] == f"shadowai:{name}"]


def test_schema_rejects_an_invalid_bom(tmp_path: Path) -> None:
    """The validator is live: a wrong component type and a missing name are errors."""
    bom = _bom([], tmp_path / "i.db")
    assert cdx_errors(bom) == []
    bad = copy.deepcopy(bom)
    bad["components"] = [{"type": "language-model", "name": "x"}]
    bad["services"] = [{"endpoints": ["https://x"]}]
    bad["serialNumber"] = "not-a-urn"
    assert len(cdx_errors(bad)) >= 3


def test_formats_are_checked(tmp_path: Path) -> None:
    """date-time and iri-reference are checked (jsonschema[format-nongpl] is installed)."""
    pytest.importorskip("rfc3339_validator")
    pytest.importorskip("rfc3987_syntax")
    bom = _bom([], tmp_path / "i.db")
    bom["metadata"]["timestamp"] = "yesterday"
    bom["services"] = [{"name": "x", "endpoints": ["https://ok.example", "not an iri"]}]
    errs = cdx_errors(bom)
    assert len(errs) == 2 and "date-time" in errs[0] + errs[1]


def test_sample_hunt_bom_is_valid_cyclonedx_1_6(tmp_path: Path) -> None:
    findings = hunt(SAMPLE, tmp_path / "f.jsonl")
    bom = _bom(findings, tmp_path / "i.db")
    assert cdx_errors(bom) == []
    assert bom["specVersion"] == "1.6" and bom["bomFormat"] == "CycloneDX"
    refs = _by_ref(bom)
    usage = {f["service"]["id"] for f in findings if f["type"] == "ai_service_use"}
    assert {s["bom-ref"] for s in bom["services"]} == {f"service:{u}" for u in usage}
    oa = refs["service:openai-api"]
    assert oa["x-trust-boundary"] is True and oa["provider"]["name"] == "OpenAI"
    assert oa["endpoints"] == ["https://api.openai.com"]
    assert oa["data"][0]["flow"] == "bi-directional"
    assert _prop(oa, "sanctioned") == ["false"] and _prop(oa, "category") == ["llm-api"]
    assert _prop(oa, "client") == ["10.99.0.10"]
    # the Ollama server and the model it served, linked
    srv = refs["server:10.99.0.30:11434"]
    assert srv["type"] == "application" and srv["name"] == "Ollama"
    model = refs["model:10.99.0.30:11434:llama3.2:1b"]
    assert model["type"] == "machine-learning-model"
    assert (model["name"], model["version"]) == ("llama3.2", "1b")
    assert model["modelCard"]["modelParameters"]["task"] == "text-generation"
    deps = {d["ref"]: d.get("dependsOn", []) for d in bom["dependencies"]}
    assert deps["server:10.99.0.30:11434"] == ["model:10.99.0.30:11434:llama3.2:1b"]
    assert set(deps["shadowai:network"]) == {s["bom-ref"] for s in bom["services"]} | {
        "server:10.99.0.30:11434"}
    assert _prop(bom["metadata"], "version.signatures") == ["abc123"]
    assert _prop(bom["metadata"], "input") == ["capture.pcap"]


def test_lab_capture_bom_is_valid_and_has_the_mcp_server(tmp_path: Path) -> None:
    findings = hunt(lab_capture(tmp_path / "lab.pcap"), tmp_path / "f.jsonl")
    assert {f["type"] for f in findings} == {"ai_service_use", "self_hosted_llm", "mcp_server"}
    bom = _bom(findings, tmp_path / "i.db")
    assert cdx_errors(bom) == []
    refs = _by_ref(bom)
    m = refs["mcp:10.20.0.40:8000"]
    assert m["x-trust-boundary"] is False and m["name"] == "github-mcp 0.4.0"
    assert _prop(m, "mcp.tool") == ["create_issue", "search_code"]
    assert _prop(m, "mcp.tool_call") == ["search_code=1"]
    assert refs["model:10.20.0.50:11434:qwen2.5:0.5b"]["type"] == "machine-learning-model"
    assert {"service:openai-api", "service:anthropic-api"} <= set(refs)
    # JSON-serialisable as is, and bom-refs unique
    text = json.dumps(bom)
    all_refs = [x["bom-ref"] for x in bom["components"] + bom["services"]]
    assert len(all_refs) == len(set(all_refs)) and "bom-ref" in text


def test_empty_inventory_is_a_valid_bom(tmp_path: Path) -> None:
    with Inventory(tmp_path / "i.db") as inv:
        bom = build_bom(inv.assets(), inv.meta(), now_ns=NOW, serial="urn:uuid:"
                        "3e671687-395b-41f5-a30f-a58921a69b79")
    assert cdx_errors(bom) == []
    assert bom["services"] == [] and bom["components"] == []


@pytest.mark.parametrize("odd", ["a b<c>", "mdl:tag:extra", "../../x", "ü-model"])
def test_odd_model_names_stay_valid(tmp_path: Path, odd: str) -> None:
    f = {"id": "x", "type": "self_hosted_llm", "first_seen": "2026-01-01T00:00:00.000000Z",
         "last_seen": "2026-01-01T00:00:01.000000Z", "client": None,
         "server": {"ip": "10.0.0.1", "port": 80, "name": None},
         "service": {"id": "selfhosted:vllm", "name": "vLLM", "vendor": "vLLM"},
         "counts": {}, "self_hosted_llm": {"product": "vLLM", "models": [odd, odd + "2"],
                                           "pulled_models": [odd], "clients": []}}
    bom = _bom([f], tmp_path / "i.db")
    assert cdx_errors(bom) == []
    assert sum(c["type"] == "machine-learning-model" for c in bom["components"]) == 2
