"""The status file: a small JSON document the watch process rewrites atomically
(write to a temporary file, fsync, rename) so ``shadowai status`` never reads
half a file."""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from sensor.errors import InputError

STATUS_NAME = "status.json"
STATUS_SCHEMA = "shadowai.status/v1"
_COUNTERS = ("packets", "bytes", "truncated", "kernel_packets", "kernel_drops",
             "kernel_freezes", "blocks")


def sum_interfaces(worker_counters: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Per-interface counters summed over the workers."""
    out: dict[str, dict[str, int]] = {}
    for wc in worker_counters:
        for iface, c in (wc.get("ifaces") or {}).items():
            acc = out.setdefault(iface, dict.fromkeys(_COUNTERS, 0))
            for k in _COUNTERS:
                acc[k] += int(c.get(k, 0))
    return out


def write_status(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".status-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=1, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_status(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: no status file (is `shadowai watch` running with this "
                         "state directory?)") from None
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: unreadable status file: {e}") from None
    if not isinstance(doc, dict) or doc.get("schema") != STATUS_SCHEMA:
        raise InputError(f"{path}: not a shadowai status file")
    return doc


def is_stale(doc: dict[str, Any], now: float | None = None, max_age_s: float = 30.0) -> bool:
    """True when the writer stopped: an old timestamp or a final (stopped) document."""
    t = time.time() if now is None else now
    return bool(doc.get("stopped")) or t - float(doc.get("updated", 0)) > max_age_s


def format_status(doc: dict[str, Any], now: float | None = None) -> str:
    t = time.time() if now is None else now
    state = "stopped" if doc.get("stopped") else ("STALE" if is_stale(doc, t) else "running")
    lines = [f"shadowai watch: {state}, pid {doc.get('pid')}, up "
             f"{_dur(float(doc.get('updated', t)) - float(doc.get('started', t)))}, "
             f"updated {_dur(t - float(doc.get('updated', t)))} ago, "
             f"{doc.get('workers_alive', 0)}/{doc.get('workers', 0)} workers"]
    rows = [("INTERFACE", "PACKETS", "BYTES", "KERNEL DROPS", "TRUNCATED", "FREEZES")]
    for iface, c in sorted((doc.get("interfaces") or {}).items()):
        rows.append((iface, f"{c.get('packets', 0):,}", f"{c.get('bytes', 0):,}",
                     f"{c.get('kernel_drops', 0):,}", f"{c.get('truncated', 0):,}",
                     f"{c.get('kernel_freezes', 0):,}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
              for r in rows]
    lines.append(f"own drops {doc.get('own_drops', 0):,}, flows {doc.get('flows', 0):,}, "
                 f"reloads {doc.get('reloads', 0)}")
    act = doc.get("findings_active") or {}
    emi = doc.get("findings_emitted") or {}
    for t_ in sorted(set(act) | set(emi)):
        lines.append(f"findings {t_}: {act.get(t_, 0)} current, {emi.get(t_, 0)} sent")
    for name, s in sorted((doc.get("sinks") or {}).items()):
        lines.append(f"sink {name}: {s.get('delivered', 0)} delivered, {s.get('pending', 0)} "
                     f"pending, {s.get('dropped', 0)} dropped"
                     + (f", last error: {s['last_error']}" if s.get("last_error") else ""))
    return "\n".join(lines)


def _dur(s: float) -> str:
    s = max(int(s), 0)
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"
