"""Finding records and their native JSON form (schema in sensor/schemas/)."""

from __future__ import annotations

import hashlib
from collections.abc import Hashable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from sensor.flows import FlowRecord

SCHEMA = "shadowai.finding/v1"
SEVERITIES = ("info", "low", "medium", "high", "critical")


K = TypeVar("K", bound=Hashable)

_ts_cache: dict[int, str] = {}


def rfc3339(ts_ns: int) -> str:
    """RFC 3339 UTC with microseconds, e.g. 2026-11-26T20:35:00.123456Z."""
    sec = ts_ns // 1_000_000_000
    head = _ts_cache.get(sec)
    if head is None:  # traffic repeats the same seconds: format each second once
        if len(_ts_cache) > 4096:
            _ts_cache.clear()
        head = _ts_cache[sec] = datetime.fromtimestamp(sec, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{head}.{(ts_ns // 1000) % 1_000_000:06d}Z"


def finding_id(*parts: str) -> str:
    """Stable id: a hash of what the finding is about, never of time."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def envelope(f: Any, *, client: dict[str, Any] | None, server: dict[str, Any],
             service: dict[str, Any] | None, evidence: list[dict[str, Any]],
             counts: dict[str, Any]) -> dict[str, Any]:
    """The keys every finding type shares, in their documented order (``f`` has ``id``,
    ``type``, ``severity``, ``first_ns`` and ``last_ns``); the type adds its own object."""
    return {"schema": SCHEMA, "id": f.id, "type": f.type, "severity": f.severity,
            "first_seen": rfc3339(f.first_ns), "last_seen": rfc3339(f.last_ns),
            "client": client, "server": server, "service": service,
            "evidence": evidence, "counts": counts}


def evidence_list(evidence: dict[tuple[str, str], int]) -> list[dict[str, Any]]:
    return [{"kind": k, "value": v, "count": n} for (k, v), n in evidence.items()]


def server_object(ip: str | None, port: int | None, name: str | None) -> dict[str, Any]:
    return {"ip": ip, "port": port, "name": name}


def service_object(s: ServiceRef) -> dict[str, Any]:
    return {"id": s.id, "name": s.name, "vendor": s.vendor, "category": s.category}


class FlowTotals(Protocol):
    """A finding that adds up the flows it is about."""

    flows: int
    packets: int
    bytes_client_to_server: int
    bytes_server_to_client: int


def add_flow_totals(f: FlowTotals, rec: FlowRecord) -> None:
    f.flows += 1
    f.packets += rec.packets_client_to_server + rec.packets_server_to_client
    f.bytes_client_to_server += rec.bytes_client_to_server
    f.bytes_server_to_client += rec.bytes_server_to_client


def flow_counts(f: FlowTotals) -> dict[str, int]:
    """The ``counts`` keys of a finding about flows."""
    return {"flows": f.flows, "packets": f.packets,
            "bytes_client_to_server": f.bytes_client_to_server,
            "bytes_server_to_client": f.bytes_server_to_client}


def count_bounded(counts: dict[K, int], value: K, limit: int) -> None:
    """Count ``value``; a new value is kept only while fewer than ``limit`` are (bounded memory)."""
    if value in counts:
        counts[value] += 1
    elif len(counts) < limit:
        counts[value] = 1


def identity_key(attr: Any) -> str:
    """What tells two holders of one IP apart: MAC, host name, user."""
    return f"{attr.mac or ''}|{attr.hostname or ''}|{attr.user or ''}"


def client_object(ip: str, attr: Any, mac: str | None) -> dict[str, Any]:
    """The finding's ``client``: {ip, mac, hostname, user, attribution}."""
    if attr is None:
        return {"ip": ip, "mac": mac, "hostname": None, "user": None, "attribution": []}
    d: dict[str, Any] = attr.to_client_dict(ip)
    if d["mac"] is None:
        d["mac"] = mac
    return d


@dataclass(frozen=True, slots=True)
class ServerFinding:
    """What findings about a server seen in clear share (self-hosted model servers, MCP
    servers): one finding per server address, with how its requests were authenticated."""

    type: str
    severity: str
    server_ip: str
    server_port: int
    server_name: str | None
    first_ns: int
    last_ns: int
    exchanges: int
    with_credentials: int
    without_credentials: int

    @property
    def id(self) -> str:
        return finding_id(self.type, self.server_ip, str(self.server_port))

    @property
    def server(self) -> dict[str, Any]:
        return server_object(self.server_ip, self.server_port, self.server_name)


@dataclass(frozen=True, slots=True)
class ServiceRef:
    id: str
    name: str
    vendor: str
    category: str
    risk: str | None = None  # the catalog's risk rating, for policy


@dataclass(slots=True)
class Finding:
    """One finding per (type, client, service), aggregated over flows and lookups."""

    type: str
    client_ip: str
    service: ServiceRef
    first_ns: int
    last_ns: int
    client_mac: str | None = None
    server_ip: str | None = None
    server_port: int | None = None
    server_name: str | None = None
    flows: int = 0
    packets: int = 0
    bytes_client_to_server: int = 0
    bytes_server_to_client: int = 0
    dns_queries: int = 0
    dns_responses: int = 0
    evidence: dict[tuple[str, str], int] = field(default_factory=dict)
    severity: str = "medium"
    attributed_by: set[str] = field(default_factory=set)  # tls.sni, dns.answer, ip.range...
    ja4: dict[str, str | None] = field(default_factory=dict)  # JA4 -> client family
    ja4_raw: dict[str, str] = field(default_factory=dict)  # JA4 -> JA4_r
    non_browser: bool = False  # a known non-browser TLS client was seen
    ech: bool = False  # a ClientHello offered Encrypted Client Hello to an ECH front
    identity: Any = None  # sensor.identity.Attribution valid at the first flow/lookup
    sanctioned: bool | None = None  # None: no policy decided it
    policy_reason: str | None = None

    @property
    def id(self) -> str:
        parts = [self.type, self.client_ip, self.service.id,
                 (self.server_name or "") if self.service.id == "unknown" else ""]
        if self.identity is not None:  # one IP, several devices/users over time
            parts.append(identity_key(self.identity))
        return finding_id(*parts)

    def see(self, ts_ns: int) -> None:
        if ts_ns < self.first_ns:
            self.first_ns = ts_ns
        if ts_ns > self.last_ns:
            self.last_ns = ts_ns

    def add_evidence(self, kind: str, value: str, limit: int) -> None:
        count_bounded(self.evidence, (kind, value), limit)

    def to_dict(self) -> dict[str, Any]:
        return {
            **envelope(
                self,
                client=client_object(self.client_ip, self.identity, self.client_mac),
                server=server_object(self.server_ip, self.server_port, self.server_name),
                service={**service_object(self.service), "sanctioned": self.sanctioned},
                evidence=evidence_list(self.evidence),
                counts={**flow_counts(self), "dns_queries": self.dns_queries,
                        "dns_responses": self.dns_responses},
            ),
            "policy": {"reason": self.policy_reason},
            "attributed_by": sorted(self.attributed_by),
            "tls": {
                "ja4": sorted(self.ja4),
                "ja4_r": [self.ja4_raw[k] for k in sorted(self.ja4_raw)],
                "client_families": sorted({f for f in self.ja4.values() if f}),
                "non_browser_client": self.non_browser,
                "ech": self.ech,
            },
        }
