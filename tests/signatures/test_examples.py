"""Every entry's own examples, run against the shipped signatures/ directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from sensor.catalog.index import Catalog
from sensor.catalog.lint import lint_paths
from sensor.catalog.schema import Category, Service

SIGNATURES = Path(__file__).resolve().parents[2] / "signatures"
CATALOG = Catalog.load([SIGNATURES])


def test_catalog_lints_clean_without_warnings() -> None:
    report = lint_paths([SIGNATURES])
    assert [str(p) for p in report.problems] == []


def test_catalog_size_and_coverage() -> None:
    assert len(CATALOG.services) >= 60
    present = {s.category for s in CATALOG.services}
    # every category but the catch-all has at least one entry
    assert set(Category) - {Category.OTHER_AI} <= present
    assert len(CATALOG.files) == len(list((SIGNATURES / "services").glob("*.yaml")))


@pytest.mark.parametrize("service", CATALOG.services, ids=lambda s: s.id)
def test_service_examples(service: Service) -> None:
    for host in service.examples_match:
        m = CATALOG.match_example(host)
        assert m is not None and m.service.id == service.id, host
    for host in service.examples_nomatch:
        m = CATALOG.match_example(host)
        assert m is None or m.service.id != service.id, host
    assert service.references and all(r.startswith("https://") for r in service.references)


@pytest.mark.parametrize(
    ("host", "service_id", "counts"),
    [
        ("api.openai.com", "openai-api", True),
        ("chatgpt.com", "chatgpt", True),
        ("cdn.oaistatic.com", "chatgpt", False),
        ("sora.chatgpt.com", "sora", True),
        ("api.anthropic.com", "anthropic-api", True),
        ("claude.ai", "claude", True),
        ("generativelanguage.googleapis.com", "gemini-api", True),
        ("myres.openai.azure.com", "azure-openai", True),
        ("api.githubcopilot.com", "github-copilot", True),
        ("copilot-telemetry.githubusercontent.com", "github-copilot", False),
        ("bedrock-runtime.us-east-1.amazonaws.com", "aws-bedrock", True),
        ("registry.ollama.ai", "ollama", True),
    ],
)
def test_well_known_names(host: str, service_id: str, counts: bool) -> None:
    m = CATALOG.match(host)
    assert m is not None and m.service.id == service_id and m.counts_as_use is counts


@pytest.mark.parametrize(
    "host",
    [
        "google.com",
        "www.google.com",
        "microsoft.com",
        "github.com",
        "amazonaws.com",
        "s3.amazonaws.com",
        "googleapis.com",
        "azure.com",
        "example.com",
        "x.com",
    ],
)
def test_shared_platform_names_do_not_match(host: str) -> None:
    assert CATALOG.match(host) is None
