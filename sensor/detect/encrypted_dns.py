"""Encrypted DNS: clients whose lookups the sensor cannot see (DoH, DoT, DoQ).

One finding per client: using a public encrypted resolver blinds DNS-based
discovery of AI services for that client, which an analyst needs to know
when reading the rest of the findings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sensor.findings import (
    add_flow_totals,
    count_bounded,
    envelope,
    evidence_list,
    finding_id,
    flow_counts,
    server_object,
)
from sensor.flows import FlowRecord

TYPE = "encrypted_dns"


@dataclass(slots=True)
class EncryptedDnsFinding:
    client_ip: str
    first_ns: int
    last_ns: int
    client_mac: str | None = None
    server_ip: str | None = None
    server_port: int | None = None
    server_name: str | None = None
    protocols: set[str] = field(default_factory=set)  # doh, dot, doq
    resolvers: set[str] = field(default_factory=set)
    evidence: dict[tuple[str, str], int] = field(default_factory=dict)
    flows: int = 0
    packets: int = 0
    bytes_client_to_server: int = 0
    bytes_server_to_client: int = 0
    type: str = TYPE
    severity: str = "low"

    @property
    def id(self) -> str:
        return finding_id(self.type, self.client_ip)

    def to_dict(self) -> dict[str, Any]:
        return {
            **envelope(
                self,
                client={"ip": self.client_ip, "mac": self.client_mac},
                server=server_object(self.server_ip, self.server_port, self.server_name),
                service=None,
                evidence=evidence_list(self.evidence),
                counts=flow_counts(self),
            ),
            "encrypted_dns": {
                "protocols": sorted(self.protocols),
                "resolvers": sorted(self.resolvers),
            },
        }


class EncryptedDnsDetector:
    def __init__(self, max_evidence: int = 20) -> None:
        self.max_evidence = max_evidence
        self._by_client: dict[str, EncryptedDnsFinding] = {}

    def add(self, rec: FlowRecord, protocol: str, resolver: str | None,
            evidence_kind: str, evidence_value: str) -> None:
        f = self._by_client.get(rec.client_ip)
        if f is None:
            f = self._by_client[rec.client_ip] = EncryptedDnsFinding(
                rec.client_ip, rec.first_ns, rec.last_ns, rec.client_mac,
                rec.server_ip, rec.server_port)
        f.first_ns = min(f.first_ns, rec.first_ns)
        f.last_ns = max(f.last_ns, rec.last_ns)
        if f.client_mac is None:
            f.client_mac = rec.client_mac
        if evidence_kind in ("tls.sni", "quic.sni", "http.host") and f.server_name is None:
            f.server_name = evidence_value
        f.protocols.add(protocol)
        if resolver:
            f.resolvers.add(resolver)
        count_bounded(f.evidence, (evidence_kind, evidence_value), self.max_evidence)
        add_flow_totals(f, rec)

    def findings(self) -> list[EncryptedDnsFinding]:
        return sorted(self._by_client.values(), key=lambda f: (f.first_ns, f.client_ip))
