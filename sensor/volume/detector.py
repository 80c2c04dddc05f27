"""``extraction_volume`` and ``bulk_upload`` findings from attributed flows.

Per flow: O(1) Python (a dict lookup and a few additions into the entity's
5-minute base window). When capture time passes a window's end plus the
allowed lateness (flows are exported after their idle timeout), the closed
windows of all entities are turned into feature rows (5 min, and the sliding
hour ending there) and scored together in numpy.

A window is flagged when the population model scores it at or above its
threshold, its client->server packets pass a minimum, at least one *rate*
feature is high for the population (robust z >= ``min_rate_z``), and:
- the (client, service) has no baseline and the service is not sanctioned, or
- it has a baseline (its own live history, or one from a site model) and the
  window is also far above it (robust z >= ``entity_z``).
A sanctioned service is thus only flagged when it departs from its own baseline.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from sensor.errors import InputError
from sensor.findings import ServiceRef, envelope, finding_id, rfc3339, server_object, service_object
from sensor.flows import FlowRecord
from sensor.volume.features import (
    BASE_WINDOW_S,
    DIRECTION,
    FEATURES,
    IDX,
    LONG_WINDOW_S,
    RATE_FEATURES,
    BaseAcc,
    add_span,
    spans,
    transform,
    window_features,
)
from sensor.volume.model import Baseline, VolumeModel, default_model_dir, load_model, spread

F64 = npt.NDArray[np.float64]
NS = 1_000_000_000
EXTRACTION = "extraction_volume"
BULK_UPLOAD = "bulk_upload"
_BASES_PER_LONG = LONG_WINDOW_S // BASE_WINDOW_S
_SUSTAINED_WINDOWS = 6
_ABOVE_MAX = 0.1  # model space (log1p): ~10 % above the entity's own maximum
_Z_FLOOR = 0.1  # MAD floor in model space (log1p units ~ 10 %): no infinite z on flat history

ATLAS = {
    "AML.T0024": "Exfiltration via AI Inference API",
    "AML.T0024.002": "Extract AI Model",
    "AML.T0034": "Cost Harvesting",
    "AML.T0025": "Exfiltration via Cyber Means",
}

_WORDS = {
    "flows_per_min": ("connections per minute", "{:.1f}"),
    "packets_client_to_server_per_min": ("client->server packets per minute", "{:.0f}"),
    "bytes_client_to_server_per_min": ("bytes uploaded per minute", "{:,.0f}"),
    "bytes_server_to_client_per_min": ("bytes downloaded per minute", "{:,.0f}"),
    "bytes_client_to_server_per_flow_mean": ("mean request bytes per connection", "{:,.0f}"),
    "bytes_client_to_server_per_flow_std": ("std of request bytes per connection", "{:,.0f}"),
    "bytes_server_to_client_per_flow_mean": ("mean response bytes per connection", "{:,.0f}"),
    "bytes_ratio_client_to_server_over_server_to_client": ("upload/download byte ratio",
                                                            "{:.2f}"),
    "flow_start_interval_cv": ("variation of connection start intervals (low = machine-"
                               "regular)", "{:.2f}"),
    "concurrent_flows_mean": ("mean concurrent connections", "{:.2f}"),
    "duty_cycle_fraction": ("share of 10 s slots with traffic", "{:.2f}"),
    "distinct_services_per_client": ("distinct AI services used by the client", "{:.0f}"),
}


@dataclass(frozen=True, slots=True)
class VolumeSettings:
    """The ``[model]`` table of the config file."""

    enabled: bool = True
    model_dir: Path | None = None  # None: $SHADOWAI_MODEL or <repo>/models/default
    lateness_s: float = 2100.0  # active (1800 s) + idle (300 s) timeouts: flows arrive late
    min_packets_5min: int = 150  # client->server packets in the window
    min_packets_1h: int = 600
    min_rate_z: float = 3.0
    entity_z: float = 4.0
    # above this upload/download byte ratio a window is an upload (server bytes are its ACKs):
    # bulk_upload's case, not extraction
    max_upload_ratio: float = 5.0
    min_history_windows: int = 12
    history_windows: int = 96  # busy windows kept per entity and window length
    bulk_upload_bytes: int = 20_000_000  # one flow, or one 5-minute window, client->server
    bulk_upload_ratio: float = 2.0  # and at least this many times the bytes downloaded
    bulk_upload_sanctioned: bool = False
    max_entities: int = 200_000
    top_contributions: int = 4
    min_mean_packet_bytes_up: int = 120
    extraction_categories: frozenset[str] = frozenset({
        "llm-api", "chat-assistant", "code-assistant", "ai-agent", "ai-gateway",
        "cloud-ai-platform", "ai-search", "image-video-generation", "voice-speech",
        "writing-productivity", "meeting-assistant", "other-ai", "self-hosted-llm",
        "mcp-server"})


def from_toml(table: dict[str, Any]) -> VolumeSettings:
    """VolumeSettings from the ``[model]`` table; InputError (one line) on a bad value."""
    if not isinstance(table, dict):
        raise InputError("[model] must be a table")
    known = {f.name: f for f in fields(VolumeSettings)}
    base = VolumeSettings()
    vals: dict[str, Any] = {}
    for k, v in table.items():
        if k not in known:
            raise InputError(f"unknown setting model.{k}")
        cur = getattr(base, k)
        if k == "model_dir":
            if not isinstance(v, str) or not v:
                raise InputError("model.model_dir must be a non-empty path string")
            vals[k] = Path(v)
        elif k == "extraction_categories":
            if not isinstance(v, list) or not all(isinstance(c, str) for c in v):
                raise InputError("model.extraction_categories must be a list of categories")
            vals[k] = frozenset(v)
        elif isinstance(cur, bool):
            if not isinstance(v, bool):
                raise InputError(f"model.{k} must be true or false")
            vals[k] = v
        elif isinstance(cur, int):
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise InputError(f"model.{k} must be a non-negative integer")
            vals[k] = v
        else:
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) \
                    or v < 0:
                raise InputError(f"model.{k} must be a non-negative number")
            vals[k] = float(v)
    return VolumeSettings(**{**{f: getattr(base, f) for f in known}, **vals})


# -- findings -----------------------------------------------------------------

def _severity(score: float, threshold: float) -> str:
    m = score - threshold
    return "high" if m >= 0.08 else "medium" if m >= 0.03 else "low"


@dataclass(slots=True)
class ExtractionFinding:
    """One per (client, service): the flagged windows, the strongest one explained."""

    client_ip: str
    service: ServiceRef
    first_ns: int
    last_ns: int
    score: float
    threshold: float
    window_s: int
    window_start_ns: int
    contributions: list[dict[str, Any]]
    features: dict[str, float]
    sanctioned: bool
    baseline: str  # "none" | "live" | "site-model"
    client_mac: str | None = None
    server_ip: str | None = None
    server_port: int | None = None
    windows_flagged: dict[int, int] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    model_sha256: str = ""
    first_flag_end_ns: int = 0  # end of the earliest flagged window
    type: str = EXTRACTION
    severity: str = "low"

    @property
    def id(self) -> str:
        return finding_id(self.type, self.client_ip, self.service.id)

    @property
    def atlas(self) -> list[dict[str, str]]:
        ids = ["AML.T0024", "AML.T0024.002"]
        if self.contributions and self.contributions[0]["feature"] in (
                "flows_per_min", "packets_client_to_server_per_min"):
            ids.append("AML.T0034")  # the request rate itself drove it: cost to the account
        return [{"id": i, "name": ATLAS[i]} for i in ids]

    def to_dict(self) -> dict[str, Any]:
        end = self.window_start_ns + self.window_s * NS
        return {
            **envelope(
                self,
                client={"ip": self.client_ip, "mac": self.client_mac},
                server=server_object(self.server_ip, self.server_port, None),
                service=service_object(self.service),
                evidence=[{"kind": "volume.window", "value": f"{w}s", "count": n}
                          for w, n in sorted(self.windows_flagged.items())],
                counts=dict(self.counts),
            ),
            "volume": {
                "score": round(self.score, 4), "threshold": round(self.threshold, 4),
                "window": {"length_s": self.window_s, "start": rfc3339(self.window_start_ns),
                           "end": rfc3339(end)},
                "windows_flagged": {f"{w}s": n for w, n in sorted(self.windows_flagged.items())},
                "first_flagged_window_end": rfc3339(self.first_flag_end_ns),
                "top_contributions": self.contributions,
                "features": self.features,
                "sanctioned": self.sanctioned, "baseline": self.baseline,
                "atlas": self.atlas, "model_sha256": self.model_sha256,
            },
        }


@dataclass(slots=True)
class BulkUploadFinding:
    """One per (client, service): the largest upload seen (one flow or one 5-minute window)."""

    client_ip: str
    service: ServiceRef
    first_ns: int
    last_ns: int
    largest_bytes_client_to_server: int
    largest_bytes_server_to_client: int
    largest_kind: str  # "flow" | "window_5min"
    largest_start_ns: int
    sanctioned: bool
    client_mac: str | None = None
    server_ip: str | None = None
    server_port: int | None = None
    uploads: int = 0
    bytes_client_to_server: int = 0
    type: str = BULK_UPLOAD
    severity: str = "low"

    @property
    def id(self) -> str:
        return finding_id(self.type, self.client_ip, self.service.id)

    def to_dict(self) -> dict[str, Any]:
        return {
            **envelope(
                self,
                client={"ip": self.client_ip, "mac": self.client_mac},
                server=server_object(self.server_ip, self.server_port, None),
                service=service_object(self.service),
                evidence=[{"kind": f"upload.{self.largest_kind}",
                           "value": f"{self.largest_bytes_client_to_server} bytes",
                           "count": self.uploads}],
                counts={"uploads": self.uploads,
                        "bytes_client_to_server": self.bytes_client_to_server},
            ),
            "upload": {
                "largest_bytes_client_to_server": self.largest_bytes_client_to_server,
                "largest_bytes_server_to_client": self.largest_bytes_server_to_client,
                "largest_unit": self.largest_kind, "largest_start": rfc3339(
                    self.largest_start_ns),
                "sanctioned": self.sanctioned,
                "atlas": [{"id": "AML.T0025", "name": ATLAS["AML.T0025"]}],
            },
        }


def _upload_severity(n: int) -> str:
    return ("critical" if n >= 1_000_000_000 else "high" if n >= 200_000_000
            else "medium" if n >= 50_000_000 else "low")


# -- per-entity state ---------------------------------------------------------

class _Entity:
    __slots__ = ("base", "client", "client_mac", "hist", "last_k", "recent", "sanctioned",
                 "server_ip", "server_port", "service", "totals")

    def __init__(self, client: str, service: ServiceRef, history: int) -> None:
        self.client = client
        self.service = service
        self.sanctioned = False
        self.client_mac: str | None = None
        self.server_ip: str | None = None
        self.server_port: int | None = None
        self.base: dict[int, BaseAcc] = {}  # open base windows by index
        self.recent: deque[tuple[int, BaseAcc]] = deque(maxlen=_BASES_PER_LONG)
        self.hist: dict[int, deque[F64]] = {BASE_WINDOW_S: deque(maxlen=history),
                                            LONG_WINDOW_S: deque(maxlen=history)}
        self.totals = [0, 0, 0, 0, 0]  # flows, packets up, packets down, bytes up, bytes down
        self.last_k = 0


@dataclass(slots=True)
class _Row:
    ent: _Entity
    window_s: int
    k: int  # index of the (last) base window
    raw: list[float]
    up_bytes: float


class VolumeDetector:
    """Implements the pipeline's FlowDetector protocol (``on_flow``, ``findings``)."""

    def __init__(self, model: VolumeModel | None, settings: VolumeSettings | None = None) -> None:
        """``model=None``: collect the window feature rows (for training) instead of scoring."""
        self.model = model
        self.collected: list[tuple[int, str, str, list[float]]] = []
        self.settings = s = settings or VolumeSettings()
        self._lateness_ns = int(s.lateness_s * NS)
        self._ents: dict[tuple[str, str], _Entity] = {}
        self._open: dict[int, set[tuple[str, str]]] = {}  # base window -> entities with data
        self._svc: dict[str, dict[int, set[str]]] = {}  # client -> base window -> services
        self._closed_k = -(1 << 62)  # base windows below this index are closed
        self._wm = 0
        self._next_close_ns = -(1 << 62)
        self._extraction: dict[tuple[str, str], ExtractionFinding] = {}
        self._bulk: dict[tuple[str, str], BulkUploadFinding] = {}
        self.windows_scored = {BASE_WINDOW_S: 0, LONG_WINDOW_S: 0}
        self._sha = str(model.manifest.get("model_sha256", "")) if model is not None else ""

    @classmethod
    def from_settings(cls, settings: VolumeSettings) -> VolumeDetector:
        return cls(load_model(settings.model_dir or default_model_dir()), settings)

    # -- flows ---------------------------------------------------------------

    def on_flow(self, rec: FlowRecord, service: ServiceRef, sanctioned: bool) -> None:
        key = (rec.client_ip, service.id)
        ent = self._ents.get(key)
        if ent is None:
            if len(self._ents) >= self.settings.max_entities:
                self._evict()
            ent = self._ents[key] = _Entity(rec.client_ip, service,
                                            self.settings.history_windows)
            ent.server_ip, ent.server_port = rec.server_ip, rec.server_port
        ent.sanctioned = sanctioned
        if ent.client_mac is None:
            ent.client_mac = rec.client_mac
        up, dn = rec.bytes_client_to_server, rec.bytes_server_to_client
        pk = rec.packets_client_to_server
        t = ent.totals
        t[0] += 1
        t[1] += pk
        t[2] += rec.packets_server_to_client
        t[3] += up
        t[4] += dn
        first, last = rec.first_ns, max(rec.last_ns, rec.first_ns)
        # a flow record is at most one active timeout long; clip nonsense to the last hour
        first = max(first, last - LONG_WINDOW_S * NS)
        dur = last - first + 1
        svc_windows = self._svc.setdefault(rec.client_ip, {})
        started = False
        for k, a, b in spans(first, last):
            kk = k if k >= self._closed_k else self._closed_k  # late: fold into the oldest open
            acc = ent.base.get(kk)
            if acc is None:
                acc = ent.base[kk] = BaseAcc()
                self._open.setdefault(kk, set()).add(key)
            if kk == k:
                add_span(acc, k, a, b, (b - a + 1) / dur, pk, up, dn)
            else:
                frac = (b - a + 1) / dur
                acc.spans += 1
                acc.up_sq += (up * frac) ** 2
                acc.pk_up += pk * frac
                acc.by_up += up * frac
                acc.by_dn += dn * frac
            if not started:
                acc.add_flow_start(first)
                svc_windows.setdefault(kk, set()).add(service.id)
                started = True
        if up >= self.settings.bulk_upload_bytes and up >= self.settings.bulk_upload_ratio * dn:
            self._bulk_event(ent, up, dn, "flow", first, rec.last_ns)
        if last > self._wm:
            self._wm = last
            if last >= self._next_close_ns:
                self._close_until(last - self._lateness_ns)

    def advance(self, now_ns: int) -> None:
        """Optional: tell the detector the capture time (closes windows without new flows)."""
        if now_ns > self._wm:
            self._wm = now_ns
            self._close_until(now_ns - self._lateness_ns)

    # -- windows -------------------------------------------------------------

    def _close_until(self, t_ns: int) -> None:
        w = BASE_WINDOW_S * NS
        k_close = t_ns // w  # windows with index < k_close end before t_ns
        self._next_close_ns = (k_close + 1) * w + self._lateness_ns
        if k_close <= self._closed_k:
            return
        rows: list[_Row] = []
        for k in sorted(i for i in self._open if i < k_close):
            for key in sorted(self._open.pop(k)):
                ent = self._ents.get(key)
                if ent is None:
                    continue
                acc = ent.base.pop(k, None)
                if acc is not None:
                    ent.recent.append((k, acc))
                    ent.last_k = k
                    rows.extend(self._rows(ent, k, list(ent.recent)))
        self._closed_k = k_close
        for wins in self._svc.values():
            for k in [k for k in wins if k < k_close - _BASES_PER_LONG]:
                del wins[k]
        self._score(rows, commit=True, sink_x=self._extraction, sink_b=self._bulk)

    def _rows(self, ent: _Entity, k: int, accs: list[tuple[int, BaseAcc]]) -> list[_Row]:
        wins = self._svc.get(ent.client, {})
        acc = accs[-1][1]
        n5 = len(wins.get(k, ())) or 1
        short = _Row(ent, BASE_WINDOW_S, k, window_features([acc], BASE_WINDOW_S, n5), acc.by_up)
        hour = [a for i, a in accs if i > k - _BASES_PER_LONG]
        svcs: set[str] = set()
        for i in range(k - _BASES_PER_LONG + 1, k + 1):
            svcs |= wins.get(i, set())
        long = _Row(ent, LONG_WINDOW_S, k,
                    window_features(hour, LONG_WINDOW_S, len(svcs) or 1), 0.0)
        return [short, long]

    def _baseline(self, ent: _Entity, w: int) -> tuple[Baseline | None, str]:
        assert self.model is not None
        h = ent.hist[w]
        if len(h) >= self.settings.min_history_windows:
            a = np.vstack(list(h))
            med = np.median(a, axis=0)
            return Baseline(med, spread(a, med), a.max(axis=0), len(h)), "live"
        b = self.model.baselines.get((w, ent.client, ent.service.id))
        if b is not None and b.n >= self.settings.min_history_windows:
            return b, "site-model"
        return None, "none"

    def _score(self, rows: list[_Row], commit: bool,
               sink_x: dict[tuple[str, str], ExtractionFinding],
               sink_b: dict[tuple[str, str], BulkUploadFinding]) -> None:
        s = self.settings
        if self.model is None:
            if commit:
                self.collected += [(r.window_s, r.ent.client, r.ent.service.id, r.raw)
                                   for r in rows]
            return
        for w in (BASE_WINDOW_S, LONG_WINDOW_S):
            sel = [r for r in rows if r.window_s == w]
            wm = self.model.windows.get(w)
            if not sel or wm is None:
                continue
            raw = np.array([r.raw for r in sel], dtype=np.float64)
            z = transform(raw)
            scores = wm.forest.score(z)
            zpop = (z - wm.pop_median) / (1.4826 * wm.pop_mad + _Z_FLOOR)
            minutes = w / 60.0
            min_pk = s.min_packets_5min if w == BASE_WINDOW_S else s.min_packets_1h
            rate_hi = zpop[:, list(RATE_FEATURES)].max(axis=1)
            busy = raw[:, IDX["packets_client_to_server_per_min"]] * minutes >= min_pk
            gate = busy & (scores >= wm.threshold) & (rate_hi >= s.min_rate_z) \
                & (raw[:, IDX["bytes_ratio_client_to_server_over_server_to_client"]]
                   <= s.max_upload_ratio)
            if commit:
                self.windows_scored[w] += len(sel)
            for i, r in enumerate(sel):
                ent = r.ent
                flag = bool(gate[i])
                zent: F64 | None = None
                kind = "none"
                if flag:  # baselines only matter for candidates: computed lazily
                    base, kind = self._baseline(ent, w)
                    if base is not None:
                        # far above its typical window AND above anything it did before
                        # (a job's first window, with all its connection starts, is not new)
                        zent = (z[i] - base.median) / (1.4826 * base.mad + _Z_FLOOR)
                        rf = list(RATE_FEATURES)
                        flag = bool(((zent[rf] >= s.entity_z)
                                     & (z[i, rf] > base.high[rf] + _ABOVE_MAX)).any())
                    elif ent.sanctioned:
                        flag = False
                if flag:
                    self._flag(sink_x, r, float(scores[i]), wm.threshold, raw[i], zpop[i], zent,
                               kind, wm.pop_median)
                elif commit and busy[i]:
                    # the entity's own history of busy windows (quiet ones are never
                    # candidates): memory only for entities that are ever busy
                    ent.hist[w].append(z[i])
                if w == BASE_WINDOW_S and r.up_bytes >= s.bulk_upload_bytes \
                        and r.up_bytes >= s.bulk_upload_ratio * raw[i, IDX[
                            "bytes_server_to_client_per_min"]] * minutes:
                    start = r.k * BASE_WINDOW_S * NS
                    self._bulk_event(ent, int(r.up_bytes), int(
                        raw[i, IDX["bytes_server_to_client_per_min"]] * minutes), "window_5min",
                        start, start + BASE_WINDOW_S * NS - 1, sink_b)

    def _flag(self, sink: dict[tuple[str, str], ExtractionFinding], r: _Row, score: float,
              thr: float, raw: F64, zpop: F64, zent: F64 | None, kind: str,
              pop_median_model: F64) -> None:
        ent = r.ent
        start = (r.k + 1) * BASE_WINDOW_S * NS - r.window_s * NS
        end = (r.k + 1) * BASE_WINDOW_S * NS - 1
        key = (ent.client, ent.service.id)
        f = sink.get(key)
        if f is None or score > f.score:
            contrib = self._explain(raw, zpop, zent, pop_median_model)
            feats = {n: round(float(v), 4) for n, v in zip(FEATURES, raw, strict=True)}
            if f is None:
                f = sink[key] = ExtractionFinding(
                    ent.client, ent.service, start, end, score, thr, r.window_s, start, contrib,
                    feats, ent.sanctioned, kind, model_sha256=self._sha)
            else:
                f.score, f.threshold, f.window_s, f.window_start_ns = score, thr, r.window_s, start
                f.contributions, f.features, f.baseline = contrib, feats, kind
            f.severity = _severity(score, thr)
        f.first_flag_end_ns = min(f.first_flag_end_ns or end, end)
        f.first_ns = min(f.first_ns, start)
        f.last_ns = max(f.last_ns, end)
        f.windows_flagged[r.window_s] = f.windows_flagged.get(r.window_s, 0) + 1
        if sum(f.windows_flagged.values()) >= _SUSTAINED_WINDOWS and f.severity != "high":
            f.severity = "high"  # sustained: many windows flagged, not one odd burst
        f.client_mac, f.server_ip, f.server_port = ent.client_mac, ent.server_ip, ent.server_port
        t = ent.totals
        f.counts = {"flows": t[0], "packets_client_to_server": t[1],
                    "packets_server_to_client": t[2], "bytes_client_to_server": t[3],
                    "bytes_server_to_client": t[4],
                    "windows_flagged_5min": f.windows_flagged.get(BASE_WINDOW_S, 0),
                    "windows_flagged_1h": f.windows_flagged.get(LONG_WINDOW_S, 0)}

    def _explain(self, raw: F64, zpop: F64, zent: F64 | None,
                 pop_median_model: F64) -> list[dict[str, Any]]:
        """Top features by signed deviation from the population, in words and numbers."""
        d = np.array(DIRECTION, dtype=np.float64)
        # features with a direction explain extraction better: neutral ones count half
        signed = np.where(d == 0, 0.5 * np.abs(zpop), zpop * d)
        order = np.argsort(-signed, kind="stable")[: self.settings.top_contributions]
        pop_raw = np.expm1(pop_median_model)
        out: list[dict[str, Any]] = []
        for j in order.tolist():
            name = FEATURES[j]
            words, fmt = _WORDS[name]
            med = float(pop_raw[j]) if name not in (
                "flow_start_interval_cv", "duty_cycle_fraction") else float(pop_median_model[j])
            v = float(raw[j])
            times = f", {v / med:.0f}x the site median" if med > 0 and v / med >= 2 else ""
            text = (f"{words}: {fmt.format(v)} (site median {fmt.format(med)}{times}, "
                    f"robust z {zpop[j]:+.1f})")
            item: dict[str, Any] = {"feature": name, "value": round(v, 4),
                                    "population_median": round(med, 4),
                                    "robust_z": round(float(zpop[j]), 2), "text": text}
            if zent is not None:
                item["entity_z"] = round(float(zent[j]), 2)
            out.append(item)
        return out

    def _bulk_event(self, ent: _Entity, up: int, dn: int, kind: str, first: int, last: int,
                    sink: dict[tuple[str, str], BulkUploadFinding] | None = None) -> None:
        if ent.sanctioned and not self.settings.bulk_upload_sanctioned:
            return
        sink = self._bulk if sink is None else sink
        key = (ent.client, ent.service.id)
        f = sink.get(key)
        if f is None:
            f = sink[key] = BulkUploadFinding(ent.client, ent.service, first, last, up, dn, kind,
                                              first, ent.sanctioned, ent.client_mac,
                                              ent.server_ip, ent.server_port)
        elif up > f.largest_bytes_client_to_server:
            f.largest_bytes_client_to_server, f.largest_bytes_server_to_client = up, dn
            f.largest_kind, f.largest_start_ns = kind, first
        f.first_ns, f.last_ns = min(f.first_ns, first), max(f.last_ns, last)
        f.uploads += 1
        f.bytes_client_to_server += up
        f.severity = _upload_severity(f.largest_bytes_client_to_server)

    def _evict(self) -> None:
        """Drop the quarter of entities idle longest (those without open windows first)."""
        order = sorted((bool(e.base), e.last_k, k) for k, e in self._ents.items())
        for _, _, k in order[: max(1, len(self._ents) // 4)]:
            del self._ents[k]  # its open windows are skipped when they close

    def flush(self) -> None:
        """Close every open window (end of input); findings() is then final."""
        if self._open:
            self._close_until((max(self._open) + 2) * BASE_WINDOW_S * NS)

    # -- results -------------------------------------------------------------

    def _requests_up(self, f: ExtractionFinding) -> bool:
        """Extraction is many requests: client->server traffic that carries requests, not
        only the ACKs of a download (a pure ACK stream averages 52-66 bytes per packet at
        the IP layer), and a request rate among the strongest reasons for the score (a
        client that merely uses many services or uploads unevenly is something else)."""
        if _mean_up(f) < self.settings.min_mean_packet_bytes_up:
            return False
        top = [c.get("feature") for c in f.contributions[:2]]
        return any(t in _REQUEST_RATE for t in top)

    def findings(self) -> list[ExtractionFinding | BulkUploadFinding]:
        """Findings so far. Windows still open are scored provisionally (not committed),
        so calling this periodically does not change later results."""
        x = {k: replace(f, windows_flagged=dict(f.windows_flagged), counts=dict(f.counts))
             for k, f in self._extraction.items()}
        b = {k: replace(f) for k, f in self._bulk.items()}
        rows: list[_Row] = []
        for k in sorted(self._open):
            for key in sorted(self._open[k]):
                ent = self._ents.get(key)
                acc = ent.base.get(k) if ent is not None else None
                if ent is not None and acc is not None:
                    rows.extend(self._rows(ent, k, [*list(ent.recent), (k, acc)]))
        self._score(rows, commit=False, sink_x=x, sink_b=b)
        # bulk downloads from model hubs, vector stores and LLMOps tools are their normal use
        # (weights, indexes, traces), not answers harvested from a model
        cats = self.settings.extraction_categories
        out: list[ExtractionFinding | BulkUploadFinding] = [
            *(f for f in x.values() if f.service.category in cats and self._requests_up(f)),
            *b.values()]
        out.sort(key=lambda f: (f.first_ns, f.client_ip, f.service.id, f.type))
        return out


# what the client sends (unlike RATE_FEATURES, which also gates on download volume)
_REQUEST_RATE = frozenset({"flows_per_min", "packets_client_to_server_per_min",
                           "bytes_client_to_server_per_min"})


def _mean_up(f: ExtractionFinding) -> float:
    n = f.counts.get("packets_client_to_server", 0)
    return f.counts.get("bytes_client_to_server", 0) / n if n else 0.0


