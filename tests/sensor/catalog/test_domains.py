"""Registered domains from the bundled PSL snapshot, and the shared-apex list."""

from __future__ import annotations

from pathlib import Path

import pytest

from sensor.catalog.domains import (
    load_shared_apexes,
    public_suffix,
    registered_domain,
    shared_apexes_path,
)

SIGS = Path(__file__).resolve().parents[3] / "signatures"


@pytest.mark.parametrize(
    ("host", "domain"),
    [
        ("api.anthropic.com", "anthropic.com"),
        ("anthropic.com", "anthropic.com"),
        ("a.b.example.co.uk", "example.co.uk"),
        ("bedrock-runtime.us-east-1.amazonaws.com", "amazonaws.com"),  # ICANN section only
        ("x.s3.amazonaws.com", "amazonaws.com"),
        ("myres.openai.azure.com", "azure.com"),
        ("foo.vercel.app", "vercel.app"),
        ("co.uk", ""),
        ("com", ""),
        ("x.corp.internal", "corp.internal"),  # unknown TLD: last two labels
        ("localhost", ""),
    ],
)
def test_registered_domain(host: str, domain: str) -> None:
    assert registered_domain(host) == domain


def test_public_suffix() -> None:
    assert public_suffix("a.example.co.uk") == "co.uk"
    assert public_suffix("co.uk") == "co.uk"


def test_shipped_list_is_clean_and_covers_the_big_platforms() -> None:
    path = shared_apexes_path([SIGS])
    assert path == SIGS / "shared-apexes.yaml"
    assert shared_apexes_path([SIGS / "services"]) == path
    apexes, problems = load_shared_apexes(path)
    assert problems == []
    for dom in (
        "google.com", "microsoft.com", "github.com", "notion.so", "zoom.us", "canva.com",
        "grammarly.com", "atlassian.net", "adobe.com", "salesforce.com", "amazonaws.com",
        "azure.com", "googleapis.com",
    ):
        assert dom in apexes, dom


def test_fixture_dir_falls_back_to_shipped_list(tmp_path: Path) -> None:
    assert shared_apexes_path([tmp_path]) == SIGS / "shared-apexes.yaml"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("apexes: [google.com]\n", "expected 'apexes:' mapping"),
        ("other: 1\n", "expected 'apexes:' mapping"),
        ("apexes:\n  G: google.com\n", "'G': expected a list of domains"),
        ("apexes:\n  G: [Google.com]\n", "'G': bad domain 'Google.com'"),
        ("apexes:\n  G: [mail.google.com]\n", "is not a registered domain (that is 'google.com')"),
        ("apexes: [\n", "cannot read shared apexes"),
    ],
)
def test_bad_shared_apex_files(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "shared-apexes.yaml"
    path.write_text(text)
    _, problems = load_shared_apexes(path)
    assert len(problems) == 1 and message in problems[0].message
