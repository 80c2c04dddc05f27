"""Catalog lint: schema errors plus checks that need the compiled matcher.

Each entry carries its own examples (``match``/``nomatch``), in the spirit of
pySigma's tests-next-to-rules: lint runs them through the real index, so a new
pattern that steals another service's names fails here rather than in the field.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sensor.catalog.index import Catalog, normalise_hostname
from sensor.catalog.loader import LoadResult, load_paths
from sensor.catalog.schema import Location, Problem, Service


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
    problems.extend(check_services(result.services))
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
            got = catalog.match_uncached(host)
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
            got = catalog.match_uncached(host)
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
            if not any(pat.matches(normalise_hostname(h)) for h in svc.examples_match):
                problems.append(
                    Problem(
                        ploc,
                        f"{ctx}{pat.kind} '{pat.value}' has no match example",
                        "warning",
                    )
                )
    return problems
