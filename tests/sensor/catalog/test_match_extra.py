"""match_http (path-restricted patterns), match_ip (published ranges) and vendor grouping."""

from __future__ import annotations

from pathlib import Path

import pytest

from sensor.catalog.index import Catalog, compute_vendor_domains, request_path
from sensor.catalog.ipindex import IpIndex
from sensor.catalog.schema import Category, HostPattern, IpRange, Role, Service, path_has_prefix


def svc(
    sid: str,
    *hosts: HostPattern,
    vendor: str = "V",
    category: Category = Category.LLM_API,
    ranges: tuple[IpRange, ...] = (),
) -> Service:
    return Service(
        sid, sid, vendor, category, hosts, ("https://x.example/",), ("x",), ("y",),
        ip_ranges=ranges,
    )


COPILOT = svc("copilot", HostPattern("suffix", "githubcopilot.com", Role.API), vendor="GitHub")
MCP = svc(
    "github-mcp",
    HostPattern("exact", "api.githubcopilot.com", Role.API, True, None, ("/mcp/",)),
    vendor="GitHub",
    category=Category.MCP_SERVER,
)
DEEP = svc(
    "deep-mcp",
    HostPattern("exact", "api.githubcopilot.com", Role.API, True, None, ("/mcp/v2/",)),
    category=Category.MCP_SERVER,
)
WIDE = svc(
    "wide-path",
    HostPattern("suffix", "githubcopilot.com", Role.API, True, None, ("/agents/",)),
)
ONLY_PATH = svc(
    "only-path", HostPattern("suffix", "tools.example", None, True, None, ("/ai/",))
)
SEGMENT = svc(
    "segment", HostPattern("exact", "seg.tools.example", None, True, None, ("/mcp", "/a/sse"))
)
HTTP = Catalog.from_services([COPILOT, MCP, DEEP, WIDE, ONLY_PATH, SEGMENT])


@pytest.mark.parametrize(
    ("host", "target", "expected"),
    [
        ("api.githubcopilot.com", "/mcp/", "github-mcp"),
        ("API.GitHubCopilot.com:443", "/mcp/tools/list?x=1", "github-mcp"),
        ("api.githubcopilot.com", "https://api.githubcopilot.com/mcp/x", "github-mcp"),
        ("api.githubcopilot.com", "/mcp/v2/x", "deep-mcp"),  # longest prefix wins
        ("api.githubcopilot.com", "/mcp", "copilot"),  # prefixes are literal
        ("api.githubcopilot.com", "/v1/chat/completions", "copilot"),
        ("api.githubcopilot.com", "/x?/mcp/", "copilot"),  # the query is not the path
        ("api.githubcopilot.com", "*", "copilot"),
        ("api.githubcopilot.com", "api.githubcopilot.com:443", "copilot"),  # CONNECT
        ("x.api.githubcopilot.com", "/mcp/", "copilot"),  # exact path pattern: name only
        ("other.githubcopilot.com", "/agents/run", "wide-path"),  # suffix with paths
        ("api.githubcopilot.com", "/agents/run", "wide-path"),
        ("a.tools.example", "/ai/x", "only-path"),
        ("a.tools.example", "/other", None),
        ("githubcopilot.com.evil.net", "/mcp/", None),
        # a prefix without a trailing slash matches whole path segments only
        ("seg.tools.example", "/mcp", "segment"),
        ("seg.tools.example", "/mcp?session=1", "segment"),
        ("seg.tools.example", "/mcp/messages", "segment"),
        ("seg.tools.example", "/mcpx", None),
        ("seg.tools.example", "/a/sse", "segment"),
        ("seg.tools.example", "/a/ssex", None),
        ("seg.tools.example", "/a", None),
    ],
)
def test_match_http(host: str, target: str, expected: str | None) -> None:
    m = HTTP.match_http(host, target)
    assert (m.service.id if m else None) == expected
    again = HTTP.match_http(host, target)  # cached host candidates give the same answer
    assert again is m


@pytest.mark.parametrize("host", ["api.githubcopilot.com", "a.tools.example", "tools.example"])
def test_name_only_match_never_returns_a_path_pattern(host: str) -> None:
    for m in (HTTP.match(host), HTTP.match_uncached(host)):
        assert m is None or not m.pattern.paths


def test_match_example_and_path_patterns() -> None:
    ex = HTTP.match_example("api.githubcopilot.com/mcp/x")
    assert ex is not None and ex.service.id == "github-mcp"
    plain = HTTP.match_example("api.githubcopilot.com")
    assert plain is not None and plain.service.id == "copilot"
    assert HTTP.path_patterns("api.githubcopilot.com") == [
        "deep-mcp /mcp/v2/",
        "github-mcp /mcp/",
        "wide-path /agents/",
    ]


@pytest.mark.parametrize(
    ("target", "path"),
    [
        ("/a/b?c#d", "/a/b"),
        ("/a#frag", "/a"),
        ("http://h.example/x/y?z", "/x/y"),
        ("https://h.example", "/"),
        ("*", ""),
        ("h.example:443", ""),
        ("", ""),
        ("1ttp://h/x", ""),
    ],
)
def test_request_path(target: str, path: str) -> None:
    assert request_path(target) == path


# --- IP ranges -------------------------------------------------------------------

RANGES = (
    IpRange("160.79.104.0/23", Role.API, "https://docs.example/ips"),
    IpRange("2607:6bc0::/48", Role.API, "https://docs.example/ips"),
)
NARROW = (IpRange("160.79.104.128/25", Role.TELEMETRY, "https://docs.example/t"),)


def ip_catalog(cache: Path) -> Catalog:
    services = [
        svc("anthropic-api", HostPattern("exact", "api.anthropic.com", Role.API), ranges=RANGES),
        svc("narrow", HostPattern("exact", "n.example"), ranges=NARROW),
        svc("plain", HostPattern("exact", "p.example")),
    ]
    return Catalog(services, ip_cache_dir=cache)


@pytest.mark.parametrize(
    ("ip", "expected"),
    [
        ("160.79.104.1", "anthropic-api"),
        ("160.79.105.255", "anthropic-api"),
        ("160.79.104.0", "anthropic-api"),
        ("160.79.104.200", "narrow"),  # more specific range inside a wider one
        ("160.79.103.255", None),
        ("160.79.106.0", None),
        ("2607:6bc0::1", "anthropic-api"),
        ("2607:6bc0:0:ffff::1", "anthropic-api"),
        ("[2607:6bc0::1]", "anthropic-api"),
        ("2607:6bc1::", None),
        ("::ffff:160.79.104.9", "anthropic-api"),  # v4-mapped
        ("10.0.0.1", None),
        ("::", None),
        ("not an ip", None),
        ("", None),
        ("160.79.104.1/32", None),
    ],
)
def test_match_ip(tmp_path: Path, ip: str, expected: str | None) -> None:
    cat = ip_catalog(tmp_path)
    m = cat.match_ip(ip)
    assert (m.service.id if m else None) == expected
    if m is not None:
        assert m.ip_range is not None and m.pattern.kind == "cidr"
        assert m.pattern.value == m.ip_range.cidr and m.pattern.role == m.ip_range.role
        assert m.counts_as_use is (m.ip_range.role is not Role.TELEMETRY)
        assert cat.match_ip(ip) is m  # cached


def test_mmdb_cached_by_content(tmp_path: Path) -> None:
    cat = ip_catalog(tmp_path)
    path = cat.ip_database
    assert path is not None and path.parent == tmp_path and path.suffix == ".mmdb"
    stamp = path.stat().st_mtime_ns
    again = ip_catalog(tmp_path)
    assert again.ip_database == path and path.stat().st_mtime_ns == stamp  # reused
    path.write_bytes(b"garbage")  # a corrupt file is rebuilt
    rebuilt = ip_catalog(tmp_path)
    m = rebuilt.match_ip("160.79.104.1")
    assert m is not None and m.service.id == "anthropic-api"
    other = Catalog(
        [svc("x", HostPattern("exact", "x.example"), ranges=NARROW)], ip_cache_dir=tmp_path
    )
    assert other.ip_database is not None and other.ip_database != path


def test_unwritable_cache_dir_still_works(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    cat = ip_catalog(blocker / "sub")
    assert cat.ip_database is None
    m = cat.match_ip("2607:6bc0::5")
    assert m is not None and m.service.id == "anthropic-api"


def test_no_ranges_no_database(tmp_path: Path) -> None:
    cat = Catalog([svc("plain", HostPattern("exact", "p.example"))], ip_cache_dir=tmp_path)
    assert cat.ip_database is None and cat.match_ip("160.79.104.1") is None
    assert not IpIndex([], tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_shipped_anthropic_ranges(tmp_path: Path) -> None:
    sigs = Path(__file__).resolve().parents[3] / "signatures"
    cat = Catalog.load([sigs], cache_dir=tmp_path)
    m = cat.match_ip("160.79.104.10")
    assert m is not None and m.service.vendor == "Anthropic" and m.counts_as_use
    assert cat.match_ip("8.8.8.8") is None


# --- vendor grouping ---------------------------------------------------------------

APEXES = {"google.com": "Google", "stripe.com": "Stripe", "github.com": "GitHub"}
VENDORS = [
    svc("anthropic-api", HostPattern("exact", "api.anthropic.com", Role.API), vendor="Anthropic"),
    svc("claude", HostPattern("suffix", "claude.ai"), vendor="Anthropic"),
    svc("gemini", HostPattern("exact", "gemini.google.com"), vendor="Google"),
    svc(
        "stripe-mcp",
        HostPattern("exact", "mcp.stripe.com"),
        vendor="Stripe",
        category=Category.MCP_SERVER,
    ),
    svc("linear-mcp", HostPattern("exact", "mcp.linear.app"), vendor="Linear",
        category=Category.MCP_SERVER),
    svc("replit", HostPattern("exact", "ai.replit.com"), vendor="Replit"),
    svc("replit-web", HostPattern("exact", "www.replit.com", None, True), vendor="Replit"),
    svc("a", HostPattern("exact", "a.both.example"), vendor="A"),
    svc("b", HostPattern("exact", "b.both.example"), vendor="B"),
    svc("uk", HostPattern("exact", "api.vendor.co.uk"), vendor="UK"),
]
VCAT = Catalog(VENDORS, shared_apexes=APEXES)


@pytest.mark.parametrize(
    ("host", "vendor", "domain"),
    [
        ("new-thing.anthropic.com", "Anthropic", "anthropic.com"),
        ("anthropic.com", "Anthropic", "anthropic.com"),
        ("WWW.Anthropic.com.", "Anthropic", "anthropic.com"),
        ("status.claude.ai", None, None),  # known name (suffix claude.ai)
        ("api.anthropic.com", None, None),  # known name: use match()
        ("anything.google.com", None, None),  # shared apex
        ("google.com", None, None),
        ("x.stripe.com", None, None),  # shared apex, and MCP-only
        ("x.linear.app", None, None),  # only an MCP server there
        ("x.replit.com", None, None),  # a shared pattern under the domain
        ("x.both.example", None, None),  # two vendors claim it
        ("x.vendor.co.uk", "UK", "vendor.co.uk"),
        ("co.uk", None, None),
        ("notanthropic.com", None, None),
        ("anthropic.com.evil.net", None, None),
        ("", None, None),
    ],
)
def test_match_vendor_domain(host: str, vendor: str | None, domain: str | None) -> None:
    got = VCAT.match_vendor_domain(host)
    assert (got.vendor if got else None, got.domain if got else None) == (vendor, domain)
    if got is not None:
        assert {s.vendor for s in got.services} == {vendor}


def test_vendor_domains_map() -> None:
    raw = compute_vendor_domains(VENDORS, APEXES)
    assert raw == {
        "anthropic.com": ("Anthropic", ("anthropic-api",)),
        "claude.ai": ("Anthropic", ("claude",)),
        "vendor.co.uk": ("UK", ("uk",)),
    }


def test_shipped_catalog_vendor_grouping(tmp_path: Path) -> None:
    sigs = Path(__file__).resolve().parents[3] / "signatures"
    cat = Catalog.load([sigs], cache_dir=tmp_path)
    hit = cat.match_vendor_domain("brand-new.openai.com")
    assert hit is not None and hit.vendor == "OpenAI"
    for host in (
        "anything.google.com",
        "x.googleapis.com",
        "foo.microsoft.com",
        "foo.azure.com",
        "x.amazonaws.com",
        "gist.github.com",
        "x.githubusercontent.com",
        "x.notion.so",
        "x.atlassian.net",
    ):
        assert cat.match_vendor_domain(host) is None, host


@pytest.mark.parametrize(
    ("path", "prefix", "expected"),
    [
        ("/mcp", "/mcp", True),
        ("/mcp/x", "/mcp", True),
        ("/mcpx", "/mcp", False),
        ("/mcp", "/mcp/", False),
        ("/mcp/", "/mcp/", True),
        ("/mcp/x", "/mcp/", True),
        ("/", "/", True),
        ("/anything", "/", True),
        ("", "/", False),
    ],
)
def test_path_has_prefix(path: str, prefix: str, expected: bool) -> None:
    assert path_has_prefix(path, prefix) is expected
    assert HostPattern("exact", "h.example", paths=(prefix,)).matches_path(path) is expected
