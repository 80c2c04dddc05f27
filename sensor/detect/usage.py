"""AI service use: one finding per (client, service) with counts and evidence."""

from __future__ import annotations

from sensor.enrich.fingerprints import ClientFamily
from sensor.findings import Finding, ServiceRef, add_flow_totals, identity_key
from sensor.flows import FlowRecord
from sensor.identity.model import Attribution
from sensor.policy import Policy

TYPE = "ai_service_use"
MCP_TYPE = "mcp_server_use"  # a remote MCP server from the catalog (category mcp-server)


class UsageDetector:
    def __init__(self, max_evidence: int = 20) -> None:
        self.max_evidence = max_evidence
        self._findings: dict[tuple[str, str, str], Finding] = {}

    def _get(self, client_ip: str, service: ServiceRef, ts_ns: int,
             ident: Attribution | None = None) -> Finding:
        k = (client_ip, service.id if service.id != "unknown" else f"unknown:{service.vendor}",
             identity_key(ident) if ident is not None else "")
        f = self._findings.get(k)
        if f is None:
            kind = MCP_TYPE if service.category == "mcp-server" else TYPE
            f = self._findings[k] = Finding(kind, client_ip, service, ts_ns, ts_ns,
                                            identity=ident)
        return f

    def add_flow(self, flow: FlowRecord, service: ServiceRef, server_name: str,
                 evidence_kind: str, evidence_value: str, ja4: str | None = None,
                 family: ClientFamily | None = None, ech: bool = False,
                 ja4_raw: str | None = None, ident: Attribution | None = None) -> None:
        f = self._get(flow.client_ip, service, flow.first_ns, ident)
        f.see(flow.first_ns)
        f.see(flow.last_ns)
        if f.flows == 0:
            f.server_ip, f.server_port = flow.server_ip, flow.server_port
            f.server_name = server_name
        if f.client_mac is None:
            f.client_mac = flow.client_mac
        add_flow_totals(f, flow)
        f.add_evidence(evidence_kind, evidence_value, self.max_evidence)
        f.attributed_by.add(evidence_kind)
        if ja4 is not None and (ja4 in f.ja4 or len(f.ja4) < self.max_evidence):
            f.ja4[ja4] = family.family if family is not None else None
            f.add_evidence("tls.ja4", ja4, self.max_evidence)
            if ja4_raw is not None:
                f.ja4_raw.setdefault(ja4, ja4_raw)
            if family is not None and not family.browser:
                f.non_browser = True
        if ech:
            f.ech = True

    def add_dns(self, client_ip: str, service: ServiceRef, qname: str, ts_ns: int,
                is_response: bool, ident: Attribution | None = None) -> None:
        f = self._get(client_ip, service, ts_ns, ident)
        f.see(ts_ns)
        if f.server_name is None:
            f.server_name = qname
        if is_response:
            f.dns_responses += 1
            if f.dns_queries:
                return  # the query itself was already counted as evidence
        else:
            f.dns_queries += 1
        f.add_evidence("dns.query", qname, self.max_evidence)
        f.attributed_by.add("dns.query")

    def findings(self, policy: Policy | None = None) -> list[Finding]:
        out = sorted(self._findings.values(), key=lambda f: (f.first_ns, f.client_ip, f.service.id))
        for f in out:
            if policy is None:
                # a lookup with no connection after it is weaker evidence of use
                f.severity = "medium" if f.flows else "low"
                continue
            s = f.service
            d = policy.decide(f.client_ip, s.id, s.category, s.risk, dns_only=f.flows == 0)
            f.severity, f.sanctioned = d.severity, d.sanctioned
            f.policy_reason = d.reason
        return out
