#!/usr/bin/env python3
"""Run shadowai's offline hunt and established peers on one capture and compare.

    python bench/run_bench.py CAPTURE [--tools shadowai,tshark,nfstream,dpkt] [--json OUT]

Each tool runs alone, pinned to one core (``taskset -c CPU``), while this
script samples its process tree every 50 ms from /proc/<pid>/status:

* wall time (process start to exit), CPU time (user+sys, from wait4);
* packets/s  = packets in the capture / wall time;
* Gbit/s     = sum of captured frame lengths (the wire bytes, without pcap
  record headers) * 8 / wall time;
* peak RSS   = max over samples of the tree's summed VmRSS (and the main
  process' VmHWM, which catches peaks between samples);
* own memory = max over samples of the tree's summed RssAnon + RssShmem,
  i.e. RSS minus file-backed pages (mapped libraries, a mmapped capture).

Every tool extracts TLS SNI, DNS query names and HTTP Host; the counts are
checked against CAPTURE.truth.json written by bench/gen_capture.py.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
PEERS = HERE / "peers"
SAMPLE_S = 0.05
ALL_TOOLS = ("shadowai", "shadowai-findings", "tshark", "nfstream", "dpkt")

# What each category is compared against in the truth file.  Flow exporters
# (nfstream) report one name per flow, so they get the per-flow views.
TRUTH_KEYS = {
    "sni": "tls_sni",
    "quic_sni": "quic_sni",
    "dns": "dns_query_names",
    "http": "http_hosts",
}
TRUTH_KEYS_PER_FLOW = {
    "sni": "tls_sni",
    "quic_sni": "quic_sni",
    "dns": "dns_flow_names",
    "http": "http_flow_hosts",
}


@dataclass
class Extracted:
    """Names a tool reported; None for a category it does not support."""

    sni: Counter[str] | None = None
    quic_sni: Counter[str] | None = None
    dns: Counter[str] | None = None
    http: Counter[str] | None = None
    per_flow: bool = False
    extra: dict[str, object] = field(default_factory=dict)


@dataclass
class Result:
    tool: str
    status: str  # "ok" | "not available" | "failed (rc=N)"
    wall_s: float = 0.0
    cpu_s: float = 0.0
    packets_per_s: float = 0.0
    gbit_per_s: float = 0.0
    peak_rss_mb: float = 0.0
    own_mb: float = 0.0
    counts: dict[str, int | None] = field(default_factory=dict)
    match: dict[str, str] = field(default_factory=dict)
    note: str = ""
    extra: dict[str, object] = field(default_factory=dict)


# --------------------------------------------------------------------------- measuring


def _status(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem"):
                    out[k] = int(v.split()[0])  # kB
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return out


def _tree(root: int) -> list[int]:
    """root and all its descendants (nfstream forks meters, tshark may fork dumpcap)."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
        except OSError:
            continue
        ppid = int(st[st.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, ()))
    return out


@dataclass
class Measured:
    rc: int
    wall_s: float
    cpu_s: float
    peak_rss_kb: int
    peak_own_kb: int


def measure(cmd: list[str], stdout_path: Path, stderr_path: Path, cpu: int | None) -> Measured:
    if cpu is not None and shutil.which("taskset"):
        cmd = ["taskset", "-c", str(cpu), *cmd]
    peak_rss = peak_own = 0
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err)
        rc, ru = -1, None
        while True:
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                rc = os.waitstatus_to_exitcode(status)
                break
            rss = own = 0
            for p in _tree(proc.pid):
                s = _status(p)
                rss += s.get("VmRSS", 0)
                own += s.get("RssAnon", 0) + s.get("RssShmem", 0)
                if p == proc.pid:
                    peak_rss = max(peak_rss, s.get("VmHWM", 0))
            peak_rss, peak_own = max(peak_rss, rss), max(peak_own, own)
            time.sleep(SAMPLE_S)
        wall = time.perf_counter() - t0
        proc.returncode = rc
    peak_rss = max(peak_rss, ru.ru_maxrss if ru else 0)  # ru_maxrss is kB on Linux
    return Measured(rc, wall, (ru.ru_utime + ru.ru_stime) if ru else 0.0, peak_rss, peak_own)


# --------------------------------------------------------------------------- the tools


def shadowai_bin() -> str | None:
    cand = Path(sys.executable).parent / "shadowai"
    if cand.exists():
        return str(cand)
    return shutil.which("shadowai")


def _all_categories() -> tuple[Extracted, Counter[str], Counter[str], Counter[str], Counter[str]]:
    """An Extracted for a tool that reports every category, and its four counters."""
    sni: Counter[str] = Counter()
    quic_sni: Counter[str] = Counter()
    dns: Counter[str] = Counter()
    http: Counter[str] = Counter()
    return Extracted(sni=sni, quic_sni=quic_sni, dns=dns, http=http), sni, quic_sni, dns, http


def count_shadowai_observations(obs_path: Path) -> Extracted:
    """Count names in shadowai's observations JSONL (the one place to adapt to its format)."""
    ex, sni, quic_sni, dns, http = _all_categories()
    kinds: Counter[str] = Counter()
    with open(obs_path) as f:
        for line in f:
            if not line.strip():
                continue
            o = json.loads(line)
            kind = o.get("kind", "")
            kinds[kind] += 1
            p = o.get("payload", o)
            if kind in ("tls.client_hello", "quic.client_hello"):
                name = (p.get("sni") or "").lower()
                if name:
                    quic = kind.startswith("quic") or o.get("transport") == "udp"
                    (quic_sni if quic else sni)[name] += 1
            elif kind == "dns" and not p.get("is_response", False):
                names = (
                    [p["query"]]
                    if p.get("query")
                    else [q.get("name", "") for q in p.get("questions", ())]
                )
                for n in names:
                    if n:
                        dns[n.lower().rstrip(".")] += 1
            elif kind == "http.request":
                host = (p.get("host") or "").lower()
                if host:
                    http[host.split(":")[0]] += 1
    ex.extra["observation_kinds"] = dict(kinds)
    return ex


def parse_tshark(out: Path) -> Extracted:
    ex, sni, quic_sni, dns, http = _all_categories()
    with open(out, encoding="utf-8", errors="replace") as f:
        for line in f:
            cols = line.rstrip("\n").split("\t")
            if len(cols) < 4:
                continue
            f_sni, f_qname, f_host, f_udp = cols[:4]
            for n in filter(None, f_sni.split(",")):
                (quic_sni if f_udp else sni)[n.lower()] += 1
            for n in filter(None, f_qname.split(",")):
                dns[n.lower()] += 1
            for n in filter(None, f_host.split(",")):
                http[n.split(":")[0].lower()] += 1
    return ex


def parse_peer_json(out: Path) -> Extracted:
    # The last JSON line: nfstream prints its own warnings to stdout first.
    lines = [ln for ln in out.read_text().splitlines() if ln.startswith("{")]
    if not lines:
        raise ValueError("no JSON line in the output")
    d = json.loads(lines[-1])

    def c(k: str) -> Counter[str] | None:
        return None if d.get(k) is None else Counter(d[k])

    extra = {k: v for k, v in d.items() if k not in ("sni", "quic_sni", "dns", "http")}
    return Extracted(c("sni"), c("quic_sni"), c("dns"), c("http"), bool(d.get("per_flow")), extra)


Tool = tuple[Callable[[Path, Path], list[str] | None], Callable[[Path, Path], Extracted], str]


def precompile_sensor() -> None:
    """Write the package's bytecode first, as a regular ``pip install`` does: with
    PYTHONDONTWRITEBYTECODE set (containers often set it), an editable install would
    otherwise compile every module from source on every timed run."""
    spec = importlib.util.find_spec("sensor")
    if spec is not None and spec.origin:
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(Path(spec.origin).parent)],
                       check=False, stdout=subprocess.DEVNULL, env={**os.environ,
                       "PYTHONDONTWRITEBYTECODE": ""})


def tools() -> dict[str, Tool]:
    py = sys.executable

    def shadowai_cmd(cap: Path, work: Path) -> list[str] | None:
        b = shadowai_bin()
        if b is None:
            return None
        return [
            b,
            "hunt",
            str(cap),
            "--observations",
            str(work / "obs.jsonl"),
            "--output",
            str(work / "findings.jsonl"),
        ]

    def shadowai_findings_cmd(cap: Path, work: Path) -> list[str] | None:
        # the hunt as deployed: findings only (its names are checked by the run above)
        b = shadowai_bin()
        if b is None:
            return None
        return [b, "hunt", str(cap), "--output", str(work / "findings-only.jsonl")]

    def tshark_cmd(cap: Path, work: Path) -> list[str] | None:
        if not shutil.which("tshark"):
            return None
        return [
            "tshark",
            "-n",
            "-r",
            str(cap),
            "-o",
            "tcp.desegment_tcp_streams:TRUE",
            "-d",
            "tcp.port==11434,http",
            "-Y",
            "tls.handshake.type==1 || (dns.flags.response==0 && !icmp && !icmpv6) || http.request",
            "-T",
            "fields",
            "-E",
            "separator=/t",
            "-e",
            "tls.handshake.extensions_server_name",
            "-e",
            "dns.qry.name",
            "-e",
            "http.host",
            "-e",
            "udp.srcport",
        ]

    def peer(script: str, module: str) -> Callable[[Path, Path], list[str] | None]:
        def cmd(cap: Path, work: Path) -> list[str] | None:
            probe = subprocess.run([py, "-c", f"import {module}"], capture_output=True)
            return [py, str(PEERS / script), str(cap)] if probe.returncode == 0 else None

        return cmd

    return {
        "shadowai": (
            shadowai_cmd,
            lambda out, work: count_shadowai_observations(work / "obs.jsonl"),
            "shadowai hunt (observations JSONL)",
        ),
        "shadowai-findings": (
            shadowai_findings_cmd,
            lambda out, work: Extracted(),
            "shadowai hunt (findings only; names checked in the run with observations)",
        ),
        "tshark": (
            tshark_cmd,
            lambda out, work: parse_tshark(out),
            "tshark -T fields, TCP desegmentation on",
        ),
        "nfstream": (
            peer("nfstream_extract.py", "nfstream"),
            lambda out, work: parse_peer_json(out),
            "nfstream (nDPI), per-flow names, n_meters=1",
        ),
        "dpkt": (
            peer("dpkt_extract.py", "dpkt"),
            lambda out, work: parse_peer_json(out),
            "dpkt loop, per-flow ClientHello reassembly, no QUIC",
        ),
    }


# --------------------------------------------------------------------------- comparing


def compare(
    ex: Extracted, truth: dict[str, object] | None
) -> tuple[dict[str, int | None], dict[str, str]]:
    counts: dict[str, int | None] = {}
    match: dict[str, str] = {}
    keys = TRUTH_KEYS_PER_FLOW if ex.per_flow else TRUTH_KEYS
    for cat, tkey in keys.items():
        got = getattr(ex, cat)
        counts[cat] = None if got is None else sum(got.values())
        if got is None:
            match[cat] = "n/a"
        elif truth is None or tkey not in truth:
            match[cat] = "?"
        else:
            want = Counter(truth[tkey])  # type: ignore[call-overload]
            if got == want:
                match[cat] = "yes"
            elif sum(got.values()) == sum(want.values()):
                match[cat] = "count only"
            else:
                match[cat] = f"no ({sum(got.values()) - sum(want.values()):+d})"
    return counts, match


def pcap_wire_stats(path: Path) -> tuple[int, int]:
    """(packets, sum of captured lengths) by walking the pcap record headers."""
    n = wire = 0
    with open(path, "rb", buffering=1 << 20) as f:
        magic = f.read(24)[:4]
        end = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
        hdr = struct.Struct(end + "IIII")
        while True:
            h = f.read(16)
            if len(h) < 16:
                break
            _, _, incl, _ = hdr.unpack(h)
            n += 1
            wire += incl
            f.seek(incl, 1)
    return n, wire


def fmt_table(results: list[Result], truth: dict[str, object] | None) -> str:
    head = ["tool", "wall s", "cpu s", "pkts/s", "pkts/cpu-s", "Gbit/s", "peak RSS MB", "own MB",
            "SNI", "QUIC SNI", "DNS", "HTTP", "match"]
    rows = []
    if truth:
        want = ("tls_client_hellos", "quic_client_hellos", "dns_queries", "http_requests")
        rows.append(["truth", *[""] * 7, *(str(truth.get(k, "")) for k in want), ""])

    def cnt(r: Result, k: str) -> str:
        v = r.counts.get(k)
        return "n/a" if v is None else str(v)

    for r in results:
        if r.status != "ok":
            rows.append([r.tool] + [""] * 11 + [r.status])
            continue

        bad = [f"{k}:{v}" for k, v in r.match.items() if v not in ("yes", "n/a")]
        pcpu = f"{r.packets_per_s * r.wall_s / r.cpu_s:,.0f}" if r.cpu_s else ""
        rows.append(
            [
                r.tool,
                f"{r.wall_s:.1f}",
                f"{r.cpu_s:.1f}",
                f"{r.packets_per_s:,.0f}",
                pcpu,
                f"{r.gbit_per_s:.3f}",
                f"{r.peak_rss_mb:.0f}",
                f"{r.own_mb:.0f}",
                cnt(r, "sni"),
                cnt(r, "quic_sni"),
                cnt(r, "dns"),
                cnt(r, "http"),
                "yes" if not bad else "no: " + ", ".join(bad),
            ]
        )
    widths = [max(len(x[i]) for x in [head, *rows]) for i in range(len(head))]
    lines = [
        "| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=False)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    lines += [
        "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + " |"
        for row in rows
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("capture", type=Path)
    ap.add_argument("--tools", default=",".join(ALL_TOOLS))
    ap.add_argument("--json", type=Path, help="write all results here")
    ap.add_argument("--cpu", type=int, default=0, help="core to pin each tool to (taskset -c)")
    ap.add_argument("--keep", type=Path, help="keep tool outputs in this directory")
    ap.add_argument(
        "--repeat", type=int, default=1, help="runs per tool; the fastest (wall) is kept"
    )
    a = ap.parse_args(argv)
    cap: Path = a.capture.resolve()
    truth_path = Path(str(cap) + ".truth.json")
    truth = json.loads(truth_path.read_text()) if truth_path.exists() else None
    if truth and "wire_bytes" in truth:
        n_pkts, wire = int(truth["packets"]), int(truth["wire_bytes"])
    else:
        n_pkts, wire = pcap_wire_stats(cap)
    # Keep this sampler off the measured core.
    others = set(range(os.cpu_count() or 1)) - {a.cpu}
    if others:
        os.sched_setaffinity(0, others)
    base = a.keep or Path(tempfile.mkdtemp(prefix="shadowai-bench-"))
    base.mkdir(parents=True, exist_ok=True)
    precompile_sensor()
    table = tools()
    results: list[Result] = []
    load0 = f"{os.getloadavg()[0]:.2f}"
    for name in [t.strip() for t in a.tools.split(",") if t.strip()]:
        if name not in table:
            ap.error(f"unknown tool {name!r}; known: {', '.join(table)}")
        cmd_fn, parse_fn, note = table[name]
        work = base / name
        work.mkdir(exist_ok=True)
        cmd = cmd_fn(cap, work)
        if cmd is None:
            results.append(Result(name, "not available", note=note))
            print(f"{name}: not available", file=sys.stderr)
            continue
        print(f"{name}: {' '.join(cmd)}", file=sys.stderr)
        m = measure(cmd, work / "stdout", work / "stderr", a.cpu)
        for _ in range(a.repeat - 1):
            if m.rc != 0:
                break
            m2 = measure(cmd, work / "stdout", work / "stderr", a.cpu)
            m = m2 if m2.rc == 0 and m2.wall_s < m.wall_s else m
        r = Result(
            name,
            "ok" if m.rc == 0 else f"failed (rc={m.rc})",
            m.wall_s,
            m.cpu_s,
            n_pkts / m.wall_s,
            wire * 8 / m.wall_s / 1e9,
            m.peak_rss_kb / 1024,
            m.peak_own_kb / 1024,
            note=note,
        )
        if m.rc == 0:
            try:
                ex = parse_fn(work / "stdout", work)
                r.counts, r.match = compare(ex, truth)
                r.extra = {k: v for k, v in ex.extra.items() if k != "tool"}
                if "tool" in ex.extra:
                    r.note = f"{ex.extra['tool']}: {note}"
            except (OSError, ValueError, KeyError) as e:
                r.status = f"unparsable output ({e.__class__.__name__}: {e})"
        else:
            tail = (work / "stderr").read_text(errors="replace")[-500:]
            r.note = f"{note}; stderr tail: {tail}"
        results.append(r)
        print(f"{name}: {r.status}, {m.wall_s:.1f}s, {r.packets_per_s:,.0f} pkt/s", file=sys.stderr)
    print(
        f"capture: {cap} ({n_pkts:,} packets, {wire / 1e9:.2f} GB of frames, "
        f"{cap.stat().st_size / 1e9:.2f} GB file); pinned to CPU {a.cpu}; "
        "Gbit/s = frame bytes*8/wall; "
        f"load average before/after: {load0} / {os.getloadavg()[0]:.2f}"
    )
    print(fmt_table(results, truth))
    if a.json:
        doc = {
            "capture": str(cap),
            "packets": n_pkts,
            "wire_bytes": wire,
            "file_bytes": cap.stat().st_size,
            "cpu": a.cpu,
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "kernel": platform.release(),
            },
            "truth": {k: v for k, v in (truth or {}).items() if not isinstance(v, dict)},
            "results": [asdict(r) for r in results],
        }
        a.json.write_text(json.dumps(doc, indent=1))
    if not a.keep:
        shutil.rmtree(base, ignore_errors=True)
    return 0 if all(r.status in ("ok", "not available") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
