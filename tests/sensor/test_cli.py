"""The hunt command as a user runs it: outputs, schema, exit codes, damaged input."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from sensor.cli import EXIT_FATAL, EXIT_OK, EXIT_PARTIAL, main
from tests.helpers.packets import Lab, client_hello_record

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "pcaps" / "sample.pcap"
SCHEMA = json.loads((ROOT / "sensor" / "schemas" / "finding.schema.json").read_text())


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x]


def test_sample_findings_match_the_sample_readme(tmp_path):
    out, obs = tmp_path / "f.jsonl", tmp_path / "o.jsonl"
    r = run("hunt", str(SAMPLE), "-o", str(out), "--observations", str(obs))
    assert r.exit_code == EXIT_OK, r.output
    found = lines(out)
    for f in found:
        jsonschema.validate(f, SCHEMA)
    got = {(f["client"]["ip"], f["service"]["id"]): f for f in found
           if f["type"] == "ai_service_use"}
    # pcaps/README.md, "What you should see"
    assert set(got) == {
        ("10.99.0.10", "openai-api"), ("10.99.0.10", "anthropic-api"),
        ("10.99.0.10", "chatgpt"), ("10.99.0.11", "claude"), ("10.99.0.11", "mistral-api"),
        ("10.99.0.11", "deepseek-chat"), ("10.99.0.10", "perplexity-api"),
    }
    assert got[("10.99.0.10", "perplexity-api")]["severity"] == "low"
    assert {k: f["severity"] for k, f in got.items()} == {
        ("10.99.0.10", "openai-api"): "medium", ("10.99.0.10", "anthropic-api"): "medium",
        ("10.99.0.10", "chatgpt"): "high", ("10.99.0.11", "claude"): "high",
        ("10.99.0.11", "mistral-api"): "medium", ("10.99.0.11", "deepseek-chat"): "high",
        ("10.99.0.10", "perplexity-api"): "low"}
    [srv] = [f for f in found if f["type"] == "self_hosted_llm"]
    assert (srv["server"]["ip"], srv["server"]["port"]) == ("10.99.0.30", 11434)
    assert srv["severity"] == "high" and srv["self_hosted_llm"]["product"] == "Ollama"
    assert srv["self_hosted_llm"]["models"] == ["llama3.2:1b"]
    assert len(found) == 8
    assert got[("10.99.0.10", "perplexity-api")]["counts"]["flows"] == 0
    assert got[("10.99.0.10", "openai-api")]["counts"]["flows"] == 2
    kinds = {e["kind"] for e in got[("10.99.0.10", "chatgpt")]["evidence"]}
    assert kinds == {"tls.sni", "http.host", "dns.query", "tls.ja4"}
    assert got[("10.99.0.10", "chatgpt")]["attributed_by"] == ["dns.query", "http.host", "tls.sni"]
    # curl and the openai SDK (Python ssl) are known non-browser TLS clients
    tls = got[("10.99.0.10", "openai-api")]["tls"]
    assert tls["client_families"] == ["curl", "python"]
    assert tls["non_browser_client"] is True and tls["ech"] is False
    assert len(tls["ja4_r"]) == len(tls["ja4"]) == 2
    assert len({f["id"] for f in found}) == len(found)
    o = lines(obs)
    assert {x["kind"] for x in o} >= {"tls.client_hello", "dns", "http.request", "http.response"}
    assert all(x["community_id"].startswith("1:") for x in o)
    # the summary goes to stderr, the findings were not mixed into it
    assert "AI services" in r.stderr


def test_ids_are_stable_across_runs(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    run("hunt", str(SAMPLE), "-o", str(a), "-q")
    run("hunt", str(SAMPLE), "-o", str(b), "-q")
    assert [f["id"] for f in lines(a)] == [f["id"] for f in lines(b)]


def test_truncated_capture_keeps_findings_and_exits_3(tmp_path):
    lab = Lab()
    lab.tcp("10.0.0.5", 50000, "192.0.2.10", 443, [client_hello_record("api.openai.com")])
    lab.tcp("10.0.0.5", 50001, "192.0.2.11", 443, [client_hello_record("claude.ai")])
    data = lab.write(tmp_path / "x.pcap").read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[: len(data) - 30])  # the last record is cut
    out = tmp_path / "f.jsonl"
    r = run("hunt", str(cut), "-o", str(out))
    assert r.exit_code == EXIT_PARTIAL
    assert "damaged capture at byte" in r.stderr and str(cut) in r.stderr
    assert {f["service"]["id"] for f in lines(out)} == {"openai-api", "claude"}


def test_not_a_capture_is_one_line_and_exit_1(tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("hello\n" * 10)
    r = run("hunt", str(bad), "-o", str(tmp_path / "f.jsonl"))
    assert r.exit_code == EXIT_FATAL
    err = [x for x in r.stderr.splitlines() if x.startswith("shadowai:")]
    assert len(err) == 1 and "notes.txt" in err[0]


def test_directory_is_walked_and_non_captures_skipped(tmp_path):
    d = tmp_path / "d" / "sub"
    d.mkdir(parents=True)
    (d / "s.pcap").write_bytes(SAMPLE.read_bytes())
    (tmp_path / "d" / "README").write_text("not a capture")
    out = tmp_path / "f.jsonl"
    r = run("hunt", str(tmp_path / "d"), "-o", str(out))
    assert r.exit_code == EXIT_OK
    assert "skipped" in r.stderr
    assert sum(f["type"] == "ai_service_use" for f in lines(out)) == 7


def test_help_on_every_command():
    for args in (["--help"], ["hunt", "--help"], ["signatures", "--help"]):
        r = run(*args)
        assert r.exit_code == 0 and "Usage" in r.output


@pytest.mark.parametrize("fmt", ["gz"])
def test_gzip_capture(tmp_path, fmt):
    import gzip

    p = tmp_path / "s.pcap.gz"
    p.write_bytes(gzip.compress(SAMPLE.read_bytes()))
    out = tmp_path / "f.jsonl"
    assert run("hunt", str(p), "-o", str(out), "-q").exit_code == EXIT_OK
    assert sum(f["type"] == "ai_service_use" for f in lines(out)) == 7


def test_hunt_records_into_the_default_inventory_unless_told_not_to(tmp_path, monkeypatch):
    monkeypatch.setenv("SHADOWAI_STATE_DIR", str(tmp_path / "state"))
    r = run("hunt", str(SAMPLE), "-o", str(tmp_path / "f.jsonl"), "-q", "--no-db")
    assert r.exit_code == EXIT_OK and not (tmp_path / "state").exists()
    r = run("hunt", str(SAMPLE), "-o", str(tmp_path / "f.jsonl"), "-q")
    assert r.exit_code == EXIT_OK
    db = tmp_path / "state" / "inventory.db"
    assert db.exists()
    r = run("assets", "--db", str(db), "--format", "json")
    assert r.exit_code == 0, r.output
    inv = json.loads(r.stdout)
    assert {s["id"] for s in inv["services"]} >= {"openai-api", "claude"}
