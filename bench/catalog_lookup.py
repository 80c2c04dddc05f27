"""Catalog load time and hostname look-ups/s on a realistic mix.

Mix: ~85% of distinct names are not AI (deep subdomains of shared platforms,
CDNs, random labels), the rest are catalog examples; the stream draws names
Zipf-like so a few names dominate, as in real SNI/DNS traffic.

    /work/venv/bin/python bench/catalog_lookup.py [--n 1000000]
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

from sensor.catalog.index import Catalog
from sensor.catalog.loader import load_paths

SIGS = Path(__file__).resolve().parents[1] / "signatures"
NON_AI = [
    "google.com",
    "googleapis.com",
    "gstatic.com",
    "microsoft.com",
    "windowsupdate.com",
    "amazonaws.com",
    "cloudfront.net",
    "akamaiedge.net",
    "github.com",
    "githubusercontent.com",
    "slack.com",
    "zoom.us",
    "office.com",
    "apple.com",
    "icloud.com",
    "facebook.com",
    "fbcdn.net",
    "doubleclick.net",
    "example.org",
    "corp.internal",
]


def names(catalog: Catalog, rng: random.Random, distinct: int) -> list[str]:
    ai = [h for s in catalog.services for h in s.examples_match]
    out: list[str] = []
    while len(out) < distinct:
        if rng.random() < 0.15:
            out.append(rng.choice(ai))
        else:
            depth = rng.randint(0, 3)
            labels = [f"h{rng.randrange(10**6)}" for _ in range(depth)]
            out.append(".".join([*labels, rng.choice(NON_AI)]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--distinct", type=int, default=5000)
    args = ap.parse_args()

    t0 = time.perf_counter()
    for _ in range(20):
        load_paths([SIGS])
    load_ms = (time.perf_counter() - t0) / 20 * 1e3
    t0 = time.perf_counter()
    catalog = Catalog.load([SIGS])
    build_ms = (time.perf_counter() - t0) * 1e3
    print(
        f"catalog: {len(catalog.services)} services, "
        f"{sum(len(s.hosts) for s in catalog.services)} patterns, {catalog.version}"
    )
    print(f"load (parse+validate): {load_ms:.1f} ms; Catalog.load: {build_ms:.1f} ms")

    rng = random.Random(1)
    pool = names(catalog, rng, args.distinct)
    weights = [1 / (i + 1) for i in range(len(pool))]  # Zipf s=1
    stream = rng.choices(pool, weights, k=args.n)
    hits = sum(catalog.match_uncached(h) is not None for h in pool)
    print(
        f"mix: {args.n} look-ups over {len(pool)} distinct names, "
        f"{hits / len(pool):.0%} of distinct names match"
    )

    match = catalog.match
    for h in stream[:10000]:
        match(h)  # warm the cache
    t0 = time.perf_counter()
    for h in stream:
        match(h)
    dt = time.perf_counter() - t0
    print(f"cached   match(): {args.n / dt:,.0f} look-ups/s ({dt / args.n * 1e9:.0f} ns each)")

    uncached = catalog.match_uncached
    t0 = time.perf_counter()
    for h in stream:
        uncached(h)
    dt = time.perf_counter() - t0
    print(f"uncached match(): {args.n / dt:,.0f} look-ups/s ({dt / args.n * 1e9:.0f} ns each)")


if __name__ == "__main__":
    main()
