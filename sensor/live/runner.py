"""The watch loop: workers capture and analyse; this process merges their findings,
decides what to send (inventory), feeds the sinks, the status file and the
metrics, and talks to systemd."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from sensor.app import build_context
from sensor.errors import InputError
from sensor.live.afpacket import RingSettings, fanout_group_ids
from sensor.live.metrics import MetricsServer, from_status, parse_listen
from sensor.live.service import LOG_FORMATS, Logger, SignalFlags, sd_notify, watchdog_interval_s
from sensor.live.status import STATUS_NAME, STATUS_SCHEMA, sum_interfaces, write_status
from sensor.live.workers import BACKENDS, WorkerPool, WorkerSpec

NS = 1_000_000_000
DEFAULT_STATE_DIR = Path("/var/lib/shadowai")


def default_state_dir() -> Path:
    """systemd's StateDirectory= ($STATE_DIRECTORY), else /var/lib/shadowai."""
    d = os.environ.get("STATE_DIRECTORY")
    return Path(d.split(":")[0]) if d else DEFAULT_STATE_DIR


@dataclass(frozen=True, slots=True)
class WatchSettings:
    """The ``[watch]`` config table; command-line options override it."""

    interfaces: tuple[str, ...] = ()
    workers: int = 1
    backend: str = "auto"
    block_size: int = 1 << 20
    ring_size: int = 64 << 20
    block_timeout_ms: int = 100
    promisc: bool = True
    filter: str | None = None
    state_dir: Path | None = None  # None: default_state_dir()
    db: Path | None = None  # None: <state_dir>/inventory.db
    reemit_interval_s: float = 3600.0
    emit_interval_s: float = 5.0
    status_interval_s: float = 5.0
    metrics: str | None = "127.0.0.1:9108"  # None or "": no endpoint
    log_format: str = "kv"
    stop_timeout_s: float = 20.0

    @property
    def state(self) -> Path:
        return self.state_dir or default_state_dir()

    @property
    def db_path(self) -> Path:
        return self.db or self.state / "inventory.db"

    def ring(self) -> RingSettings:
        rs = RingSettings(self.block_size, max(self.ring_size // self.block_size, 2),
                          self.block_timeout_ms, self.promisc, self.filter)
        rs.check()
        return rs

    def check(self) -> WatchSettings:
        if not self.interfaces:
            raise InputError("watch needs at least one interface (-i IFACE or [watch] interfaces)")
        if not 1 <= self.workers <= 64:
            raise InputError("workers must be 1..64")
        if self.backend not in BACKENDS:
            raise InputError(f"backend must be one of {', '.join(BACKENDS)}")
        if self.log_format not in LOG_FORMATS:
            raise InputError(f"log format must be one of {', '.join(LOG_FORMATS)}")
        for name in ("reemit_interval_s", "emit_interval_s", "status_interval_s"):
            if getattr(self, name) <= 0:
                raise InputError(f"{name} must be positive")
        if self.metrics:
            parse_listen(self.metrics)
        if self.backend == "pcap" and self.workers > 1:
            raise InputError("the libpcap backend has no fanout: use --workers 1")
        self.ring()
        return self


_TYPES: dict[str, type | tuple[type, ...]] = {
    "interfaces": list, "workers": int, "backend": str, "block_size": int, "ring_size": int,
    "block_timeout_ms": int, "promisc": bool, "filter": str, "state_dir": str, "db": str,
    "reemit_interval_s": (int, float), "emit_interval_s": (int, float),
    "status_interval_s": (int, float), "metrics": str, "log_format": str,
    "stop_timeout_s": (int, float),
}


def from_toml(table: dict[str, Any]) -> WatchSettings:
    """The ``[watch]`` table (keys as WatchSettings fields); InputError on a bad value."""
    values: dict[str, Any] = {}
    for k, raw in table.items():
        v: Any = raw
        t = _TYPES.get(k)
        if t is None:
            raise InputError(f"[watch] has unknown key {k!r} (known: {', '.join(sorted(_TYPES))})")
        if not isinstance(raw, t) or (isinstance(raw, bool) and t is not bool):
            raise InputError(f"[watch] {k} has the wrong type")
        if k == "interfaces":
            if not all(isinstance(i, str) and i for i in v):
                raise InputError("[watch] interfaces must be a list of interface names")
            v = tuple(v)
        elif k in ("state_dir", "db"):
            v = Path(v)
        elif k == "metrics":
            v = v or None
        values[k] = v
    ws = replace(WatchSettings(), **values)
    # interfaces may still come from the command line: check the rest only
    if ws.interfaces:
        ws.check()
    return ws


@dataclass(slots=True)
class LiveRunner:
    ws: WatchSettings
    urls: list[str]
    sink_format: str = "native"
    spool_dir: Path | None = None
    config: Path | None = None
    sig_dirs: tuple[Path, ...] = ()
    log: Logger = field(default_factory=Logger)
    flags: SignalFlags = field(default_factory=SignalFlags)
    emitted: dict[str, int] = field(default_factory=dict)
    new_assets: int = 0
    _recorded: dict[str, str] = field(default_factory=dict)
    _started: float = field(default_factory=time.time)

    def run(self) -> int:
        """Capture until SIGTERM/SIGINT; 0 on a clean stop, 1 if workers died."""
        from sensor.inventory.store import Inventory
        from sensor.sinks.sinkset import open_sinks

        ws = self.ws.check()
        build_context(self.config, self.sig_dirs)  # bad signatures/config: fail before capture
        ring = ws.ring()
        groups = tuple(fanout_group_ids(len(ws.interfaces)))
        specs = [WorkerSpec(i, ws.interfaces, ring, groups, ws.backend, self.config,
                            self.sig_dirs, ws.emit_interval_s, ws.log_format, ws.workers)
                 for i in range(ws.workers)]
        ws.state.mkdir(parents=True, exist_ok=True)
        pool = WorkerPool(specs)
        self.flags.install()  # a SIGTERM while starting: stop cleanly right after
        pool.start()  # fork before any thread exists
        try:
            sinks = open_sinks(self.urls, self.sink_format,
                               self.spool_dir or ws.state / "spool")
        except InputError:
            pool.stop(5.0)
            raise
        inv = Inventory(ws.db_path)
        metrics = None
        if ws.metrics:
            try:
                metrics = MetricsServer(*parse_listen(ws.metrics)).start()
            except InputError as e:
                self.log.error("metrics_unavailable", error=str(e))
        self.log.info("started", interfaces=",".join(ws.interfaces), workers=ws.workers,
                      backend=ws.backend, db=str(ws.db_path),
                      metrics=(f"{parse_listen(ws.metrics or '')[0]}:{metrics.port}"
                               if metrics else "off"))
        sd_notify(f"READY=1\nMAINPID={os.getpid()}\nSTATUS=capturing on "
                  f"{','.join(ws.interfaces)}")
        wd = watchdog_interval_s()
        now = time.monotonic()
        next_emit = now + ws.emit_interval_s
        next_status = now
        next_wd = now
        rc = 0
        try:
            while not self.flags.stop:
                pool.poll(0.25)
                now = time.monotonic()
                if self.flags.reload:
                    self.flags.reload = False
                    self._reload(pool)
                if pool.alive() < len(pool.workers):
                    self.log.error("worker_died", alive=pool.alive(), workers=len(pool.workers))
                    rc = 1
                    break
                if now >= next_emit:
                    self._emit(pool.merged(), inv, sinks, final=False)
                    next_emit = now + self.ws.emit_interval_s
                if now >= next_status:
                    self._status(pool, sinks, metrics, stopped=False)
                    next_status = now + self.ws.status_interval_s
                # no ping while a worker is silent: systemd then restarts a stuck sensor
                if (wd is not None and now >= next_wd
                        and not pool.stalled(max(3 * self.ws.emit_interval_s, 20.0))):
                    sd_notify("WATCHDOG=1")
                    next_wd = now + wd
        finally:
            sd_notify("STOPPING=1\nSTATUS=draining")
            self.log.info("stopping", reason="signal" if self.flags.stop else "error")
            pool.stop(self.ws.stop_timeout_s)
            self._emit(pool.merged(), inv, sinks, final=True)
            self._status(pool, sinks, metrics, stopped=True)
            delivered = sinks.close(10.0)
            inv.close()
            if metrics is not None:
                metrics.close()
            self.log.info("stopped", emitted=sum(self.emitted.values()),
                          sinks_delivered=delivered)
        return rc

    def _reload(self, pool: WorkerPool) -> None:
        """SIGHUP: check the new signatures/config here first, then let every worker
        swap between two batches (capture never stops)."""
        sd_notify("RELOADING=1")
        try:
            build_context(self.config, self.sig_dirs)
            if self.config is not None:
                from sensor.config import load_tables
                new = from_toml(load_tables(self.config).get("watch", {}))
                # only what can change without reopening the rings
                self.ws = replace(self.ws, reemit_interval_s=new.reemit_interval_s,
                                  emit_interval_s=new.emit_interval_s)
        except InputError as e:
            self.log.error("reload_rejected", error=str(e))
        else:
            pool.broadcast({"t": "reload"})
            self.log.info("reload")
        sd_notify("READY=1")

    def _emit(self, findings: list[dict[str, Any]], inv: Any, sinks: Any, final: bool) -> None:
        now_ns = time.time_ns()
        changed = []
        for f in findings:
            key = json.dumps([f.get("counts"), f.get("last_seen"), f.get("severity")],
                             sort_keys=True)
            if self._recorded.get(f["id"]) != key:
                self._recorded[f["id"]] = key
                changed.append(f)
        for f in inv.record(changed, now_ns):
            self.new_assets += 1
            svc = f.get("service") or {}
            self.log.info("new_finding", id=f["id"], type=f.get("type"),
                          client=(f.get("client") or {}).get("ip"), service=svc.get("id"))
        # at the end, send the final counts of everything that changed since it was sent
        due = inv.due(findings, now_ns, 0.0 if final else self.ws.reemit_interval_s)
        for f in due:
            sinks.emit(f)
            self.emitted[f["type"]] = self.emitted.get(f["type"], 0) + 1
        if due:
            sinks.flush()
            inv.mark_sent([f["id"] for f in due], now_ns)

    def base_status(self, findings: Iterable[dict[str, Any]], sinks: Any,
                    stopped: bool) -> dict[str, Any]:
        """The status keys every watch mode writes (capture and log following)."""
        active: dict[str, int] = {}
        for f in findings:
            active[f["type"]] = active.get(f["type"], 0) + 1
        return {
            "schema": STATUS_SCHEMA, "pid": os.getpid(), "started": self._started,
            "updated": time.time(), "stopped": stopped,
            "findings_active": active, "findings_emitted": dict(self.emitted),
            "new_findings": self.new_assets,
            "sinks": {k: asdict(v) for k, v in sinks.stats().items()},
        }

    def status_doc(self, pool: WorkerPool, sinks: Any, stopped: bool) -> dict[str, Any]:
        counters = [h.counters for h in pool.workers if h.counters]
        return {
            **self.base_status(pool.merged(), sinks, stopped),
            "interfaces_configured": list(self.ws.interfaces),
            "workers": len(pool.workers), "workers_alive": pool.alive(),
            "interfaces": sum_interfaces(counters),
            "worker_packets": [int(c.get("pipeline_packets", 0)) for c in counters],
            "own_drops": sum(int(c.get("own_drops", 0)) for c in counters),
            "flows": sum(int(c.get("flows", 0)) for c in counters),
            "observations": sum(int(c.get("observations", 0)) for c in counters),
            "reloads": max((int(c.get("reloads", 0)) for c in counters), default=0),
        }

    def _status(self, pool: WorkerPool, sinks: Any, metrics: MetricsServer | None,
                stopped: bool) -> None:
        doc = self.status_doc(pool, sinks, stopped)
        try:
            write_status(self.ws.state / STATUS_NAME, doc)
        except OSError as e:
            self.log.error("status_write_failed", error=str(e))
        if metrics is not None:
            metrics.update(from_status(doc))
        ifs = doc["interfaces"]
        sd_notify("STATUS=" + ", ".join(
            f"{i}: {c['packets']} pkts, {c['kernel_drops']} drops" for i, c in ifs.items()))
