"""Loss-free rate of `shadowai watch` on a veth pair, fed by tcpreplay at rising speeds.

Needs root, iproute2 and tcpreplay. Creates a private network namespace with a veth
pair, runs `watch` on one end and replays a capture (looped) into the other at
each --pps rate, and reads the status file before/after each step:

    sudo python bench/live_rate.py [--workers 2] [--rates 5000,20000,0] [--seconds 2]

Rate 0 means tcpreplay --topspeed. The table shows, per step, what tcpreplay sent,
what the pipeline analysed, the kernel's ring drops (PACKET_STATISTICS), our own
drops, and whether the books balance (sent = analysed + kernel drops).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "pcaps" / "sample.pcap"


def sh(*args: str, timeout: float = 60) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True,
                          timeout=timeout).stdout


def status(state: Path) -> dict:
    for _ in range(50):
        try:
            return json.loads((state / "status.json").read_text())
        except (OSError, ValueError):
            time.sleep(0.1)
    raise SystemExit("no status file")


def counters(state: Path) -> tuple[int, int, int, int]:
    st = status(state)
    c = st["interfaces"].get("vb", {})
    return (int(c.get("packets", 0)), int(c.get("kernel_drops", 0)),
            int(c.get("kernel_packets", 0)), int(st.get("own_drops", 0)))


def settle(state: Path, quiet_s: float = 1.5, limit_s: float = 60) -> tuple[int, int, int, int]:
    """Wait until the workers have emptied the ring (counters stop moving)."""
    last = counters(state)
    t_last = time.monotonic()
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        time.sleep(0.3)
        cur = counters(state)
        if cur != last:
            last, t_last = cur, time.monotonic()
        elif time.monotonic() - t_last >= quiet_s:
            break
    return last


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--rates", default="2000,5000,10000,20000,40000,0",
                    help="packets per second, comma separated (0 = topspeed)")
    ap.add_argument("--seconds", type=float, default=2.0, help="replay time per step")
    ap.add_argument("--ring-size", type=int, default=4 << 20, help="ring bytes per socket")
    ap.add_argument("--block-size", type=int, default=1 << 18)
    ap.add_argument("--pcap", type=Path, default=SAMPLE)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("live_rate.py needs root (netns, AF_PACKET)", file=sys.stderr)
        return 1
    n_pkts = int(sh("capinfos", "-c", "-M", str(args.pcap)).split()[-1]) if subprocess.run(
        ["which", "capinfos"], capture_output=True).returncode == 0 else 287
    ns = f"sailive{os.getpid()}"
    sh("ip", "netns", "add", ns)
    state = Path(tempfile.mkdtemp(prefix="sai-live-"))
    proc = None
    rows = []
    try:
        sh("ip", "-n", ns, "link", "add", "va", "type", "veth", "peer", "name", "vb")
        for d in ("va", "vb", "lo"):
            sh("ip", "-n", ns, "link", "set", d, "up")
        sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
        cfg = state / "sensor.toml"
        cfg.write_text("[watch]\nstatus_interval_s = 0.3\nemit_interval_s = 1.0\n")
        cmd = ["ip", "netns", "exec", ns, sys.executable, "-c",
               "from sensor.live.commands import watch; watch()", "-c", str(cfg), "-i", "vb",
               "-o", str(state / "out.jsonl"), "--state-dir", str(state), "--metrics", "off",
               "--workers", str(args.workers), "--ring-size", str(args.ring_size),
               "--block-size", str(args.block_size), "--block-timeout-ms", "20",
               "--reemit-interval", "1"]
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=open(state / "err.log", "w"))  # noqa: SIM115
        end = time.monotonic() + 60
        while not (state / "status.json").exists():
            if proc.poll() is not None or time.monotonic() > end:
                print((state / "err.log").read_text(), file=sys.stderr)
                return 1
            time.sleep(0.1)
        for rate in [int(r) for r in args.rates.split(",")]:
            base = settle(state, quiet_s=0.8)
            loops = max(1, int((rate or 200_000) * args.seconds / n_pkts))
            speed = ["--topspeed"] if rate == 0 else [f"--pps={rate}"]
            t0 = time.monotonic()
            out = sh("ip", "netns", "exec", ns, "tcpreplay", "-i", "va", *speed,
                     f"--loop={loops}", str(args.pcap), timeout=600)
            wall = time.monotonic() - t0
            sent = int(re.search(r"Actual: (\d+) packets", out).group(1))  # type: ignore[union-attr]
            m = re.search(r"Rated: [\d.]+ Bps, [\d.]+ Mbps, ([\d.]+) pps", out)
            actual = float(m.group(1)) if m else sent / wall
            after = settle(state)
            got, drops, kpk, own = (a - b for a, b in zip(after, base, strict=True))
            rows.append((rate or "top", f"{actual:,.0f}", sent, got, drops, own,
                         f"{100 * (sent - got) / max(sent, 1):.2f}%",
                         "yes" if sent == got + drops + own and kpk == sent else
                         f"no (kernel saw {kpk})"))
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    head = ("TARGET PPS", "ACTUAL PPS", "SENT", "ANALYSED", "KERNEL DROPS", "OWN DROPS",
            "LOSS", "BALANCED")
    table = [head] + [tuple(str(c) for c in r) for r in rows]
    w = [max(len(r[i]) for r in table) for i in range(len(head))]
    print(f"watch --workers {args.workers}, ring {args.ring_size >> 20} MiB "
          f"(blocks of {args.block_size >> 10} KiB), {args.pcap.name} looped")
    for r in table:
        print("  ".join(c.rjust(x) for c, x in zip(r, w, strict=True)))
    free = []
    for r in rows:  # loss-free up to the first step that lost anything
        if r[4] or r[2] != r[3]:
            break
        free.append(r)
    if free:
        print(f"loss-free up to: {free[-1][1]} pps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
