"""Catalog features through the pipeline: policy, vendor grouping, IP ranges, MCP, paths."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from sensor.catalog.index import Catalog, default_signature_dir
from sensor.cli import main
from sensor.config import Settings
from sensor.findings import Finding
from sensor.pipeline import Pipeline
from sensor.policy import Policy
from sensor.sources.capture import open_capture
from tests.helpers.packets import Lab, client_hello_record


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load([default_signature_dir()])


def hunt(lab: Lab, tmp_path, catalog, policy: Policy | None = None) -> dict:
    pipe = Pipeline(Settings(), catalog, policy=policy)
    with open_capture(lab.write(tmp_path / "c.pcap")) as r:
        for b in r.batches(64):
            pipe.feed(b)
    return {(f.client_ip, f.service.id): f for f in pipe.finish() if isinstance(f, Finding)}


def test_vendor_domain_grouping_reports_unknown_service(tmp_path, catalog):
    lab = Lab()
    lab.tcp("10.0.0.5", 50000, "10.9.9.9", 443, [client_hello_record("new-beta.anthropic.com")])
    lab.tcp("10.0.0.5", 50001, "10.9.9.8", 443, [client_hello_record("maps.google.com")])
    found = hunt(lab, tmp_path, catalog)
    assert set(found) == {("10.0.0.5", "unknown")}
    f = found[("10.0.0.5", "unknown")]
    assert f.service.vendor == "Anthropic" and f.server_name == "new-beta.anthropic.com"


def test_published_ip_range_attributes_a_flow_without_a_name(tmp_path, catalog):
    lab = Lab()
    lab.tcp("10.0.0.5", 50000, "160.79.104.10", 443, [client_hello_record(None)])
    lab.tcp("10.0.0.6", 50001, "160.79.106.10", 443, [client_hello_record(None)])  # outside /23
    found = hunt(lab, tmp_path, catalog)
    assert set(found) == {("10.0.0.5", "anthropic-api")}
    d = found[("10.0.0.5", "anthropic-api")].to_dict()
    assert d["attributed_by"] == ["ip.range"]
    assert {"kind": "ip.range", "value": "160.79.104.10 in 160.79.104.0/23", "count": 1} in \
        d["evidence"]


def test_remote_mcp_server_use_by_sni_and_by_path_on_a_shared_host(tmp_path, catalog):
    lab = Lab()
    lab.tcp("10.0.0.5", 50000, "10.9.9.9", 443, [client_hello_record("mcp.notion.com")])
    lab.tcp("10.0.0.6", 50001, "10.9.9.8", 80,
            [b"POST /mcp/ HTTP/1.1\r\nHost: api.githubcopilot.com\r\n\r\n"])
    lab.tcp("10.0.0.7", 50002, "10.9.9.8", 80,
            [b"POST /chat/completions HTTP/1.1\r\nHost: api.githubcopilot.com\r\n\r\n"])
    found = hunt(lab, tmp_path, catalog)
    assert found[("10.0.0.5", "notion-mcp")].type == "mcp_server_use"
    assert found[("10.0.0.6", "github-mcp")].type == "mcp_server_use"
    assert found[("10.0.0.7", "github-copilot")].type == "ai_service_use"


def test_policy_sets_sanctioned_and_severity(tmp_path, catalog):
    lab = Lab()
    lab.tcp("10.0.0.5", 50000, "10.9.9.9", 443, [client_hello_record("api.openai.com")])
    lab.tcp("10.0.0.5", 50001, "10.9.9.9", 443, [client_hello_record("chatgpt.com")])
    lab.tcp("10.1.0.5", 50002, "10.9.9.9", 443, [client_hello_record("chatgpt.com")])
    lab.tcp("10.0.0.5", 50003, "10.9.9.9", 443, [client_hello_record("api.mistral.ai")])
    policy = Policy.from_toml({
        "sanctioned_services": ["openai-api"],
        "exceptions": [{"name": "research", "networks": ["10.1.0.0/16"],
                        "sanctioned_services": ["chatgpt"]}],
    })
    found = hunt(lab, tmp_path, catalog, policy)
    got = {k: (f.sanctioned, f.severity) for k, f in found.items()}
    assert got == {
        ("10.0.0.5", "openai-api"): (True, "info"),
        ("10.0.0.5", "chatgpt"): (False, "high"),  # high-risk category, unsanctioned
        ("10.1.0.5", "chatgpt"): (True, "info"),  # the exception's network
        ("10.0.0.5", "mistral-api"): (False, "medium"),
    }


def test_cli_reads_the_policy_table_and_rejects_unknown_ids(tmp_path):
    lab = Lab()
    lab.tcp("10.0.0.5", 50000, "10.9.9.9", 443, [client_hello_record("api.openai.com")])
    pcap = lab.write(tmp_path / "c.pcap")
    cfg = tmp_path / "sensor.toml"
    cfg.write_text('[policy]\nsanctioned_services = ["openai-api"]\n')
    r = CliRunner().invoke(main, ["hunt", str(pcap), "-c", str(cfg), "-q"])
    assert r.exit_code == 0, r.output
    [f] = [json.loads(x) for x in r.stdout.splitlines()]
    assert f["service"]["sanctioned"] is True and f["severity"] == "info"
    cfg.write_text('[policy]\nsanctioned_services = ["no-such-service"]\n')
    r = CliRunner().invoke(main, ["hunt", str(pcap), "-c", str(cfg), "-q"])
    assert r.exit_code == 1 and "no-such-service" in r.stderr
    cfg.write_text('[nonsense]\nx = 1\n')
    r = CliRunner().invoke(main, ["hunt", str(pcap), "-c", str(cfg), "-q"])
    assert r.exit_code == 1 and "unknown table [nonsense]" in r.stderr
