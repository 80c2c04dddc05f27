#!/usr/bin/env python3
"""Benchmark QUIC client Initial decryption on one core.

    python bench/quic_initial_bench.py [--packets N] [--seconds S]

Builds N realistic 1200-byte client Initials (RFC 9001 A.2 ClientHello in a
CRYPTO frame + PADDING, v1, 8-byte random DCIDs) and reports, per second:

* ``cold``  - every packet has a new DCID: key derivation + decryption, i.e. the
  first Initial of each new connection (the worst case);
* ``warm``  - the same packets again with keys cached per DCID, i.e. a client's
  later Initials / retransmissions;
* ``e2e``   - cold decryption + CRYPTO reassembly + ClientHello parse (SNI).

Nothing here touches the network.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sensor.decoders import quic
from tests.helpers.quic import RFC_CRYPTO_FRAME, protect_initial


def build_initial(dcid: bytes, pn: int = 0) -> bytes:
    """A protected 1200-byte v1 client Initial (same layout as RFC 9001 A.2)."""
    payload = RFC_CRYPTO_FRAME + bytes(1162 - len(RFC_CRYPTO_FRAME))
    return protect_initial(payload, quic.client_initial_keys(quic.QUIC_V1, dcid), dcid=dcid,
                           pn=pn, pn_len=4)


def rate(label: str, packets: list[bytes], seconds: float, fn: Callable[[bytes], None]) -> float:
    # CPU time of this process is the figure: the wall clock also counts time other
    # processes held the core (shared CI machines).
    done = 0
    start, cpu0 = time.perf_counter(), time.process_time()
    deadline = start + seconds
    while True:
        for p in packets:
            fn(p)
        done += len(packets)
        if time.perf_counter() >= deadline:
            break
    per_cpu_s = done / (time.process_time() - cpu0)
    per_wall_s = done / (time.perf_counter() - start)
    print(
        f"{label:5s} {per_cpu_s:10,.0f} Initial packets/s per CPU-second"
        f"  (wall {per_wall_s:,.0f}/s, {done:,} packets)"
    )
    return per_cpu_s


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--packets", type=int, default=3000)
    ap.add_argument("--seconds", type=float, default=2.0)
    args = ap.parse_args()
    rnd = random.Random(1)
    packets = [build_initial(rnd.randbytes(8), pn=0) for _ in range(args.packets)]
    for p in packets[:3]:  # sanity: they decode to the RFC ClientHello
        (pkt,) = quic.parse_initial_packets(p)
        r = quic.CryptoReassembler()
        r.add(*pkt.crypto[0])
        hello = r.client_hello()
        assert hello is not None and hello.sni == "example.com"

    def cold(p: bytes) -> None:
        quic._key_cache.clear()  # every packet starts a new connection
        quic.parse_initial_packets(p)

    def warm(p: bytes) -> None:
        quic.parse_initial_packets(p)

    def e2e(p: bytes) -> None:
        quic._key_cache.clear()
        r = quic.CryptoReassembler()
        for pkt in quic.parse_initial_packets(p):
            for off, data in pkt.crypto:
                r.add(off, data)
        r.client_hello()

    print(f"python {sys.version.split()[0]}, pid {os.getpid()}, {args.packets} distinct Initials")
    rate("cold", packets, args.seconds, cold)
    quic._key_cache.clear()
    for p in packets:
        quic.parse_initial_packets(p)  # fill the cache (bounded at 4096 DCIDs)
    rate("warm", packets, args.seconds, warm)
    rate("e2e", packets, args.seconds, e2e)
    return 0


if __name__ == "__main__":
    sys.exit(main())
