"""Policy: sanctioned lists, exceptions by client network, severity ladder, config errors."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from sensor.errors import InputError
from sensor.policy import DEFAULT_HIGH_RISK_CATEGORIES, Decision, Policy

DOC = Path(__file__).resolve().parents[2] / "docs" / "policy.md"

POLICY = Policy.from_toml(
    {
        "sanctioned_services": ["github-copilot", "azure-openai"],
        "sanctioned_categories": ["vector-database"],
        "internal_networks": ["10.0.0.0/8", "fd00::/8"],
        "exceptions": [
            {
                "name": "research",
                "networks": ["10.20.0.0/16", "fd00:20::/32"],
                "sanctioned_services": ["anthropic-api"],
                "sanctioned_categories": ["chat-assistant"],
            },
            {"networks": ["10.20.5.0/24"], "sanctioned_services": ["openai-api"]},
        ],
    }
)


@pytest.mark.parametrize(
    ("client", "service", "category", "risk", "dns_only", "expected"),
    [
        # sanctioned globally: info for everyone, DNS-only or not
        ("10.1.1.1", "github-copilot", "code-assistant", None, False, (True, "info")),
        ("10.1.1.1", "github-copilot", "code-assistant", "high", True, (True, "info")),
        ("10.1.1.1", "pinecone", "vector-database", None, False, (True, "info")),
        # unsanctioned: medium; high-risk category or risk high -> high
        ("10.1.1.1", "openai-api", "llm-api", None, False, (False, "medium")),
        ("10.1.1.1", "openai-api", "llm-api", "medium", False, (False, "medium")),
        ("10.1.1.1", "chatgpt", "chat-assistant", None, False, (False, "high")),
        ("10.1.1.1", "deepseek-api", "llm-api", "high", False, (False, "high")),
        # DNS-only lowers one step
        ("10.1.1.1", "chatgpt", "chat-assistant", None, True, (False, "medium")),
        ("10.1.1.1", "openai-api", "llm-api", None, True, (False, "low")),
        # exceptions apply to clients in their networks only
        ("10.20.1.1", "anthropic-api", "llm-api", None, False, (True, "info")),
        ("10.20.1.1", "chatgpt", "chat-assistant", None, False, (True, "info")),
        ("10.21.1.1", "anthropic-api", "llm-api", None, False, (False, "medium")),
        ("fd00:20::9", "anthropic-api", "llm-api", None, False, (True, "info")),
        ("::ffff:10.20.1.1", "anthropic-api", "llm-api", None, False, (True, "info")),
        # overlapping exceptions add up
        ("10.20.5.7", "openai-api", "llm-api", None, False, (True, "info")),
        ("10.20.5.7", "anthropic-api", "llm-api", None, False, (True, "info")),
        ("10.20.6.7", "openai-api", "llm-api", None, False, (False, "medium")),
        # an unknown service is never sanctioned by id, but can be by category
        ("10.1.1.1", "unknown", "llm-api", None, False, (False, "medium")),
        ("10.20.1.1", "unknown", "chat-assistant", None, False, (True, "info")),
        # a client that is not an address gets the global policy
        ("not-an-ip", "anthropic-api", "llm-api", None, False, (False, "medium")),
    ],
)
def test_decisions(
    client: str,
    service: str,
    category: str,
    risk: str | None,
    dns_only: bool,
    expected: tuple[bool, str],
) -> None:
    d = POLICY.decide(client, service, category, risk, dns_only)
    assert isinstance(d, Decision)
    assert (d.sanctioned, d.severity) == expected
    assert d.reason


def test_reason_names_the_exception() -> None:
    assert "research" in POLICY.decide("10.20.1.1", "anthropic-api", "llm-api", None, False).reason
    assert "#2" in POLICY.decide("10.20.5.1", "openai-api", "llm-api", None, False).reason
    global_reason = POLICY.decide("10.20.1.1", "github-copilot", "code-assistant", None, False)
    assert "exception" not in global_reason.reason


def test_cached_decisions_are_stable() -> None:
    first = [POLICY.decide("10.20.1.1", s, "llm-api", None, False) for s in ("anthropic-api", "x")]
    again = [POLICY.decide("10.20.1.1", s, "llm-api", None, False) for s in ("anthropic-api", "x")]
    assert first == again
    assert [d.sanctioned for d in first] == [True, False]


def test_defaults() -> None:
    p = Policy.from_toml({})
    assert p.high_risk_categories == DEFAULT_HIGH_RISK_CATEGORIES
    assert p.decide("10.0.0.1", "chatgpt", "chat-assistant", None, False).severity == "high"
    assert p.decide("10.0.0.1", "claude-code", "ai-agent", None, False).severity == "high"
    assert p.decide("10.0.0.1", "openai-api", "llm-api", None, False).severity == "medium"
    for ip in ("10.1.2.3", "172.16.0.1", "192.168.1.1", "fd12::1", "127.0.0.1", "fe80::1"):
        assert p.is_internal(ip), ip
    for ip in ("8.8.8.8", "172.32.0.1", "2001:db8::1", "garbage", ""):
        assert not p.is_internal(ip), ip


def test_internal_networks_replace_the_default() -> None:
    assert POLICY.is_internal("10.9.9.9") and POLICY.is_internal("fd00::1")
    assert not POLICY.is_internal("192.168.1.1")


def test_high_risk_categories_configurable() -> None:
    p = Policy.from_toml({"high_risk_categories": ["llm-api"]})
    assert p.decide("1.1.1.1", "openai-api", "llm-api", None, False).severity == "high"
    assert p.decide("1.1.1.1", "chatgpt", "chat-assistant", None, False).severity == "medium"
    empty = Policy.from_toml({"high_risk_categories": []})
    assert empty.decide("1.1.1.1", "chatgpt", "chat-assistant", None, False).severity == "medium"


def test_unknown_services() -> None:
    assert POLICY.unknown_services(["github-copilot", "anthropic-api", "openai-api"]) == [
        "azure-openai"
    ]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"sanctioned_service": ["x"]}, "unknown key 'sanctioned_service'"),
        ({"sanctioned_services": "chatgpt"}, "sanctioned_services must be an array of strings"),
        ({"sanctioned_services": ["ChatGPT"]}, "'ChatGPT' is not a catalog service id"),
        ({"sanctioned_categories": ["chat"]}, "unknown category 'chat'"),
        ({"high_risk_categories": [1]}, "high_risk_categories must be an array of strings"),
        ({"internal_networks": ["10.0.0.1/8"]}, "'10.0.0.1/8' is not a network"),
        ({"internal_networks": "10.0.0.0/8"}, "internal_networks must be an array"),
        ({"exceptions": {"networks": []}}, "exceptions must be an array"),
        ({"exceptions": [{"sanctioned_services": ["a"]}]}, "#1 needs networks"),
        ({"exceptions": [{"networks": ["10.0.0.0/8"]}]}, "#1 sanctions nothing"),
        ({"exceptions": [{"networks": [], "sanctioned_services": ["a"]}]}, "must not be empty"),
        (
            {"exceptions": [{"name": "lab", "networks": ["x"], "sanctioned_services": ["a"]}]},
            "'lab' networks: 'x' is not a network",
        ),
        ({"exceptions": [{"networks": ["::/0"], "nets": 1}]}, "#1: unknown key 'nets'"),
    ],
)
def test_bad_values(table: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError) as info:
        Policy.from_toml(table)
    text = str(info.value)
    assert message in text and "\n" not in text


def test_documented_example_parses() -> None:
    blocks = re.findall(r"```toml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert blocks, "docs/policy.md has no toml example"
    config = tomllib.loads(blocks[0])
    policy = Policy.from_toml(config["policy"])
    assert policy.sanctioned_services and policy.exceptions
    d = policy.decide("10.0.0.5", "chatgpt", "chat-assistant", None, False)
    assert (d.sanctioned, d.severity) == (False, "high")
