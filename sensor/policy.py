"""Usage policy: which AI services are sanctioned, for whom, and how bad the rest is.

Read from the ``[policy]`` table of the sensor config (see docs/policy.md).
Severity ladder for a detected use:

- sanctioned (globally, or by an exception covering the client) -> ``info``
- unsanctioned -> ``medium``
- unsanctioned and (high-risk category or service ``risk: high``) -> ``high``
- evidence from DNS only (no connection seen) lowers the result one step,
  never below ``info``: a lookup can come from a link preview or a prefetch.

Exceptions are resolved per client address and cached, because a capture has
few clients and many flows.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sensor.catalog.schema import ID_RE, Category
from sensor.errors import InputError

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

LADDER = ("info", "low", "medium", "high")
UNKNOWN_SERVICE = "unknown"

# Consumer chat apps are where staff paste confidential text with no enterprise
# contract; agents and MCP servers act on company data with the user's
# credentials. API, code, media and infrastructure categories stay medium.
DEFAULT_HIGH_RISK_CATEGORIES: frozenset[str] = frozenset(
    {Category.CHAT_ASSISTANT.value, Category.AI_AGENT.value, Category.MCP_SERVER.value}
)
# RFC 1918, loopback, link-local, IPv6 ULA/loopback/link-local.
DEFAULT_INTERNAL_NETWORKS: tuple[str, ...] = (
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "fc00::/7",
    "::1/128",
    "fe80::/10",
)

_POLICY_KEYS = frozenset(
    {
        "sanctioned_services",
        "sanctioned_categories",
        "internal_networks",
        "high_risk_categories",
        "exceptions",
    }
)
_EXCEPTION_KEYS = frozenset({"name", "networks", "sanctioned_services", "sanctioned_categories"})
_CATEGORIES = frozenset(c.value for c in Category)
_CACHE_MAX = 65536


@dataclass(frozen=True, slots=True)
class Decision:
    sanctioned: bool
    severity: str  # info | low | medium | high
    reason: str = ""  # one line for findings and `explain`-style output


@dataclass(frozen=True, slots=True)
class PolicyException:
    """Extra sanctioned services/categories for clients in ``networks``."""

    networks: tuple[IPNetwork, ...]
    sanctioned_services: frozenset[str] = frozenset()
    sanctioned_categories: frozenset[str] = frozenset()
    name: str = ""

    def covers(self, addr: IPAddress) -> bool:
        return any(addr.version == n.version and addr in n for n in self.networks)


@dataclass(frozen=True, slots=True)
class _Grant:
    services: frozenset[str]
    categories: frozenset[str]
    via: str  # names of the exceptions that apply, for Decision.reason


@dataclass(slots=True)
class Policy:
    sanctioned_services: frozenset[str] = frozenset()
    sanctioned_categories: frozenset[str] = frozenset()
    internal_networks: tuple[IPNetwork, ...] = field(
        default_factory=lambda: tuple(ipaddress.ip_network(n) for n in DEFAULT_INTERNAL_NETWORKS)
    )
    high_risk_categories: frozenset[str] = DEFAULT_HIGH_RISK_CATEGORIES
    exceptions: tuple[PolicyException, ...] = ()
    _grants: dict[str, _Grant] = field(default_factory=dict, repr=False, compare=False)
    _internal: dict[str, bool] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_toml(cls, table: Mapping[str, Any]) -> Policy:
        """Build from the ``[policy]`` table; InputError (one line) on a bad value."""
        if not isinstance(table, Mapping):
            raise InputError("[policy] must be a table")
        _no_unknown(table, _POLICY_KEYS, "[policy]")
        nets = table.get("internal_networks")
        exceptions = table.get("exceptions", [])
        if not isinstance(exceptions, list):
            raise InputError("[policy] exceptions must be an array of [[policy.exceptions]] tables")
        return cls(
            sanctioned_services=_ids(table, "sanctioned_services", "[policy]"),
            sanctioned_categories=_categories(table, "sanctioned_categories", "[policy]"),
            internal_networks=(
                _networks(nets, "[policy] internal_networks")
                if nets is not None
                else cls().internal_networks
            ),
            high_risk_categories=(
                _categories(table, "high_risk_categories", "[policy]")
                if "high_risk_categories" in table
                else DEFAULT_HIGH_RISK_CATEGORIES
            ),
            exceptions=tuple(_exception(e, i) for i, e in enumerate(exceptions, 1)),
        )

    def unknown_services(self, known_ids: Iterable[str]) -> list[str]:
        """Sanctioned ids (global and in exceptions) that the catalog does not have."""
        known = set(known_ids)
        named = set(self.sanctioned_services)
        for exc in self.exceptions:
            named |= exc.sanctioned_services
        return sorted(named - known)

    def is_internal(self, ip: str) -> bool:
        """True for an address inside ``internal_networks`` (False if not an address)."""
        hit = self._internal.get(ip)
        if hit is None:
            addr = _addr(ip)
            hit = addr is not None and any(
                addr.version == n.version and addr in n for n in self.internal_networks
            )
            if len(self._internal) >= _CACHE_MAX:
                self._internal.clear()
            self._internal[ip] = hit
        return hit

    def _grant(self, client_ip: str) -> _Grant:
        grant = self._grants.get(client_ip)
        if grant is not None:
            return grant
        services, categories, names = self.sanctioned_services, self.sanctioned_categories, []
        addr = _addr(client_ip) if self.exceptions else None
        if addr is not None:
            for idx, exc in enumerate(self.exceptions, 1):
                if exc.covers(addr):
                    services = services | exc.sanctioned_services
                    categories = categories | exc.sanctioned_categories
                    names.append(exc.name or f"#{idx}")
        grant = _Grant(services, categories, ", ".join(names))
        if len(self._grants) >= _CACHE_MAX:
            self._grants.clear()  # bounded; clients come straight back
        self._grants[client_ip] = grant
        return grant

    def decide(
        self, client_ip: str, service_id: str, category: str, risk: str | None, dns_only: bool
    ) -> Decision:
        grant = self._grant(client_ip)
        if service_id != UNKNOWN_SERVICE and service_id in grant.services:
            via = "" if service_id in self.sanctioned_services else f" (exception {grant.via})"
            return Decision(True, "info", f"sanctioned service{via}")
        if category in grant.categories:
            via = "" if category in self.sanctioned_categories else f" (exception {grant.via})"
            return Decision(True, "info", f"sanctioned category {category}{via}")
        if category in self.high_risk_categories:
            level, why = 3, f"unsanctioned, high-risk category {category}"
        elif risk == "high":
            level, why = 3, "unsanctioned, high-risk service"
        else:
            level, why = 2, "unsanctioned"
        if dns_only:
            level, why = level - 1, why + ", DNS evidence only"
        return Decision(False, LADDER[level], why)


def _addr(ip: str) -> IPAddress | None:
    try:
        addr = ipaddress.ip_address(ip.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def _no_unknown(table: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise InputError(
            f"{where}: unknown key '{unknown[0]}' (allowed: {', '.join(sorted(allowed))})"
        )


def _strings(table: Mapping[str, Any], key: str, where: str) -> list[str]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InputError(f"{where} {key} must be an array of strings")
    return list(value)


def _ids(table: Mapping[str, Any], key: str, where: str) -> frozenset[str]:
    values = _strings(table, key, where)
    for v in values:
        if not ID_RE.fullmatch(v):
            raise InputError(f"{where} {key}: '{v}' is not a catalog service id")
    return frozenset(values)


def _categories(table: Mapping[str, Any], key: str, where: str) -> frozenset[str]:
    values = _strings(table, key, where)
    for v in values:
        if v not in _CATEGORIES:
            raise InputError(
                f"{where} {key}: unknown category '{v}' (one of: {', '.join(sorted(_CATEGORIES))})"
            )
    return frozenset(values)


def _networks(value: Any, where: str) -> tuple[IPNetwork, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InputError(f"{where} must be an array of CIDR strings")
    out: list[IPNetwork] = []
    for v in value:
        try:
            out.append(ipaddress.ip_network(v.strip(), strict=True))
        except ValueError as exc:
            raise InputError(f"{where}: '{v}' is not a network: {exc}") from None
    return tuple(out)


def _exception(raw: Any, idx: int) -> PolicyException:
    where = f"[[policy.exceptions]] #{idx}"
    if not isinstance(raw, Mapping):
        raise InputError(f"{where} must be a table")
    _no_unknown(raw, _EXCEPTION_KEYS, where)
    name = raw.get("name", "")
    if not isinstance(name, str):
        raise InputError(f"{where} name must be a string")
    if name:
        where = f"[[policy.exceptions]] '{name}'"
    if "networks" not in raw:
        raise InputError(f"{where} needs networks = [CIDRs]")
    networks = _networks(raw["networks"], f"{where} networks")
    if not networks:
        raise InputError(f"{where} networks must not be empty")
    services = _ids(raw, "sanctioned_services", where)
    categories = _categories(raw, "sanctioned_categories", where)
    if not services and not categories:
        raise InputError(f"{where} sanctions nothing: set sanctioned_services or _categories")
    return PolicyException(networks, services, categories, name)
