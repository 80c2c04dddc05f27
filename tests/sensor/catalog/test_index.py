"""The compiled matcher: label-boundary suffixes, specificity, normalisation, cache."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensor.catalog.index import (
    SIGNATURES_ENV,
    Catalog,
    default_signature_dir,
    normalise_hostname,
)
from sensor.catalog.schema import Category, HostPattern, PatternKind, Role, Service


def svc(sid: str, *patterns: tuple[PatternKind, str] | HostPattern) -> Service:
    hosts = tuple(p if isinstance(p, HostPattern) else HostPattern(p[0], p[1]) for p in patterns)
    return Service(sid, sid, "V", Category.LLM_API, hosts, ("https://x.example/",), ("x",), ("y",))


CAT = Catalog.from_services(
    [
        svc("openai-api", ("exact", "api.openai.com")),
        svc("openai-web", ("suffix", "openai.com")),
        svc("chatgpt", ("suffix", "chatgpt.com"), HostPattern("suffix", "oaistatic.com", Role.CDN)),
        svc("deep", ("suffix", "a.b.example")),
        svc("shallow", ("suffix", "b.example")),
        svc("exact-same", ("exact", "same.example")),
        svc("suffix-same", ("suffix", "same.example")),
    ]
)


def sid(host: str) -> str | None:
    m = CAT.match(host)
    return m.service.id if m else None


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("openai.com", "openai-web"),
        ("x.openai.com", "openai-web"),
        ("a.b.c.openai.com", "openai-web"),
        ("notopenai.com", None),
        ("openai.com.evil.net", None),
        ("openai.co", None),
        ("com", None),
        ("", None),
        (".", None),
        ("api.openai.com", "openai-api"),  # exact is more specific than the suffix
        ("x.api.openai.com", "openai-web"),  # exact does not cover subdomains
        ("z.a.b.example", "deep"),
        ("a.b.example", "deep"),
        ("zb.example", None),
        ("c.b.example", "shallow"),
        ("same.example", "exact-same"),  # exact beats suffix at the same name
        ("x.same.example", "suffix-same"),
    ],
)
def test_label_boundary_semantics(host: str, expected: str | None) -> None:
    assert sid(host) == expected
    assert (m.service.id if (m := CAT.match_uncached(host)) else None) == expected


@pytest.mark.parametrize(
    "host",
    [
        "API.OPENAI.COM",
        "api.openai.com.",
        "Api.OpenAI.com.",
        "api.openai.com:443",
        " api.openai.com ",
    ],
)
def test_normalisation(host: str) -> None:
    assert sid(host) == "openai-api"


def test_normalise_hostname() -> None:
    assert normalise_hostname("Example.COM.:8443") == "example.com"
    assert normalise_hostname("[2001:db8::1]:443") == "2001:db8::1"
    assert normalise_hostname("2001:db8::1") == "2001:db8::1"  # no port split on bare v6
    assert normalise_hostname("host:") == "host"
    assert CAT.match("[::1]:443") is None and CAT.match("::1") is None


def test_match_exposes_service_and_pattern() -> None:
    m = CAT.match("static.oaistatic.com")
    assert m is not None
    assert m.service.id == "chatgpt" and m.service.category is Category.LLM_API
    assert (m.pattern.kind, m.pattern.value, m.pattern.role) == (
        "suffix",
        "oaistatic.com",
        Role.CDN,
    )
    assert m.counts_as_use is False
    m2 = CAT.match("chatgpt.com")
    assert m2 is not None and m2.counts_as_use is True


def test_cache_is_bounded_and_consistent() -> None:
    cat = Catalog.from_services([svc("s", ("suffix", "x.example"))])
    cat._cache_size = 8
    for i in range(100):
        assert cat.match(f"h{i}.x.example") is not None
        assert cat.match(f"h{i}.y.example") is None
        assert len(cat._cache) <= 8
    first = cat.match("a.x.example")
    assert cat.match("a.x.example") is first  # cached object comes back
    cat.clear_cache()
    assert cat._cache == {}


def test_service_lookup_by_id_and_len() -> None:
    assert len(CAT) == 7
    s = CAT.service("deep")
    assert s is not None and s.hosts[0].value == "a.b.example"
    assert CAT.service("nope") is None


def test_default_signature_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(SIGNATURES_ENV, raising=False)
    repo_dir = default_signature_dir()
    assert repo_dir.name == "signatures" and (repo_dir / "services").is_dir()
    monkeypatch.setenv(SIGNATURES_ENV, str(tmp_path))
    assert default_signature_dir() == tmp_path


# Property: the dict walk agrees with a brute-force scan of every pattern.
LABELS = st.sampled_from(["a", "b", "api", "openai", "com", "example", "x", "chatgpt", "same"])
NAMES = st.lists(LABELS, min_size=1, max_size=5).map(".".join)
PATTERNS = st.lists(
    st.tuples(st.sampled_from(["exact", "suffix"]), NAMES), min_size=1, max_size=12, unique=True
)


def brute_force(patterns: list[tuple[str, str]], host: str) -> int | None:
    """Index of the winning pattern: longest matched name, exact before suffix, first wins."""
    best: tuple[int, int, int] | None = None
    for i, (kind, value) in enumerate(patterns):
        p = HostPattern("exact" if kind == "exact" else "suffix", value)
        if p.matches(host):
            key = (-len(value), 0 if kind == "exact" else 1, i)
            if best is None or key < best:
                best = key
    return best[2] if best else None


@settings(max_examples=300, deadline=None)
@given(PATTERNS, NAMES)
def test_index_agrees_with_brute_force(patterns: list[tuple[str, str]], host: str) -> None:
    services = [
        svc(f"s{i}", ("exact" if k == "exact" else "suffix", v))
        for i, (k, v) in enumerate(patterns)
    ]
    cat = Catalog.from_services(services)
    got = cat.match(host)
    want = brute_force(patterns, host)
    assert (got.service.id if got else None) == (f"s{want}" if want is not None else None)
