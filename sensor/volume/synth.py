"""Deterministic synthetic AI-service traffic as flow records (for the default model,
the evaluation in bench/extraction_eval.py and the tests).

Each behaviour is a list of TCP connections; a connection is a list of
exchanges (time, request bytes, response bytes). Connections are cut into
flow records the way the flow table exports them (a new record after 300 s
idle, a record every 30 min on long connections) and emitted in export order.
Sizes: a request is its TLS payload plus 40-byte TCP/IP headers per 1448-byte
segment; the receiver ACKs every second segment (52 bytes); a connection
costs a TCP+TLS 1.3 handshake (~0.9 KB up, ~5 KB down) and a FIN exchange.

Only Python's ``random.Random(seed)`` is used, so the same seed gives the same
flows on every platform.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from sensor.findings import ServiceRef
from sensor.flows import FlowRecord

NS = 1_000_000_000
MSS = 1448
IDLE_S = 300.0
ACTIVE_S = 1800.0
DAY0_NS = 1_793_606_400 * NS  # Mon 2026-11-02 00:00:00 UTC

SERVICES = {
    "chatgpt": ServiceRef("chatgpt", "ChatGPT", "OpenAI", "chat-assistant"),
    "claude": ServiceRef("claude", "Claude", "Anthropic", "chat-assistant"),
    "openai-api": ServiceRef("openai-api", "OpenAI API", "OpenAI", "llm-api"),
    "anthropic-api": ServiceRef("anthropic-api", "Anthropic API", "Anthropic", "llm-api"),
    "github-copilot": ServiceRef("github-copilot", "GitHub Copilot", "GitHub", "code-assistant"),
}
_SERVER_IP = {"chatgpt": "104.18.32.47", "claude": "160.79.104.10", "openai-api": "162.159.140.245",
              "anthropic-api": "160.79.104.11", "github-copilot": "140.82.113.21"}


@dataclass(frozen=True, slots=True)
class SynthFlow:
    rec: FlowRecord
    service: ServiceRef
    sanctioned: bool
    label: str  # the behaviour that made it ("interactive", "extraction_fast", ...)


@dataclass(slots=True)
class _Conn:
    client: str
    service: str
    t0: float  # seconds since the scenario start
    ex: list[tuple[float, int, int]] = field(default_factory=list)  # (t, up, down) payload


def _segs(n: int) -> int:
    return max(1, math.ceil(n / MSS)) if n > 0 else 0


def _chunk(c: _Conn, start_ns: int, port: int, label: str, sanctioned: bool,
           key: int) -> Iterator[tuple[float, SynthFlow]]:
    """Flow records of one connection, with their export time (s)."""
    # handshake, exchanges, close: (t, up bytes, up pkts, down bytes, down pkts)
    ev: list[tuple[float, int, int, int, int]] = [(c.t0, 52 + 40 + 620 + 110, 4, 60 + 4800, 5)]
    for t, up, dn in c.ex:
        us, ds = _segs(up), _segs(dn)
        ev.append((t, up + 40 * us + 22 + 52 * math.ceil(ds / 2), us + math.ceil(ds / 2),
                   dn + 40 * ds + 22 + 52 * math.ceil(us / 2), ds + math.ceil(us / 2)))
    last_t = (c.ex[-1][0] if c.ex else c.t0) + 0.2
    ev.append((last_t, 104, 2, 104, 2))
    cur: list[tuple[float, int, int, int, int]] = []

    def emit(closed: bool, export_at: float | None = None) -> tuple[float, SynthFlow]:
        f, lt = cur[0][0], cur[-1][0]
        rec = FlowRecord(
            key=key, proto=6, client_ip=c.client, client_port=port,
            server_ip=_SERVER_IP[c.service], server_port=443, vlan=0, client_mac=None,
            first_ns=start_ns + int(f * NS), last_ns=start_ns + int(lt * NS),
            packets_client_to_server=sum(e[2] for e in cur),
            packets_server_to_client=sum(e[4] for e in cur),
            bytes_client_to_server=sum(e[1] for e in cur),
            bytes_server_to_client=sum(e[3] for e in cur),
            end_reason="closed" if closed else "idle")
        at = export_at if export_at is not None else lt + (15.0 if closed else IDLE_S)
        return at, SynthFlow(rec, SERVICES[c.service], sanctioned, label)

    for e in ev:
        if cur and e[0] - cur[-1][0] > IDLE_S:
            yield emit(False)
            cur = []
        elif cur and e[0] - cur[0][0] > ACTIVE_S:
            yield emit(False, export_at=e[0])
            cur = []
        cur.append(e)
    if cur:
        yield emit(True)


def _lognorm(r: random.Random, median: float, sigma: float, lo: float, hi: float) -> float:
    return min(max(median * math.exp(r.gauss(0.0, sigma)), lo), hi)


# -- behaviours: each returns connections with times in seconds from day start --

def interactive_chat(r: random.Random, client: str, service: str, day_s: float) -> list[_Conn]:
    """A person chatting in a browser tab during the working day: sessions of prompts
    with think time, streamed answers, an HTTP/2 connection per session."""
    conns: list[_Conn] = []
    t = day_s + 8 * 3600 + r.uniform(0, 2 * 3600)
    end = day_s + 17.5 * 3600 + r.uniform(0, 1.5 * 3600)
    while t < end:
        c = _Conn(client, service, t)
        n = max(1, int(_lognorm(r, 6, 0.8, 1, 60)))
        for _ in range(n):
            t += _lognorm(r, 2, 0.5, 0.5, 10)
            up = int(_lognorm(r, 2500, 0.8, 400, 60_000))
            dn = int(_lognorm(r, 14_000, 0.9, 800, 400_000))
            c.ex.append((t, up, dn))
            t += _lognorm(r, 9, 0.6, 2, 90)  # streaming the answer
            # reading and typing; the tab polls every ~45 s meanwhile
            think = _lognorm(r, 70, 0.9, 8, 1500)
            p = t + 45
            while p < t + think and p - t < 1200:
                c.ex.append((p, 180, 240))
                p += r.uniform(35, 55)
            t += think
        if r.random() < 0.05:  # an attached file
            c.ex.append((t, int(_lognorm(r, 600_000, 1.0, 30_000, 8_000_000)), 3_000))
        conns.append(c)
        t += _lognorm(r, 1800, 1.0, 300, 4 * 3600)  # next session
    return conns


def copilot(r: random.Random, client: str, day_s: float) -> list[_Conn]:
    """Code completions while typing: small answers to large contexts, in coding sessions."""
    conns: list[_Conn] = []
    t = day_s + 9 * 3600 + r.uniform(0, 3600)
    end = day_s + 18 * 3600
    while t < end:
        c = _Conn(client, "github-copilot", t)
        dur = _lognorm(r, 1800, 0.7, 300, 3 * 3600)
        stop = t + dur
        while t < stop:
            burst = int(_lognorm(r, 6, 0.7, 1, 40))
            for _ in range(burst):
                t += _lognorm(r, 1.5, 0.6, 0.3, 8)
                c.ex.append((t, int(_lognorm(r, 6000, 0.6, 1000, 40_000)),
                             int(_lognorm(r, 1500, 0.7, 200, 12_000))))
            t += _lognorm(r, 40, 1.0, 5, 900)
        conns.append(c)
        t += _lognorm(r, 2400, 0.8, 300, 3 * 3600)
    return conns


def api_developer(r: random.Random, client: str, service: str, day_s: float) -> list[_Conn]:
    """A developer running scripts against an API: a few runs a day, each a keep-alive
    connection with sequential calls waiting for the model."""
    conns: list[_Conn] = []
    for _ in range(int(_lognorm(r, 6, 0.7, 1, 30))):
        t = day_s + r.uniform(8.5 * 3600, 19 * 3600)
        c = _Conn(client, service, t)
        for _ in range(int(_lognorm(r, 12, 1.0, 1, 300))):
            t += _lognorm(r, 4, 0.9, 0.5, 60)
            c.ex.append((t, int(_lognorm(r, 5000, 1.0, 300, 120_000)),
                         int(_lognorm(r, 2500, 0.9, 200, 40_000))))
        conns.append(c)
    return conns


def extraction_fast(r: random.Random, client: str, service: str, start_s: float,
                    minutes: float = 45.0, workers: int = 8, rate_per_s: float = 12.0
                    ) -> list[_Conn]:
    """A scripted high-rate query loop (e.g. a thread pool over the openai SDK):
    short probing prompts, short answers, back-to-back on pooled connections."""
    conns = [_Conn(client, service, start_s + r.uniform(0, 1)) for _ in range(workers)]
    per_worker = rate_per_s / workers
    for c in conns:
        t = c.t0
        while t < start_s + minutes * 60:
            t += r.expovariate(per_worker) * 0.5 + 0.5 / per_worker
            c.ex.append((t, int(_lognorm(r, 900, 0.4, 200, 6000)),
                         int(_lognorm(r, 1800, 0.5, 200, 9000))))
    return conns


def extraction_slow(r: random.Random, client: str, service: str, start_s: float,
                    hours: float = 6.0, period_s: float = 20.0) -> list[_Conn]:
    """A slow-and-steady loop (``while true; do curl ...; sleep N; done``): one new
    connection per query, jittered period, around the clock."""
    conns: list[_Conn] = []
    t = start_s
    while t < start_s + hours * 3600:
        c = _Conn(client, service, t)
        c.ex.append((t + r.uniform(0.05, 0.2), int(_lognorm(r, 1200, 0.4, 300, 6000)),
                     int(_lognorm(r, 2200, 0.5, 300, 12_000))))
        conns.append(c)
        t += period_s * r.uniform(0.6, 1.4) + r.uniform(0.5, 4)  # plus the answer latency
    return conns


def extraction_slow_keepalive(r: random.Random, client: str, service: str, start_s: float,
                              hours: float = 6.0, period_s: float = 6.0) -> list[_Conn]:
    """The same loop on one pooled connection (an SDK client), a query every ~period."""
    c = _Conn(client, service, start_s)
    t = start_s
    while t < start_s + hours * 3600:
        t += period_s * r.uniform(0.6, 1.4) + r.uniform(0.5, 3)
        c.ex.append((t, int(_lognorm(r, 1200, 0.4, 300, 6000)),
                     int(_lognorm(r, 2200, 0.5, 300, 12_000))))
    return [c]


def batch_job(r: random.Random, client: str, service: str, start_s: float,
              minutes: float = 25.0, workers: int = 8, rate_per_s: float = 30.0) -> list[_Conn]:
    """A nightly embeddings batch job: documents up, vectors down, pooled connections."""
    conns = [_Conn(client, service, start_s + r.uniform(0, 2)) for _ in range(workers)]
    per_worker = rate_per_s / workers
    for c in conns:
        t = c.t0
        while t < start_s + minutes * 60:
            t += r.expovariate(per_worker)
            c.ex.append((t, int(_lognorm(r, 14_000, 0.6, 1000, 120_000)),
                         int(_lognorm(r, 33_000, 0.2, 20_000, 60_000))))
    return conns


def bulk_uploads(r: random.Random, client: str, service: str, start_s: float) -> list[_Conn]:
    """A user uploading a few large documents to a chat service."""
    c = _Conn(client, service, start_s)
    t = start_s
    for mb in (35, 80, 12):
        t += r.uniform(60, 240)
        c.ex.append((t, mb * 1_000_000 + r.randint(0, 999_999), int(_lognorm(r, 5000, 0.5,
                                                                              500, 50_000))))
    return [c]


# -- scenarios ----------------------------------------------------------------

Builder = Callable[[random.Random, float], list[tuple[_Conn, str, bool]]]


def office(users: int = 12, devs: int = 4) -> Builder:
    """Normal use: users chatting, developers with copilot and API scripts."""
    def build(r: random.Random, day_s: float) -> list[tuple[_Conn, str, bool]]:
        out: list[tuple[_Conn, str, bool]] = []
        for u in range(users):
            ip = f"10.1.0.{10 + u}"
            svc = "chatgpt" if u % 3 else "claude"
            out += [(c, "interactive", False) for c in interactive_chat(r, ip, svc, day_s)]
            if u % 4 == 0:  # some use both
                other = "claude" if svc == "chatgpt" else "chatgpt"
                out += [(c, "interactive", False) for c in interactive_chat(r, ip, other, day_s)]
        for d in range(devs):
            ip = f"10.1.1.{10 + d}"
            out += [(c, "interactive", False) for c in copilot(r, ip, day_s)]
            svc = "openai-api" if d % 2 == 0 else "anthropic-api"
            out += [(c, "interactive", False) for c in api_developer(r, ip, svc, day_s)]
            out += [(c, "interactive", False) for c in interactive_chat(r, ip, "chatgpt", day_s)]
        return out
    return build


def generate(builders: list[Builder], seed: int, days: int = 1) -> list[SynthFlow]:
    """Flows of all behaviours over ``days`` days, in export order."""
    r = random.Random(seed)
    conns: list[tuple[_Conn, str, bool]] = []
    for d in range(days):
        for b in builders:
            conns += b(r, d * 86400.0)
    out: list[tuple[float, int, SynthFlow]] = []
    for i, (c, label, sanctioned) in enumerate(conns):
        port = 32768 + (i * 7919) % 28000
        for at, f in _chunk(c, DAY0_NS, port, label, sanctioned, key=i):
            out.append((at, len(out), f))
    out.sort(key=lambda x: (x[0], x[1]))
    return [f for _, _, f in out]


def training_flows(seed: int = 7, days: int = 5) -> list[SynthFlow]:
    """The default model's training data: several days of normal office use."""
    return generate([office(users=16, devs=6)], seed, days)
