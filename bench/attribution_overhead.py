"""What attribution costs: the same hunt with and without identity data.

Usage: python bench/attribution_overhead.py CAPTURE [--repeat 3]

"off": no identity file and DHCP/Kerberos from the wire ignored. "on": the
wire's DHCP/Kerberos plus an identity feed (CSV) binding every client address
in the capture to a user and host over the whole capture (two bindings per
address, so lookups search). CPU seconds of the whole pipeline, best of N,
runs alternated so that machine noise hits both alike.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

from sensor.app import build_context, make_pipeline
from sensor.identity.readers import load_identity
from sensor.sources.capture import open_capture


def run(capture: Path, feed: Path | None) -> tuple[float, int, int]:
    ctx = build_context(None)
    if feed is None:
        ctx.identity_settings = type(ctx.identity_settings)(wire=False)
    else:
        ctx.identity.add_all(load_identity(str(feed), "csv"))
    pipe = make_pipeline(ctx)
    t0 = time.process_time()
    for b in open_capture(capture).batches(ctx.settings.batch_packets):
        pipe.feed(b)
    found = pipe.finish()
    dicts = pipe.finding_dicts(found)
    cpu = time.process_time() - t0
    users = sum(1 for d in dicts if (d.get("client") or {}).get("user"))
    return cpu, len(dicts), users


def clients(capture: Path) -> list[str]:
    ctx = build_context(None)
    pipe = make_pipeline(ctx)
    for b in open_capture(capture).batches(ctx.settings.batch_packets):
        pipe.feed(b)
    return sorted({f.client_ip for f in pipe.finish() if hasattr(f, "client_ip")})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("capture", type=Path)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    ips = clients(a.capture)
    with tempfile.TemporaryDirectory() as d:
        feed = Path(d) / "feed.csv"
        with feed.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["ip", "mac", "user", "host", "start", "end"])
            for i, ip in enumerate(ips):
                w.writerow([ip, "", f"user{i}", f"host{i}", 0, 1_000_000_000])
                w.writerow([ip, "", f"other{i}", f"host{i}b", 1_000_000_000, 4_000_000_000])
        off, on = [], []
        for _ in range(a.repeat):
            off.append(run(a.capture, None))
            on.append(run(a.capture, feed))
    best_off, best_on = min(off), min(on)
    print(f"clients bound: {len(ips)}; findings with a user: {best_on[2]} of {best_on[1]}")
    print(f"attribution off: {best_off[0]:.2f} CPU s; on: {best_on[0]:.2f} CPU s; "
          f"overhead {100 * (best_on[0] - best_off[0]) / best_off[0]:+.1f} %")


if __name__ == "__main__":
    main()
