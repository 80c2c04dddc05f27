"""The compiled catalog: hostname -> service in a few dict look-ups.

Patterns compile into two dicts keyed by name. A look-up checks the full name
in the exact dict, then walks label boundaries from the longest suffix to the
shortest in the suffix dict, so the most specific pattern wins and an exact
pattern beats a suffix pattern written for the same name. Results are cached
per raw hostname because traffic repeats the same few names.

Patterns restricted to HTTP ``paths`` live in separate tables that only
:meth:`Catalog.match_http` consults (the path is invisible in SNI and DNS).
:meth:`Catalog.match_ip` looks addresses up in the providers' published ranges
(``ipindex``); :meth:`Catalog.match_vendor_domain` maps an unknown name under
an AI vendor's registered domain to that vendor.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from sensor.catalog.cache import Cached, cache_key
from sensor.catalog.cache import enabled as cache_enabled
from sensor.catalog.cache import read as read_cache
from sensor.catalog.cache import write as write_cache
from sensor.catalog.domains import load_shared_apexes, registered_domain, shared_apexes_path
from sensor.catalog.ipindex import IpIndex, user_cache_dir
from sensor.catalog.loader import load_paths
from sensor.catalog.schema import (
    Category,
    HostPattern,
    IpRange,
    Problem,
    Service,
    path_has_prefix,
)
from sensor.errors import InputError

SIGNATURES_ENV = "SHADOWAI_SIGNATURES"
DEFAULT_CACHE_SIZE = 65536


@dataclass(frozen=True, slots=True)
class Match:
    service: Service
    # for an IP match: a synthetic kind="cidr" pattern (value = the CIDR, role
    # and location of the range), so callers read role/counts_as_use uniformly
    pattern: HostPattern
    ip_range: IpRange | None = None

    @property
    def counts_as_use(self) -> bool:
        """False for telemetry/CDN hosts: pages load them without anyone using the AI."""
        return self.pattern.counts_as_use


@dataclass(frozen=True, slots=True)
class VendorMatch:
    """An unknown name under a known AI vendor's registered domain."""

    vendor: str
    domain: str  # the registered domain, e.g. "anthropic.com"
    services: tuple[Service, ...]  # catalog services with names under that domain


def compute_vendor_domains(
    services: Sequence[Service], shared_apexes: Mapping[str, str]
) -> dict[str, tuple[str, tuple[str, ...]]]:
    """``{registered domain: (vendor, service ids)}`` for vendor grouping.

    A domain qualifies when every pattern under it is non-shared and not
    path-restricted, a single vendor owns it, it is not a shared-platform apex,
    and at least one pattern under it belongs to a service that is not an MCP
    server (``mcp.stripe.com`` does not make stripe.com an AI vendor's domain).
    """
    excluded = set(shared_apexes)
    vendors: dict[str, set[str]] = {}
    ids: dict[str, list[str]] = {}
    ai_owned: set[str] = set()
    for svc in services:
        for pat in svc.hosts:
            dom = registered_domain(pat.value)
            if not dom:
                continue
            if pat.shared or pat.paths:
                excluded.add(dom)
                continue
            vendors.setdefault(dom, set()).add(svc.vendor)
            lst = ids.setdefault(dom, [])
            if svc.id not in lst:
                lst.append(svc.id)
            if svc.category != Category.MCP_SERVER:
                ai_owned.add(dom)
    return {
        dom: (next(iter(vs)), tuple(ids[dom]))
        for dom, vs in sorted(vendors.items())
        if dom not in excluded and dom in ai_owned and len(vs) == 1
    }


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


def request_path(target: str) -> str:
    """The path of an HTTP request target (origin or absolute form), without query.

    ``/mcp/x?y`` -> ``/mcp/x``; ``https://h/mcp/`` -> ``/mcp/``; ``*`` or an
    authority-form target (CONNECT) -> ``""``, which matches no path prefix.
    """
    if not target.startswith("/"):
        scheme, sep, rest = target.partition("://")
        if not sep or not scheme.isalpha():
            return ""
        slash = rest.find("/")
        target = rest[slash:] if slash >= 0 else "/"
    end = len(target)
    for ch in "?#":
        i = target.find(ch)
        if 0 <= i < end:
            end = i
    return target[:end]


_MISS = object()
_V = TypeVar("_V")


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
        shared_apexes: Mapping[str, str] | None = None,
        vendor_domains: Mapping[str, tuple[str, tuple[str, ...]]] | None = None,
        ip_cache_dir: Path | None = None,
    ) -> None:
        self.services: list[Service] = list(services)
        self.version = version
        self.files: list[Path] = list(files)
        self.warnings: list[Problem] = list(warnings)
        self._by_id = {s.id: s for s in self.services}
        self._exact: dict[str, Match] = {}
        self._suffix: dict[str, Match] = {}
        # path-restricted patterns: name -> [(prefix, match)], longest prefix first;
        # kept apart so name-only matching can never return them
        self._exact_paths: dict[str, list[tuple[str, Match]]] = {}
        self._suffix_paths: dict[str, list[tuple[str, Match]]] = {}
        for svc in self.services:
            for pat in svc.hosts:
                m = Match(svc, pat)
                if pat.paths:
                    ptable = self._exact_paths if pat.kind == "exact" else self._suffix_paths
                    plist = ptable.setdefault(pat.value, [])
                    plist.extend((prefix, m) for prefix in pat.paths)
                    plist.sort(key=lambda t: -len(t[0]))
                    continue
                table = self._exact if pat.kind == "exact" else self._suffix
                # first wins; duplicates are load errors, this only guards from_services
                table.setdefault(pat.value, m)
        self._cache: dict[str, Match | None] = {}
        self._cache_size = max(1, cache_size)
        self._shared_apexes = shared_apexes
        self._vendor_domains: dict[str, VendorMatch] | None = None
        if vendor_domains is not None:
            self._vendor_domains = self._vendor_matches(vendor_domains)
        self._ip = IpIndex(self.services, ip_cache_dir)
        self._ip_cache: dict[str, Match | None] = {}
        self._path_cache: dict[str, tuple[tuple[str, Match], ...]] = {}
        self._vendor_cache: dict[str, VendorMatch | None] = {}

    @classmethod
    def load(
        cls,
        paths: Sequence[Path],
        *,
        cache_size: int = DEFAULT_CACHE_SIZE,
        cache_dir: Path | None = None,
        use_cache: bool = True,
    ) -> Catalog:
        """Load YAML files/directories; raises :class:`CatalogError` listing every error.

        A validated catalog is cached (msgpack, keyed by the files' content) in
        ``cache_dir`` (default: the user cache dir, see ``ipindex.user_cache_dir``);
        ``use_cache=False`` or ``$SHADOWAI_NO_CATALOG_CACHE=1`` always parses.
        """
        cdir = cache_dir or user_cache_dir()
        apex_file = shared_apexes_path(tuple(paths))
        keyed = cache_key(paths, apex_file) if use_cache and cache_enabled() else None
        if keyed is not None:
            hit = read_cache(cdir, keyed[0])
            if hit is not None:
                return cls(
                    hit.services,
                    version=hit.digest,
                    files=hit.files,
                    warnings=hit.warnings,
                    cache_size=cache_size,
                    vendor_domains=hit.vendor_domains,
                    ip_cache_dir=cdir,
                )
        result = load_paths(paths)
        if result.errors:
            raise CatalogError(result.errors)
        apexes, _ = load_shared_apexes(apex_file)
        vendor_domains = compute_vendor_domains(result.services, apexes) if keyed else None
        catalog = cls(
            result.services,
            version=result.digest,
            files=result.files,
            warnings=[p for p in result.problems if p.severity == "warning"],
            cache_size=cache_size,
            shared_apexes=apexes,
            vendor_domains=vendor_domains,
            ip_cache_dir=cdir,
        )
        if keyed is not None and vendor_domains is not None:
            entry = Cached(
                catalog.services, catalog.files, catalog.version, catalog.warnings, vendor_domains
            )
            write_cache(cdir, keyed[0], entry)
        return catalog

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
        self._remember(self._cache, hostname, result)
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

    def match_http(self, host: str, target: str) -> Match | None:
        """Match an HTTP request: Host header (or authority) plus request target.

        A pattern with ``paths`` wins when the target's path starts with one of
        its prefixes (most specific name first, then longest prefix); otherwise
        this is :meth:`match` on the host.
        """
        if self._exact_paths or self._suffix_paths:
            cands = self._path_cache.get(host)
            if cands is None:
                cands = self._path_candidates(normalise_hostname(host))
                self._remember(self._path_cache, host, cands)
            if cands:
                path = request_path(target)
                for prefix, m in cands:
                    if path_has_prefix(path, prefix):
                        return m
        return self.match(host)

    def _path_candidates(self, host: str) -> tuple[tuple[str, Match], ...]:
        """Path-restricted patterns covering ``host``: exact first, then longer suffixes."""
        if not host:
            return ()
        out: list[tuple[str, Match]] = list(self._exact_paths.get(host, ()))
        name = host
        while name:
            out.extend(self._suffix_paths.get(name, ()))
            dot = name.find(".")
            name = name[dot + 1 :] if dot >= 0 else ""
        return tuple(out)

    def path_patterns(self, hostname: str) -> list[str]:
        """``service-id prefix`` for every path-restricted pattern covering the name."""
        host = normalise_hostname(hostname)
        return [f"{m.service.id} {p}" for p, m in self._path_candidates(host)]

    def match_example(self, example: str) -> Match | None:
        """Run a catalog example: ``host`` (name-only) or ``host/path`` (HTTP)."""
        host, slash, path = example.partition("/")
        if slash:
            return self.match_http(host, "/" + path)
        return self.match_uncached(host)

    def match_ip(self, ip: str) -> Match | None:
        """The service whose provider-published serving range holds ``ip``, or None."""
        if not self._ip:
            return None
        hit = self._ip_cache.get(ip, _MISS)
        if hit is not _MISS:
            return hit  # type: ignore[return-value]
        found = self._ip.lookup(ip)
        result: Match | None = None
        if found is not None:
            svc, rng = found
            pat = HostPattern("cidr", rng.cidr, rng.role, False, rng.location)
            result = Match(svc, pat, rng)
        self._remember(self._ip_cache, ip, result)
        return result

    @property
    def ip_database(self) -> Path | None:
        """The compiled MMDB file (None without ranges or when built in memory)."""
        return self._ip.path

    def _vendor_matches(
        self, raw: Mapping[str, tuple[str, tuple[str, ...]]]
    ) -> dict[str, VendorMatch]:
        out: dict[str, VendorMatch] = {}
        for dom, (vendor, sids) in raw.items():
            svcs = tuple(s for sid in sids if (s := self._by_id.get(sid)) is not None)
            out[dom] = VendorMatch(vendor, dom, svcs)
        return out

    @property
    def vendor_domains(self) -> dict[str, VendorMatch]:
        """Registered domain -> vendor, built on first use (needs the PSL snapshot)."""
        if self._vendor_domains is None:
            apexes = self._shared_apexes
            if apexes is None:
                apexes, _ = load_shared_apexes(shared_apexes_path())
                self._shared_apexes = apexes
            self._vendor_domains = self._vendor_matches(
                compute_vendor_domains(self.services, apexes)
            )
        return self._vendor_domains

    def match_vendor_domain(self, hostname: str) -> VendorMatch | None:
        """For a name the catalog does not know: the AI vendor owning its registered domain.

        ``new-thing.anthropic.com`` -> Anthropic; a known name, a shared-platform
        apex (``anything.google.com``) or an unrelated domain -> None. Vendor
        domains are registered domains, so walking the name's label suffixes
        finds the same answer as computing its registered domain, without the
        PSL look-up on the hot path.
        """
        hit = self._vendor_cache.get(hostname, _MISS)
        if hit is not _MISS:
            return hit  # type: ignore[return-value]
        result: VendorMatch | None = None
        if self.match(hostname) is None:
            domains = self.vendor_domains
            name = normalise_hostname(hostname)
            while name:
                result = domains.get(name)
                if result is not None:
                    break
                dot = name.find(".")
                name = name[dot + 1 :] if dot >= 0 else ""
        self._remember(self._vendor_cache, hostname, result)
        return result

    def _remember(self, cache: dict[str, _V], key: str, value: _V) -> None:
        if len(cache) >= self._cache_size:
            cache.clear()  # cheap and bounded; the hot names come straight back
        cache[key] = value

    def clear_cache(self) -> None:
        self._cache.clear()
        self._ip_cache.clear()
        self._path_cache.clear()
        self._vendor_cache.clear()
