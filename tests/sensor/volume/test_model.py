"""Model file I/O: no pickle, hash and version checks, numpy scoring equals sklearn."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sensor.errors import InputError
from sensor.volume.features import N_FEATURES
from sensor.volume.model import MANIFEST_FILE, MODEL_FILE, default_model_dir, load_model

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    d = tmp_path / "m"
    shutil.copytree(default_model_dir(), d)
    return d


def test_default_model_loads_and_scores() -> None:
    m = load_model(default_model_dir())
    assert set(m.windows) == {300, 3600}
    x = np.zeros((3, N_FEATURES))
    s = m.windows[300].forest.score(x)
    assert s.shape == (3,) and ((s > 0) & (s < 1)).all()
    assert m.manifest["training"]["seed"] == 7


def test_tampered_model_file_rejected(model_dir: Path) -> None:
    p = model_dir / MODEL_FILE
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0x01
    p.write_bytes(bytes(data))
    with pytest.raises(InputError, match="SHA-256 does not match") as e:
        load_model(model_dir)
    assert "\n" not in str(e.value)


def test_unknown_version_rejected(model_dir: Path) -> None:
    mp = model_dir / MANIFEST_FILE
    man = json.loads(mp.read_text())
    man["version"] = 99
    mp.write_text(json.dumps(man))
    with pytest.raises(InputError, match="unknown model version 99"):
        load_model(model_dir)


def test_manifest_threshold_must_agree(model_dir: Path) -> None:
    mp = model_dir / MANIFEST_FILE
    man = json.loads(mp.read_text())
    man["thresholds"]["300"] = 0.99
    mp.write_text(json.dumps(man))
    with pytest.raises(InputError, match="disagrees"):
        load_model(model_dir)


def test_hostile_model_with_valid_hash_rejected(model_dir: Path) -> None:
    import hashlib

    import msgpack

    p = model_dir / MODEL_FILE
    obj = msgpack.unpackb(p.read_bytes(), raw=False, strict_map_key=False)
    left = np.frombuffer(obj["windows"]["300"]["left"], dtype="<i4").copy()
    i = int(np.flatnonzero(left >= 0)[0])
    left[i] = i  # a cycle
    obj["windows"]["300"]["left"] = left.tobytes()
    data = msgpack.packb(obj, use_bin_type=True)
    p.write_bytes(data)
    mp = model_dir / MANIFEST_FILE
    man = json.loads(mp.read_text())
    man["model_sha256"] = hashlib.sha256(data).hexdigest()
    mp.write_text(json.dumps(man))
    with pytest.raises(InputError, match="child index"):
        load_model(model_dir)


def test_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read model manifest"):
        load_model(tmp_path)


def test_numpy_scores_equal_sklearn() -> None:
    pytest.importorskip("sklearn")
    from sklearn.ensemble import IsolationForest

    from sensor.volume.train import export_forest

    rng = np.random.default_rng(3)
    x = rng.lognormal(size=(400, N_FEATURES))
    f = IsolationForest(n_estimators=30, random_state=1).fit(x)
    y = np.vstack([x[:50], rng.lognormal(3, 2, size=(50, N_FEATURES))])
    np.testing.assert_allclose(export_forest(f).score(y), -f.score_samples(y), rtol=1e-12)


def test_detector_import_does_not_import_sklearn_or_pickle_model() -> None:
    code = ("import sys; import sensor.volume.detector, sensor.volume.commands; "
            "from sensor.volume.model import load_model, default_model_dir; "
            "load_model(default_model_dir()); "
            "print(any(m == 'sklearn' or m.startswith('sklearn.') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "False"


def test_no_pickle_in_model_code() -> None:
    for name in ("model.py", "detector.py", "features.py"):
        src = (REPO / "sensor" / "volume" / name).read_text()
        assert "pickle" not in src.replace("no pickle", "").replace("without pickle", "")
