"""The pipeline, in one place:

    sources -> classify (numpy) -> flow table (vector aggregation)
                                 -> dissect: selected packets -> decoders -> observations
    observations + exported flows -> enrich (catalog, DNS correlation) -> detect -> findings

``Pipeline.feed`` takes one batch; ``Pipeline.finish`` flushes the flow table
and returns the findings. Inputs and outputs (files, sinks) are the caller's.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from sensor.catalog.index import Catalog, Match, VendorMatch
from sensor.config import Settings
from sensor.decoders.dhcp import DhcpMessage, Dhcpv6Message
from sensor.decoders.dns import T_CNAME, address_answers
from sensor.decoders.ja4 import ja4_pair
from sensor.decoders.kerberos import KerberosMessage
from sensor.decoders.link import Columns, classify, ip_halves
from sensor.defrag import Defragmenter
from sensor.detect.base import FlowDetector, ObservationDetector
from sensor.detect.credentials import http_detectors
from sensor.detect.encrypted_dns import EncryptedDnsDetector
from sensor.detect.usage import UsageDetector
from sensor.dissect import Dissector
from sensor.enrich.dns_correlation import DnsCorrelator
from sensor.enrich.fingerprints import ClientFingerprints, EncryptedDns
from sensor.findings import ServiceRef, client_object
from sensor.flows import Expired, FlowRecord, FlowTable, flow_keys
from sensor.identity.pseudonymize import Pseudonymizer
from sensor.identity.store import IdentityStore
from sensor.npsets import member
from sensor.policy import Policy
from sensor.records import DnsMessage, HttpRequest, Observation, TlsClientHello
from sensor.sources.batch import LINKTYPE_RAW, PacketBatch

_U64_MASK = (1 << 64) - 1
_NO_REF = object()
_PROTO = {6: "tcp", 17: "udp"}


@dataclass(slots=True)
class FlowApp:
    """What decoders learned about one flow."""

    sni: str | None = None
    http_host: str | None = None
    http_target: str | None = None
    client: tuple[str, int] | None = None  # who sent the ClientHello / request
    hello: TlsClientHello | None = None  # JA4 is computed only for attributed flows
    quic: bool = False


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
    return ServiceRef(id=s.id, name=s.name, vendor=s.vendor, category=str(s.category),
                      risk=str(s.risk) if s.risk is not None else None)


def vendor_ref(v: VendorMatch) -> ServiceRef:
    """An unknown name under a known AI vendor's registered domain."""
    cats = {str(s.category) for s in v.services}
    return ServiceRef(id="unknown", name=f"{v.vendor} (unknown service)", vendor=v.vendor,
                      category=cats.pop() if len(cats) == 1 else "other-ai")


class Pipeline:
    def __init__(self, settings: Settings, catalog: Catalog,
                 on_observation: Callable[[Observation], None] | None = None,
                 detectors: Sequence[object] = (),
                 fingerprints: ClientFingerprints | None = None,
                 encrypted_dns: EncryptedDns | None = None,
                 policy: Policy | None = None,
                 identity: IdentityStore | None = None,
                 identity_wire: bool = True,
                 pseudonymizer: Pseudonymizer | None = None) -> None:
        self.settings = settings
        self.stats = PipelineStats()
        self.flows = FlowTable(settings.max_flows, settings.timeouts)
        self.defrag = Defragmenter()
        self.dissector = Dissector(settings, self._observe)
        self.dns = DnsCorrelator(settings.dns_max_age_s, settings.max_dns_bindings)
        self.usage = UsageDetector(settings.max_evidence_values)
        self.identity = identity if identity is not None else IdentityStore()
        self.identity_wire = identity_wire
        self.pseudonymizer = pseudonymizer
        self.encrypted_dns = EncryptedDnsDetector(settings.max_evidence_values)
        self.swap_knowledge(catalog, policy or Policy(),
                            fingerprints or ClientFingerprints({}, {}),
                            encrypted_dns or EncryptedDns({}, {}, {}, frozenset()))
        self._on_observation = on_observation
        # HTTP exchange detectors (self-hosted LLMs, MCP, credentials) unless the caller chooses
        self.detectors = list(detectors) if detectors else http_detectors()
        self._obs_detectors: list[ObservationDetector] = []  # every observation
        self._obs_by_kind: dict[str, list[ObservationDetector]] = {}  # only the kinds they want
        for d in self.detectors:
            if isinstance(d, ObservationDetector):
                kinds = getattr(d, "observation_kinds", None)
                if kinds is None:
                    self._obs_detectors.append(d)
                for k in kinds or ():
                    self._obs_by_kind.setdefault(k, []).append(d)
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
        frags = np.flatnonzero(cols.fragment | cols.frag_first)
        done = self._reassemble(batch, cols, frags) if frags.size else []
        if not done:
            self.dissector.process(batch.buf, cols, batch.ts_ns, keys, low_src)
        else:
            # a reassembled datagram is dissected where its last fragment arrived
            start = 0
            for row, ts, whole in done:
                sl = slice(start, row + 1)
                self.dissector.process(batch.buf, _slice_cols(cols, sl), batch.ts_ns[sl],
                                       keys[sl], low_src[sl])
                self._dissect_raw(ts, whole)
                start = row + 1
            sl = slice(start, n)
            self.dissector.process(batch.buf, _slice_cols(cols, sl), batch.ts_ns[sl], keys[sl],
                                   low_src[sl])
        self._watermark_ns = max(self._watermark_ns, int(batch.ts_ns.max()))
        for exp in self.flows.expire(self._watermark_ns):
            self._enrich(exp)

    def _reassemble(self, batch: PacketBatch, cols: Columns,
                    idx: npt.NDArray[np.intp]) -> list[tuple[int, int, bytes]]:
        """Feed the batch's fragments to the defragmenter: (row, ts, datagram) completed."""
        done: list[tuple[int, int, bytes]] = []
        for i in idx.tolist():
            a, b = int(cols.l3_off[i]), int(cols.ip_end[i])
            if a < 0 or b <= a:
                continue
            ts = int(batch.ts_ns[i])
            whole = self.defrag.add(batch.buf[a:b].tobytes(), ts)
            if whole is not None:
                done.append((i, ts, whole))
        self.defrag.expire(int(batch.ts_ns[-1]))
        return done

    def _dissect_raw(self, ts: int, packet: bytes) -> None:
        """Dissect one reassembled IP datagram (flows already counted its fragments)."""
        buf = np.frombuffer(packet + bytes(64), dtype=np.uint8)
        c2 = classify(buf, np.zeros(1, np.int64), np.array([len(packet)], np.int32),
                      np.array([LINKTYPE_RAW], np.int32))
        k2, low2 = flow_keys(c2)
        self.dissector.process(buf, c2, np.array([ts], np.int64), k2, low2)

    def feed_observation(self, o: Observation) -> None:
        """An observation from a log source (Zeek, EVE) instead of packets."""
        self._watermark_ns = max(self._watermark_ns, o.ts_ns)
        self._observe(o)

    def feed_flow(self, rec: FlowRecord) -> None:
        """A finished flow from a log source; joined to earlier observations by ``key``."""
        self._watermark_ns = max(self._watermark_ns, rec.last_ns)
        self._enrich_record(rec, final=True)

    def swap_knowledge(self, catalog: Catalog, policy: Policy, fingerprints: ClientFingerprints,
                       encrypted_dns: EncryptedDns) -> None:
        """Use new signatures, policy and data files (SIGHUP) and what is derived from
        them; flows, DNS bindings and findings so far are kept."""
        self.catalog = catalog
        self.policy = policy
        self.fingerprints = fingerprints
        self.edns = encrypted_dns
        self._refs: dict[str, ServiceRef | None] = {}
        self._ranges = _range_bounds(catalog)
        self._doh_ip_lo = np.array(sorted({ip_halves(ip)[1] for ip in encrypted_dns.ips}),
                                   dtype=np.uint64)
        self._edns_ports = np.array(sorted({p for p, _ in encrypted_dns.ports}), dtype=np.int64)

    def advance(self, now_ns: int) -> None:
        """Move the capture clock (live capture with no packets): idle flows time out."""
        if now_ns > self._watermark_ns:
            self._watermark_ns = now_ns
        for exp in self.flows.expire(self._watermark_ns):
            self._enrich(exp)

    def snapshot(self) -> list[Any]:
        """The findings so far, without flushing the flow table (watch emits these
        periodically; flows still open are counted when they end)."""
        out: list[Any] = list(self.usage.findings(self.policy))
        out.extend(self.encrypted_dns.findings())
        for d in self.detectors:
            out.extend(d.findings())  # type: ignore[attr-defined]
        return out

    def finish(self) -> list[Any]:
        self.dissector.flush()  # HTTP connections still open: their exchanges so far
        for exp in self.flows.flush():
            self._enrich(exp)
        return self.snapshot()

    def finding_dicts(self, findings: Sequence[Any]) -> list[dict[str, Any]]:
        """Findings as output: clients of every type attributed, pseudonymized if asked."""
        out = []
        for f in findings:
            d: dict[str, Any] = f.to_dict()
            c = d.get("client")
            if isinstance(c, dict) and "attribution" not in c and c.get("ip"):
                ident = self.identity.lookup(c["ip"], f.first_ns)
                d["client"] = client_object(c["ip"], ident, c.get("mac"))
            if self.pseudonymizer is not None:
                d = self.pseudonymizer.pseudonymize_finding_dict(d)
            out.append(d)
        return out

    # -- observations --------------------------------------------------------

    def _observe(self, o: Observation) -> None:
        if self._on_observation is not None:
            self._on_observation(o)
        for d in self._obs_detectors:
            d.on_observation(o)
        wanted = self._obs_by_kind.get(o.kind)
        if wanted is not None:
            for d in wanted:
                d.on_observation(o)
        p = o.payload
        if isinstance(p, TlsClientHello):
            app = self._apps.setdefault(o.flow_id, FlowApp())
            app.quic = o.kind == "quic.client_hello"
            if p.sni:
                app.sni = p.sni
            app.client = (o.src_ip, o.src_port)
            app.hello = p
        elif isinstance(p, HttpRequest):
            app = self._apps.setdefault(o.flow_id, FlowApp())
            if p.host:
                app.http_host = p.host
                app.http_target = p.target
            app.client = (o.src_ip, o.src_port)
        elif isinstance(p, DnsMessage):
            self._dns(o, p)
        elif self.identity_wire:
            if isinstance(p, DhcpMessage):
                self.identity.add_from_dhcp(p, o.ts_ns)
            elif isinstance(p, Dhcpv6Message):
                self.identity.add_from_dhcpv6(p, o.ts_ns)
            elif isinstance(p, KerberosMessage):
                client = o.src_ip if o.dst_port == 88 else o.dst_ip
                self.identity.add_from_kerberos(p, client, o.ts_ns)

    def _match(self, name: str) -> ServiceRef | None:
        ref = self._refs.get(name, _NO_REF)
        if ref is not _NO_REF:
            return ref  # type: ignore[return-value]
        m = self.catalog.match(name)
        if m is not None:
            # vendor telemetry/CDN hosts: pages load them without anyone using the AI
            ref = service_ref(m) if m.counts_as_use else None
        else:
            v = self.catalog.match_vendor_domain(name)
            ref = vendor_ref(v) if v is not None else None
        if len(self._refs) > 100_000:
            self._refs.clear()
        self._refs[name] = ref
        return ref

    def _match_http(self, host: str, target: str | None) -> ServiceRef | None:
        if target is not None and self.catalog.path_patterns(host):
            m = self.catalog.match_http(host, target)
            if m is not None:
                return service_ref(m) if m.counts_as_use else None
        return self._match(host)

    def _dns(self, o: Observation, m: DnsMessage) -> None:
        if not m.questions:
            return
        qname = m.questions[0].name
        hit = self._match(qname)
        if hit is None and m.is_response:
            # a CNAME target can be the known name (vendor domains behind a customer alias)
            for a in m.answers:
                if a.rtype == T_CNAME:
                    hit = self._match(a.value)
                    if hit is not None:
                        break
        if hit is None:
            return
        client = o.dst_ip if m.is_response else o.src_ip
        self.stats.dns_lookups_ai += 1
        self.usage.add_dns(client, hit, qname, o.ts_ns, m.is_response,
                           self.identity.lookup(client, o.ts_ns))
        if m.is_response:
            for ip, ttl_s in address_answers(m):
                self.dns.add(client, ip, qname, o.ts_ns, ttl_s)

    # -- enrichment of exported flows ---------------------------------------

    def _enrich(self, exp: Expired) -> None:
        named: set[int] = set()
        row_apps: dict[int, FlowApp] = {}
        if self._apps:
            app_keys = np.fromiter(self._apps.keys(), dtype=np.uint64, count=len(self._apps))
            rows = np.flatnonzero(member(exp.key, app_keys))
            for i in rows.tolist():
                key = int(exp.key[i])
                app = self._apps.get(key) if exp.reason == "active" else self._apps.pop(key, None)
                if app is None:
                    continue
                row_apps[i] = app
                if self._by_name(functools.partial(exp.record, i), app):
                    named.add(i)
        for i in self.dns.candidates(exp).tolist():
            if i not in named and self._by_dns(exp.record(i), row_apps.get(i)):
                named.add(i)
        self._ip_ranges(exp, named, row_apps)
        self._encrypted_dns_by_address(exp, named)

    def _ip_ranges(self, exp: Expired, named: set[int], row_apps: dict[int, FlowApp]) -> None:
        """Flows with no name and no DNS answer: the provider's published serving ranges."""
        if not self._ranges:
            return
        m = np.zeros(len(exp), dtype=bool)
        for hi_lo, hi_hi, lo_lo, lo_hi in self._ranges:
            # (hi, lo) within [(hi_lo, lo_lo), (hi_hi, lo_hi)] as 128-bit numbers
            m |= (((exp.server_hi > hi_lo) | ((exp.server_hi == hi_lo) & (exp.server_lo >= lo_lo)))
                  & ((exp.server_hi < hi_hi) | ((exp.server_hi == hi_hi)
                                                & (exp.server_lo <= lo_hi))))
        for i in np.flatnonzero(m).tolist():
            if i not in named:
                self._by_range(exp.record(i), row_apps.get(i))

    def _encrypted_dns_by_address(self, exp: Expired, named: set[int]) -> None:
        """DoT/DoQ by port, DoH by a public resolver's address (no name needed)."""
        m = np.isin(exp.server_port, self._edns_ports)
        if self._doh_ip_lo.size:
            m |= (exp.server_port == 443) & np.isin(exp.server_lo, self._doh_ip_lo)
        for i in np.flatnonzero(m).tolist():
            rec = exp.record(i)
            proto = self.edns.ports.get((rec.server_port, rec.proto))
            doh = self.edns.ips.get(rec.server_ip)
            if proto is not None:
                self.encrypted_dns.add(rec, proto, doh.name if doh else None,
                                       "flow.port", f"{rec.server_port}/{_PROTO[rec.proto]}")
            elif doh is not None and i not in named:
                self.encrypted_dns.add(rec, "doh", doh.name, "ip.resolver", rec.server_ip)

    @staticmethod
    def _oriented(rec: FlowRecord, app: FlowApp) -> FlowRecord:
        if app.client is not None and app.client != (rec.client_ip, rec.client_port):
            return _reversed(rec)
        return rec

    def _enrich_record(self, rec: FlowRecord, final: bool) -> None:
        """One flow at a time (log sources): the same decisions as ``_enrich``."""
        app = self._apps.pop(rec.key, None) if final else self._apps.get(rec.key)
        if app is not None and self._by_name(lambda: rec, app):
            return
        if self._by_dns(rec, app):
            return
        if self._ranges:
            self._by_range(rec, app)

    # -- the three ways a flow is attributed, in order ------------------------------

    def _by_name(self, record: Callable[[], FlowRecord], app: FlowApp) -> bool:
        """SNI, else HTTP Host (+ path). True when the name decided the flow, matched or
        not; False when there is none to go by (DNS correlation comes next)."""
        name, kind = ((app.sni, "quic.sni" if app.quic else "tls.sni") if app.sni
                      else (app.http_host, "http.host"))
        if name is None:
            return False
        doh = self.edns.hosts.get(name)
        if doh is not None:
            self.encrypted_dns.add(self._oriented(record(), app), "doh", doh.name, kind, name)
        if app.sni is not None and app.sni in self.edns.ech_fronts:
            return False  # ECH: the outer name is the front's; DNS says where it goes
        hit = (self._match_http(name, app.http_target) if kind == "http.host"
               else self._match(name))
        if hit is not None:
            self._attribute(self._oriented(record(), app), hit, name, kind, name, app)
        return True

    def _by_dns(self, rec: FlowRecord, app: FlowApp | None) -> bool:
        """A name the client resolved to this server before the flow."""
        res = self.dns.lookup(rec.client_ip, rec.server_ip, rec.first_ns)
        hit = self._match(res.name) if res is not None else None
        if res is None or hit is None:
            return False
        self._attribute(rec, hit, res.name, "dns.answer", f"{res.name} {rec.server_ip}", app)
        return True

    def _by_range(self, rec: FlowRecord, app: FlowApp | None) -> None:
        """An address in a range the provider publishes for its API."""
        hit = self.catalog.match_ip(rec.server_ip)
        if hit is None or not hit.counts_as_use:
            return
        cidr = hit.ip_range.cidr if hit.ip_range is not None else rec.server_ip
        self._attribute(rec, service_ref(hit), rec.server_ip, "ip.range",
                        f"{rec.server_ip} in {cidr}", app)

    def _attribute(self, rec: FlowRecord, ref: ServiceRef, name: str, kind: str, value: str,
                   app: FlowApp | None = None) -> None:
        self.stats.flows_attributed += 1
        self.stats.by_evidence[kind] = self.stats.by_evidence.get(kind, 0) + 1
        fp: str | None = None
        raw: str | None = None
        family = None
        ech = False
        if app is not None and app.hello is not None:
            t = "q" if app.quic else "t"
            if hasattr(app.hello, "ja3"):  # a ClientHello from a log line: its logged JA4
                fp = getattr(app.hello, "ja4", None)
            else:
                fp, raw = ja4_pair(app.hello, t)
            family = self.fingerprints.lookup(fp) if fp else None
            ech = app.hello.has_ech and kind == "dns.answer"
        ident = self.identity.lookup(rec.client_ip, rec.first_ns)
        self.usage.add_flow(rec, ref, name, kind, value, fp, family, ech, raw, ident)
        if self._flow_detectors:
            sanctioned = self.policy.decide(rec.client_ip, ref.id, ref.category, ref.risk,
                                            False).sanctioned
            for d in self._flow_detectors:
                d.on_flow(rec, ref, sanctioned)


def _range_bounds(catalog: Catalog) -> list[tuple[int, int, int, int]]:
    """Every published IP range as (hi of first, hi of last, lo of first, lo of last)."""
    out = []
    for svc in catalog.services:
        for r in svc.ip_ranges:
            net = ipaddress.ip_network(r.cidr)
            a, b = int(net.network_address), int(net.broadcast_address)
            if net.version == 4:
                a, b = (0xFFFF << 32) | a, (0xFFFF << 32) | b
            out.append((a >> 64, b >> 64, a & _U64_MASK, b & _U64_MASK))
    return out


def _slice_cols(c: Columns, sl: slice) -> Columns:
    return Columns(**{name: getattr(c, name)[sl] for name in Columns.__slots__})


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
