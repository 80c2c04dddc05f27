"""The pipeline, in one place:

    sources -> classify (numpy) -> flow table (vector aggregation)
                                 -> dissect: selected packets -> decoders -> observations
    observations + exported flows -> enrich (catalog, DNS correlation) -> detect -> findings

``Pipeline.feed`` takes one batch; ``Pipeline.finish`` flushes the flow table
and returns the findings. Inputs and outputs (files, sinks) are the caller's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sensor.catalog.index import Catalog, Match
from sensor.config import Settings
from sensor.decoders.link import classify
from sensor.detect.base import FlowDetector, ObservationDetector
from sensor.detect.usage import UsageDetector
from sensor.dissect import Dissector
from sensor.enrich.dns_correlation import DnsCorrelator
from sensor.findings import ServiceRef
from sensor.flows import Expired, FlowRecord, FlowTable, flow_keys
from sensor.records import DnsMessage, HttpRequest, Observation, TlsClientHello
from sensor.sources.batch import PacketBatch

_ADDRESS_TYPES = (1, 28)  # A, AAAA
_CNAME = 5


@dataclass(slots=True)
class FlowApp:
    """What decoders learned about one flow."""

    sni: str | None = None
    sni_kind: str = "tls.sni"  # or "quic.sni"
    http_host: str | None = None
    client: tuple[str, int] | None = None  # who sent the ClientHello / request


@dataclass(slots=True)
class PipelineStats:
    batches: int = 0
    packets: int = 0
    packets_not_ip: int = 0
    bytes_captured: int = 0
    flows_attributed: int = 0
    dns_lookups_ai: int = 0
    by_evidence: dict[str, int] = field(default_factory=dict)


def service_ref(m: Match) -> ServiceRef:
    s = m.service
    return ServiceRef(id=s.id, name=s.name, vendor=s.vendor, category=str(s.category))


class Pipeline:
    def __init__(self, settings: Settings, catalog: Catalog,
                 on_observation: Callable[[Observation], None] | None = None,
                 detectors: Sequence[object] = ()) -> None:
        self.settings = settings
        self.catalog = catalog
        self.stats = PipelineStats()
        self.flows = FlowTable(settings.max_flows, settings.timeouts)
        self.dissector = Dissector(settings, self._observe)
        self.dns = DnsCorrelator(settings.dns_max_age_s, settings.max_dns_bindings)
        self.usage = UsageDetector(settings.max_evidence_values)
        self._on_observation = on_observation
        self.detectors = list(detectors)
        self._obs_detectors = [d for d in self.detectors if isinstance(d, ObservationDetector)]
        self._flow_detectors = [d for d in self.detectors if isinstance(d, FlowDetector)]
        self._apps: dict[int, FlowApp] = {}
        self._watermark_ns = 0  # latest capture time seen: drives the timeouts

    # -- stages --------------------------------------------------------------

    def feed(self, batch: PacketBatch) -> None:
        n = len(batch)
        if n == 0:
            return
        self.stats.batches += 1
        self.stats.packets += n
        self.stats.bytes_captured += int(batch.caplens.sum())
        cols = classify(batch.buf, batch.offsets, batch.caplens, batch.linktypes)
        self.stats.packets_not_ip += int(n - np.count_nonzero(cols.ok))
        keys, low_src = flow_keys(cols)
        self.flows.update(cols, batch.ts_ns, keys, low_src)
        self.dissector.process(batch.buf, cols, batch.ts_ns, keys, low_src)
        self._watermark_ns = max(self._watermark_ns, int(batch.ts_ns.max()))
        for exp in self.flows.expire(self._watermark_ns):
            self._enrich(exp)

    def feed_observation(self, o: Observation) -> None:
        """An observation from a log source (Zeek, EVE) instead of packets."""
        self._watermark_ns = max(self._watermark_ns, o.ts_ns)
        self._observe(o)

    def feed_flow(self, rec: FlowRecord) -> None:
        """A finished flow from a log source; joined to earlier observations by ``key``."""
        self._watermark_ns = max(self._watermark_ns, rec.last_ns)
        self._enrich_record(rec, final=True)

    def finish(self) -> list[Any]:
        for exp in self.flows.flush():
            self._enrich(exp)
        out: list[Any] = list(self.usage.findings())
        for d in self.detectors:
            out.extend(d.findings())  # type: ignore[attr-defined]
        return out

    # -- observations --------------------------------------------------------

    def _observe(self, o: Observation) -> None:
        if self._on_observation is not None:
            self._on_observation(o)
        for d in self._obs_detectors:
            d.on_observation(o)
        p = o.payload
        if isinstance(p, TlsClientHello):
            app = self._apps.setdefault(o.flow_id, FlowApp())
            if p.sni:
                app.sni = p.sni
                app.sni_kind = "quic.sni" if o.kind == "quic.client_hello" else "tls.sni"
            app.client = (o.src_ip, o.src_port)
        elif isinstance(p, HttpRequest):
            app = self._apps.setdefault(o.flow_id, FlowApp())
            if p.host:
                app.http_host = p.host
            app.client = (o.src_ip, o.src_port)
        elif isinstance(p, DnsMessage):
            self._dns(o, p)

    def _match(self, name: str) -> Match | None:
        m = self.catalog.match(name)
        if m is None or not m.counts_as_use:  # vendor telemetry/CDN: not use
            return None
        return m

    def _dns(self, o: Observation, m: DnsMessage) -> None:
        if not m.questions:
            return
        qname = m.questions[0].name
        hit = self._match(qname)
        if hit is None and m.is_response:
            # a CNAME target can be the known name (vendor domains behind a customer alias)
            for a in m.answers:
                if a.rtype == _CNAME:
                    hit = self._match(a.value)
                    if hit is not None:
                        break
        if hit is None:
            return
        client = o.dst_ip if m.is_response else o.src_ip
        self.stats.dns_lookups_ai += 1
        self.usage.add_dns(client, service_ref(hit), qname, o.ts_ns, m.is_response)
        if m.is_response:
            for a in m.answers:
                if a.rtype in _ADDRESS_TYPES:
                    self.dns.add(client, a.value, qname, o.ts_ns, a.ttl_s)
                for ip in a.hint_ips:
                    self.dns.add(client, ip, qname, o.ts_ns, a.ttl_s)

    # -- enrichment of exported flows ---------------------------------------

    def _enrich(self, exp: Expired) -> None:
        named: set[int] = set()
        if self._apps:
            app_keys = np.fromiter(self._apps.keys(), dtype=np.uint64, count=len(self._apps))
            rows = np.flatnonzero(np.isin(exp.key, app_keys))
            for i in rows.tolist():
                key = int(exp.key[i])
                app = self._apps.get(key) if exp.reason == "active" else self._apps.pop(key, None)
                if app is None:
                    continue
                name, kind = (app.sni, app.sni_kind) if app.sni else (app.http_host, "http.host")
                if name is None:
                    continue  # no name on the wire: try DNS correlation below
                named.add(i)
                hit = self._match(name)
                if hit is None:
                    continue
                rec = exp.record(i)
                if app.client is not None and app.client != (rec.client_ip, rec.client_port):
                    rec = _reversed(rec)
                self._attribute(rec, hit, name, kind, name)
        for i in self.dns.candidates(exp).tolist():
            if i in named:
                continue
            rec = exp.record(i)
            res = self.dns.lookup(rec.client_ip, rec.server_ip, rec.first_ns)
            if res is None:
                continue
            hit = self._match(res.name)
            if hit is not None:
                self._attribute(rec, hit, res.name, "dns.answer", f"{res.name} {rec.server_ip}")

    def _enrich_record(self, rec: FlowRecord, final: bool) -> None:
        """One flow at a time (log sources): the same decisions as ``_enrich``."""
        app = self._apps.pop(rec.key, None) if final else self._apps.get(rec.key)
        if app is not None:
            name, kind = (app.sni, app.sni_kind) if app.sni else (app.http_host, "http.host")
            if name is not None:
                hit = self._match(name)
                if hit is not None:
                    if app.client is not None and app.client != (rec.client_ip, rec.client_port):
                        rec = _reversed(rec)
                    self._attribute(rec, hit, name, kind, name)
                return
        res = self.dns.lookup(rec.client_ip, rec.server_ip, rec.first_ns)
        if res is not None:
            hit = self._match(res.name)
            if hit is not None:
                self._attribute(rec, hit, res.name, "dns.answer", f"{res.name} {rec.server_ip}")

    def _attribute(self, rec: FlowRecord, hit: Match, name: str, kind: str, value: str) -> None:
        self.stats.flows_attributed += 1
        self.stats.by_evidence[kind] = self.stats.by_evidence.get(kind, 0) + 1
        ref = service_ref(hit)
        self.usage.add_flow(rec, ref, name, kind, value)
        for d in self._flow_detectors:
            d.on_flow(rec, ref, False)


def _reversed(r: FlowRecord) -> FlowRecord:
    return FlowRecord(
        key=r.key, proto=r.proto, client_ip=r.server_ip, client_port=r.server_port,
        server_ip=r.client_ip, server_port=r.client_port, vlan=r.vlan, client_mac=None,
        first_ns=r.first_ns, last_ns=r.last_ns,
        packets_client_to_server=r.packets_server_to_client,
        packets_server_to_client=r.packets_client_to_server,
        bytes_client_to_server=r.bytes_server_to_client,
        bytes_server_to_client=r.bytes_client_to_server,
        end_reason=r.end_reason,
    )
