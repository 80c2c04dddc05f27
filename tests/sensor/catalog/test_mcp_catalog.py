"""The shipped MCP catalog (signatures/services/mcp*.yaml): remote MCP servers, registries."""

from __future__ import annotations

from pathlib import Path

import pytest

from sensor.catalog.index import Catalog
from sensor.catalog.schema import URL_RE, Category, Role, Service

SIGNATURES = Path(__file__).resolve().parents[3] / "signatures"
CATALOG = Catalog.load([SIGNATURES])
MCP_CATEGORIES = {Category.MCP_SERVER, Category.MCP_REGISTRY}
AWESOME_LIST = "https://github.com/jaw9c/awesome-remote-mcp-servers"


def _from_mcp_files(svc: Service) -> bool:
    return svc.location is not None and Path(svc.location.file).name.startswith("mcp")


MCP_SERVICES = [s for s in CATALOG.services if s.category in MCP_CATEGORIES]
MCP_FILE_SERVICES = [s for s in CATALOG.services if _from_mcp_files(s)]


def test_counts() -> None:
    servers = [s for s in MCP_SERVICES if s.category is Category.MCP_SERVER]
    registries = [s for s in MCP_SERVICES if s.category is Category.MCP_REGISTRY]
    assert len(servers) >= 60
    assert len(registries) >= 3
    # the mcp*.yaml files hold only MCP entries, and every one of them is loaded
    assert len(MCP_FILE_SERVICES) >= 63
    assert all(s.category in MCP_CATEGORIES for s in MCP_FILE_SERVICES)


@pytest.mark.parametrize("svc", MCP_SERVICES, ids=lambda s: s.id)
def test_every_mcp_entry_has_a_reference_url(svc: Service) -> None:
    assert svc.references
    for ref in svc.references:
        assert ref.startswith("https://") and URL_RE.fullmatch(ref), ref


@pytest.mark.parametrize("svc", MCP_FILE_SERVICES, ids=lambda s: s.id)
def test_mcp_entry_shape_and_examples(svc: Service) -> None:
    for pat in svc.hosts:
        if svc.category is Category.MCP_SERVER:
            assert pat.role is Role.API, pat.value
        # a host shared with the vendor's site/API is only MCP under its path prefix
        if pat.paths:
            assert pat.shared and pat.kind == "exact", pat.value
            assert all(p.startswith("/") for p in pat.paths)
    # examples may be "host" (name-only) or "host/path" (HTTP request)
    for example in svc.examples_match:
        m = CATALOG.match_example(example)
        assert m is not None and m.service.id == svc.id, example
    for example in svc.examples_nomatch:
        m = CATALOG.match_example(example)
        assert m is None or m.service.id != svc.id, example


def test_list_entries_cite_the_list() -> None:
    cited = [s for s in MCP_FILE_SERVICES if AWESOME_LIST in s.references]
    assert len(cited) >= 60


@pytest.mark.parametrize(
    ("host", "service_id"),
    [
        ("mcp.notion.com", "notion-mcp"),
        ("MCP.Linear.app.", "linear-mcp"),
        ("mcp.atlassian.com:443", "atlassian-mcp"),
        ("mcp.stripe.com", "stripe-mcp"),
        ("mcp.figma.com", "figma-mcp"),
        ("mcp.zapier.com", "zapier-mcp"),
        ("mcp.paypal.com", "paypal-mcp"),
        ("mcp.deepwiki.com", "deepwiki-mcp"),
        ("knowledge-mcp.global.api.aws", "aws-knowledge-mcp"),
        ("search-mcp.parallel.ai", "parallel-mcp"),
        ("task-mcp.parallel.ai", "parallel-mcp"),
        ("mcp.cloudflare.com", "cloudflare-mcp"),
        ("bindings.mcp.cloudflare.com", "cloudflare-mcp"),
        ("registry.modelcontextprotocol.io", "mcp-registry"),
        ("smithery.ai", "smithery"),
        ("api.pulsemcp.com", "pulsemcp"),
        ("mcp.remote-mcp.com", "remote-mcp-directory"),
    ],
)
def test_well_known_names(host: str, service_id: str) -> None:
    m = CATALOG.match(host)
    assert m is not None and m.service.id == service_id
    assert m.counts_as_use


@pytest.mark.parametrize(
    "host",
    [
        "mcp.notion.com.evil.net",
        "xmcp.notion.com",
        "notmcp.cloudflare.com",
        "mcp.cloudflare.com.evil.net",
        "evilmcp.stripe.com",
    ],
)
def test_label_boundaries(host: str) -> None:
    m = CATALOG.match(host)
    assert m is None or m.service.category not in MCP_CATEGORIES


@pytest.mark.parametrize(
    ("host", "target", "service_id"),
    [
        ("api.githubcopilot.com", "/mcp/", "github-mcp"),
        ("api.githubcopilot.com", "https://api.githubcopilot.com/mcp?x=1", "github-mcp"),
        ("hf.co", "/mcp", "huggingface-mcp"),
        ("learn.microsoft.com", "/api/mcp", "microsoft-learn-mcp"),
        ("api.fireflies.ai", "/mcp", "fireflies-mcp"),
        ("bigquery.googleapis.com", "/mcp", "google-bigquery-mcp"),
        ("api.telnyx.com", "/v2/mcp", "telnyx-mcp"),
        ("getdialer.app", "/sse", "dialer-mcp"),
    ],
)
def test_shared_hosts_match_only_under_their_path(host: str, target: str, service_id: str) -> None:
    m = CATALOG.match_http(host, target)
    assert m is not None and m.service.id == service_id
    # name-only evidence (SNI, DNS) for the same host never claims the MCP server
    bare = CATALOG.match(host)
    assert bare is None or bare.service.category is not Category.MCP_SERVER
    other = CATALOG.match_http(host, "/v1/other")
    assert other is None or other.service.id != service_id


def test_shared_host_keeps_the_vendor_entry() -> None:
    # the MCP path entries sit beside, not instead of, the vendor's own names
    for host in ("api.githubcopilot.com", "hf.co", "api.fireflies.ai"):
        m = CATALOG.match(host)
        assert m is not None and m.service.category not in MCP_CATEGORIES, host
