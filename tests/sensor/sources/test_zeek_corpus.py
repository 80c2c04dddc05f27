"""Hunting Zeek baseline logs vs hunting their traces: same SNIs, DNS queries, HTTP hosts.

For every corpus directory of Zeek btest baselines holding ssl.log, quic.log, dns.log or
http.log, the observations our log reader makes from those logs are compared, as sets,
with the observations the packet pipeline makes from the baseline's trace(s): TLS/QUIC
SNIs (ssl.log/quic.log), DNS query names (dns.log), HTTP Host names (http.log); names
lower-cased without a trailing dot. Disagreements must be listed with their reason in
tests/data/zeek_log_disagreements.yaml, and a listed baseline that agrees fails (stale).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml

from sensor.catalog.index import Catalog, default_signature_dir
from sensor.config import Settings
from sensor.decoders.link import classify
from sensor.errors import InputError
from sensor.flows import FlowRecord, FlowTable, flow_keys
from sensor.pipeline import Pipeline
from sensor.records import DnsMessage, HttpRequest, Observation, TlsClientHello
from sensor.sources.capture import open_capture
from sensor.sources.logs import ReadStats
from sensor.sources.zeek import iter_zeek

pytestmark = pytest.mark.corpus

REPO = Path(__file__).resolve().parents[3]
CORPUS = REPO / ".." / "shared" / "corpus"
LISTED = REPO / "tests" / "data" / "zeek_log_disagreements.yaml"
LOGS = {"ssl.log": "sni", "quic.log": "sni", "dns.log": "dns", "http.log": "http"}
CATEGORIES = ("peer-quirk", "known-limitation", "our-bug-open")
Sets = dict[str, set[str]]


def name(v: str) -> str:
    return v.strip().lower().rstrip(".")


def obs_sets(obs: Iterable[Observation]) -> Sets:
    s: Sets = {"sni": set(), "dns": set(), "http": set()}
    for o in obs:
        p = o.payload
        if isinstance(p, TlsClientHello) and p.sni:
            s["sni"].add(name(p.sni))
        elif isinstance(p, DnsMessage) and p.questions:
            s["dns"].add(name(p.questions[0].name))
        elif isinstance(p, HttpRequest) and p.host:
            s["http"].add(name(p.host))
    return s


def baselines(corpus: Path) -> dict[str, tuple[list[str], list[str]]]:
    """baseline dir -> (log file names, corpus-relative trace paths)."""
    manifest: dict[str, Any] = json.loads((corpus / "MANIFEST.json").read_text("utf-8"))
    by_group = {r["group"]: r["file"] for r in manifest["files"] if r["role"] == "capture"}
    logs: dict[str, list[str]] = defaultdict(list)
    traces: dict[str, list[str]] = {}
    for r in manifest["files"]:
        d, _, fname = r["file"].rpartition("/")
        if r["role"] == "peer-output:zeek-baseline" and fname in LOGS:
            logs[d].append(fname)
            traces[d] = [by_group[g] for g in r["group"].split(",")]
    return {d: (sorted(logs[d]), traces[d]) for d in sorted(logs)}


def trace_observations(path: Path, catalog: Catalog) -> list[Observation]:
    got: list[Observation] = []
    pipe = Pipeline(Settings(), catalog, got.append)
    try:
        reader = open_capture(path)
    except InputError:
        return got
    with reader:
        for batch in reader.batches():
            pipe.feed(batch)
    pipe.finish()
    return got


@pytest.fixture(scope="module")
def corpus() -> Path:
    if not (CORPUS / "MANIFEST.json").is_file():
        pytest.skip(f"shared corpus not present at {CORPUS}")
    return CORPUS


def test_zeek_logs_and_traces_agree(corpus: Path) -> None:
    listed: dict[str, Any] = yaml.safe_load(LISTED.read_text("utf-8"))["zeek_logs"]
    for entry in listed.values():
        assert entry["category"] in CATEGORIES and entry["reason"].strip()
    catalog = Catalog.load([default_signature_dir()])
    hunted: dict[str, list[Observation]] = {}
    diffs: dict[str, dict[str, dict[str, list[str]]]] = {}
    compared = 0
    for d, (files, traces) in baselines(corpus).items():
        st = ReadStats()
        ours = obs_sets(r for r in iter_zeek([corpus / d / f for f in files], st)
                        if isinstance(r, Observation))
        assert not st.skipped, (d, st.skipped)
        packets: list[Observation] = []
        for t in traces:
            if t not in hunted:
                hunted[t] = trace_observations(corpus / t, catalog)
            packets += hunted[t]
        theirs = obs_sets(packets)
        compared += 1
        diff = {}
        for field in sorted({LOGS[f] for f in files}):
            if ours[field] != theirs[field]:
                diff[field] = {"logs_only": sorted(ours[field] - theirs[field]),
                               "trace_only": sorted(theirs[field] - ours[field])}
        if diff:
            diffs[d] = diff
    assert compared >= 130
    unexplained = {d: v for d, v in diffs.items()
                   if d not in listed or {k: listed[d].get(k) for k in v} != v}
    stale = sorted(d for d in listed if d not in diffs)
    assert not unexplained, "Zeek logs vs trace differences not in the yaml (or changed):\n" + (
        yaml.safe_dump(unexplained, sort_keys=True))
    assert not stale, f"listed baselines that now agree (remove them): {stale}"
    # the agreeing baselines are the great majority
    assert len(diffs) <= 0.15 * compared


def packet_flows(path: Path) -> list[FlowRecord]:
    """The flow table's exported flows for one trace, as the pipeline drives it."""
    s = Settings()
    table = FlowTable(s.max_flows, s.timeouts)
    out: list[FlowRecord] = []
    watermark = 0
    with open_capture(path) as reader:
        for b in reader.batches():
            if len(b) == 0:
                continue
            cols = classify(b.buf, b.offsets, b.caplens, b.linktypes)
            keys, low = flow_keys(cols)
            table.update(cols, b.ts_ns, keys, low)
            watermark = max(watermark, int(b.ts_ns.max()))
            for exp in table.expire(watermark):
                out += [exp.record(i) for i in range(len(exp))]
    for exp in table.flush():
        out += [exp.record(i) for i in range(len(exp))]
    return out


Counts = tuple[int, int, int, int]


def by_tuple(flows: Iterable[FlowRecord], both_ways: bool) -> dict[tuple[Any, ...], Counts]:
    out: dict[tuple[Any, ...], Counts] = {}
    for f in flows:
        fwd = (f.packets_client_to_server, f.packets_server_to_client,
               f.bytes_client_to_server, f.bytes_server_to_client)
        keys = [((f.client_ip, f.client_port, f.server_ip, f.server_port, f.proto), fwd)]
        if both_ways:
            keys.append(((f.server_ip, f.server_port, f.client_ip, f.client_port, f.proto),
                         (fwd[1], fwd[0], fwd[3], fwd[2])))
        for k, v in keys:
            old = out.get(k, (0, 0, 0, 0))
            out[k] = (old[0] + v[0], old[1] + v[1], old[2] + v[2], old[3] + v[3])
    return out


def test_conn_log_counts_equal_packet_flows(corpus: Path) -> None:
    """A finding from logs gets conn.log's counts: they are the packet path's counts."""
    listed: dict[str, Any] = yaml.safe_load(LISTED.read_text("utf-8"))["conn_counts"]
    manifest: dict[str, Any] = json.loads((corpus / "MANIFEST.json").read_text("utf-8"))
    by_group = {r["group"]: r["file"] for r in manifest["files"] if r["role"] == "capture"}
    same = differ = 0
    differing: list[str] = []
    for r in manifest["files"]:
        if r["role"] != "peer-output:zeek-baseline" or not r["file"].endswith("/conn.log"):
            continue
        traces = [by_group.get(g) for g in r["group"].split(",")]
        head = (corpus / r["file"]).read_text("utf-8", "replace")[:4000]
        if len(traces) != 1 or traces[0] is None or "orig_ip_bytes" not in head:
            continue  # several traces, or a baseline without the count columns
        zeek = by_tuple((x for x in iter_zeek([corpus / r["file"]], ReadStats())
                         if isinstance(x, FlowRecord)), both_ways=False)
        ours = by_tuple(packet_flows(corpus / traces[0]), both_ways=True)
        bad = [k for k, v in zeek.items() if k[4] in (6, 17) and ours.get(k) != v]
        same += sum(1 for k in zeek if k[4] in (6, 17)) - len(bad)
        differ += len(bad)
        if bad:
            differing.append(r["file"])
    for entry in listed.values():
        assert entry["category"] in CATEGORIES and entry["reason"].strip()
    assert same >= 200, same
    assert same >= 0.85 * (same + differ)
    assert sorted(d for d in differing if d not in listed) == []
    assert sorted(d for d in listed if d not in differing) == [], "stale conn_counts entries"
