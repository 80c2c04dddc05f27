"""Fit the volume model with scikit-learn and export it as plain arrays.

Imported only by ``shadowai model train`` (needs the ``train`` extra); the
detector never imports this module or scikit-learn.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from sensor import __version__
from sensor.errors import InputError
from sensor.findings import ServiceRef
from sensor.flows import FlowRecord
from sensor.volume.detector import VolumeDetector, VolumeSettings
from sensor.volume.features import (
    BASE_WINDOW_S,
    FEATURES,
    IDX,
    LONG_WINDOW_S,
    WINDOWS_S,
    transform,
)
from sensor.volume.model import (
    Baseline,
    Forest,
    VolumeModel,
    WindowModel,
    save_model,
    spread,
)

Row = tuple[int, str, str, list[float]]  # window_s, client, service id, raw features

THRESHOLD_QUANTILE = 0.99
THRESHOLD_MARGIN = 0.0
PK_IDX = IDX["packets_client_to_server_per_min"]


def windows_from_flows(flows: Iterable[tuple[FlowRecord, ServiceRef, bool]]) -> list[Row]:
    """Window feature rows, computed by the run-time detector code itself."""
    det = VolumeDetector(None, VolumeSettings())
    for rec, svc, sanctioned in flows:
        det.on_flow(rec, svc, sanctioned)
    det.flush()
    return det.collected


def data_sha256(rows: list[Row]) -> str:
    h = hashlib.sha256("\x1f".join(FEATURES).encode())
    for w, c, s, x in rows:
        h.update(f"{w}\x1f{c}\x1f{s}\x1f".encode())
        h.update(np.asarray(x, dtype="<f8").tobytes())
    return h.hexdigest()


def export_forest(iforest: Any) -> Forest:
    """sklearn IsolationForest -> flat node arrays (feature ids in the full feature space)."""
    roots, feat, thr, left, right, ns = [], [], [], [], [], []
    off = 0
    depth = 0
    for est, cols in zip(iforest.estimators_, iforest.estimators_features_, strict=True):
        t = est.tree_
        n = t.node_count
        cl = np.asarray(t.children_left, dtype=np.int64)
        cr = np.asarray(t.children_right, dtype=np.int64)
        inner = cl >= 0
        f = np.where(inner, np.asarray(cols)[np.maximum(t.feature, 0)], 0)
        roots.append(off)
        feat.append(f)
        thr.append(np.where(inner, t.threshold, 0.0))
        left.append(np.where(inner, cl + off, -1))
        right.append(np.where(inner, cr + off, -1))
        ns.append(np.asarray(t.n_node_samples, dtype=np.float64))
        depth = max(depth, int(t.max_depth))
        off += n
    return Forest(np.array(roots, dtype=np.int64), np.concatenate(feat).astype(np.int64),
                  np.concatenate(thr).astype(np.float64), np.concatenate(left),
                  np.concatenate(right), np.concatenate(ns), int(iforest.max_samples_), depth)


def fit(rows: list[Row], seed: int = 7, trees: int = 100, max_samples: int = 256,
        baselines: bool = False, min_history: int = 12,
        min_packets: dict[int, int] | None = None) -> VolumeModel:
    """Fit one isolation forest per window length on the rows' busy windows."""
    if min_packets is None:
        d = VolumeSettings()
        min_packets = {BASE_WINDOW_S: d.min_packets_5min, LONG_WINDOW_S: d.min_packets_1h}
    from sklearn.ensemble import IsolationForest

    windows: dict[int, WindowModel] = {}
    for w in WINDOWS_S:
        x = np.array([r[3] for r in rows if r[0] == w], dtype=np.float64)
        # the population is the *busy* windows: quiet ones are never flagged (packet gate)
        gate = min_packets[w] / (w / 60.0)
        x = x[x[:, PK_IDX] >= gate] if x.size else x
        if x.shape[0] < 50:
            raise InputError(f"only {x.shape[0]} busy windows of {w} s to train on "
                             "(need >= 50)")
        z = transform(x)
        f = IsolationForest(n_estimators=trees, max_samples=min(max_samples, z.shape[0]),
                            random_state=seed).fit(z)
        forest = export_forest(f)
        scores = forest.score(z)
        thr = min(float(np.quantile(scores, THRESHOLD_QUANTILE)) + THRESHOLD_MARGIN, 0.99)
        med = np.median(z, axis=0)
        windows[w] = WindowModel(w, forest, thr, med, spread(z, med), int(z.shape[0]))
    bl: dict[tuple[int, str, str], Baseline] = {}
    if baselines:
        groups: dict[tuple[int, str, str], list[list[float]]] = {}
        for w, c, s, raw in rows:
            if raw[PK_IDX] >= min_packets[w] / (w / 60.0):  # busy windows, as at run time
                groups.setdefault((w, c, s), []).append(raw)
        for k, xs in groups.items():
            if len(xs) >= min_history:
                zb = transform(np.array(xs, dtype=np.float64))
                mb = np.median(zb, axis=0)
                bl[k] = Baseline(mb, spread(zb, mb), zb.max(axis=0), len(xs))
    return VolumeModel(windows, bl)


def train_to_dir(rows: list[Row], out: Path, name: str, source: dict[str, Any], seed: int = 7,
                 trees: int = 100, baselines: bool = False) -> Path:
    import sklearn

    model = fit(rows, seed=seed, trees=trees, baselines=baselines)
    extra = {
        "name": name,
        "sensor_version": __version__,
        "trainer": {"library": "scikit-learn", "library_version": sklearn.__version__,
                    "numpy_version": np.__version__, "algorithm": "IsolationForest",
                    "n_estimators": trees, "max_samples": 256, "random_state": seed,
                    "threshold_rule": f"quantile {THRESHOLD_QUANTILE} of training scores "
                                      f"+ {THRESHOLD_MARGIN}"},
        "training": {**source, "data_sha256": data_sha256(rows),
                     "windows": {str(w): model.windows[w].n_train for w in WINDOWS_S}},
    }
    return save_model(model, out, extra)
