"""Loading files and directories: cross-file checks, digest, CatalogError."""

from __future__ import annotations

from pathlib import Path

import pytest

from sensor.catalog.index import Catalog, CatalogError
from sensor.catalog.loader import display_path, load_paths
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
