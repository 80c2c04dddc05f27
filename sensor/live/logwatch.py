"""``watch --zeek-dir DIR`` / ``watch --eve FILE``: follow live logs instead of an interface.

The same pipeline, inventory, sinks and status as packet capture; records come
from :class:`sensor.sources.follow.LogFollower`, whose state file (inode,
offset, first-line hash per log) makes every record count once across
rotation and restart.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

from sensor.app import build_context, make_pipeline
from sensor.inventory.store import Inventory
from sensor.live.runner import LiveRunner
from sensor.live.service import sd_notify
from sensor.sinks.sinkset import open_sinks
from sensor.sources.feed import LogFeeder
from sensor.sources.follow import LogFollower
from sensor.sources.logs import ReadStats


def run_logs(runner: LiveRunner, kind: str, target: Path) -> int:
    """Follow until SIGTERM/SIGINT; 0 on a clean stop."""
    ws = runner.ws
    pipe = make_pipeline(build_context(runner.config, runner.sig_dirs))
    feeder = LogFeeder(pipe)
    ws.state.mkdir(parents=True, exist_ok=True)
    sinks = open_sinks(runner.urls, runner.sink_format, runner.spool_dir or ws.state / "spool")
    inv = Inventory(ws.db_path)
    stop = threading.Event()
    runner.flags.install()
    stats = ReadStats()
    due = [time.monotonic() + ws.emit_interval_s]

    def emit_if_due() -> None:
        if runner.flags.stop:
            stop.set()
        if time.monotonic() >= due[0]:
            found = pipe.finding_dicts(pipe.snapshot())
            runner._emit(found, inv, sinks, final=False)
            _write_status(runner, kind, target, stats, found, sinks)
            due[0] = time.monotonic() + ws.emit_interval_s

    follower = LogFollower(target, kind, ws.state / f"follow-{kind}.json", stop,
                           poll_s=min(1.0, ws.emit_interval_s), stats=stats,
                           on_idle=emit_if_due)
    runner.log.info("started", follow=kind, target=str(target), db=str(ws.db_path))
    sd_notify(f"READY=1\nMAINPID={os.getpid()}\nSTATUS=following {target}")
    try:
        for rec in follower.records():
            feeder.feed(rec)
            emit_if_due()
    finally:
        sd_notify("STOPPING=1\nSTATUS=draining")
        follower.save()
        found = pipe.finding_dicts(pipe.finish())
        runner._emit(found, inv, sinks, final=True)
        _write_status(runner, kind, target, stats, found, sinks, stopped=True)
        sinks.close(10.0)
        inv.close()
        runner.log.info("stopped", records=stats.records, emitted=sum(runner.emitted.values()))
    return 0


def _write_status(runner: LiveRunner, kind: str, target: Path, stats: ReadStats,
                  findings: list[dict[str, Any]], sinks: Any, stopped: bool = False) -> None:
    from sensor.live.status import STATUS_NAME, write_status

    write_status(runner.ws.state / STATUS_NAME, {
        **runner.base_status(findings, sinks, stopped),
        "workers": 1, "workers_alive": 1, "interfaces": {},
        "follow": {"kind": kind, "target": str(target), "records": stats.records,
                   "lines": stats.lines, "skipped": dict(stats.skipped)},
        "flows": stats.flows, "observations": stats.observations,
    })
