"""Capture worker processes.

Each worker is one process with its own Pipeline and one capture socket per
interface; with AF_PACKET the sockets of all workers on an interface share a
PACKET_FANOUT (hash, defrag) group, so both directions of a flow reach the
same worker. Workers talk to the parent over a pipe in JSON messages (no
pickle): the parent sends ``reload``/``stop``/``snap``; a worker answers with
``ready``, periodic ``snap`` (findings changed since the last one + counters) and
``final``; ``dns`` messages (DNS bindings, see DnsShare) go through the parent to
the other workers.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import multiprocessing as mp
import os
import signal
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Protocol

from sensor.app import YOUNG_GC_THRESHOLD, RunContext, build_context, make_pipeline
from sensor.catalog.index import Catalog
from sensor.decoders.dns import T_CNAME, address_answers
from sensor.errors import InputError
from sensor.formats.common import SEVERITY_RANK
from sensor.live.afpacket import AfPacketRing, CaptureCounters, RingSet, RingSettings
from sensor.live.service import Logger, ignore_signals
from sensor.pipeline import Pipeline
from sensor.records import DnsMessage, Observation
from sensor.sources.batch import PacketBatch

BACKENDS = ("auto", "afpacket", "pcap")


class Source(Protocol):
    def wait(self, timeout_s: float, extra_fds: tuple[int, ...] = ()) -> set[int]: ...
    def batches(self, max_packets: int) -> list[PacketBatch]: ...
    def stats(self) -> dict[str, CaptureCounters]: ...
    def check(self) -> None: ...
    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    index: int
    ifaces: tuple[str, ...]
    ring: RingSettings
    fanout_groups: tuple[int, ...]  # one per interface
    backend: str = "auto"
    config: Path | None = None
    sig_dirs: tuple[Path, ...] = ()
    snapshot_s: float = 5.0
    log_format: str = "kv"
    workers: int = 1  # how many workers share the interfaces


Binding = tuple[str, str, str, int, int]  # client, server address, name, ts_ns, ttl_s


class DnsShare:
    """With hash fanout a client's DNS answer and the connection it announces are two
    flows, often on two workers. Each worker passes the (client, address, name)
    bindings of AI-related answers to its peers (through the parent), so DNS
    correlation works as with one process. Only the correlator gets them: lookups
    are still counted once, by the worker that saw them."""

    def __init__(self, pipe_catalog: Callable[[], Catalog]) -> None:
        self._catalog = pipe_catalog
        self.outbox: list[Binding] = []

    def _related(self, name: str) -> bool:
        c = self._catalog()
        return c.match(name) is not None or c.match_vendor_domain(name) is not None

    def on_observation(self, o: Observation) -> None:
        m = o.payload
        if not isinstance(m, DnsMessage) or not m.is_response or not m.questions:
            return
        qname = m.questions[0].name
        if not (self._related(qname) or any(
                a.rtype == T_CNAME and self._related(a.value) for a in m.answers)):
            return
        self.outbox.extend((o.dst_ip, ip, qname, o.ts_ns, ttl_s)
                           for ip, ttl_s in address_answers(m))

    def take(self) -> list[Binding]:
        out, self.outbox = self.outbox, []
        return out


def apply_bindings(pipe: Pipeline, bindings: list[Any]) -> None:
    for client, server, name, ts, ttl in bindings:
        pipe.dns.add(str(client), str(server), str(name), int(ts), int(ttl))


def swap_catalog(pipe: Pipeline, parts: RunContext) -> None:
    """New signatures and policy without losing flows, DNS bindings or findings so far."""
    pipe.swap_knowledge(parts.catalog, parts.policy, parts.fingerprints, parts.encrypted_dns)


def merge_findings(parts: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Join the workers' findings by id: counts and evidence add up, times widen.

    With hash fanout one flow stays on one worker, but a client's DNS lookups and
    its flows (or two of its flows) may be on different workers.
    """
    merged: dict[str, dict[str, Any]] = {}
    for fs in parts:
        for f in fs:
            cur = merged.get(f["id"])
            if cur is None:
                merged[f["id"]] = json.loads(json.dumps(f))  # a private deep copy
                continue
            _merge_into(cur, f)
    return sorted(merged.values(), key=lambda d: (d.get("first_seen") or "", d["id"]))


def _merge_into(cur: dict[str, Any], f: dict[str, Any]) -> None:
    if f.get("first_seen") and (not cur.get("first_seen") or f["first_seen"] < cur["first_seen"]):
        cur["first_seen"] = f["first_seen"]
    if f.get("last_seen") and (not cur.get("last_seen") or f["last_seen"] > cur["last_seen"]):
        cur["last_seen"] = f["last_seen"]
    if SEVERITY_RANK.get(f.get("severity", ""), 0) > SEVERITY_RANK.get(cur.get("severity", ""), 0):
        cur["severity"] = f["severity"]
        if "policy" in f:
            cur["policy"] = f["policy"]
    counts = cur.setdefault("counts", {})
    for k, v in (f.get("counts") or {}).items():
        if isinstance(v, int) and isinstance(counts.get(k, 0), int):
            counts[k] = counts.get(k, 0) + v
    ev: dict[tuple[str, str], dict[str, Any]] = {
        (e["kind"], str(e["value"])): e for e in cur.get("evidence") or []}
    for e in f.get("evidence") or []:
        k = (e["kind"], str(e["value"]))
        if k in ev:
            ev[k]["count"] = ev[k].get("count", 0) + e.get("count", 0)
        else:
            ev[k] = dict(e)
            cur.setdefault("evidence", []).append(ev[k])
    if isinstance(cur.get("attributed_by"), list) and isinstance(f.get("attributed_by"), list):
        cur["attributed_by"] = sorted(set(cur["attributed_by"]) | set(f["attributed_by"]))
    cl, fc = cur.get("client"), f.get("client")
    if isinstance(cl, dict) and isinstance(fc, dict) and not cl.get("mac") and fc.get("mac"):
        cl["mac"] = fc["mac"]
    sv, fs = cur.get("server"), f.get("server")
    if isinstance(sv, dict) and isinstance(fs, dict):
        for k in ("ip", "port", "name"):
            if sv.get(k) is None and fs.get(k) is not None:
                sv[k] = fs[k]
    tls, ftls = cur.get("tls"), f.get("tls")
    if isinstance(tls, dict) and isinstance(ftls, dict):
        for k, v in ftls.items():
            if isinstance(v, list) and isinstance(tls.get(k), list):
                tls[k] = sorted(set(tls[k]) | set(v))
            elif isinstance(v, bool) and isinstance(tls.get(k), bool):
                tls[k] = tls[k] or v


# -- the worker process -----------------------------------------------------


def open_source(spec: WorkerSpec) -> Source:
    if spec.backend in ("auto", "afpacket"):
        rings: list[AfPacketRing] = []
        try:
            for iface, group in zip(spec.ifaces, spec.fanout_groups, strict=True):
                rings.append(AfPacketRing(iface, replace(spec.ring, fanout_group=group)).open())
            return RingSet(rings)
        except InputError as e:
            for r in rings:
                r.close()
            if spec.backend == "afpacket" or "AF_PACKET is unavailable" not in str(e):
                raise
    if spec.workers > 1:
        raise InputError("AF_PACKET is unavailable and the libpcap backend has no fanout: "
                         "use --workers 1")
    from sensor.live.pcapsrc import PcapSet
    return PcapSet(list(spec.ifaces), spec.ring.promisc, spec.ring.bpf_filter,
                   timeout_ms=spec.ring.block_timeout_ms)


def _send(conn: Connection, msg: dict[str, Any]) -> None:
    conn.send_bytes(json.dumps(msg, separators=(",", ":"), default=str).encode())


def _counters(pipe: Pipeline, src: Source, own_drops: int, reloads: int) -> dict[str, Any]:
    return {
        "ifaces": {k: c.as_dict() for k, c in src.stats().items()},
        "pipeline_packets": pipe.stats.packets,
        "pipeline_bytes": pipe.stats.bytes_captured,
        "flows": pipe.flows.stats.flows_created,
        "observations": pipe.dissector.stats.observations,
        "own_drops": own_drops,
        "reloads": reloads,
    }


def worker_main(spec: WorkerSpec, conn: Connection) -> None:
    """Body of one worker process; returns when told to stop or the parent is gone."""
    ignore_signals()
    log = Logger(spec.log_format, component=f"worker{spec.index}")
    try:
        parts = build_context(spec.config, spec.sig_dirs)
        src = open_source(spec)
    except InputError as e:
        _send(conn, {"t": "error", "msg": str(e)})
        return
    except Exception as e:  # anything else: tell the parent why, one line
        _send(conn, {"t": "error", "msg": f"worker {spec.index}: {e!r}"})
        return
    pipe: Pipeline | None = None
    share = DnsShare(lambda: pipe.catalog if pipe is not None else parts.catalog)
    pipe = make_pipeline(parts, share.on_observation if spec.workers > 1 else None)
    own_drops = reloads = 0
    batch_packets = parts.settings.batch_packets
    # this process runs packets until it stops; no freeze: a reload replaces the catalog
    gc.set_threshold(YOUNG_GC_THRESHOLD, *gc.get_threshold()[1:])
    _send(conn, {"t": "ready", "pid": os.getpid()})
    last_snap = time.monotonic()
    stopping = False
    sent: dict[str, str] = {}  # id -> JSON last reported: snapshots carry changes only
    try:
        while not stopping:
            wake = src.wait(0.25, (conn.fileno(),))
            if wake or conn.poll():
                while conn.poll():
                    try:
                        msg = json.loads(conn.recv_bytes())
                    except (EOFError, OSError):
                        stopping = True
                        break
                    if msg.get("t") == "stop":
                        stopping = True
                    elif msg.get("t") == "reload":
                        try:
                            swap_catalog(pipe, build_context(spec.config, spec.sig_dirs))
                            reloads += 1
                            log.info("reloaded", signatures=len(pipe.catalog.services))
                        except InputError as e:
                            log.error("reload_failed", error=str(e))
                    elif msg.get("t") == "snap":
                        last_snap = 0.0
                    elif msg.get("t") == "dns":
                        apply_bindings(pipe, msg.get("b", []))
            own_drops += _feed(pipe, src.batches(batch_packets), log)
            if share.outbox:
                _send(conn, {"t": "dns", "b": share.take()})
            if time.monotonic() - last_snap >= spec.snapshot_s:
                src.check()  # a vanished interface: stop (systemd restarts us when it is back)
                pipe.advance(time.time_ns())
                _send(conn, {"t": "snap", "findings": _changed(pipe, pipe.snapshot(), sent),
                             "counters": _counters(pipe, src, own_drops, reloads)})
                last_snap = time.monotonic()
        own_drops += _drain(pipe, src, spec, batch_packets, log)
        _final(conn, pipe, src, own_drops, reloads)
    except InputError as e:  # the interface went away: report what we have, then fail
        log.error("capture_failed", error=str(e))
        _final(conn, pipe, src, own_drops, reloads)
        raise SystemExit(1) from None
    except (BrokenPipeError, EOFError):
        pass  # the parent is gone: nobody to report to
    finally:
        src.close()


def _changed(pipe: Pipeline, findings: list[Any], sent: dict[str, str]) -> list[dict[str, Any]]:
    out = []
    for d in pipe.finding_dicts(findings):  # attributed and pseudonymized as hunt's
        js = json.dumps(d, sort_keys=True, default=str)
        if sent.get(d["id"]) != js:
            sent[d["id"]] = js
            out.append(d)
    return out


def _final(conn: Connection, pipe: Pipeline, src: Source, own_drops: int, reloads: int) -> None:
    findings = pipe.finish()
    with contextlib.suppress(BrokenPipeError, EOFError):
        _send(conn, {"t": "final", "findings": pipe.finding_dicts(findings),
                     "counters": _counters(pipe, src, own_drops, reloads)})


def _feed(pipe: Pipeline, batches: list[PacketBatch], log: Logger) -> int:
    dropped = 0
    for b in batches:
        try:
            pipe.feed(b)
        except Exception as e:  # a pipeline bug must not stop the capture: count and go on
            dropped += len(b)
            log.error("batch_failed", packets=len(b), error=repr(e),
                      where=traceback.format_exc(limit=3).splitlines()[-2].strip())
    return dropped


def _drain(pipe: Pipeline, src: Source, spec: WorkerSpec, batch_packets: int,
           log: Logger) -> int:
    """Read what is still in the ring: the kernel retires a partly filled block
    after the block timeout, so wait a little longer than that."""
    dropped = 0
    end = time.monotonic() + 2 * spec.ring.block_timeout_ms / 1000 + 0.2
    while time.monotonic() < end:
        bs = src.batches(batch_packets)
        if bs:
            dropped += _feed(pipe, bs, log)
            continue
        src.wait(0.05)
    return dropped


def _child(target: Callable[[WorkerSpec, Connection], None], spec: WorkerSpec,
           conn: Connection, inherited: list[Connection], parent_pid: int) -> None:
    """Start of a worker process: drop the parent's ends of every pipe (else a worker
    keeps a sibling's pipe open and never sees the parent go), and die with the parent."""
    for c in inherited:
        c.close()
    _die_with_parent(parent_pid)
    target(spec, conn)


def _die_with_parent(parent_pid: int) -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the worker notices the closed pipe instead
    if os.getppid() != parent_pid:  # the parent died before prctl
        os._exit(1)


@dataclass(slots=True)
class WorkerHandle:
    spec: WorkerSpec
    proc: Any  # multiprocessing.Process (fork context)
    conn: Connection
    findings: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> latest
    counters: dict[str, Any] = field(default_factory=dict)
    final: bool = False
    error: str | None = None
    last_report: float = field(default_factory=time.monotonic)


class WorkerPool:
    """Starts workers one after another (so every fanout group lists them in the
    same order), relays control messages and collects their reports."""

    def __init__(self, specs: list[WorkerSpec],
                 target: Callable[[WorkerSpec, Connection], None] = worker_main) -> None:
        self.specs = specs
        self.target = target
        self.workers: list[WorkerHandle] = []

    def start(self, timeout_s: float = 60.0) -> None:
        ctx = mp.get_context("fork")  # before any thread is started by the parent
        for spec in self.specs:
            parent, child = ctx.Pipe(duplex=True)
            inherited = [h.conn for h in self.workers] + [parent]
            p = ctx.Process(target=_child,
                            args=(self.target, spec, child, inherited, os.getpid()),
                            daemon=False, name=f"shadowai-worker{spec.index}")
            p.start()
            child.close()
            h = WorkerHandle(spec, p, parent)
            self.workers.append(h)
            if not parent.poll(timeout_s):
                self.stop(0.0)
                raise InputError(f"worker {spec.index} did not start within {timeout_s:.0f} s")
            try:
                msg = json.loads(parent.recv_bytes())
            except EOFError:
                msg = {"t": "error", "msg": "worker exited during start"}
            if msg.get("t") != "ready":
                self.stop(0.0)
                raise InputError(str(msg.get("msg", "worker failed to start")))

    def broadcast(self, msg: dict[str, Any]) -> None:
        for h in self.workers:
            with contextlib.suppress(OSError):  # a dead worker is noticed by poll()
                _send(h.conn, msg)

    def poll(self, timeout_s: float) -> list[WorkerHandle]:
        """Read the reports that arrive within ``timeout_s``; the workers that reported."""
        from multiprocessing.connection import wait
        live = [h.conn for h in self.workers if not h.final and h.error is None]
        if not live:
            return []
        got: list[WorkerHandle] = []
        for c in wait(live, timeout_s):
            h = next(w for w in self.workers if w.conn is c)
            try:
                msg = json.loads(c.recv_bytes())  # type: ignore[union-attr]
            except (EOFError, OSError):
                h.error = "worker exited"
                continue
            if msg.get("t") == "dns":  # pass DNS bindings on to the other workers
                for other in self.workers:
                    if other is not h and not other.final and other.error is None:
                        with contextlib.suppress(OSError):
                            _send(other.conn, msg)
                continue
            if msg.get("t") in ("snap", "final"):
                if msg["t"] == "final":  # everything, flows flushed: replaces the snapshots
                    h.findings = {}
                h.findings.update((f["id"], f) for f in msg["findings"])
                h.counters = msg["counters"]
                h.final = msg["t"] == "final"
                h.last_report = time.monotonic()
                got.append(h)
        return got

    def merged(self) -> list[dict[str, Any]]:
        return merge_findings([list(h.findings.values()) for h in self.workers])

    def stalled(self, max_age_s: float) -> list[int]:
        """Workers that have not reported for ``max_age_s`` (stuck in a batch?)."""
        now = time.monotonic()
        return [h.spec.index for h in self.workers if now - h.last_report > max_age_s]

    def alive(self) -> int:
        return sum(1 for h in self.workers if h.proc.is_alive())

    def stop(self, timeout_s: float) -> None:
        """Ask every worker to drain and report; wait for the reports, then reap."""
        self.broadcast({"t": "stop"})
        end = time.monotonic() + timeout_s
        while time.monotonic() < end and any(
                not h.final and h.error is None for h in self.workers):
            self.poll(max(end - time.monotonic(), 0.0))
        for h in self.workers:
            h.proc.join(max(end - time.monotonic(), 0.5))
            if h.proc.is_alive():
                h.proc.terminate()
                h.proc.join(2)
            h.conn.close()
