#!/usr/bin/env python3
"""Micro-benchmark of the pure-Python DNS and TLS ClientHello decoders.

    python bench/decoders_bench.py [INPUTS.msgpack] [--rounds N] [--count N]

Prints microseconds per message for ``parse_dns``, ``client_hello_from_stream``
and ``parse_client_hello``: best of N rounds, and the first round (the decoders
memoise names and extensions they saw, so the first round is the colder one).

``INPUTS.msgpack`` is a msgpack dict of lists of bytes with the keys ``dns``,
``tls_stream`` and ``client_hello``: the exact arguments these decoders got
while ``shadowai hunt`` read a capture, recorded by
``bench/dump_decoder_inputs.py``.  Without a file, a similar mix is built here
from the ``bench/gen_capture.py`` message builders (Chrome/Firefox/OpenSSL
ClientHellos, ~20 % of them split over two segments; DNS queries and
responses with CNAME chains and A/AAAA records), deterministic from ``--seed``.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from sensor.decoders import dns, tls
from sensor.errors import DecodeError

Inputs = dict[str, list[bytes]]


def load(path: str) -> Inputs:
    import msgpack

    with open(path, "rb") as f:
        raw = msgpack.unpack(f)
    return {k: [bytes(x) for x in raw.get(k, [])] for k in ("dns", "tls_stream", "client_hello")}


def generate(count: int, seed: int) -> Inputs:
    """A decoder-input mix like the 2 M packet benchmark capture's."""
    import gen_capture as g

    rng = random.Random(seed)
    hosts = g.AI_HOSTS + g.OTHER_HOSTS
    out: Inputs = {"dns": [], "tls_stream": [], "client_hello": []}
    for _ in range(count):
        host = rng.choice(hosts)
        large = rng.random() < 0.2
        prof = "chrome" if large else rng.choices(["chrome", "firefox", "openssl"], [65, 20, 15])[0]
        msg = g.client_hello_msg(rng, host, prof, large)
        rec = g.record(22, msg)
        if len(rec) > g.MSS:
            out["tls_stream"].append(rec[: g.MSS])  # NeedMoreData, then the whole hello
        out["tls_stream"].append(rec)
        out["client_hello"].append(msg)
    for _ in range(count * 2):
        host = rng.choice(hosts)
        qtype = rng.choice((1, 28))
        out["dns"].append(g.dns_query(rng.getrandbits(16), host, qtype))
        if rng.random() < 0.5:
            cnames = [f"edge{i}.{host}.cdn.example.net" for i in range(rng.randrange(3))]
            alen = 4 if qtype == 1 else 16
            addrs = [rng.randbytes(alen) for _ in range(rng.randrange(4))]
            out["dns"].append(g.dns_response(rng.getrandbits(16), host, qtype, cnames, addrs, 300))
    return out


def time_decoder(
    fn: Callable[[bytes], object], items: list[bytes], rounds: int
) -> tuple[float, float]:
    """Microseconds per item: first round (decoder caches cold) and best of ``rounds``."""
    times = []
    for _ in range(max(1, rounds)):
        t0 = time.perf_counter()
        for x in items:
            with contextlib.suppress(DecodeError):
                fn(x)
        times.append(time.perf_counter() - t0)
    scale = 1e6 / max(1, len(items))
    return times[0] * scale, min(times) * scale


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("inputs", nargs="?", help="msgpack file of recorded decoder inputs")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--count", type=int, default=5000, help="hellos to generate without a file")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    data = load(args.inputs) if args.inputs else generate(args.count, args.seed)
    for name, fn, key in (
        ("parse_dns", dns.parse_dns, "dns"),
        ("client_hello_from_stream", tls.client_hello_from_stream, "tls_stream"),
        ("parse_client_hello", tls.parse_client_hello, "client_hello"),
    ):
        items = data[key]
        first, best = time_decoder(fn, items, args.rounds)
        print(
            f"{name:26s} {len(items):7d} msgs  {best:6.2f} us/msg best"
            f"  ({first:6.2f} first round)  {best * len(items) / 1e3:7.1f} ms"
        )


if __name__ == "__main__":
    main()
