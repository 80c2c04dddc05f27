"""Catalog lint: schema errors plus checks that need the compiled matcher.

Each entry carries its own examples (``match``/``nomatch``), in the spirit of
pySigma's tests-next-to-rules: lint runs them through the real index, so a new
pattern that steals another service's names fails here rather than in the field.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from sensor.catalog.domains import (
    load_shared_apexes,
    public_suffix,
    registered_domain,
    shared_apexes_path,
)
from sensor.catalog.index import Catalog, normalise_hostname, request_path
from sensor.catalog.loader import LoadResult, load_paths
from sensor.catalog.schema import HostPattern, Location, Problem, Service


@dataclass(frozen=True, slots=True)
class LintReport:
    result: LoadResult
    problems: tuple[Problem, ...]

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]


def lint_paths(paths: Sequence[Path]) -> LintReport:
    result = load_paths(paths)
    problems = list(result.problems)
    apexes, apex_problems = load_shared_apexes(shared_apexes_path(tuple(paths)))
    problems.extend(apex_problems)
    problems.extend(check_services(result.services))
    problems.extend(check_shared_apexes(result.services, apexes))
    problems.sort(key=lambda p: (p.location.file, p.location.line, p.message))
    return LintReport(result, tuple(problems))


def check_services(services: Sequence[Service]) -> list[Problem]:
    """Example and style checks over (already schema-valid) services."""
    catalog = Catalog.from_services(services)
    problems: list[Problem] = []
    for svc in services:
        loc = svc.location or Location("?", 0)
        ctx = f"service '{svc.id}': "
        for host in svc.examples_match:
            got = catalog.match_example(host)
            if got is None:
                problems.append(Problem(loc, f"{ctx}example '{host}' matches nothing"))
            elif got.service.id != svc.id:
                problems.append(
                    Problem(
                        loc,
                        f"{ctx}example '{host}' matches service '{got.service.id}' "
                        f"({got.pattern.kind} '{got.pattern.value}')",
                    )
                )
        for host in svc.examples_nomatch:
            got = catalog.match_example(host)
            if got is not None and got.service.id == svc.id:
                problems.append(
                    Problem(
                        loc,
                        f"{ctx}nomatch example '{host}' matches "
                        f"({got.pattern.kind} '{got.pattern.value}')",
                    )
                )
        for pat in svc.hosts:
            ploc = pat.location or loc
            if pat.shared and pat.kind == "suffix" and pat.role is None:
                problems.append(
                    Problem(
                        ploc,
                        f"{ctx}shared suffix '{pat.value}' has no role",
                        "warning",
                    )
                )
            if not any(_example_hits(pat, h) for h in svc.examples_match):
                problems.append(
                    Problem(
                        ploc,
                        f"{ctx}{pat.kind} '{pat.value}' has no match example",
                        "warning",
                    )
                )
    return problems


def check_shared_apexes(services: Sequence[Service], apexes: Mapping[str, str]) -> list[Problem]:
    """Refuse patterns that would claim a whole shared platform for one AI service.

    A bare registered domain is too broad when it belongs to a non-AI platform
    (``google.com``, ``github.com``: listed in ``shared-apexes.yaml``) or when the
    entry itself says the name is shared: the AI traffic must then be named by
    a more specific host or restricted with ``paths``. A pattern that is itself
    a public suffix (``co.uk``) is always refused.
    """
    problems: list[Problem] = []
    for svc in services:
        ctx = f"service '{svc.id}': "
        for pat in svc.hosts:
            if pat.paths:
                continue
            loc = pat.location or svc.location or Location("?", 0)
            apex = registered_domain(pat.value)
            if not apex:
                if public_suffix(pat.value) == pat.value:
                    problems.append(
                        Problem(loc, f"{ctx}{pat.kind} '{pat.value}' is a public suffix")
                    )
            elif apex != pat.value:
                continue
            elif apex in apexes:
                problems.append(
                    Problem(
                        loc,
                        f"{ctx}{pat.kind} '{pat.value}' is the bare domain of a shared "
                        f"platform ({apexes[apex]}); name the AI hosts or add 'paths'",
                    )
                )
            elif pat.shared:
                problems.append(
                    Problem(
                        loc,
                        f"{ctx}{pat.kind} '{pat.value}' is a bare registered domain marked "
                        "shared: name the AI hosts or add 'paths'",
                    )
                )
    return problems


def _example_hits(pat: HostPattern, example: str) -> bool:
    host, slash, path = example.partition("/")
    if pat.paths and not (slash and pat.matches_path(request_path("/" + path))):
        return False
    return pat.matches(normalise_hostname(host))
