"""Training: reproducible default model, site baselines, the `model` commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from sensor.volume import evaluate, synth
from sensor.volume.commands import model as model_group
from sensor.volume.detector import EXTRACTION, VolumeDetector
from sensor.volume.features import flow_to_dict
from sensor.volume.model import MANIFEST_FILE, MODEL_FILE, default_model_dir, load_model

pytest.importorskip("sklearn")

from sensor.volume.train import data_sha256, fit, windows_from_flows


@pytest.fixture(scope="module")
def batch_history():
    sc = next(s for s in evaluate.SCENARIOS if s.name == "batch_baselined")
    flows = evaluate.scenario_flows(sc, 1001)
    last_day = synth.DAY0_NS + (sc.days - 1) * 86400 * synth.NS
    return ([f for f in flows if f.rec.first_ns < last_day],
            [f for f in flows if f.rec.first_ns >= last_day])


def test_site_baseline_quiets_a_known_job_but_not_a_change(batch_history) -> None:
    history, today = batch_history
    m = fit(windows_from_flows((f.rec, f.service, f.sanctioned) for f in history),
            baselines=True)
    assert any(k[1] == evaluate.BATCH_HOST for k in m.baselines)
    det = VolumeDetector(m)
    for f in today:
        det.on_flow(f.rec, f.service, f.sanctioned)
    det.flush()
    assert [f for f in det.findings() if f.type == EXTRACTION] == []
    # the same host now pulls 10x the usual volume: far above its own baseline
    det = VolumeDetector(m)
    for f in today:
        r = f.rec
        if f.label == "batch":
            r = type(r)(**{k: getattr(r, k) for k in r.__slots__})
            r.packets_client_to_server *= 10
            r.packets_server_to_client *= 10
            r.bytes_client_to_server *= 10
            r.bytes_server_to_client *= 10
        det.on_flow(r, f.service, f.sanctioned)
    det.flush()
    hits = [f for f in det.findings() if f.type == EXTRACTION]
    assert [h.client_ip for h in hits] == [evaluate.BATCH_HOST]
    assert hits[0].baseline == "site-model"
    assert all("entity_z" in c for c in hits[0].contributions)


def test_default_model_is_reproducible(tmp_path: Path) -> None:
    """Same generator seed -> same training data hash as the shipped manifest."""
    man = json.loads((default_model_dir() / MANIFEST_FILE).read_text())
    t = man["training"]
    rows = windows_from_flows((f.rec, f.service, f.sanctioned)
                              for f in synth.training_flows(t["seed"], t["days"]))
    assert data_sha256(rows) == t["data_sha256"]


def test_cli_train_from_flows_then_evaluate(tmp_path: Path, batch_history) -> None:
    history, _ = batch_history
    fl = tmp_path / "flows.jsonl"
    with fl.open("w") as fh:
        for f in history:
            r = f.rec
            fh.write(json.dumps(flow_to_dict(
                r.client_ip, f.service.id, r.first_ns, r.last_ns, r.packets_client_to_server,
                r.packets_server_to_client, r.bytes_client_to_server, r.bytes_server_to_client,
                f.sanctioned)) + "\n")
    out = tmp_path / "site"
    res = CliRunner().invoke(model_group, ["train", "--flows", str(fl), "-o", str(out),
                                           "--trees", "30"])
    assert res.exit_code == 0, res.output
    m = load_model(out)
    assert m.manifest["training"]["source"] == "flows" and m.baselines
    res = CliRunner().invoke(model_group, ["evaluate", "-m", str(out), str(fl)])
    assert res.exit_code == 0, res.output
    assert EXTRACTION not in res.stdout  # its own history is not anomalous to it
    # tampering: one-line error, exit 1
    (out / MODEL_FILE).write_bytes((out / MODEL_FILE).read_bytes() + b"\x00")
    res = CliRunner().invoke(model_group, ["evaluate", "-m", str(out), str(fl)])
    assert res.exit_code == 1
    assert res.output.strip().count("\n") == 0 and "SHA-256" in res.output


def test_cli_train_needs_one_source(tmp_path: Path) -> None:
    res = CliRunner().invoke(model_group, ["train", "-o", str(tmp_path / "x")])
    assert res.exit_code == 2 and "exactly one of" in res.output
