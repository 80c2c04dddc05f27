#!/usr/bin/env python3
"""Time the HTTP hot paths of ``shadowai hunt`` in isolation.

    python bench/http_bench.py record REC CAPTURE...   # hunt each CAPTURE, record HTTP inputs
    python bench/http_bench.py run REC [--rounds 5]    # replay them, print best-of-N timings

``record`` runs the real hunt with ``HttpConversation`` wrapped: it keeps every
segment fed to each conversation (from_client, seq, payload, ts), its flushes,
and the conversation's client and server addresses, as msgpack in REC.

``run`` replays them: (1) every conversation fed from scratch (µs per segment),
(2) the three HTTP detectors on the ``http.exchange`` observations the replay
gives (µs per exchange), each as the best of ``--rounds`` rounds (the machine is
shared).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path
from typing import Any

import msgpack

# from_client, seq, data, ts_ns  -- or None for a flush
Step = tuple[bool, int, bytes, int] | None
# client ip, client port, server ip, server port
Addresses = tuple[str, int, str, int]


def record(captures: list[str], out: str) -> None:
    from sensor import cli, dissect
    from sensor.decoders import http_stream

    convs: list[dict[str, Any]] = []
    conv_cls = http_stream.HttpConversation
    orig_init, orig_feed, orig_flush = conv_cls.__init__, conv_cls.feed, conv_cls.flush
    orig_event = dissect.Dissector._http_event
    logs: dict[int, dict[str, Any]] = {}

    def init(self: Any, *a: Any, **k: Any) -> None:
        orig_init(self, *a, **k)
        log: dict[str, Any] = {"steps": [], "addresses": None}
        logs[id(self)] = log
        convs.append(log)

    def feed(self: Any, from_client: bool, seq: int, data: bytes, ts_ns: int) -> Any:
        logs[id(self)]["steps"].append((from_client, seq, bytes(data), ts_ns))
        return orig_feed(self, from_client, seq, data, ts_ns)

    def flush(self: Any) -> Any:
        logs[id(self)]["steps"].append(None)
        return orig_flush(self)

    def event(self: Any, hf: Any, ev: Any, ts_ns: int) -> None:
        log = logs[id(hf.conv)]
        if log["addresses"] is None:
            c = hf.client_pk
            log["addresses"] = (self._ip(c[1], c[2]), c[3], self._ip(c[4], c[5]), c[6])
        orig_event(self, hf, ev, ts_ns)

    conv_cls.__init__ = init  # type: ignore[method-assign]
    conv_cls.feed = feed  # type: ignore[method-assign]
    conv_cls.flush = flush  # type: ignore[method-assign]
    dissect.Dissector._http_event = event  # type: ignore[method-assign]
    for capture in captures:
        sys.argv = ["shadowai", "hunt", capture, "-q", "--no-db", "-o", "/dev/null"]
        with contextlib.suppress(SystemExit):
            cli.main()
    with open(out, "wb") as f:
        msgpack.pack(convs, f)
    segs = sum(1 for c in convs for s in c["steps"] if s is not None)
    print(f"recorded {len(convs)} conversations, {segs} segments -> {out}")


def replay_conversations(convs: list[dict[str, Any]]) -> list[Any]:
    """Every conversation fed from scratch: its events (requests, responses, exchanges)."""
    from sensor.decoders.http_stream import HttpConversation

    events: list[Any] = []
    for c in convs:
        conv = HttpConversation()
        for s in c["steps"]:
            if s is None:
                events += conv.flush()
            elif not conv.done:
                events += conv.feed(*s)
    return events


def exchange_observations(convs: list[dict[str, Any]]) -> list[Any]:
    """The ``http.exchange`` observations the detectors get for the replayed conversations."""
    from sensor.decoders.http_stream import HttpExchange
    from sensor.records import Observation

    out = []
    for c in convs:
        if c["addresses"] is None:
            continue  # no event reached the pipeline
        client, cport, server, sport = c["addresses"]
        for ev in replay_conversations([c]):
            if isinstance(ev, HttpExchange):
                out.append(Observation("http.exchange", 0, client, cport, server, sport, "tcp",
                                       0, ev))
    return out


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
        convs: list[dict[str, Any]] = msgpack.unpack(f)
    segs = sum(1 for c in convs for s in c["steps"] if s is not None)
    events = replay_conversations(convs)
    t_conv = _best(lambda: replay_conversations(convs), rounds)
    print(f"conversations: {len(convs)} convs, {segs} segments, {len(events)} events: "
          f"{t_conv * 1e3:.1f} ms, {t_conv / max(segs, 1) * 1e6:.2f} µs/segment")
    sigs = load_signatures()
    makers: list[tuple[str, Any]] = [
        ("SelfHostedDetector", lambda: SelfHostedDetector(sigs)),
        ("McpDetector", McpDetector),
        ("CredentialDetector", lambda: CredentialDetector(signatures=sigs)),
    ]
    obs = exchange_observations(convs)
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
