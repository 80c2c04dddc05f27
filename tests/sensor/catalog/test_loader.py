"""Loading files and directories: cross-file checks, digest, CatalogError."""

from __future__ import annotations

from pathlib import Path

import pytest

from sensor.catalog.index import Catalog, CatalogError
from sensor.catalog.loader import display_path, load_paths
from sensor.catalog.schema import Role
from sensor.errors import InputError


def entry(sid: str, host: str, kind: str = "suffix") -> str:
    return f"""\
  - id: {sid}
    name: {sid}
    category: llm-api
    hosts:
      - {kind}: {host}
    references: [https://docs.example/{sid}]
    examples:
      match: [{host}]
      nomatch: [not-{host}]
"""


def write(path: Path, *entries: str, vendor: str = "V") -> Path:
    path.write_text(f"vendor: {vendor}\nservices:\n" + "".join(entries))
    return path


def test_directory_loads_yaml_files_in_name_order(tmp_path: Path) -> None:
    write(tmp_path / "b.yaml", entry("b-svc", "b.example"))
    write(tmp_path / "a.yml", entry("a-svc", "a.example"))
    (tmp_path / "README.md").write_text("not a catalog")
    result = load_paths([tmp_path])
    assert result.problems == []
    assert [s.id for s in result.services] == ["a-svc", "b-svc"]
    assert [p.name for p in result.files] == ["a.yml", "b.yaml"]


def test_signatures_root_means_its_services_dir(tmp_path: Path) -> None:
    (tmp_path / "services").mkdir()
    write(tmp_path / "services" / "a.yaml", entry("a-svc", "a.example"))
    assert [s.id for s in load_paths([tmp_path]).services] == ["a-svc"]


def test_missing_path_and_empty_dir(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = load_paths([tmp_path / "nope.yaml", tmp_path / "empty"])
    messages = [p.message for p in result.problems]
    assert messages == ["no such file or directory", "no *.yaml files"]
    assert all(p.location.line == 0 for p in result.problems)


def test_duplicate_ids_across_files(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", entry("same", "a.example"))
    write(tmp_path / "b.yaml", entry("same", "b.example"))
    result = load_paths([tmp_path])
    (problem,) = result.problems
    assert problem.location.file.endswith("b.yaml") and problem.location.line == 3
    assert "duplicate service id 'same' (first at " in problem.message
    assert "a.yaml:3)" in problem.message


def test_duplicate_host_across_services_is_error(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", entry("one", "dup.example"), entry("two", "dup.example"))
    (problem,) = load_paths([tmp_path]).problems
    assert problem.location.line == 16
    assert "service 'two': duplicate host suffix 'dup.example' (already in service 'one'" in (
        problem.message
    )


def test_same_value_exact_and_suffix_is_not_duplicate(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", entry("one", "x.example"), entry("two", "x.example", "exact"))
    assert load_paths([tmp_path]).problems == []


def test_catalog_load_raises_input_error_listing_all(tmp_path: Path) -> None:
    bad = entry("bad-one", "a.example").replace("llm-api", "nope")
    bad2 = entry("bad-two", "b.example").replace("references: [https", "references: [ftp")
    write(tmp_path / "x.yaml", bad, bad2)
    with pytest.raises(CatalogError) as info:
        Catalog.load([tmp_path])
    assert isinstance(info.value, InputError)
    assert len(info.value.problems) == 2
    text = str(info.value)
    assert "x.yaml:5: service 'bad-one': unknown category 'nope'" in text
    assert "x.yaml:17: service 'bad-two': reference 'ftp://" in text


def test_valid_services_survive_a_bad_sibling(tmp_path: Path) -> None:
    write(tmp_path / "x.yaml", entry("ok", "a.example"), entry("bad", "B.example"))
    result = load_paths([tmp_path])
    assert [s.id for s in result.services] == ["ok"]
    assert len(result.errors) == 1


def test_digest_depends_on_content_not_location(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    write(one / "a.yaml", entry("a-svc", "a.example"))
    write(two / "a.yaml", entry("a-svc", "a.example"))
    d1, d2 = load_paths([one]).digest, load_paths([two]).digest
    assert d1 == d2 and d1.startswith("sha256:") and len(d1) == len("sha256:") + 16
    write(two / "a.yaml", entry("a-svc", "a.example"), vendor="W")
    assert load_paths([two]).digest != d1
    assert Catalog.load([one]).version == d1


def test_display_path_relative_to_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    assert display_path(tmp_path / "sub" / "f.yaml") == "sub/f.yaml"
    assert display_path(Path("/elsewhere/f.yaml")) == "/elsewhere/f.yaml"


def test_unreadable_file_is_a_problem(tmp_path: Path) -> None:
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00bad")
    (problem,) = load_paths([tmp_path]).problems
    assert problem.message.startswith("cannot read:")


def host_entry(sid: str, host_lines: str, extra: str = "") -> str:
    return f"""\
  - id: {sid}
    name: {sid}
    category: mcp-server
    hosts:
{host_lines}
{extra}    references: [https://docs.example/{sid}]
    examples:
      match: [x.example]
      nomatch: [y.example]
"""


def test_paths_load_sorted_longest_first(tmp_path: Path) -> None:
    hosts = '      - exact: api.example\n        role: api\n        paths: ["/mcp/", "/mcp/v2/"]'
    write(tmp_path / "a.yaml", host_entry("mcp", hosts))
    result = load_paths([tmp_path])
    assert result.problems == []
    (pat,) = result.services[0].hosts
    assert pat.paths == ("/mcp/v2/", "/mcp/")
    assert pat.matches_path("/mcp/x") and not pat.matches_path("/mcpx")


@pytest.mark.parametrize(
    ("paths", "line", "message"),
    [
        ('["mcp/"]', 9, "path 'mcp/' must start with '/'"),
        ('["/mcp/?x=1"]', 9, "path '/mcp/?x=1' must start with '/' and hold no spaces, '?' or '#'"),
        ('["/a b"]', 9, "path '/a b' must start with '/'"),
        ('["/mcp/", "/mcp/"]', 9, "duplicate path '/mcp/'"),
        ("[]", 9, "'paths' must have at least one item"),
        ("/mcp/", 9, "'paths' must be a list"),
        ("[1]", 9, "'paths' item must be a string"),
    ],
)
def test_bad_paths_report_file_line(tmp_path: Path, paths: str, line: int, message: str) -> None:
    hosts = f"      - exact: api.example\n        role: api\n        paths: {paths}"
    write(tmp_path / "a.yaml", host_entry("mcp", hosts))
    result = load_paths([tmp_path])
    assert result.services == []
    (problem,) = result.problems
    assert problem.location.file.endswith("a.yaml") and problem.location.line == line
    assert message in problem.message and "service 'mcp'" in problem.message


def test_same_host_bare_and_with_paths_is_not_duplicate(tmp_path: Path) -> None:
    plain = "      - exact: api.example"
    pathed = '      - exact: api.example\n        paths: ["/mcp/"]'
    write(tmp_path / "a.yaml", host_entry("one", plain), host_entry("two", pathed))
    assert load_paths([tmp_path]).problems == []
    write(tmp_path / "a.yaml", host_entry("two", pathed), host_entry("three", pathed))
    (problem,) = load_paths([tmp_path]).problems
    assert "service 'three': duplicate host exact 'api.example' path '/mcp/'" in problem.message


RANGES = """\
    ip_ranges:
      - {cidr: 160.79.104.0/23, role: api, source: "https://docs.example/ips"}
      - cidr: "2607:6bc0::/48"
        source: https://docs.example/ips
"""


def test_ip_ranges_load(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", host_entry("api", "      - exact: api.example", RANGES))
    result = load_paths([tmp_path])
    assert result.problems == []
    r1, r2 = result.services[0].ip_ranges
    assert (r1.cidr, r1.role, r1.source) == ("160.79.104.0/23", Role.API, "https://docs.example/ips")
    assert r1.location is not None and r1.location.line == 9
    assert (r2.cidr, r2.role) == ("2607:6bc0::/48", None)


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ('{cidr: 160.79.104.1/23, source: "https://d.example/"}', "has host bits set"),
        ('{cidr: 300.1.1.0/24, source: "https://d.example/"}', "is not a network"),
        ('{cidr: 10.0.0.1, source: "https://d.example/"}', "needs a prefix length"),
        ('{cidr: 0.0.0.0/0, source: "https://d.example/"}', "covers every address"),
        ("{cidr: 10.0.0.0/8}", "ip range needs 'source'"),
        ('{source: "https://d.example/"}', "ip range needs 'cidr'"),
        ("{cidr: 10.0.0.0/8, source: not-a-url}", "source 'not-a-url' is not an http(s) URL"),
        ('{cidr: 10.0.0.0/8, role: egress, source: "https://d.example/"}', "unknown role 'egress'"),
        ('{cidr: 10.0.0.0/8, port: 1, source: "https://d.example/"}', "unknown key 'port'"),
        ("10.0.0.0/8", "ip range must be a mapping"),
    ],
)
def test_bad_ip_ranges_report_file_line(tmp_path: Path, item: str, message: str) -> None:
    first = "{cidr: 192.0.2.0/24, source: 'https://d.example/'}"
    extra = f"    ip_ranges:\n      - {first}\n      - {item}\n"
    write(tmp_path / "a.yaml", host_entry("api", "      - exact: api.example", extra))
    result = load_paths([tmp_path])
    assert result.services == []
    (problem,) = result.problems
    assert problem.location.file.endswith("a.yaml") and problem.location.line == 10, problem
    assert message in problem.message and "service 'api'" in problem.message


def test_ip_ranges_duplicate_and_overlap(tmp_path: Path) -> None:
    dup = "    ip_ranges:\n" + "      - {cidr: 192.0.2.0/24, source: 'https://d.example/'}\n" * 2
    write(tmp_path / "a.yaml", host_entry("api", "      - exact: api.example", dup))
    (problem,) = load_paths([tmp_path]).problems
    assert "duplicate cidr '192.0.2.0/24'" in problem.message and problem.location.line == 10
    one = "    ip_ranges:\n      - {cidr: 192.0.2.0/24, source: 'https://d.example/'}\n"
    two = "    ip_ranges:\n      - {cidr: 192.0.2.128/25, source: 'https://d.example/'}\n"
    three = "    ip_ranges:\n      - {cidr: '2001:db8::/32', source: 'https://d.example/'}\n"
    write(
        tmp_path / "a.yaml",
        host_entry("one", "      - exact: one.example", one),
        host_entry("two", "      - exact: two.example", two),
        host_entry("three", "      - exact: three.example", three),
    )
    (problem,) = load_paths([tmp_path]).problems
    assert "service 'two': ip range 192.0.2.128/25 overlaps 192.0.2.0/24 (service 'one'" in (
        problem.message
    )
    assert "a.yaml:" in str(problem)
