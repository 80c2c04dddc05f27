"""The volume model as plain arrays: numpy scoring and msgpack file I/O (no pickle).

A model directory holds ``model.msgpack`` (the arrays) and ``manifest.json``
(feature names, versions, training data hash, thresholds, and the model
file's SHA-256). Loading checks the hash and every array's bounds before use,
so a tampered or hostile file is rejected with a one-line InputError and
scoring can never index out of range or loop.

Per window length the model holds an isolation forest (trees as node arrays:
feature, threshold, left, right, n_samples; sklearn's node order, children
after parents), the score threshold, and the population median and MAD of
each feature in model space (for explanations). Optional per-entity baselines
(median, MAD, count) come from a site's own history (``shadowai model train``).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import numpy.typing as npt

from sensor.errors import InputError
from sensor.volume.features import FEATURE_SET_VERSION, FEATURES, N_FEATURES, TRANSFORMS, WINDOWS_S

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

MODEL_FORMAT = "shadowai.volume-model"
MANIFEST_FORMAT = "shadowai.model-manifest"
MODEL_VERSION = 1
MODEL_FILE = "model.msgpack"
MANIFEST_FILE = "manifest.json"
_MAX_NODES = 2_000_000
_MAX_FILE = 64 * 1024 * 1024
_EULER = 0.5772156649015329


def avg_path_length(n: F64) -> F64:
    """c(n): average path length of an unsuccessful BST search (Liu et al. 2008)."""
    n = np.asarray(n, dtype=np.float64)
    out = np.zeros_like(n)
    two = n == 2
    big = n > 2
    out[two] = 1.0
    nb = n[big]
    out[big] = 2.0 * (np.log(nb - 1.0) + _EULER) - 2.0 * (nb - 1.0) / nb
    return out


@dataclass(frozen=True, slots=True)
class Forest:
    """An isolation forest, all trees in flat arrays (child -1 = leaf)."""

    roots: I64
    feature: I64
    threshold: F64
    left: I64
    right: I64
    n_samples: F64
    max_samples: int
    max_depth: int

    def path_lengths(self, x: F64) -> F64:
        """Mean over trees of the isolation depth of each row, as sklearn counts it."""
        m = x.shape[0]
        # sklearn splits on float32 features: compare the same rounded values
        x = x.astype(np.float32).astype(np.float64)
        node = np.broadcast_to(self.roots, (m, self.roots.shape[0])).copy()
        depth = np.zeros(node.shape, dtype=np.float64)
        rows = np.arange(m)[:, None]
        for _ in range(self.max_depth + 1):
            left = self.left[node]
            inner = left >= 0
            if not inner.any():
                break
            go_left = x[rows, self.feature[node]] <= self.threshold[node]
            node = np.where(inner, np.where(go_left, left, self.right[node]), node)
            depth += inner
        depth += avg_path_length(self.n_samples[node])
        return np.asarray(depth.mean(axis=1), dtype=np.float64)

    def score(self, x: F64) -> F64:
        """Anomaly score in (0, 1): 2^(-E[h(x)] / c(max_samples)); ~0.5 is ordinary."""
        if x.shape[0] == 0:
            return np.zeros(0)
        c = float(avg_path_length(np.array([float(self.max_samples)]))[0])
        return np.asarray(2.0 ** (-self.path_lengths(x) / c), dtype=np.float64)


@dataclass(frozen=True, slots=True)
class WindowModel:
    window_s: int
    forest: Forest
    threshold: float  # flag at or above this score
    pop_median: F64  # model space
    pop_mad: F64
    n_train: int


@dataclass(frozen=True, slots=True)
class Baseline:
    """One entity's busy windows in model space: median, spread (MAD), maximum, count."""

    median: F64
    mad: F64
    high: F64
    n: int


def spread(z: F64, med: F64) -> F64:
    """Per column: the MAD, or 0.8 x the mean absolute deviation where that is larger
    (most values equal: MAD = 0), of rows ``z`` around their median ``med``."""
    dev = np.abs(z - med)
    return np.asarray(np.maximum(np.median(dev, axis=0), 0.8 * dev.mean(axis=0)),
                      dtype=np.float64)


@dataclass(slots=True)
class VolumeModel:
    windows: dict[int, WindowModel]
    baselines: dict[tuple[int, str, str], Baseline] = field(default_factory=dict)
    manifest: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


# -- writing ------------------------------------------------------------------

def _arr(a: npt.NDArray[Any], dtype: str) -> bytes:
    return np.ascontiguousarray(a, dtype=np.dtype(dtype)).tobytes()


def model_to_obj(model: VolumeModel) -> dict[str, Any]:
    wins: dict[str, Any] = {}
    for w, wm in sorted(model.windows.items()):
        f = wm.forest
        wins[str(w)] = {
            "roots": _arr(f.roots, "<i4"), "feature": _arr(f.feature, "<i4"),
            "threshold": _arr(f.threshold, "<f8"), "left": _arr(f.left, "<i4"),
            "right": _arr(f.right, "<i4"), "n_samples": _arr(f.n_samples, "<f8"),
            "max_samples": f.max_samples, "max_depth": f.max_depth,
            "threshold_score": wm.threshold, "n_train": wm.n_train,
            "pop_median": [float(v) for v in wm.pop_median],
            "pop_mad": [float(v) for v in wm.pop_mad],
        }
    bl = [[w, c, s, [float(v) for v in b.median], [float(v) for v in b.mad],
           [float(v) for v in b.high], b.n] for (w, c, s), b in sorted(model.baselines.items())]
    return {"format": MODEL_FORMAT, "version": MODEL_VERSION,
            "feature_set_version": FEATURE_SET_VERSION, "feature_names": list(FEATURES),
            "transforms": list(TRANSFORMS), "windows": wins, "baselines": bl}


def save_model(model: VolumeModel, directory: Path, manifest_extra: dict[str, Any]) -> Path:
    """Write model.msgpack and manifest.json into ``directory``; returns the manifest path."""
    directory.mkdir(parents=True, exist_ok=True)
    data = msgpack.packb(model_to_obj(model), use_bin_type=True)
    (directory / MODEL_FILE).write_bytes(data)
    manifest: dict[str, Any] = {
        "format": MANIFEST_FORMAT, "version": MODEL_VERSION,
        "model_file": MODEL_FILE, "model_sha256": hashlib.sha256(data).hexdigest(),
        "model_format": MODEL_FORMAT, "feature_set_version": FEATURE_SET_VERSION,
        "feature_names": list(FEATURES), "transforms": list(TRANSFORMS),
        "windows_s": sorted(model.windows),
        "thresholds": {str(w): wm.threshold for w, wm in sorted(model.windows.items())},
        "entity_baselines": len(model.baselines),
        **manifest_extra,
    }
    path = directory / MANIFEST_FILE
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


# -- reading ------------------------------------------------------------------

def _bad(where: Path, msg: str) -> InputError:
    return InputError(f"{where}: {msg}")


def _vec(where: Path, v: Any, what: str) -> F64:
    if not isinstance(v, list) or len(v) != N_FEATURES:
        raise _bad(where, f"{what} must hold {N_FEATURES} numbers")
    try:
        a = np.array([float(x) for x in v], dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise _bad(where, f"{what}: {e}") from e
    if not np.isfinite(a).all():
        raise _bad(where, f"{what} holds a non-finite number")
    return a


def _buf(where: Path, obj: dict[str, Any], key: str, dtype: str) -> npt.NDArray[Any]:
    b = obj.get(key)
    size = np.dtype(dtype).itemsize
    if not isinstance(b, bytes) or len(b) % size or len(b) // size > _MAX_NODES:
        raise _bad(where, f"forest array {key!r} is missing or malformed")
    return np.frombuffer(b, dtype=np.dtype(dtype))


def _forest(where: Path, obj: Any) -> tuple[Forest, dict[str, Any]]:
    if not isinstance(obj, dict):
        raise _bad(where, "window entry is not a map")
    roots = _buf(where, obj, "roots", "<i4").astype(np.int64)
    feat = _buf(where, obj, "feature", "<i4").astype(np.int64)
    thr = _buf(where, obj, "threshold", "<f8").astype(np.float64)
    left = _buf(where, obj, "left", "<i4").astype(np.int64)
    right = _buf(where, obj, "right", "<i4").astype(np.int64)
    ns = _buf(where, obj, "n_samples", "<f8").astype(np.float64)
    n = feat.shape[0]
    if not (n and thr.shape[0] == left.shape[0] == right.shape[0] == ns.shape[0] == n):
        raise _bad(where, "forest arrays differ in length")
    if roots.size == 0 or roots.min() < 0 or roots.max() >= n:
        raise _bad(where, "forest root out of range")
    idx = np.arange(n)
    inner = left >= 0
    # children after their parent (sklearn's depth-first order): traversal always ends
    if ((left[inner] <= idx[inner]) | (left[inner] >= n) | (right[inner] <= idx[inner])
            | (right[inner] >= n)).any() or (right[~inner] >= 0).any():
        raise _bad(where, "forest child index out of range")
    if ((feat[inner] < 0) | (feat[inner] >= N_FEATURES)).any():
        raise _bad(where, "forest feature index out of range")
    if not np.isfinite(thr[inner]).all() or not np.isfinite(ns).all() or (ns < 0).any():
        raise _bad(where, "forest holds a non-finite threshold or count")
    feat = np.where(inner, feat, 0)  # leaves: any valid column, never used
    ms, md = obj.get("max_samples"), obj.get("max_depth")
    if not isinstance(ms, int) or not 2 <= ms <= 1_000_000 or not isinstance(md, int) \
            or not 0 <= md <= 64:
        raise _bad(where, "forest max_samples/max_depth out of range")
    return Forest(roots, feat, thr, left, right, ns, ms, md), obj


def model_from_bytes(data: bytes, where: Path) -> VolumeModel:
    try:
        obj = msgpack.unpackb(data, raw=False, strict_map_key=False, use_list=True)
    except Exception as e:  # msgpack raises several unrelated types on bad input
        raise _bad(where, f"not a msgpack model file ({type(e).__name__})") from e
    if not isinstance(obj, dict) or obj.get("format") != MODEL_FORMAT:
        raise _bad(where, "not a shadowai volume model")
    if obj.get("version") != MODEL_VERSION:
        raise _bad(where, f"unknown model version {obj.get('version')!r} "
                          f"(this sensor reads version {MODEL_VERSION})")
    if obj.get("feature_names") != list(FEATURES) or obj.get("transforms") != list(TRANSFORMS) \
            or obj.get("feature_set_version") != FEATURE_SET_VERSION:
        raise _bad(where, "model features do not match this sensor's feature set "
                          f"v{FEATURE_SET_VERSION}; retrain it with `shadowai model train`")
    wins = obj.get("windows")
    if not isinstance(wins, dict) or not wins:
        raise _bad(where, "model has no windows")
    windows: dict[int, WindowModel] = {}
    for key, wobj in wins.items():
        try:
            w = int(key)
        except (TypeError, ValueError) as e:
            raise _bad(where, f"bad window {key!r}") from e
        if w not in WINDOWS_S:
            raise _bad(where, f"window {w} s is not one of {WINDOWS_S}")
        forest, raw = _forest(where, wobj)
        thr = raw.get("threshold_score")
        if not isinstance(thr, float | int) or not 0.0 < float(thr) < 1.0:
            raise _bad(where, f"window {w}: threshold_score must be in (0, 1)")
        mad = _vec(where, raw.get("pop_mad"), "pop_mad")
        windows[w] = WindowModel(w, forest, float(thr), _vec(where, raw.get("pop_median"),
                                 "pop_median"), mad, int(raw.get("n_train", 0) or 0))
    baselines: dict[tuple[int, str, str], Baseline] = {}
    bl = obj.get("baselines", [])
    if not isinstance(bl, list):
        raise _bad(where, "baselines must be a list")
    for row in bl:
        if not (isinstance(row, list) and len(row) == 7 and isinstance(row[0], int)
                and isinstance(row[1], str) and isinstance(row[2], str)
                and isinstance(row[6], int) and row[6] >= 0):
            raise _bad(where, "malformed entity baseline")
        baselines[(row[0], row[1], row[2])] = Baseline(
            _vec(where, row[3], "baseline median"), _vec(where, row[4], "baseline mad"),
            _vec(where, row[5], "baseline high"), row[6])
    return VolumeModel(windows, baselines)


def load_model(directory: Path) -> VolumeModel:
    """Load a model directory, checking the manifest, the file hash and the version."""
    mpath = directory / MANIFEST_FILE
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except OSError as e:
        raise _bad(mpath, f"cannot read model manifest: {e.strerror}") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise _bad(mpath, "model manifest is not JSON") from e
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise _bad(mpath, "not a shadowai model manifest")
    if manifest.get("version") != MODEL_VERSION:
        raise _bad(mpath, f"unknown model version {manifest.get('version')!r} "
                          f"(this sensor reads version {MODEL_VERSION})")
    fname = manifest.get("model_file")
    if not isinstance(fname, str) or not fname or "/" in fname or "\\" in fname \
            or fname.startswith("."):
        raise _bad(mpath, "model_file must be a plain file name in the model directory")
    fpath = directory / fname
    try:
        with fpath.open("rb") as fh:
            data = fh.read(_MAX_FILE + 1)
    except OSError as e:
        raise _bad(fpath, f"cannot read model file: {e.strerror}") from e
    if len(data) > _MAX_FILE:
        raise _bad(fpath, f"model file larger than {_MAX_FILE} bytes")
    digest = hashlib.sha256(data).hexdigest()
    if digest != manifest.get("model_sha256"):
        raise _bad(fpath, "SHA-256 does not match the manifest (file modified or corrupt)")
    model = model_from_bytes(data, fpath)
    for w, wm in model.windows.items():
        t = manifest.get("thresholds", {}).get(str(w)) if isinstance(
            manifest.get("thresholds"), dict) else None
        if not isinstance(t, float | int) or not math.isclose(float(t), wm.threshold):
            raise _bad(mpath, f"manifest threshold for window {w} s disagrees with the model")
    model.manifest = manifest
    model.path = directory
    return model


def default_model_dir() -> Path:
    """``$SHADOWAI_MODEL`` if set, else the checkout's ``<repo>/models/default``."""
    import os

    env = os.environ.get("SHADOWAI_MODEL")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "models" / "default"
