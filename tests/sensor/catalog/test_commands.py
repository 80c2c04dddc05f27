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


@pytest.fixture
def small(tmp_path: Path) -> Path:
    (tmp_path / "openai.yaml").write_text(SMALL)
    return tmp_path


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
    }
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
