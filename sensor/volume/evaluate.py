"""Evaluation scenarios (synthetic, deterministic) and their detection figures.

Used by ``shadowai model evaluate`` and bench/extraction_eval.py. Every
scenario is a normal office day plus at most one special behaviour; the
scenario seed differs from the default model's training seed.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sensor.volume import synth
from sensor.volume.detector import (
    BulkUploadFinding,
    ExtractionFinding,
    VolumeDetector,
    VolumeSettings,
)
from sensor.volume.model import VolumeModel

SUSPECT = "10.1.9.66"
BATCH_HOST = "10.1.5.20"


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    description: str
    days: int  # the last day is evaluated; earlier days are the site's history
    extra: Callable[[random.Random, float, bool], list[tuple[synth._Conn, str, bool]]] | None
    expect: str  # "extraction" | "bulk_upload" | "none"
    baselined: bool = False  # train a site model (with entity baselines) on the history days


def _one(kind: str) -> Callable[[random.Random, float, bool], list[tuple[synth._Conn, str, bool]]]:
    def extra(r: random.Random, day_s: float, last: bool) -> list[tuple[synth._Conn, str, bool]]:
        if kind == "fast" and last:
            return [(c, "extraction", False) for c in synth.extraction_fast(
                r, SUSPECT, "openai-api", day_s + 14 * 3600)]
        if kind == "slow" and last:
            return [(c, "extraction", False) for c in synth.extraction_slow(
                r, SUSPECT, "anthropic-api", day_s + 20 * 3600, hours=6.0, period_s=20.0)]
        if kind == "slow_pooled" and last:
            return [(c, "extraction", False) for c in synth.extraction_slow_keepalive(
                r, SUSPECT, "openai-api", day_s + 11 * 3600, hours=6.0, period_s=15.0)]
        if kind == "batch_sanctioned" and last:
            return [(c, "batch", True) for c in synth.batch_job(
                r, BATCH_HOST, "openai-api", day_s + 2 * 3600)]
        if kind == "batch_baselined":
            return [(c, "batch", False) for c in synth.batch_job(
                r, BATCH_HOST, "openai-api", day_s + 2 * 3600 + r.uniform(0, 600))]
        if kind == "bulk" and last:
            return [(c, "upload", False) for c in synth.bulk_uploads(
                r, "10.1.0.12", "chatgpt", day_s + 15 * 3600)]
        return []
    return extra


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("normal", "office day: 12 people chatting (ChatGPT/Claude), 4 developers "
             "(Copilot, API scripts, chat)", 1, None, "none"),
    Scenario("extraction_fast", "normal day + scripted loop: 8 pooled connections, ~12 "
             "queries/s for 45 min to the OpenAI API", 1, _one("fast"), "extraction"),
    Scenario("extraction_slow", "normal day + slow-and-steady loop: a new connection every "
             "~20 s for 6 h (20:00-02:00) to the Anthropic API", 1, _one("slow"), "extraction"),
    Scenario("extraction_slow_pooled", "normal day + slow loop on one pooled connection: a "
             "query every ~15 s for 6 h during working hours", 1, _one("slow_pooled"),
             "extraction"),
    Scenario("batch_sanctioned", "normal day + nightly embeddings batch job (8 workers, "
             "~30 req/s, 25 min) on a sanctioned OpenAI API", 1, _one("batch_sanctioned"),
             "none"),
    Scenario("batch_baselined", "the same batch job, not sanctioned, after a site model was "
             "trained on the 7 previous days (history includes the job)", 8,
             _one("batch_baselined"), "none", baselined=True),
    Scenario("bulk_upload", "normal day + a user uploading 35, 80 and 12 MB documents to "
             "ChatGPT", 1, _one("bulk"), "bulk_upload"),
)


def scenario_flows(sc: Scenario, seed: int) -> list[synth.SynthFlow]:
    def special(r: random.Random, day_s: float) -> list[tuple[synth._Conn, str, bool]]:
        assert sc.extra is not None
        return sc.extra(r, day_s, int(day_s // 86400) == sc.days - 1)

    builders: list[synth.Builder] = [synth.office()]
    if sc.extra is not None:
        builders.append(special)
    return synth.generate(builders, seed, sc.days)


@dataclass(slots=True)
class Result:
    scenario: str
    expect: str
    flows: int
    entities: int
    windows_scored: int
    detected: bool
    extraction_findings: int
    false_extraction_findings: int
    bulk_upload_findings: int
    first_detection_s: float | None  # special behaviour's first flow -> end of the first
    # flagged window (the decision itself comes lateness_s later)
    top_score: float | None
    severity: str | None
    seconds: float
    us_per_flow: float
    findings: list[dict[str, Any]] = field(default_factory=list)


def run_scenario(sc: Scenario, model: VolumeModel, seed: int = 1001,
                 settings: VolumeSettings | None = None) -> Result:
    flows = scenario_flows(sc, seed)
    day_start = synth.DAY0_NS + (sc.days - 1) * 86400 * synth.NS
    history = [f for f in flows if f.rec.first_ns < day_start]
    today = [f for f in flows if f.rec.first_ns >= day_start]
    if sc.baselined:
        from sensor.volume.train import fit, windows_from_flows

        rows = windows_from_flows((f.rec, f.service, f.sanctioned) for f in history)
        model = fit(rows, baselines=True)
    det = VolumeDetector(model, settings)
    t0 = time.perf_counter()
    for f in today:
        det.on_flow(f.rec, f.service, f.sanctioned)
    det.flush()
    found = det.findings()
    dt = time.perf_counter() - t0
    special = [f for f in today if f.label in ("extraction", "batch", "upload")]
    suspects = {(f.rec.client_ip, f.service.id) for f in special if f.label == "extraction"}
    xs = [f for f in found if isinstance(f, ExtractionFinding)]
    bulk = [f for f in found if isinstance(f, BulkUploadFinding)]
    hit = [f for f in xs if (f.client_ip, f.service.id) in suspects]
    false = [f for f in xs if (f.client_ip, f.service.id) not in suspects]
    if sc.expect == "extraction":
        detected = bool(hit) and len(hit) == len(suspects)
    elif sc.expect == "bulk_upload":
        detected = bool(bulk)
    else:
        detected = not xs
    first_s = None
    if hit and special:
        t_first = min(f.rec.first_ns for f in special)
        # a window is decided when it closes: its end plus the lateness allowance
        first_s = max(0.0, (min(h.first_flag_end_ns for h in hit) - t_first) / 1e9)
    best = max(xs, key=lambda f: f.score) if xs else None
    return Result(sc.name, sc.expect, len(today), len(det._ents),
                  sum(det.windows_scored.values()), detected, len(xs), len(false), len(bulk),
                  first_s, best.score if best else None, best.severity if best else None,
                  dt, 1e6 * dt / max(len(today), 1), [f.to_dict() for f in found])


def run_all(model: VolumeModel, seed: int = 1001) -> list[Result]:
    return [run_scenario(sc, model, seed) for sc in SCENARIOS]


def table(results: list[Result]) -> str:
    head = ("scenario", "expect", "flows", "windows", "extraction findings", "false alarms",
            "bulk_upload", "detected", "first flag after", "top score", "severity")
    rows = [head]
    for r in results:
        rows.append((r.scenario, r.expect, str(r.flows), str(r.windows_scored),
                     str(r.extraction_findings), str(r.false_extraction_findings),
                     str(r.bulk_upload_findings), "yes" if r.detected else "NO",
                     f"{r.first_detection_s / 60:.0f} min" if r.first_detection_s is not None
                     else "-",
                     f"{r.top_score:.3f}" if r.top_score is not None else "-",
                     r.severity or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
             for r in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


__all__ = ["SCENARIOS", "Result", "Scenario", "run_all", "run_scenario", "scenario_flows",
           "table"]
