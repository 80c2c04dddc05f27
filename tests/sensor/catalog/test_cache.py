"""Compiled-catalog cache: same catalog back, keyed by content, never stale, never pickle."""

from __future__ import annotations

from pathlib import Path

import msgpack
import pytest

from sensor.catalog import cache
from sensor.catalog.index import Catalog, CatalogError

ENTRY = """\
vendor: V
services:
  - id: svc-a
    name: Service A
    category: llm-api
    risk: high
    notes: some notes
    hosts:
      - exact: api.a-vendor.example
        role: api
      - suffix: a-vendor.example
        role: web
      - exact: tools.shared.example
        role: api
        shared: true
        paths: ["/ai/", "/ai/v2/"]
    ip_ranges:
      - {cidr: 192.0.2.0/24, role: api, source: "https://a-vendor.example/ips"}
      - {cidr: "2001:db8::/32", source: "https://a-vendor.example/ips"}
    references: [https://a-vendor.example/docs]
    examples:
      match: [api.a-vendor.example, tools.shared.example/ai/x]
      nomatch: [b.example]
"""


@pytest.fixture
def sigs(tmp_path: Path) -> Path:
    d = tmp_path / "sigs"
    d.mkdir()
    (d / "a.yaml").write_text(ENTRY)
    return d


def entries(cache_dir: Path) -> list[Path]:
    return sorted(cache_dir.glob("catalog-*.msgpack"))


def test_round_trip_equal(sigs: Path, tmp_path: Path) -> None:
    cdir = tmp_path / "cache"
    fresh = Catalog.load([sigs], use_cache=False, cache_dir=cdir)
    assert entries(cdir) == []
    first = Catalog.load([sigs], cache_dir=cdir)
    (entry,) = entries(cdir)
    second = Catalog.load([sigs], cache_dir=cdir)
    assert fresh.services == first.services == second.services
    assert second.version == fresh.version and second.files == fresh.files
    assert second.vendor_domains == first.vendor_domains
    assert "a-vendor.example" in second.vendor_domains
    hit = second.match_http("tools.shared.example", "/ai/v2/x")
    assert hit is not None and hit.pattern.paths == ("/ai/v2/", "/ai/")
    ip = second.match_ip("192.0.2.5")
    assert ip is not None and ip.ip_range is not None and ip.ip_range.source.endswith("/ips")
    # plain msgpack with a format marker (pickle is banned)
    obj = msgpack.unpackb(entry.read_bytes(), raw=False)
    assert obj["format"] == cache.FORMAT and obj["services"][0][0] == "svc-a"


def test_content_change_is_a_new_key(sigs: Path, tmp_path: Path) -> None:
    cdir = tmp_path / "cache"
    Catalog.load([sigs], cache_dir=cdir)
    (sigs / "a.yaml").write_text(ENTRY.replace("Service A", "Service A2"))
    cat = Catalog.load([sigs], cache_dir=cdir)
    assert cat.services[0].name == "Service A2"
    assert len(entries(cdir)) == 2
    (sigs / "b.yaml").write_text(ENTRY.replace("svc-a", "svc-b").replace("a-vendor", "b-vendor")
                                 .replace("192.0.2.0/24", "198.51.100.0/24")
                                 .replace("2001:db8::/32", "2001:db9::/32")
                                 .replace("tools.shared", "tools2.shared"))
    assert [s.id for s in Catalog.load([sigs], cache_dir=cdir).services] == ["svc-a", "svc-b"]


def test_corrupt_entry_ignored(sigs: Path, tmp_path: Path) -> None:
    cdir = tmp_path / "cache"
    Catalog.load([sigs], cache_dir=cdir)
    (entry,) = entries(cdir)
    for junk in (b"\x00garbage", msgpack.packb({"format": 999}), msgpack.packb([1, 2])):
        entry.write_bytes(junk)
        assert [s.id for s in Catalog.load([sigs], cache_dir=cdir).services] == ["svc-a"]


def test_errors_are_not_cached(sigs: Path, tmp_path: Path) -> None:
    cdir = tmp_path / "cache"
    (sigs / "a.yaml").write_text(ENTRY.replace("llm-api", "nope"))
    for _ in range(2):
        with pytest.raises(CatalogError):
            Catalog.load([sigs], cache_dir=cdir)
    assert entries(cdir) == []


def test_env_disables_cache(sigs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(cache.NO_CACHE_ENV, "1")
    Catalog.load([sigs], cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache").exists() or entries(tmp_path / "cache") == []


def test_unwritable_cache_dir(sigs: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    cat = Catalog.load([sigs], cache_dir=blocker / "cache")
    assert cat.services[0].id == "svc-a" and cat.match_ip("192.0.2.1") is not None


def test_prune_keeps_recent(sigs: Path, tmp_path: Path) -> None:
    cdir = tmp_path / "cache"
    for i in range(cache.KEEP + 3):
        (sigs / "a.yaml").write_text(ENTRY.replace("Service A", f"Service {i}"))
        Catalog.load([sigs], cache_dir=cdir)
    assert len(entries(cdir)) == cache.KEEP


def test_missing_path_not_cached(tmp_path: Path) -> None:
    assert cache.cache_key([tmp_path / "nope"], None) is None
    with pytest.raises(CatalogError):
        Catalog.load([tmp_path / "nope"], cache_dir=tmp_path / "cache")


def test_user_cache_dir_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from sensor.catalog.ipindex import CACHE_ENV, user_cache_dir

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "a"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert user_cache_dir() == tmp_path / "a"
    monkeypatch.delenv(CACHE_ENV)
    assert user_cache_dir() == tmp_path / "xdg" / "shadowai"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert user_cache_dir() == tmp_path / "home" / ".cache" / "shadowai"
