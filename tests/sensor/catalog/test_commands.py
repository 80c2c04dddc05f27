"""``shadowai signatures`` via click's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from sensor.catalog.commands import signatures
from sensor.catalog.index import SIGNATURES_ENV

SMALL = """\
vendor: OpenAI
services:
  - id: openai-api
    name: OpenAI API
    category: llm-api
    hosts:
      - exact: api.openai.com
        role: api
    references: [https://platform.openai.com/docs/api-reference]
    examples:
      match: [api.openai.com]
      nomatch: [notopenai.com]
  - id: chatgpt
    name: ChatGPT
    category: chat-assistant
    risk: high
    hosts:
      - suffix: chatgpt.com
        role: web
      - suffix: oaistatic.com
        role: cdn
    references: [https://openai.com/chatgpt/]
    examples:
      match: [chatgpt.com, cdn.oaistatic.com]
      nomatch: [api.openai.com]
"""


PATHS_AND_RANGES = """\
vendor: Example
services:
  - id: ex-copilot
    name: Ex Copilot
    category: code-assistant
    hosts:
      - suffix: excopilot.example
        role: api
    ip_ranges:
      - {cidr: 192.0.2.0/24, role: api, source: "https://docs.excopilot.example/ips"}
    references: [https://docs.excopilot.example/]
    examples:
      match: [api.excopilot.example]
      nomatch: [excopilot.example.net]
  - id: ex-mcp
    name: Ex MCP
    category: mcp-server
    hosts:
      - exact: api.excopilot.example
        role: api
        shared: true
        paths: ["/mcp/"]
    references: [https://docs.excopilot.example/mcp]
    examples:
      match: [api.excopilot.example/mcp/x]
      nomatch: [api.excopilot.example, api.excopilot.example/v1]
"""


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHADOWAI_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture
def small(tmp_path: Path) -> Path:
    (tmp_path / "openai.yaml").write_text(SMALL)
    return tmp_path


@pytest.fixture
def extra(small: Path) -> Path:
    (small / "example.yaml").write_text(PATHS_AND_RANGES)
    return small


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(signatures, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_lint_clean_exit_0(small: Path) -> None:
    code, out, err = run("lint", "--dir", str(small))
    assert code == 0 and out == ""
    assert "2 services in 1 files: 0 error(s), 0 warning(s)" in err


def test_lint_problems_exit_1_one_per_line(small: Path) -> None:
    text = SMALL.replace("category: llm-api", "category: llm").replace("role: cdn", "role: cdnx")
    (small / "openai.yaml").write_text(text)
    code, out, _ = run("lint", "--dir", str(small))
    assert code == 1
    lines = out.splitlines()
    assert len(lines) == 2
    assert lines[0].endswith(
        "openai.yaml:5: service 'openai-api': unknown category 'llm' "
        "(one of: " + lines[0].split("(one of: ")[1]
    )
    assert ":21: service 'chatgpt': unknown role 'cdnx'" in lines[1]


def test_lint_strict_fails_on_warnings(small: Path) -> None:
    (small / "openai.yaml").write_text(SMALL.replace("cdn.oaistatic.com", "chatgpt.com"))
    assert run("lint", "--dir", str(small))[0] == 0
    code, out, _ = run("lint", "--strict", "--dir", str(small))
    assert code == 1 and "warning: service 'chatgpt': suffix 'oaistatic.com' has no match" in out


def test_lint_default_dir_from_env(small: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SIGNATURES_ENV, str(small))
    code, _, err = run("lint")
    assert code == 0 and "2 services" in err


def test_list_json_one_object_per_line(small: Path) -> None:
    code, out, _ = run("list", "--dir", str(small), "--format", "json")
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["id"] for r in rows] == ["chatgpt", "openai-api"]  # by category, then id
    chat = rows[0]
    assert chat["vendor"] == "OpenAI" and chat["category"] == "chat-assistant"
    assert chat["risk"] == "high"
    assert chat["hosts"][1] == {
        "kind": "suffix",
        "value": "oaistatic.com",
        "role": "cdn",
        "shared": False,
        "paths": [],
    }
    assert chat["ip_ranges"] == []
    assert chat["location"].endswith("openai.yaml:13")


def test_list_category_filter_and_table(small: Path) -> None:
    code, out, err = run("list", "--dir", str(small), "--category", "llm-api")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "CATEGORY", "VENDOR", "NAME", "HOSTS"]
    assert lines[1].split() == ["openai-api", "llm-api", "OpenAI", "OpenAI", "API", "1"]
    assert len(lines) == 2 and "1 services, catalog sha256:" in err
    assert run("list", "--dir", str(small), "--category", "bogus")[0] == 2


def test_list_broken_catalog_exit_1(small: Path) -> None:
    (small / "openai.yaml").write_text(SMALL.replace("category: llm-api", "category: llm"))
    code, out, err = run("list", "--dir", str(small))
    assert code == 1 and out == "" and "openai.yaml:5: service 'openai-api'" in err


def test_explain_match(small: Path) -> None:
    code, out, _ = run("explain", "--dir", str(small), "CDN.OAIStatic.com.")
    assert code == 0
    assert out.splitlines()[0] == "cdn.oaistatic.com: chatgpt (ChatGPT, OpenAI, chat-assistant)"
    assert "pattern: suffix oaistatic.com at " in out and "openai.yaml:20" in out
    assert "why: 'cdn.oaistatic.com' is a subdomain of 'oaistatic.com'" in out
    assert "role=cdn" in out and "not counted as use" in out and "risk=high" in out


def test_explain_exact(small: Path) -> None:
    code, out, _ = run("explain", "--dir", str(small), "api.openai.com:443")
    assert code == 0 and "pattern: exact api.openai.com" in out
    assert "why: 'api.openai.com' equals 'api.openai.com'" in out


def test_explain_no_match(small: Path) -> None:
    code, out, _ = run("explain", "--dir", str(small), "api.openai.com.evil.net")
    assert code == 1 and out == "api.openai.com.evil.net: no match\n"


def test_list_json_paths_and_ranges(extra: Path) -> None:
    code, out, _ = run("list", "--dir", str(extra), "--format", "json")
    assert code == 0
    rows = {r["id"]: r for r in map(json.loads, out.splitlines())}
    assert rows["ex-mcp"]["hosts"][0]["paths"] == ["/mcp/"]
    assert rows["ex-copilot"]["ip_ranges"] == [
        {"cidr": "192.0.2.0/24", "role": "api", "source": "https://docs.excopilot.example/ips"}
    ]


def test_explain_path(extra: Path) -> None:
    host = "api.excopilot.example"
    code, out, _ = run("explain", "--dir", str(extra), host, "--path", "/mcp/x?a=1")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "api.excopilot.example: ex-mcp (Ex MCP, Example, mcp-server)"
    assert "pattern: exact api.excopilot.example at " in out and "example.yaml:19" in out
    assert "path: '/mcp/x' is under '/mcp/'" in out
    assert "flags: role=api, shared" in out


def test_explain_path_not_matching_falls_back_to_host(extra: Path) -> None:
    code, out, _ = run("explain", "--dir", str(extra), "api.excopilot.example", "--path", "/v1/x")
    assert code == 0 and out.startswith("api.excopilot.example: ex-copilot ")
    assert "path: '/v1/x' matches no path-restricted entry (path entries here: ex-mcp /mcp/)" in out
    code, out, _ = run("explain", "--dir", str(extra), "api.excopilot.example")
    assert code == 0 and out.startswith("api.excopilot.example: ex-copilot ")
    assert "path-restricted entries for this name: ex-mcp /mcp/ (use --path)" in out


def test_explain_ip(extra: Path) -> None:
    code, out, _ = run("explain", "--dir", str(extra), "192.0.2.77")
    assert code == 0
    assert out.splitlines()[0] == "192.0.2.77: ex-copilot (Ex Copilot, Example, code-assistant)"
    assert "ip range: 192.0.2.0/24 at " in out and "example.yaml:10" in out
    assert "why: 192.0.2.77 is in 192.0.2.0/24" in out
    assert "source: https://docs.excopilot.example/ips" in out
    code, out, _ = run("explain", "--dir", str(extra), "198.51.100.1")
    assert code == 1 and "no match" in out


def test_explain_vendor_domain_on_miss(small: Path) -> None:
    code, out, _ = run("explain", "--dir", str(small), "new.chatgpt.com.evil.net")
    assert code == 1 and "vendor domain" not in out
    code, out, _ = run("explain", "--dir", str(small), "status.openai.com")
    assert code == 1
    assert "vendor domain: 'status.openai.com' is under openai.com (OpenAI" in out
    assert "reported as service 'unknown'" in out
