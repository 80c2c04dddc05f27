"""The HTML report: self-contained, escaped, pseudonymization-preserving, renders in Chromium."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from sensor.identity.pseudonymize import Pseudonymizer
from sensor.inventory.commands import assets as assets_cmd
from sensor.inventory.store import Inventory
from sensor.report.html import render_report, write_report
from tests.sensor.inventory._lab import SAMPLE, hunt, lab_capture
from tests.sensor.report._chromium import chromium_binary, open_page

NOW = 1_800_000_000 * 10**9


class _Attrs(HTMLParser):
    """Collects every tag and its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def tags(html: str) -> list[tuple[str, dict[str, str | None]]]:
    p = _Attrs()
    p.feed(html)
    return p.tags


def metrics(html: str) -> dict[str, int]:
    return {str(a["data-metric"]): int(str(a["data-value"])) for _, a in tags(html)
            if "data-metric" in a}


def build(tmp: Path, findings: list[dict[str, Any]]) -> tuple[Path, Path]:
    db = tmp / "inventory.db"
    with Inventory(db) as inv:
        inv.record(findings, NOW)
        inv.record_run(["capture.pcap"], {"signatures": "sig-1", "volume_model": "m-9"},
                       {"packets": 1}, now_ns=NOW)
        out = tmp / "report.html"
        write_report(out, findings, inv.assets(), inv.meta())
    return db, out


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[dict[str, Any]]]:
    d = tmp_path_factory.mktemp("report")
    findings = hunt(SAMPLE, d / "s.jsonl") + hunt(lab_capture(d / "lab.pcap"), d / "l.jsonl")
    db, out = build(d, findings)
    return db, out, findings


def test_self_contained_no_script_no_remote_reference(
        lab: tuple[Path, Path, list[dict[str, Any]]]) -> None:
    html = lab[1].read_text()
    for tag, attrs in tags(html):
        assert tag not in ("script", "link", "iframe", "img", "object", "embed"), tag
        for k in ("src", "href", "action", "srcset"):
            assert k not in attrs, (tag, attrs)
    assert "url(" not in html and "@import" not in html and "@font-face" not in html
    assert "default-src 'none'" in html  # a CSP forbids any fetch if content ever tried


def test_sections_and_data_attributes(lab: tuple[Path, Path, list[dict[str, Any]]]) -> None:
    _db, out, findings = lab
    html = out.read_text()
    t = tags(html)
    ids = {a.get("id") for _, a in t}
    assert {"headline", "categories", "services", "top", "timeline", "servers", "alerts",
            "provenance"} <= ids
    services = {a["data-service"] for _, a in t if "data-service" in a}
    assert services == {f["service"]["id"] for f in findings if f["type"] == "ai_service_use"}
    lanes = {a["data-timeline-service"]: int(str(a["data-bars"])) for _, a in t
             if "data-timeline-service" in a}
    assert lanes["openai-api"] == sum(1 for f in findings
                                      if (f.get("service") or {}).get("id") == "openai-api")
    alerts = {a["data-alert"] for _, a in t if "data-alert" in a}
    assert alerts == {f["id"] for f in findings if f["severity"] in ("high", "critical")}
    assert "ollama/chat" in html  # evidence of the self-hosted alert is shown
    cats = {a["data-category"]: int(str(a["data-count"])) for _, a in t
            if "data-category" in a}
    assert cats == {"llm-api": 4, "chat-assistant": 3}  # OpenAI, Anthropic, Mistral, Perplexity
    assert {a["data-mcp-server"] for _, a in t if "data-mcp-server" in a} == {
        "10.20.0.40:8000"}
    assert {a["data-version"] for _, a in t if "data-version" in a} == {"signatures",
                                                                          "volume_model"}
    assert {a["data-input"] for _, a in t if "data-input" in a} == {"capture.pcap"}


def test_hostile_values_are_escaped(tmp_path: Path) -> None:
    f = {"id": "x1", "type": "ai_service_use", "severity": "high",
         "first_seen": "2026-01-01T00:00:00.000000Z", "last_seen": "2026-01-01T00:00:01.000000Z",
         "client": {"ip": "10.0.0.1", "mac": None, "hostname": "<img src=x onerror=alert(1)>"},
         "server": {"ip": "1.2.3.4", "port": 443, "name": "\"><script>alert(1)</script>"},
         "service": {"id": "evil\"id", "name": "<script>alert(2)</script>", "vendor": "v&v",
                     "category": "<b>cat</b>", "sanctioned": None},
         "evidence": [{"kind": "tls.sni", "value": "<svg onload=alert(3)>", "count": 1}],
         "counts": {"flows": 1, "bytes_client_to_server": 5}}
    _, out = build(tmp_path, [f])
    html = out.read_text()
    found = {t for t, _ in tags(html)}
    assert "script" not in found and "img" not in found
    assert all("onerror" not in a and "onload" not in a for _, a in tags(html))
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in html


def test_pseudonymized_findings_stay_pseudonymized(tmp_path: Path) -> None:
    ps = Pseudonymizer(b"k" * 32)
    raw = {"id": "p1", "type": "ai_service_use", "severity": "high",
           "first_seen": "2026-01-01T00:00:00.000000Z",
           "last_seen": "2026-01-01T00:00:01.000000Z",
           "client": {"ip": "10.0.0.9", "mac": "02:00:00:00:00:99", "hostname": "alice-laptop",
                      "user": "CORP\\alice"},
           "server": {"ip": "1.2.3.4", "port": 443, "name": "chatgpt.com"},
           "service": {"id": "chatgpt", "name": "ChatGPT", "vendor": "OpenAI",
                       "category": "chat-assistant", "sanctioned": False},
           "evidence": [{"kind": "tls.sni", "value": "chatgpt.com", "count": 1}],
           "counts": {"flows": 1, "bytes_client_to_server": 5}}
    f = ps.pseudonymize_finding_dict(raw)
    db, out = build(tmp_path, [f])
    html = out.read_text().lower()
    assert "alice" not in html and "02:00:00:00:00:99" not in html
    assert ps.user("CORP\\alice") in html and ps.host("alice-laptop") in html
    # the other exports of the same inventory do not re-identify either
    for fmt in ("table", "json", "csv", "cyclonedx"):
        r = CliRunner().invoke(assets_cmd, ["--db", str(db), "--format", fmt])
        assert r.exit_code == 0 and "alice" not in r.output.lower(), fmt


def test_empty_report(tmp_path: Path) -> None:
    _, out = build(tmp_path, [])
    m = metrics(out.read_text())
    assert m["ai_services"] == 0 and m["findings"] == 0 and m["alerts"] == 0
    assert "No AI services seen." in out.read_text()


def test_render_is_deterministic(lab: tuple[Path, Path, list[dict[str, Any]]]) -> None:
    db, _, findings = lab
    with Inventory(db) as inv:
        a, m = inv.assets(), inv.meta()
    assert render_report(findings, a, m) == render_report(findings, a, m)


needs_chromium = pytest.mark.skipif(chromium_binary() is None, reason="chromium not installed")


@needs_chromium
def test_renders_in_chromium_numbers_equal_json(
        lab: tuple[Path, Path, list[dict[str, Any]]]) -> None:
    db, out, findings = lab
    page = open_page(out)
    assert page.console == []
    assert page.requests == [out.resolve().as_uri()]  # the document itself, nothing else
    shown = metrics(page.dom)
    r = CliRunner().invoke(assets_cmd, ["--db", str(db), "--format", "json"])
    doc = json.loads(r.output)
    assert shown == doc["summary"]
    # and independently of the shared summary code, from the JSON lists themselves
    assert shown["ai_services"] == len(doc["services"])
    assert shown["self_hosted_servers"] == len(doc["servers"])
    assert shown["mcp_servers"] == len(doc["mcp_servers"])
    assert shown["clients"] == len(doc["clients"])
    assert shown["models"] == sum(len(s["models"]) for s in doc["servers"])
    assert shown["unsanctioned_services"] == sum(1 for s in doc["services"]
                                                 if s["sanctioned"] is False)
    assert shown["bytes_to_ai_services"] == sum(s["bytes_client_to_server"]
                                                for s in doc["services"])
    assert shown["findings"] == len(findings)
    rows = {str(a["data-service"]): int(str(a["data-flows"])) for _, a in tags(page.dom)
            if "data-service" in a}
    assert rows == {s["id"]: s["flows"] for s in doc["services"]}


@needs_chromium
def test_chromium_harness_sees_requests_and_errors(tmp_path: Path) -> None:
    """The harness can fail: a page loading a missing local file shows both."""
    page = tmp_path / "bad.html"
    page.write_text('<!DOCTYPE html><html><body><img src="missing.png">'
                    "<script>console.error('boom')</script></body></html>")
    res = open_page(page)
    assert any(u.endswith("/missing.png") for u in res.requests)
    assert any("boom" in c for c in res.console)
    assert re.search(r"<img[^>]+missing\.png", res.dom)
