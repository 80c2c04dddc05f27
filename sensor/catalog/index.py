"""The compiled catalog: hostname -> service in a few dict look-ups.

Patterns compile into two dicts keyed by name. A look-up checks the full name
in the exact dict, then walks label boundaries from the longest suffix to the
shortest in the suffix dict, so the most specific pattern wins and an exact
pattern beats a suffix pattern written for the same name. Results are cached
per raw hostname because traffic repeats the same few names.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sensor.catalog.loader import LoadResult, load_paths
from sensor.catalog.schema import HostPattern, Problem, Service
from sensor.errors import InputError

SIGNATURES_ENV = "SHADOWAI_SIGNATURES"
DEFAULT_CACHE_SIZE = 65536


@dataclass(frozen=True, slots=True)
class Match:
    service: Service
    pattern: HostPattern

    @property
    def counts_as_use(self) -> bool:
        """False for telemetry/CDN hosts: pages load them without anyone using the AI."""
        return self.pattern.counts_as_use


class CatalogError(InputError):
    """The catalog cannot be loaded; ``problems`` lists every error with file:line."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        lines = "\n".join(str(p) for p in self.problems)
        super().__init__(f"{len(self.problems)} error(s) in the AI service catalog:\n{lines}")


def default_signature_dir() -> Path:
    """``$SHADOWAI_SIGNATURES`` if set, else the checkout's ``<repo>/signatures``.

    The repo path is found relative to the ``sensor`` package, which works for
    a source checkout and an editable install; a wheel install must set the
    environment variable (the YAML is not shipped as package data yet).
    """
    env = os.environ.get(SIGNATURES_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "signatures"


def normalise_hostname(hostname: str) -> str:
    """Lower-case, strip a port and a trailing dot (``API.OpenAI.com.:443``)."""
    host = hostname.strip().lower()
    if host.startswith("["):  # [v6]:port: an address, never in the catalog
        end = host.find("]")
        host = host[1:end] if end > 0 else host[1:]
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    return host.rstrip(".")


_MISS = object()


class Catalog:
    """Compiled, immutable catalog. Build with :meth:`load` or :meth:`from_services`."""

    def __init__(
        self,
        services: Sequence[Service],
        *,
        version: str = "",
        files: Sequence[Path] = (),
        warnings: Sequence[Problem] = (),
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> None:
        self.services: list[Service] = list(services)
        self.version = version
        self.files: list[Path] = list(files)
        self.warnings: list[Problem] = list(warnings)
        self._by_id = {s.id: s for s in self.services}
        self._exact: dict[str, Match] = {}
        self._suffix: dict[str, Match] = {}
        for svc in self.services:
            for pat in svc.hosts:
                table = self._exact if pat.kind == "exact" else self._suffix
                # first wins; duplicates are load errors, this only guards from_services
                table.setdefault(pat.value, Match(svc, pat))
        self._cache: dict[str, Match | None] = {}
        self._cache_size = max(1, cache_size)

    @classmethod
    def load(cls, paths: Sequence[Path], *, cache_size: int = DEFAULT_CACHE_SIZE) -> Catalog:
        """Load YAML files/directories; raises :class:`CatalogError` listing every error."""
        result = load_paths(paths)
        return cls.from_result(result, cache_size=cache_size)

    @classmethod
    def from_result(cls, result: LoadResult, *, cache_size: int = DEFAULT_CACHE_SIZE) -> Catalog:
        if result.errors:
            raise CatalogError(result.errors)
        return cls(
            result.services,
            version=result.digest,
            files=result.files,
            warnings=[p for p in result.problems if p.severity == "warning"],
            cache_size=cache_size,
        )

    @classmethod
    def from_services(cls, services: Sequence[Service]) -> Catalog:
        return cls(services)

    def __len__(self) -> int:
        return len(self.services)

    def service(self, service_id: str) -> Service | None:
        return self._by_id.get(service_id)

    def match(self, hostname: str) -> Match | None:
        """The most specific entry for a hostname (SNI, Host, DNS name), or None."""
        hit = self._cache.get(hostname, _MISS)
        if hit is not _MISS:
            return hit  # type: ignore[return-value]
        result = self.match_uncached(hostname)
        if len(self._cache) >= self._cache_size:
            self._cache.clear()  # cheap and bounded; the hot names come straight back
        self._cache[hostname] = result
        return result

    def match_uncached(self, hostname: str) -> Match | None:
        host = normalise_hostname(hostname)
        if not host:
            return None
        hit = self._exact.get(host)
        if hit is not None:
            return hit
        suffix = self._suffix
        name = host
        while True:
            hit = suffix.get(name)
            if hit is not None:
                return hit
            dot = name.find(".")
            if dot < 0:
                return None
            name = name[dot + 1 :]

    def clear_cache(self) -> None:
        self._cache.clear()
