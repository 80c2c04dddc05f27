"""Schema validation: every problem reported, each with file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from sensor.catalog.loader import load_paths, parse_text
from sensor.catalog.schema import Category, HostPattern, Location, Problem, Role, is_hostname

GOOD = """\
vendor: Acme
services:
  - id: acme-chat
    name: Acme Chat
    category: chat-assistant
    hosts:
      - suffix: acme-ai.example
        role: web
      - exact: api.acme.example
        role: api
        shared: false
    references: [https://docs.acme.example/api]
    risk: medium
    notes: test entry
    examples:
      match: [acme-ai.example]
      nomatch: [acme.example]
"""


def parse(text: str) -> tuple[list[object], list[str]]:
    services, problems = parse_text(text, "f.yaml")
    return list(services), [str(p) for p in problems]


def test_good_entry_builds_typed_service() -> None:
    services, problems = parse_text(GOOD, "f.yaml")
    assert problems == []
    (svc,) = services
    assert svc.id == "acme-chat" and svc.vendor == "Acme"
    assert svc.category is Category.CHAT_ASSISTANT
    assert svc.risk is not None and svc.risk.value == "medium"
    assert svc.hosts[0] == HostPattern(
        "suffix", "acme-ai.example", Role.WEB, False, Location("f.yaml", 7)
    )
    assert svc.hosts[1].kind == "exact" and svc.hosts[1].role is Role.API
    assert svc.location == Location("f.yaml", 3)
    assert svc.examples_match == ("acme-ai.example",)


def test_unknown_category_names_file_line_and_service() -> None:
    _, problems = parse(GOOD.replace("category: chat-assistant", "category: chat"))
    assert len(problems) == 1
    assert problems[0].startswith("f.yaml:5: service 'acme-chat': unknown category 'chat'")


def test_two_bad_entries_give_two_errors() -> None:
    second = GOOD.split("services:\n", 1)[1].replace("acme-chat", "acme-two")
    text = GOOD.replace("role: web", "role: webby") + second.replace("risk: medium", "risk: huge")
    _, problems = parse(text)
    assert len(problems) == 2, problems
    assert "f.yaml:8: service 'acme-chat': unknown role 'webby'" in problems[0]
    assert "service 'acme-two': unknown risk 'huge'" in problems[1]


def test_unknown_keys_are_errors_at_their_line() -> None:
    text = GOOD.replace("    notes: test entry\n", "    notes: test entry\n    colour: blue\n")
    text = text.replace("        role: api\n", "        role: api\n        port: 443\n")
    _, problems = parse(text)
    assert problems == [
        "f.yaml:11: service 'acme-chat': unknown key 'port' in host pattern",
        "f.yaml:16: service 'acme-chat': unknown key 'colour' in service",
    ]


def test_top_level_unknown_key_and_missing_services() -> None:
    _, problems = parse("vendor: Acme\nservice: []\n")
    assert problems == [
        "f.yaml:1: missing 'services:' list",
        "f.yaml:2: unknown key 'service' in file",
    ]


def test_missing_fields_each_reported() -> None:
    _, problems = parse("vendor: A\nservices:\n  - id: x\n    name: X\n")
    assert problems == [
        "f.yaml:3: service 'x': missing 'category'",
        "f.yaml:3: service 'x': missing 'hosts'",
        "f.yaml:3: service 'x': missing 'references'",
        "f.yaml:3: service 'x': missing 'examples'",
    ]


def test_vendor_required_somewhere() -> None:
    text = GOOD.replace("vendor: Acme\n", "")
    _, problems = parse(text)
    assert problems == [
        "f.yaml:2: service 'acme-chat': missing 'vendor' "
        "(set it per entry or at the top of the file)"
    ]
    per_entry = text.replace("    name: Acme Chat\n", "    name: Acme Chat\n    vendor: Acme Inc\n")
    services, found = parse_text(per_entry, "f.yaml")
    assert found == [] and services[0].vendor == "Acme Inc"


@pytest.mark.parametrize(
    ("host_line", "message"),
    [
        ("- suffix: Acme-AI.example", "host 'Acme-AI.example' must be lower-case"),
        ("- suffix: acme-ai.example.", "must be lower-case without a trailing dot"),
        ("- suffix: example", "suffix 'example' would match a whole TLD"),
        ("- exact: bad_name.example", "host 'bad_name.example' is not a valid DNS name"),
        ("- exact: -bad.example", "is not a valid DNS name"),
        ("- {exact: a.example, suffix: b.example}", "exactly one of 'exact' or 'suffix'"),
        ("- role: web", "exactly one of 'exact' or 'suffix'"),
        ("- {suffix: acme-ai.example, shared: maybe}", "'shared' must be true or false"),
        ("- acme-ai.example", "host pattern must be a mapping"),
    ],
)
def test_bad_host_patterns(host_line: str, message: str) -> None:
    text = GOOD.replace("- suffix: acme-ai.example\n        role: web", host_line)
    _, problems = parse(text)
    assert len(problems) >= 1
    assert problems[0].startswith("f.yaml:7: service 'acme-chat': ")
    assert message in problems[0]


def test_bad_id_reference_and_empty_examples() -> None:
    text = GOOD.replace("id: acme-chat", "id: Acme_Chat")
    text = text.replace("[https://docs.acme.example/api]", "[docs.acme.example]")
    text = text.replace("nomatch: [acme.example]", "nomatch: []")
    _, problems = parse(text)
    assert problems == [
        "f.yaml:3: service 'Acme_Chat': id 'Acme_Chat' is not kebab-case",
        "f.yaml:12: service 'Acme_Chat': reference 'docs.acme.example' is not an http(s) URL",
        "f.yaml:17: service 'Acme_Chat': 'examples.nomatch' must have at least one item",
    ]


def test_non_string_scalars_rejected() -> None:
    _, problems = parse(GOOD.replace("name: Acme Chat", "name: 42"))
    assert problems == ["f.yaml:4: service 'acme-chat': 'name' must be a string"]


def test_duplicate_key_in_mapping() -> None:
    _, problems = parse(GOOD.replace("    notes: test entry\n", "    notes: a\n    notes: b\n"))
    assert problems == ["f.yaml:15: service 'acme-chat': duplicate key 'notes' in service"]


def test_malformed_yaml_is_one_error_with_line() -> None:
    _, problems = parse("vendor: A\nservices:\n  - id: [unclosed\n    name: x\n")
    assert len(problems) == 1
    assert problems[0].startswith("f.yaml:4: invalid YAML:") or problems[0].startswith(
        "f.yaml:3: invalid YAML:"
    )
    assert "\n" not in problems[0]


def test_tab_indentation_is_malformed_yaml() -> None:
    _, problems = parse("vendor: A\nservices:\n\t- id: x\n")
    assert len(problems) == 1 and problems[0].startswith("f.yaml:3: invalid YAML:")


def test_empty_file() -> None:
    _, problems = parse("# only a comment\n")
    assert problems == ["f.yaml:1: empty file: expected 'services:'"]


def test_file_errors_carry_the_file_name(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("category: chat-assistant", "category: nope"))
    result = load_paths([bad])
    assert [p.location.line for p in result.problems] == [5]
    assert result.problems[0].location.file.endswith("bad.yaml")
    assert result.services == []


def test_problem_format() -> None:
    assert str(Problem(Location("a.yaml", 3), "boom")) == "a.yaml:3: boom"
    assert str(Problem(Location("a.yaml", 3), "hm", "warning")) == "a.yaml:3: warning: hm"
    assert str(Problem(Location("dir", 0), "no *.yaml files")) == "dir: no *.yaml files"


def test_host_pattern_reference_semantics() -> None:
    suffix = HostPattern("suffix", "openai.com")
    assert suffix.matches("openai.com") and suffix.matches("x.api.openai.com")
    assert not suffix.matches("notopenai.com") and not suffix.matches("openai.com.evil.net")
    exact = HostPattern("exact", "api.openai.com")
    assert exact.matches("api.openai.com") and not exact.matches("x.api.openai.com")
    assert HostPattern("exact", "a.b", Role.CDN).counts_as_use is False
    assert HostPattern("exact", "a.b", Role.TELEMETRY).counts_as_use is False
    assert HostPattern("exact", "a.b", Role.API).counts_as_use is True
    assert HostPattern("exact", "a.b").counts_as_use is True


def test_is_hostname() -> None:
    assert is_hostname("api.openai.com") and is_hostname("us-central1-aiplatform.googleapis.com")
    assert not is_hostname("a..b") and not is_hostname("-a.b") and not is_hostname("a-.b")
    assert not is_hostname("a" * 64 + ".com") and not is_hostname("")
