#!/usr/bin/env python3
"""Evaluate the extraction-volume model on the synthetic scenarios, and measure its cost.

    python bench/extraction_eval.py [--model models/default] [--seeds 1001,1002,1003]
                                    [--capture CAPTURE.pcap] [--json OUT.json]

1. Detection table per scenario (sensor/volume/evaluate.py), for each seed:
   extraction findings, false alarms, bulk_upload findings, detected yes/NO.
2. Detector cost per flow on the scenario flows (on_flow + window scoring + findings).
3. With --capture (e.g. from bench/gen_capture.py): the hunt pipeline timed (CPU s) with and
   without the detector on every attributed flow (best of 2 runs each), giving the
   overhead in percent of hunt time.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sensor.volume.detector import VolumeDetector
from sensor.volume.evaluate import SCENARIOS, run_scenario, scenario_flows, table
from sensor.volume.model import default_model_dir, load_model


def cost_per_flow(model, seed: int) -> tuple[int, float]:
    flows = [f for sc in SCENARIOS if sc.days == 1 for f in scenario_flows(sc, seed)]
    best = float("inf")
    for _ in range(3):
        det = VolumeDetector(model)
        t = time.process_time()
        for f in flows:
            det.on_flow(f.rec, f.service, f.sanctioned)
        det.flush()
        det.findings()
        best = min(best, time.process_time() - t)
    return len(flows), best / len(flows)


class _Timed:
    """The detector behind a stopwatch: the pipeline calls it like any FlowDetector."""

    def __init__(self, det: VolumeDetector) -> None:
        self.det = det
        self.spent = 0.0
        self.flows = 0

    def on_flow(self, rec, service, sanctioned) -> None:  # type: ignore[no-untyped-def]
        t = time.process_time()
        self.det.on_flow(rec, service, sanctioned)
        self.spent += time.process_time() - t
        self.flows += 1

    def findings(self):  # type: ignore[no-untyped-def]
        t = time.process_time()
        out = self.det.findings()
        self.spent += time.process_time() - t
        return out


def hunt_overhead(capture: Path, model) -> dict[str, float]:
    from sensor.catalog.index import Catalog, default_signature_dir
    from sensor.config import Settings
    from sensor.detect.credentials import http_detectors
    from sensor.pipeline import Pipeline
    from sensor.sources.capture import open_capture

    catalog = Catalog.load([default_signature_dir()])

    def run(with_detector: bool) -> tuple[float, int, float]:
        timed = _Timed(VolumeDetector(model))
        dets = [*http_detectors(), timed] if with_detector else http_detectors()
        pipe = Pipeline(Settings(), catalog, detectors=dets)
        t0 = time.process_time()
        with open_capture(capture) as r:
            for b in r.batches(32768):
                pipe.feed(b)
        pipe.finish()
        return time.process_time() - t0, timed.flows, timed.spent

    base = min(run(False)[0] for _ in range(2))
    runs = [run(True) for _ in range(2)]
    best = min(runs, key=lambda x: x[2])
    return {"hunt_s": base, "hunt_with_detector_s": min(r[0] for r in runs),
            "attributed_flows": best[1], "detector_s": best[2],
            "detector_share_pct": 100 * best[2] / base,
            "detector_us_per_flow": 1e6 * best[2] / max(best[1], 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--seeds", default="1001,1002,1003")
    ap.add_argument("--capture", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    model = load_model(a.model or default_model_dir())
    out: dict[str, object] = {"model_sha256": model.manifest.get("model_sha256")}
    all_ok = True
    for seed in [int(s) for s in a.seeds.split(",")]:
        res = [run_scenario(sc, model, seed) for sc in SCENARIOS]
        print(f"seed {seed}")
        print(table(res))
        print()
        all_ok &= all(r.detected for r in res if r.scenario != "extraction_slow_pooled")
        out[f"seed_{seed}"] = [{k: getattr(r, k) for k in r.__slots__ if k != "findings"}
                               for r in res]
    n, per = cost_per_flow(model, int(a.seeds.split(",")[0]))
    print(f"detector cost: {1e6 * per:.1f} us per flow over {n} scenario flows "
          "(on_flow + window scoring + findings)")
    out["us_per_flow"] = 1e6 * per
    if a.capture:
        h = hunt_overhead(a.capture, model)
        print(f"hunt {h['hunt_s']:.2f} s without, {h['hunt_with_detector_s']:.2f} s with the "
              f"detector; {h['attributed_flows']} attributed flows; detector "
              f"{h['detector_s'] * 1e3:.1f} ms = {h['detector_share_pct']:.2f} % of hunt time "
              f"({h['detector_us_per_flow']:.1f} us per flow)")
        out["hunt"] = h
    if a.json:
        a.json.write_text(json.dumps(out, indent=2, default=str))
    sys.exit(0 if all_ok else 1)


if __name__ == "__main__":
    main()
