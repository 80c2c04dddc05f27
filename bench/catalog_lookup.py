"""Catalog load time and hostname look-ups/s on a realistic mix.

Mix: ~85% of distinct names are not AI (deep subdomains of shared platforms,
CDNs, random labels), the rest are catalog examples; the stream draws names
Zipf-like so a few names dominate, as in real SNI/DNS traffic, and
``--unique`` of the stream are names seen once (random labels: CDN shards,
tracking subdomains), which always miss the per-name cache.

Also reports catalog load time without and with the compiled-index cache,
and the rates of ``match_http``, ``match_ip`` and ``match_vendor_domain``.
Target: >= 2,000,000 cached ``match()`` look-ups/s on one core.

    /work/venv/bin/python bench/catalog_lookup.py [--n 1000000]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections.abc import Callable
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
    ai = [h.partition("/")[0] for s in catalog.services for h in s.examples_match]
    out: list[str] = []
    while len(out) < distinct:
        if rng.random() < 0.15:
            out.append(rng.choice(ai))
        else:
            depth = rng.randint(0, 3)
            labels = [f"h{rng.randrange(10**6)}" for _ in range(depth)]
            out.append(".".join([*labels, rng.choice(NON_AI)]))
    return out


def rate(label: str, func: Callable[[str], object], stream: list[str]) -> float:
    t0 = time.perf_counter()
    for h in stream:
        func(h)
    dt = time.perf_counter() - t0
    per_s = len(stream) / dt
    print(f"{label}: {per_s:,.0f} look-ups/s ({dt / len(stream) * 1e9:.0f} ns each)")
    return per_s


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--distinct", type=int, default=5000)
    ap.add_argument("--unique", type=float, default=0.02, help="share of once-only names")
    args = ap.parse_args()

    t0 = time.perf_counter()
    for _ in range(5):
        load_paths([SIGS])
    parse_ms = (time.perf_counter() - t0) / 5 * 1e3
    with tempfile.TemporaryDirectory() as cache_dir:
        t0 = time.perf_counter()
        catalog = Catalog.load([SIGS], cache_dir=Path(cache_dir))  # miss: parse, PSL, mmdb
        cold_ms = (time.perf_counter() - t0) * 1e3
        t0 = time.perf_counter()
        for _ in range(5):
            catalog = Catalog.load([SIGS], cache_dir=Path(cache_dir))
        warm_ms = (time.perf_counter() - t0) / 5 * 1e3
    t0 = time.perf_counter()
    Catalog.load([SIGS], use_cache=False)
    nocache_ms = (time.perf_counter() - t0) * 1e3
    print(
        f"catalog: {len(catalog.services)} services, "
        f"{sum(len(s.hosts) for s in catalog.services)} patterns, "
        f"{sum(len(s.ip_ranges) for s in catalog.services)} ip ranges, {catalog.version}"
    )
    print(
        f"load: parse+validate {parse_ms:.1f} ms; Catalog.load without cache {nocache_ms:.1f} ms, "
        f"cache miss {cold_ms:.1f} ms, cache hit {warm_ms:.1f} ms"
    )

    rng = random.Random(1)
    pool = names(catalog, rng, args.distinct)
    weights = [1 / (i + 1) for i in range(len(pool))]  # Zipf s=1
    stream = rng.choices(pool, weights, k=args.n)
    n_unique = int(args.n * args.unique)
    for i in rng.sample(range(args.n), n_unique):
        stream[i] = f"u{i}x{rng.randrange(10**9)}.{rng.choice(NON_AI)}"
    hits = sum(catalog.match_uncached(h) is not None for h in stream[:100_000])
    print(
        f"mix: {args.n} look-ups over {len(pool)} distinct names + {n_unique} once-only names, "
        f"{hits / min(args.n, 100_000):.1%} of look-ups match"
    )

    catalog.clear_cache()
    for h in stream[:10000]:
        catalog.match(h)  # warm the cache
    rate("cached   match()", catalog.match, stream)
    rate("uncached match()", catalog.match_uncached, stream)
    short = stream[: max(1, args.n // 5)]
    rate("match_http(host, '/v1/chat')", lambda h: catalog.match_http(h, "/v1/chat"), short)
    rate("match_vendor_domain()", catalog.match_vendor_domain, short)
    ips = [f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}.1"
           for _ in range(5000)]
    ips += ["160.79.104.10", "2607:6bc0::10"] * 500
    ip_stream = rng.choices(ips, k=len(short))
    catalog.clear_cache()
    rate("match_ip() (cached, 6000 distinct)", catalog.match_ip, ip_stream)
    ip_unique = [f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}.{i % 256}"
                 for i in range(len(short) // 4)]
    rate("match_ip() (all distinct)", catalog.match_ip, ip_unique)


if __name__ == "__main__":
    main()
