"""Lint: schema + duplicates + every entry's examples, through the real matcher."""

from __future__ import annotations

from pathlib import Path

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
        "      - suffix: s.example\n        shared: true\n"
        "      - exact: t.example\n        role: api"
    )
    write(tmp_path, entry("a", hosts, "s.example", "x.example"))
    report = lint_paths([tmp_path])
    assert report.errors == []
    assert [str(p) for p in report.warnings] == [
        f"{report.problems[0].location.file}:7: warning: service 'a': shared suffix 's.example' "
        "has no role",
        f"{report.problems[0].location.file}:9: warning: service 'a': exact 't.example' "
        "has no match example",
    ]


def test_schema_errors_included(tmp_path: Path) -> None:
    write(
        tmp_path, entry("a", "      - suffix: a.example", "a.example", "b").replace("llm-api", "x")
    )
    assert messages(tmp_path)[0].startswith("service 'a': unknown category 'x'")
