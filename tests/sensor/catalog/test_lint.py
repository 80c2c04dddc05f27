"""Lint: schema + duplicates + every entry's examples, through the real matcher."""

from __future__ import annotations

from pathlib import Path

import pytest

from sensor.catalog.lint import lint_paths


def entry(sid: str, hosts: str, match: str, nomatch: str) -> str:
    return f"""\
  - id: {sid}
    name: {sid}
    category: llm-api
    hosts:
{hosts}
    references: [https://docs.example/{sid}]
    examples:
      match: [{match}]
      nomatch: [{nomatch}]
"""


def write(tmp_path: Path, *entries: str) -> Path:
    (tmp_path / "v.yaml").write_text("vendor: V\nservices:\n" + "".join(entries))
    return tmp_path


def messages(tmp_path: Path) -> list[str]:
    return [str(p).split(": ", 1)[1] for p in lint_paths([tmp_path]).problems]


def test_clean_catalog(tmp_path: Path) -> None:
    write(tmp_path, entry("a", "      - suffix: a.example", "x.a.example", "b.example"))
    report = lint_paths([tmp_path])
    assert report.problems == ()


def test_duplicate_hosts_found(tmp_path: Path) -> None:
    host = "      - exact: dup.example"
    write(tmp_path, entry("a", host, "dup.example", "x"), entry("b", host, "dup.example", "x"))
    report = lint_paths([tmp_path])
    errs = [str(p) for p in report.errors]
    assert any("v.yaml:16: service 'b': duplicate host exact 'dup.example'" in e for e in errs)


def test_example_matching_other_service(tmp_path: Path) -> None:
    write(
        tmp_path,
        entry("web", "      - suffix: v.example", "v.example", "other.example"),
        entry("api", "      - exact: api.v.example", "api.v.example, nothing.example", "v.example"),
        entry("wide", "      - suffix: w.example", "w.example", "x.w.example"),
    )
    assert messages(tmp_path) == [
        "service 'api': example 'nothing.example' matches nothing",
        "service 'wide': nomatch example 'x.w.example' matches (suffix 'w.example')",
    ]
    write(
        tmp_path,
        entry("web", "      - suffix: v.example", "api.v.example", "other.example"),
        entry("api", "      - exact: api.v.example", "api.v.example", "v.example"),
    )
    assert messages(tmp_path) == [
        "service 'web': example 'api.v.example' matches service 'api' (exact 'api.v.example')"
    ]


def test_warnings_shared_suffix_without_role_and_untested_pattern(tmp_path: Path) -> None:
    hosts = (
        "      - suffix: ai.s.example\n        shared: true\n"
        "      - exact: t.example\n        role: api"
    )
    write(tmp_path, entry("a", hosts, "ai.s.example", "x.example"))
    report = lint_paths([tmp_path])
    assert report.errors == []
    assert [str(p) for p in report.warnings] == [
        f"{report.problems[0].location.file}:7: warning: service 'a': shared suffix 'ai.s.example' "
        "has no role",
        f"{report.problems[0].location.file}:9: warning: service 'a': exact 't.example' "
        "has no match example",
    ]


def test_schema_errors_included(tmp_path: Path) -> None:
    write(
        tmp_path, entry("a", "      - suffix: a.example", "a.example", "b").replace("llm-api", "x")
    )
    assert messages(tmp_path)[0].startswith("service 'a': unknown category 'x'")


# --- bare shared apex rule ---------------------------------------------------------


def one_host(tmp_path: Path, host_lines: str, match: str, nomatch: str = "other.example") -> Path:
    return write(tmp_path, entry("s", host_lines, match, nomatch))


def test_shared_platform_apex_refused(tmp_path: Path) -> None:
    # google.com is in the shipped signatures/shared-apexes.yaml
    for kind in ("suffix", "exact"):
        one_host(tmp_path, f"      - {kind}: google.com\n        role: web", "google.com")
        assert messages(tmp_path) == [
            f"service 's': {kind} 'google.com' is the bare domain of a shared platform "
            "(Google); name the AI hosts or add 'paths'"
        ]


def test_bare_domain_marked_shared_refused(tmp_path: Path) -> None:
    one_host(tmp_path, "      - suffix: tool.example\n        role: web\n        shared: true",
             "x.tool.example")
    report = lint_paths([tmp_path])
    (err,) = report.errors
    assert err.location.line == 7
    assert "suffix 'tool.example' is a bare registered domain marked shared" in err.message


@pytest.mark.parametrize(
    "host_lines",
    [
        # a more specific host under a shared platform is the intended way
        "      - exact: gemini.google.com\n        role: web",
        "      - suffix: ai.tool.example\n        role: web\n        shared: true",
        # a bare apex restricted to paths is precise enough
        "      - exact: google.com\n        role: web\n        shared: true\n"
        '        paths: ["/ai/"]',
        # a bare apex of an AI vendor that is not shared
        "      - suffix: tool.example\n        role: web",
    ],
)
def test_specific_hosts_and_paths_pass(tmp_path: Path, host_lines: str) -> None:
    value = host_lines.split(": ", 1)[1].split("\n", 1)[0]
    example = value + "/ai/x" if "paths" in host_lines else value
    one_host(tmp_path, host_lines, example)
    assert messages(tmp_path) == []


def test_public_suffix_refused(tmp_path: Path) -> None:
    one_host(tmp_path, "      - suffix: co.uk\n        role: web", "x.co.uk")
    assert "service 's': suffix 'co.uk' is a public suffix" in messages(tmp_path)


def test_shared_apexes_file_beside_catalog(tmp_path: Path) -> None:
    sigs = tmp_path / "sigs"
    (sigs / "services").mkdir(parents=True)
    one_host(sigs / "services", "      - suffix: tool.example\n        role: web", "tool.example")
    assert messages(sigs) == []
    (sigs / "shared-apexes.yaml").write_text("apexes:\n  Tool: [tool.example]\n")
    assert messages(sigs) == [
        "service 's': suffix 'tool.example' is the bare domain of a shared platform (Tool); "
        "name the AI hosts or add 'paths'"
    ]
    (sigs / "shared-apexes.yaml").write_text("apexes:\n  Tool: [www.tool.example, 5]\n")
    msgs = messages(sigs)
    assert "'Tool': 'www.tool.example' is not a registered domain (that is 'tool.example')" in msgs
    assert "'Tool': bad domain 5" in msgs


# --- path examples -----------------------------------------------------------------


def test_path_examples(tmp_path: Path) -> None:
    copilot = entry("copilot", "      - suffix: copilot.example\n        role: api",
                    "api.copilot.example", "x.example")
    mcp_hosts = ('      - exact: api.copilot.example\n        role: api\n        shared: true\n'
                 '        paths: ["/mcp/"]')
    write(tmp_path, copilot,
          entry("mcp", mcp_hosts, "api.copilot.example/mcp/x", "api.copilot.example, "
                "api.copilot.example/mcp"))
    assert lint_paths([tmp_path]).problems == ()
    # a host-only example never exercises a path pattern: warning + wrong-service error
    write(tmp_path, copilot, entry("mcp", mcp_hosts, "api.copilot.example", "x.example"))
    assert messages(tmp_path) == [
        "service 'mcp': example 'api.copilot.example' matches service 'copilot' "
        "(suffix 'copilot.example')",
        "warning: service 'mcp': exact 'api.copilot.example' has no match example",
    ]
