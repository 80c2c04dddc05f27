"""``shadowai assets``: table, JSON, CSV, CycloneDX and HTML from the inventory file."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from sensor.inventory.commands import assets
from sensor.inventory.store import Inventory
from tests.sensor.inventory._lab import SAMPLE, cdx_errors, hunt


@pytest.fixture(scope="module")
def sample_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    d = tmp_path_factory.mktemp("assets")
    findings = hunt(SAMPLE, d / "f.jsonl")
    with Inventory(d / "inventory.db") as inv:
        inv.record(findings, 1)
        inv.record_run([str(SAMPLE.name)], {"signatures": "sig-1"}, {"packets": 287}, now_ns=1)
    return d / "inventory.db", findings


def run(*args: str) -> str:
    r = CliRunner().invoke(assets, list(args), catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r.output


def test_table(sample_db: tuple[Path, list[dict[str, Any]]]) -> None:
    out = run("--db", str(sample_db[0]))
    assert "AI services used" in out and "Self-hosted model servers" in out
    assert "OpenAI API" in out and "llama3.2:1b" in out and "10.99.0.30:11434" in out
    assert "7 AI services (7 unsanctioned), 2 clients, 0 users, 1 model servers" in out


def test_json_matches_the_findings(sample_db: tuple[Path, list[dict[str, Any]]]) -> None:
    db, findings = sample_db
    doc = json.loads(run("--db", str(db), "--format", "json"))
    assert doc["schema"] == "shadowai.assets/v1"
    usage = [f for f in findings if f["type"] == "ai_service_use"]
    assert doc["summary"]["ai_services"] == len({f["service"]["id"] for f in usage})
    assert doc["summary"]["findings"] == len(findings)
    assert doc["summary"]["bytes_to_ai_services"] == sum(
        f["counts"]["bytes_client_to_server"] for f in usage)
    oa = next(s for s in doc["services"] if s["id"] == "openai-api")
    assert oa["first_seen"].endswith("Z") and oa["clients"] == ["10.99.0.10"]
    assert doc["servers"][0]["models"] == ["llama3.2:1b"]
    assert doc["inputs"] == ["sample.pcap"] and doc["versions"] == {"signatures": "sig-1"}


def test_csv(sample_db: tuple[Path, list[dict[str, Any]]]) -> None:
    rows = list(csv.DictReader(io.StringIO(run("--db", str(sample_db[0]), "--format", "csv"))))
    kinds = [r["kind"] for r in rows]
    assert kinds.count("service") == 7 and kinds.count("self_hosted_llm") == 1
    oa = next(r for r in rows if r["id"] == "openai-api")
    assert oa["sanctioned"] == "false" and oa["details"] == "api.openai.com"


def test_cyclonedx_to_file(sample_db: tuple[Path, list[dict[str, Any]]], tmp_path: Path) -> None:
    out = tmp_path / "bom.json"
    assert run("--db", str(sample_db[0]), "--format", "cyclonedx", "-o", str(out)) == ""
    bom = json.loads(out.read_text())
    assert cdx_errors(bom) == [] and len(bom["services"]) == 7


def test_html_to_file(sample_db: tuple[Path, list[dict[str, Any]]], tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    run("--db", str(sample_db[0]), "--format", "html", "-o", str(out))
    assert 'data-metric="ai_services" data-value="7"' in out.read_text()


def test_missing_db_and_html_without_output(tmp_path: Path,
                                            sample_db: tuple[Path, list[dict[str, Any]]]) -> None:
    r = CliRunner().invoke(assets, ["--db", str(tmp_path / "none.db")])
    assert r.exit_code == 1 and "no inventory" in r.output
    assert not (tmp_path / "none.db").exists()
    r = CliRunner().invoke(assets, ["--db", str(sample_db[0]), "--format", "html"])
    assert r.exit_code == 2 and "-o FILE" in r.output


def test_default_db_from_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHADOWAI_STATE_DIR", str(tmp_path))
    with Inventory(tmp_path / "inventory.db"):
        pass
    assert "(none)" in run()
