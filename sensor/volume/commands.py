"""``shadowai model train`` and ``shadowai model evaluate``.

scikit-learn is imported only inside ``train`` (the ``train`` extra).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from sensor.errors import InputError
from sensor.findings import ServiceRef
from sensor.flows import FlowRecord
from sensor.volume.detector import VolumeDetector, VolumeSettings
from sensor.volume.features import FlowRow, read_feature_rows, read_flows
from sensor.volume.model import default_model_dir, load_model


def _records(paths: tuple[Path, ...]) -> list[tuple[FlowRecord, ServiceRef, bool]]:
    rows: list[FlowRow] = []
    for p in paths:
        try:
            fh = p.open(encoding="utf-8")
        except OSError as e:
            raise InputError(f"{p}: {e.strerror}") from e
        with fh:
            rows.extend(read_flows(fh, str(p)))
    rows.sort(key=lambda r: r.last_ns)  # the order a flow table would export them in
    out = []
    for i, r in enumerate(rows):
        rec = FlowRecord(i, 6, r.client_ip, 0, "", 0, 0, None, r.first_ns, r.last_ns,
                         r.packets_client_to_server, r.packets_server_to_client,
                         r.bytes_client_to_server, r.bytes_server_to_client, "end")
        out.append((rec, ServiceRef(r.service_id, r.service_id, "", ""), r.sanctioned))
    return out


model = click.Group("model", help="Train and evaluate the extraction-volume anomaly model.")


@model.command("train")
@click.option("--flows", "flow_files", multiple=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Attributed flows as JSON Lines (schema shadowai.flow/v1; repeatable).")
@click.option("--features", "feature_files", multiple=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Window features as JSON Lines ({window_s, features}; repeatable).")
@click.option("--synthetic", is_flag=True,
              help="Train on the deterministic synthetic office traffic (the default model).")
@click.option("--seed", type=int, default=7, show_default=True,
              help="Generator seed (with --synthetic) and forest random_state.")
@click.option("--days", type=click.IntRange(1, 60), default=5, show_default=True,
              help="Days of synthetic traffic.")
@click.option("--trees", type=click.IntRange(10, 1000), default=100, show_default=True)
@click.option("--baselines/--no-baselines", default=None,
              help="Store per-(client, service) baselines (default: on for --flows).")
@click.option("-o", "--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Model directory to write (model.msgpack + manifest.json).")
@click.option("--name", default=None, help="Model name in the manifest (default: dir name).")
def train_cmd(flow_files: tuple[Path, ...], feature_files: tuple[Path, ...], synthetic: bool,
              seed: int, days: int, trees: int, baselines: bool | None, out: Path,
              name: str | None) -> None:
    """Fit a model from a site's flows (or window features, or synthetic traffic)."""
    try:
        from sensor.volume import train
    except ImportError as e:  # pragma: no cover - depends on the install
        click.echo(f"shadowai: model train needs scikit-learn (pip install "
                   f"'shadowai-sensor[train]'): {e}", err=True)
        sys.exit(1)
    try:
        if sum(map(bool, (flow_files, feature_files, synthetic))) != 1:
            raise click.UsageError("give exactly one of --flows, --features, --synthetic")
        if synthetic:
            from sensor.volume import synth

            fl = synth.training_flows(seed, days)
            rows = train.windows_from_flows((f.rec, f.service, f.sanctioned) for f in fl)
            source = {"source": "synthetic", "generator": "sensor.volume.synth.training_flows",
                      "seed": seed, "days": days, "flows": len(fl)}
        elif flow_files:
            recs = _records(flow_files)
            rows = train.windows_from_flows(recs)
            source = {"source": "flows", "files": [p.name for p in flow_files],
                      "flows": len(recs)}
        else:
            rows = []
            for p in feature_files:
                for w, xs in read_feature_rows(p).items():
                    rows += [(w, "", "", x) for x in xs]
            source = {"source": "features", "files": [p.name for p in feature_files]}
        use_bl = bool(flow_files) if baselines is None else baselines
        path = train.train_to_dir(rows, out, name or out.name, source, seed=seed, trees=trees,
                                  baselines=use_bl)
    except InputError as e:
        click.echo(f"shadowai: {e}", err=True)
        sys.exit(1)
    man = json.loads(path.read_text(encoding="utf-8"))
    click.echo(f"wrote {out} ({man['training']['windows']} windows, thresholds "
               f"{man['thresholds']}, model sha256 {man['model_sha256'][:16]}...)", err=True)


@model.command("evaluate")
@click.argument("flow_files", nargs=-1, type=click.Path(exists=True, dir_okay=False,
                                                        path_type=Path))
@click.option("-m", "--model", "model_dir", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="Model directory (default: $SHADOWAI_MODEL or models/default).")
@click.option("--seed", type=int, default=1001, show_default=True,
              help="Scenario seed (without FLOW_FILES).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, allow_dash=True), default=None,
              help="Write the findings as JSON Lines here.")
def evaluate_cmd(flow_files: tuple[Path, ...], model_dir: Path | None, seed: int,
                 output: str | None) -> None:
    """Score FLOW_FILES (flows JSON Lines) with a model, or, without files, run the
    synthetic evaluation scenarios and print the detection table."""
    try:
        m = load_model(model_dir or default_model_dir())
        if flow_files:
            det = VolumeDetector(m, VolumeSettings())
            for rec, svc, sanctioned in _records(flow_files):
                det.on_flow(rec, svc, sanctioned)
            det.flush()
            dicts = [f.to_dict() for f in det.findings()]
            for d in dicts:
                v = d.get("volume") or d.get("upload") or {}
                click.echo(f"{d['type']:<18} {d['severity']:<8} {d['client']['ip']:<16} "
                           f"{d['service']['id']:<20} {v.get('score', '')}")
            click.echo(f"{len(dicts)} findings, {sum(det.windows_scored.values())} windows "
                       "scored", err=True)
        else:
            from sensor.volume.evaluate import run_all, table

            res = run_all(m, seed)
            click.echo(table(res))
            dicts = [d for r in res for d in r.findings]
    except InputError as e:
        click.echo(f"shadowai: {e}", err=True)
        sys.exit(1)
    if output:
        with click.open_file(output, "w", encoding="utf-8") as fh:
            for d in dicts:
                fh.write(json.dumps(d, separators=(",", ":")) + "\n")
