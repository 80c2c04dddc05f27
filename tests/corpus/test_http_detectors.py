"""The HTTP detectors on the whole shared corpus: ordinary HTTP is not a model or MCP server.

The corpus holds some 350 ordinary HTTP exchanges (web pages, APIs, proxies,
malware C2, smuggling tests) and no self-hosted model server or MCP server; a
``self_hosted_llm`` or ``mcp_server`` finding there is a false positive.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.corpus.conftest import HuntResult

pytestmark = pytest.mark.corpus


def test_no_model_or_mcp_server_in_ordinary_http(captures: list[str],
                                                 hunt: Callable[[str], HuntResult]) -> None:
    exchanges = requests = 0
    bad: list[str] = []
    for rel in captures:
        r = hunt(rel)
        exchanges += sum(1 for _ in r.of_kind("http.exchange"))
        requests += sum(1 for _ in r.of_kind("http.request"))
        bad += [f"{rel}: {f['type']} {f['server']}" for f in r.findings
                if f["type"] in ("self_hosted_llm", "mcp_server")]
    # measured: 345 exchanges for 351 request heads (the rest: connections cut at the start)
    assert exchanges > 300 and exchanges >= 0.95 * requests, (exchanges, requests)
    assert not bad, "\n".join(bad)


def test_no_cleartext_ai_credential_in_the_corpus(captures: list[str],
                                                  hunt: Callable[[str], HuntResult]) -> None:
    found = [f"{rel}: {f['credential']['provider']} {f['server']}" for rel in captures
             for f in hunt(rel).findings if f["type"] == "cleartext_credential"]
    assert not found, "\n".join(found)
