#!/usr/bin/env python3
"""Time the HTTP hot paths of ``shadowai hunt`` in isolation.

    python bench/http_bench.py record REC CAPTURE...   # hunt each CAPTURE, record HTTP inputs
    python bench/http_bench.py run REC [--rounds 5]    # replay them, print best-of-N timings

``record`` runs the real hunt with ``HttpConversation`` and the HTTP detectors
wrapped: it keeps every segment fed to each conversation (from_client, seq,
payload, ts) and its flushes, and every ``http.exchange`` observation given
to the detectors, pickled to REC (a bench file, never read by the sensor).

``run`` replays them: (1) every conversation fed from scratch (µs per segment),
(2) the three HTTP detectors on the recorded observations (µs per exchange),
each as the best of ``--rounds`` rounds (the machine is shared).
"""

from __future__ import annotations

import argparse
import contextlib
import pickle
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# from_client, seq, data, ts_ns  -- or None for a flush
Step = tuple[bool, int, bytes, int] | None


@dataclass
class Recording:
    convs: list[list[Step]] = field(default_factory=list)
    observations: list[Any] = field(default_factory=list)  # http.exchange Observations


def record(captures: list[str], out: str) -> None:
    from sensor import cli
    from sensor.decoders import http_stream
    from sensor.detect.selfhosted import SelfHostedDetector

    rec = Recording()
    conv_cls = http_stream.HttpConversation
    orig_init, orig_feed, orig_flush = conv_cls.__init__, conv_cls.feed, conv_cls.flush
    logs: dict[int, list[Step]] = {}

    def init(self: Any, *a: Any, **k: Any) -> None:
        orig_init(self, *a, **k)
        log: list[Step] = []
        logs[id(self)] = log
        rec.convs.append(log)

    def feed(self: Any, from_client: bool, seq: int, data: bytes, ts_ns: int) -> Any:
        logs[id(self)].append((from_client, seq, bytes(data), ts_ns))
        return orig_feed(self, from_client, seq, data, ts_ns)

    def flush(self: Any) -> Any:
        logs[id(self)].append(None)
        return orig_flush(self)

    orig_obs = SelfHostedDetector.on_observation

    def on_obs(self: Any, o: Any) -> None:
        if o.kind == "http.exchange":
            rec.observations.append(o)
        orig_obs(self, o)

    conv_cls.__init__ = init  # type: ignore[method-assign]
    conv_cls.feed = feed  # type: ignore[method-assign]
    conv_cls.flush = flush  # type: ignore[method-assign]
    SelfHostedDetector.on_observation = on_obs  # type: ignore[method-assign]
    for capture in captures:
        sys.argv = ["shadowai", "hunt", capture, "-q", "--no-db", "-o", "/dev/null"]
        with contextlib.suppress(SystemExit):
            cli.main()
    with open(out, "wb") as f:
        pickle.dump(rec, f)
    segs = sum(1 for c in rec.convs for s in c if s is not None)
    print(f"recorded {len(rec.convs)} conversations, {segs} segments, "
          f"{len(rec.observations)} exchanges -> {out}")


def replay_conversations(convs: list[list[Step]]) -> list[Any]:
    from sensor.decoders.http_stream import HttpConversation

    events: list[Any] = []
    for steps in convs:
        conv = HttpConversation()
        for s in steps:
            if s is None:
                events += conv.flush()
            elif not conv.done:
                events += conv.feed(*s)
    return events


def _best(fn: Any, rounds: int, setup: Any = None) -> float:
    best = float("inf")
    for _ in range(rounds):
        arg = setup() if setup is not None else None
        t = time.perf_counter()
        fn(arg) if setup is not None else fn()
        best = min(best, time.perf_counter() - t)
    return best


def run(path: str, rounds: int) -> None:
    from sensor.detect.credentials import CredentialDetector
    from sensor.detect.mcp import McpDetector
    from sensor.detect.selfhosted import SelfHostedDetector, load_signatures

    with open(path, "rb") as f:
        rec: Recording = pickle.load(f)
    segs = sum(1 for c in rec.convs for s in c if s is not None)
    events = replay_conversations(rec.convs)
    t_conv = _best(lambda: replay_conversations(rec.convs), rounds)
    print(f"conversations: {len(rec.convs)} convs, {segs} segments, {len(events)} events: "
          f"{t_conv * 1e3:.1f} ms, {t_conv / max(segs, 1) * 1e6:.2f} µs/segment")
    sigs = load_signatures()
    makers: list[tuple[str, Any]] = [
        ("SelfHostedDetector", lambda: SelfHostedDetector(sigs)),
        ("McpDetector", McpDetector),
        ("CredentialDetector", lambda: CredentialDetector(signatures=sigs)),
    ]
    obs = rec.observations
    n = max(len(obs), 1)
    for name, make in makers:
        def feed_all(det: Any) -> None:
            on = det.on_observation
            for o in obs:
                on(o)

        t = _best(feed_all, rounds, make)
        print(f"{name}: {len(obs)} exchanges: {t * 1e3:.1f} ms, "
              f"{t / n * 1e6:.2f} µs/exchange")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("record")
    r.add_argument("out")
    r.add_argument("captures", nargs="+")
    p = sub.add_parser("run")
    p.add_argument("recording")
    p.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    if a.cmd == "record":
        record(a.captures, a.out)
    else:
        run(a.recording, a.rounds)


if __name__ == "__main__":
    main()
