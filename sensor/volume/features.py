"""Window features per (client, service), aggregated incrementally from flows.

Flows are accounted to tumbling 5-minute *base windows* aligned to the epoch
(O(1) Python per flow: a flow spans at most a few base windows). The 1-hour
window is a sliding window with a 5-minute hop, built by merging the last 12
base windows of the entity. Bytes and packets of a flow that spans several
windows are split in proportion to its time in each. Feature names carry
unit and direction; ``transform`` maps them to the model's input space.

Only flow records are seen here (no per-request timing): "requests" are
approximated by flows and client->server packets. See docs/anomaly-model.md.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from sensor.errors import InputError

F64 = npt.NDArray[np.float64]

FEATURE_SET_VERSION = 1
BASE_WINDOW_S = 300
LONG_WINDOW_S = 3600
WINDOWS_S = (BASE_WINDOW_S, LONG_WINDOW_S)
SLOT_S = 10  # duty-cycle resolution
_SLOTS_BASE = BASE_WINDOW_S // SLOT_S
_MAX_STARTS = 4096  # flow start times kept per base window for the regularity feature

FEATURES: tuple[str, ...] = (
    "flows_per_min",
    "packets_client_to_server_per_min",
    "bytes_client_to_server_per_min",
    "bytes_server_to_client_per_min",
    "bytes_client_to_server_per_flow_mean",
    "bytes_client_to_server_per_flow_std",
    "bytes_server_to_client_per_flow_mean",
    "bytes_ratio_client_to_server_over_server_to_client",
    "flow_start_interval_cv",
    "concurrent_flows_mean",
    "duty_cycle_fraction",
    "distinct_services_per_client",
)
N_FEATURES = len(FEATURES)
IDX = {name: i for i, name in enumerate(FEATURES)}

# Model input: log1p for heavy-tailed counts and sizes, identity for bounded ones.
TRANSFORMS: tuple[str, ...] = tuple(
    "identity" if n in ("flow_start_interval_cv", "duty_cycle_fraction") else "log1p"
    for n in FEATURES)
_LOG_MASK = np.array([t == "log1p" for t in TRANSFORMS])

# Which side of a feature points to extraction: +1 high, -1 low (machine-regular
# request timing), 0 either (shown in explanations, never gates a finding alone).
DIRECTION: tuple[int, ...] = (1, 1, 1, 1, 0, 0, 0, 0, -1, 1, 1, 0)
# Rate features: a window must be unusually *high* on one of these to be extraction-like:
# many queries, or many model outputs downloaded (a big upload alone is bulk_upload's case).
RATE_FEATURES: tuple[int, ...] = (IDX["flows_per_min"], IDX["bytes_server_to_client_per_min"])


def transform(x: F64) -> F64:
    """Raw feature rows (n, d) -> model space."""
    out = np.array(x, dtype=np.float64, copy=True)
    out[..., _LOG_MASK] = np.log1p(np.maximum(out[..., _LOG_MASK], 0.0))
    return out


class BaseAcc:
    """Sums for one entity's 5-minute base window; mergeable into longer windows."""

    __slots__ = ("by_dn", "by_up", "conn_ns", "duty", "flows", "pk_up", "spans", "starts",
                 "up_sq")

    def __init__(self) -> None:
        self.flows = 0
        self.pk_up = 0.0
        self.by_up = 0.0
        self.by_dn = 0.0
        self.spans = 0  # flows present in the window (started here or before)
        self.up_sq = 0.0  # sum of squares of their client->server bytes in the window
        self.conn_ns = 0  # flow-nanoseconds inside the window (mean concurrency)
        self.duty = 0  # bit i: some flow active in slot i
        self.starts: list[int] = []

    def add_flow_start(self, first_ns: int) -> None:
        self.flows += 1
        if len(self.starts) < _MAX_STARTS:
            self.starts.append(first_ns)


def spans(first_ns: int, last_ns: int) -> Iterator[tuple[int, int, int]]:
    """(base window index, overlap start, overlap end) for a flow's lifetime."""
    w = BASE_WINDOW_S * 1_000_000_000
    k0, k1 = first_ns // w, last_ns // w
    for k in range(k0, k1 + 1):
        yield k, max(first_ns, k * w), min(last_ns, (k + 1) * w - 1)


def add_span(acc: BaseAcc, k: int, a: int, b: int, frac: float, pk_up: int, by_up: int,
             by_dn: int) -> None:
    w0 = k * BASE_WINDOW_S * 1_000_000_000
    up = by_up * frac
    acc.spans += 1
    acc.up_sq += up * up
    acc.pk_up += pk_up * frac
    acc.by_up += up
    acc.by_dn += by_dn * frac
    acc.conn_ns += b - a
    s0 = (a - w0) // (SLOT_S * 1_000_000_000)
    s1 = min((b - w0) // (SLOT_S * 1_000_000_000), _SLOTS_BASE - 1)
    acc.duty |= ((1 << (s1 - s0 + 1)) - 1) << s0


def window_features(accs: Sequence[BaseAcc], window_s: int, services: int) -> list[float]:
    """The feature vector (raw units) of a window made of ``accs`` (oldest first)."""
    minutes = window_s / 60.0
    flows = sum(a.flows for a in accs)
    pk_up = sum(a.pk_up for a in accs)
    by_up = sum(a.by_up for a in accs)
    by_dn = sum(a.by_dn for a in accs)
    n_spans = sum(a.spans for a in accs)
    up_sq = sum(a.up_sq for a in accs)
    conn_ns = sum(a.conn_ns for a in accs)
    duty_bits = sum(a.duty.bit_count() for a in accs)
    if n_spans:  # per flow present in the window, with the flow's share of its bytes
        req_mean = by_up / n_spans
        req_std = math.sqrt(max(up_sq / n_spans - req_mean * req_mean, 0.0))
        resp_mean = by_dn / n_spans
    else:
        req_mean = req_std = resp_mean = 0.0
    starts = sorted(t for a in accs for t in a.starts)
    cv = 1.0  # Poisson-like arrivals: the neutral value when there are too few starts
    if len(starts) >= 4:
        gaps = np.diff(np.asarray(starts, dtype=np.float64))
        m = float(gaps.mean())
        if m > 0:
            cv = float(gaps.std()) / m
    return [
        flows / minutes,
        pk_up / minutes,
        by_up / minutes,
        by_dn / minutes,
        req_mean,
        req_std,
        resp_mean,
        by_up / max(by_dn, 1.0),
        cv,
        conn_ns / (window_s * 1e9),
        duty_bits / (window_s / SLOT_S),
        float(services),
    ]


# -- flow files (input of `shadowai model train`) ------------------------------

_FLOW_INT_KEYS = ("packets_client_to_server", "packets_server_to_client",
                  "bytes_client_to_server", "bytes_server_to_client")


@dataclass(frozen=True, slots=True)
class FlowRow:
    """One attributed flow as stored in a flows JSON Lines file."""

    client_ip: str
    service_id: str
    first_ns: int
    last_ns: int
    packets_client_to_server: int
    packets_server_to_client: int
    bytes_client_to_server: int
    bytes_server_to_client: int
    sanctioned: bool = False


def flow_to_dict(client_ip: str, service_id: str, first_ns: int, last_ns: int,
                 packets_client_to_server: int, packets_server_to_client: int,
                 bytes_client_to_server: int, bytes_server_to_client: int,
                 sanctioned: bool = False) -> dict[str, Any]:
    """The flows-file form of one attributed flow (schema ``shadowai.flow/v1``)."""
    return {"schema": "shadowai.flow/v1", "client_ip": client_ip, "service": service_id,
            "first_ns": first_ns, "last_ns": last_ns,
            "packets_client_to_server": packets_client_to_server,
            "packets_server_to_client": packets_server_to_client,
            "bytes_client_to_server": bytes_client_to_server,
            "bytes_server_to_client": bytes_server_to_client, "sanctioned": sanctioned}


def _row(obj: Any, where: str) -> FlowRow:
    if not isinstance(obj, dict):
        raise InputError(f"{where}: not a JSON object")
    svc = obj.get("service")
    if isinstance(svc, dict):
        svc = svc.get("id")
    client = obj.get("client_ip")
    if not isinstance(client, str) or not isinstance(svc, str):
        raise InputError(f"{where}: needs string client_ip and service")
    try:
        vals = [int(obj[k]) for k in ("first_ns", "last_ns", *_FLOW_INT_KEYS)]
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(f"{where}: missing or non-integer field {e}") from e
    if min(vals[2:]) < 0 or vals[1] < vals[0]:
        raise InputError(f"{where}: negative count or last_ns < first_ns")
    return FlowRow(client, svc, vals[0], vals[1], vals[2], vals[3], vals[4], vals[5],
                   sanctioned=bool(obj.get("sanctioned", False)))


def read_flows(fh: IO[str], name: str) -> Iterator[FlowRow]:
    """Rows of a flows JSON Lines file; InputError names the bad line."""
    for n, line in enumerate(fh, 1):
        line = line.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"{name}:{n}: not JSON: {e.msg}") from e
        if isinstance(obj, dict) and obj.get("schema", "shadowai.flow/v1") != "shadowai.flow/v1":
            raise InputError(f"{name}:{n}: schema {obj.get('schema')!r} is not a flow "
                             "(hunt findings are aggregated per client and cannot train a model)")
        yield _row(obj, f"{name}:{n}")


def read_feature_rows(path: Path) -> dict[int, list[list[float]]]:
    """A window-features JSON Lines file: ``{"window_s": 300, "features": {name: value}}``."""
    out: dict[int, list[list[float]]] = {w: [] for w in WINDOWS_S}
    try:
        fh = path.open(encoding="utf-8")
    except OSError as e:
        raise InputError(f"{path}: {e.strerror}") from e
    with fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                w = int(obj["window_s"])
                feats = obj["features"]
                row = [float(feats[f]) for f in FEATURES]
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
                raise InputError(f"{path}:{n}: not a window-features row ({e})") from e
            if w not in out or not all(math.isfinite(v) for v in row):
                raise InputError(f"{path}:{n}: window_s must be one of {WINDOWS_S}, "
                                 "features finite")
            out[w].append(row)
    return out
