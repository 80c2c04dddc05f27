"""Worker-side pipeline helpers: clock ticks, snapshots, catalog swaps, merging."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import numpy as np
import pytest

from sensor.app import build_context, make_pipeline
from sensor.live.workers import merge_findings, swap_catalog
from sensor.sources.capture import open_capture

ROOT = Path(__file__).resolve().parents[3]
SAMPLE = ROOT / "pcaps" / "sample.pcap"


def fed_pipeline():
    pipe = make_pipeline(build_context(None, ()))
    with open_capture(SAMPLE) as r:
        for b in r.batches(100_000):
            pipe.feed(b)
    return pipe


def test_tick_expires_idle_flows_without_touching_counters():
    pipe = fed_pipeline()
    before = (pipe.stats.packets, pipe.stats.bytes_captured, pipe.stats.packets_not_ip,
              pipe.flows.stats.flows_created)
    early = sum(f.to_dict()["counts"].get("flows", 0) for f in pipe.snapshot())
    last = int(pipe._watermark_ns)
    pipe.advance(last + 3600 * 10**9)  # an hour later every flow has timed out
    after = (pipe.stats.packets, pipe.stats.bytes_captured, pipe.stats.packets_not_ip,
             pipe.flows.stats.flows_created)
    assert before == after
    snap = {f.id: f.to_dict() for f in pipe.snapshot()}
    final = {f.id: f.to_dict() for f in pipe.finish()}
    # flows are attributed when they expire: before the tick they are not counted yet
    assert early < sum(f["counts"].get("flows", 0) for f in snap.values())
    assert set(snap) == set(final)
    assert all(snap[i]["counts"] == final[i]["counts"] for i in final)


def test_swap_catalog_keeps_flows_and_findings():
    pipe = fed_pipeline()
    n_flows = len(pipe.flows)
    ids = {f.id for f in pipe.snapshot()}
    old_catalog = pipe.catalog
    swap_catalog(pipe, build_context(None, ()))
    assert pipe.catalog is not old_catalog
    assert len(pipe.flows) == n_flows
    assert {f.id for f in pipe.finish()} >= ids


def _usage(fid: str, **kw):
    d = {"schema": "shadowai.finding/v1", "id": fid, "type": "ai_service_use",
         "severity": "low", "first_seen": "2026-01-01T00:00:02.000000Z",
         "last_seen": "2026-01-01T00:00:03.000000Z", "client": {"ip": "10.0.0.1", "mac": None},
         "server": {"ip": None, "port": None, "name": "api.openai.com"},
         "service": {"id": "openai-api"}, "attributed_by": ["dns.query"],
         "evidence": [{"kind": "dns.query", "value": "api.openai.com", "count": 2}],
         "counts": {"flows": 0, "packets": 0, "dns_queries": 2}}
    d.update(kw)
    return d


def test_merge_adds_counts_and_evidence_and_widens_times():
    a = _usage("x")
    b = _usage("x", severity="medium", first_seen="2026-01-01T00:00:01.000000Z",
               last_seen="2026-01-01T00:00:09.000000Z",
               client={"ip": "10.0.0.1", "mac": "aa:bb:cc:dd:ee:ff"},
               server={"ip": "1.2.3.4", "port": 443, "name": "api.openai.com"},
               attributed_by=["tls.sni"],
               evidence=[{"kind": "tls.sni", "value": "api.openai.com", "count": 1},
                         {"kind": "dns.query", "value": "api.openai.com", "count": 1}],
               counts={"flows": 1, "packets": 12, "dns_queries": 1})
    c = _usage("y")
    orig = copy.deepcopy(a)
    out = merge_findings([[a, c], [b]])
    assert a == orig  # inputs untouched
    m = next(f for f in out if f["id"] == "x")
    assert m["counts"] == {"flows": 1, "packets": 12, "dns_queries": 3}
    assert m["first_seen"].startswith("2026-01-01T00:00:01")
    assert m["last_seen"].startswith("2026-01-01T00:00:09")
    assert m["severity"] == "medium"
    assert m["client"]["mac"] == "aa:bb:cc:dd:ee:ff"
    assert m["server"] == {"ip": "1.2.3.4", "port": 443, "name": "api.openai.com"}
    assert m["attributed_by"] == ["dns.query", "tls.sni"]
    ev = {(e["kind"], e["value"]): e["count"] for e in m["evidence"]}
    assert ev == {("dns.query", "api.openai.com"): 3, ("tls.sni", "api.openai.com"): 1}
    assert [f["id"] for f in out] == ["x", "y"]
    json.dumps(out)


def test_merge_of_one_worker_is_identity():
    pipe = fed_pipeline()
    fs = [f.to_dict() for f in pipe.finish()]
    merged = merge_findings([fs])
    assert {f["id"]: f for f in merged} == {f["id"]: f for f in fs}
    assert np.all([isinstance(f["id"], str) for f in merged])


# -- the pool, with stand-in worker bodies (no capture) -----------------------

def _fake_worker(spec, conn):
    from sensor.live.workers import _send
    _send(conn, {"t": "ready"})
    n = 0
    while True:
        msg = json.loads(conn.recv_bytes())
        if msg["t"] == "snap":
            n += 1
            _send(conn, {"t": "snap", "findings": [_usage("x")],
                         "counters": {"ifaces": {"eth1": {"packets": n}}}})
        elif msg["t"] == "stop":
            _send(conn, {"t": "final", "findings": [_usage("x"), _usage(f"w{spec.index}")],
                         "counters": {"ifaces": {"eth1": {"packets": 10}}}})
            return


def _spec(i):
    from sensor.live.afpacket import RingSettings
    from sensor.live.workers import WorkerSpec
    return WorkerSpec(i, ("eth1",), RingSettings(), (1,))


def test_pool_collects_snapshots_and_finals():
    from sensor.live.workers import WorkerPool
    pool = WorkerPool([_spec(0), _spec(1)], target=_fake_worker)
    pool.start(timeout_s=20)
    try:
        pool.broadcast({"t": "snap"})
        got = set()
        end = time.monotonic() + 10
        while len(got) < 2 and time.monotonic() < end:
            got |= {h.spec.index for h in pool.poll(0.5)}
        assert got == {0, 1}
        m = pool.merged()
        assert [f["id"] for f in m] == ["x"] and m[0]["counts"]["dns_queries"] == 4
        assert pool.stalled(60.0) == []
        assert pool.stalled(0.0) == [0, 1]
    finally:
        pool.stop(10.0)
    assert all(h.final for h in pool.workers)
    assert sorted(f["id"] for f in pool.merged()) == ["w0", "w1", "x"]
    assert pool.alive() == 0


def _failing_worker(spec, conn):
    from sensor.live.workers import _send
    _send(conn, {"t": "error", "msg": "eth9: no such network interface"})


def test_pool_start_reports_a_worker_error():
    from sensor.errors import InputError
    from sensor.live.workers import WorkerPool
    pool = WorkerPool([_spec(0)], target=_failing_worker)
    with pytest.raises(InputError, match="eth9"):
        pool.start(timeout_s=20)


# -- DNS bindings shared between workers -------------------------------------

def _feed_file(pipe, path):
    with open_capture(path) as r:
        for b in r.batches(10_000):
            pipe.feed(b)


def test_dns_answer_on_one_worker_names_a_flow_on_another(tmp_path):
    """The lookup is seen by worker A, the nameless connection by worker B: with the
    shared bindings B attributes the flow by DNS, and only A counts the lookup."""
    from sensor.live.workers import DnsShare, apply_bindings
    from tests.helpers.packets import Lab

    dns_lab, flow_lab = Lab(), Lab()
    dns_lab.dns("10.0.0.5", "api.openai.com", ["192.0.2.77"])
    dns_lab.dns("10.0.0.5", "example.org", ["192.0.2.99"])  # not AI: not shared
    flow_lab.wait(1.0)
    flow_lab.tcp("10.0.0.5", 50000, "192.0.2.77", 443, [b"\x00" * 40], [b"\x00" * 40])
    parts = build_context(None, ())
    share = DnsShare(lambda: parts.catalog)
    a = make_pipeline(parts, share.on_observation)
    b = make_pipeline(parts)
    _feed_file(a, dns_lab.write(tmp_path / "dns.pcap"))
    bindings = share.take()
    assert [(x[0], x[1], x[2]) for x in bindings] == [("10.0.0.5", "192.0.2.77",
                                                       "api.openai.com")]
    assert share.take() == []
    apply_bindings(b, json.loads(json.dumps(bindings)))  # as it crosses the pipe
    _feed_file(b, flow_lab.write(tmp_path / "flow.pcap"))
    fb = [f.to_dict() for f in b.finish()]
    assert len(fb) == 1 and fb[0]["service"]["id"] == "openai-api"
    assert "dns.answer" in fb[0]["attributed_by"] and fb[0]["counts"]["flows"] == 1
    assert fb[0]["counts"]["dns_queries"] == 0  # the lookup is A's to count
    fa = [f.to_dict() for f in a.finish()]
    merged = merge_findings([fa, fb])
    assert len(merged) == 1
    assert merged[0]["counts"]["dns_queries"] == 1 and merged[0]["counts"]["flows"] == 1


def _dns_worker(spec, conn):
    from sensor.live.workers import _send
    _send(conn, {"t": "ready"})
    if spec.index == 0:
        _send(conn, {"t": "dns", "b": [["10.0.0.5", "192.0.2.77", "api.openai.com", 1, 300]]})
    while True:
        msg = json.loads(conn.recv_bytes())
        if msg["t"] == "dns":  # echo what was relayed, as a finding id, to check routing
            _send(conn, {"t": "snap", "findings": [_usage(f"got-by-{spec.index}")],
                         "counters": {}})
        elif msg["t"] == "stop":
            _send(conn, {"t": "final", "findings": [], "counters": {}})
            return


def test_pool_relays_dns_bindings_to_the_other_workers():
    from sensor.live.workers import WorkerPool
    pool = WorkerPool([_spec(0), _spec(1), _spec(2)], target=_dns_worker)
    pool.start(timeout_s=20)
    try:
        end = time.monotonic() + 10
        while len(pool.merged()) < 2 and time.monotonic() < end:
            pool.poll(0.2)
        time.sleep(0.2)
        pool.poll(0.2)
        assert sorted(f["id"] for f in pool.merged()) == ["got-by-1", "got-by-2"]
    finally:
        pool.stop(10.0)


def _socket_inodes(pid: int) -> set[str]:
    import os
    out = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            t = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if t.startswith("socket:"):
            out.add(t)
    return out


def test_workers_do_not_hold_each_others_pipes():
    """Else a worker whose parent died never sees EOF (a sibling keeps the pipe open)."""
    import os

    from sensor.live.workers import WorkerPool
    pool = WorkerPool([_spec(0), _spec(1)], target=_fake_worker)
    pool.start(timeout_s=20)
    try:
        parent_end0 = f"socket:[{os.fstat(pool.workers[0].conn.fileno()).st_ino}]"
        assert parent_end0 not in _socket_inodes(pool.workers[1].proc.pid)
    finally:
        pool.stop(10.0)


def test_workers_die_with_a_killed_parent(tmp_path):
    import subprocess
    import sys
    code = (
        "import os, signal, time\n"
        "from sensor.live.workers import WorkerPool, WorkerSpec, _send\n"
        "from sensor.live.afpacket import RingSettings\n"
        "def body(spec, conn):\n"
        "    _send(conn, {'t': 'ready'})\n"
        "    time.sleep(60)\n"
        "pool = WorkerPool([WorkerSpec(i, ('x',), RingSettings(), (1,)) for i in range(2)],"
        " target=body)\n"
        "pool.start(20)\n"
        "print(' '.join(str(h.proc.pid) for h in pool.workers), flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=60, cwd=Path(__file__).resolve().parents[3])
    pids = [int(x) for x in r.stdout.split()]
    assert len(pids) == 2
    def alive(pid: int) -> bool:  # a zombie waiting for its reaper counts as dead
        try:
            return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
        except (OSError, IndexError):
            return False

    end = time.monotonic() + 5
    while time.monotonic() < end and any(alive(p) for p in pids):
        time.sleep(0.05)
    assert not any(alive(p) for p in pids)
