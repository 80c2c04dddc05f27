"""Service glue: structured logs on stderr (the journal under systemd), sd_notify,
and signal flags. No dependency on libsystemd: sd_notify is one datagram."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
from dataclasses import dataclass
from types import FrameType
from typing import IO, Any

LOG_FORMATS = ("kv", "json")


class Logger:
    """One line per event: ``key=value`` (journal-friendly) or JSON."""

    def __init__(self, fmt: str = "kv", stream: IO[str] | None = None,
                 component: str = "watch") -> None:
        self.fmt = fmt
        self.stream = stream
        self.component = component

    def log(self, level: str, event: str, **fields: Any) -> None:
        stream = self.stream or sys.stderr
        rec: dict[str, Any] = {"level": level, "event": event, "component": self.component}
        rec.update(fields)
        if self.fmt == "json":
            line = json.dumps(rec, separators=(",", ":"), default=str)
        else:
            line = " ".join(f"{k}={_kv(v)}" for k, v in rec.items())
        # a syslog priority prefix lets journald file the line at the right level
        prio = {"error": 3, "warning": 4, "info": 6, "debug": 7}.get(level, 6)
        if os.environ.get("JOURNAL_STREAM"):
            line = f"<{prio}>{line}"
        try:
            stream.write(line + "\n")
            stream.flush()
        except (OSError, ValueError):
            pass  # a closed stderr must never stop the capture

    def info(self, event: str, **fields: Any) -> None:
        self.log("info", event, **fields)

    def warning(self, event: str, **fields: Any) -> None:
        self.log("warning", event, **fields)

    def error(self, event: str, **fields: Any) -> None:
        self.log("error", event, **fields)


def _kv(v: Any) -> str:
    s = v if isinstance(v, str) else json.dumps(v, separators=(",", ":"), default=str)
    if s == "" or any(c in s for c in ' "=\n\t'):
        return json.dumps(s)
    return s


def sd_notify(state: str, env: dict[str, str] | None = None) -> bool:
    """Send ``state`` (e.g. "READY=1") to systemd's NOTIFY_SOCKET; False if not under it."""
    addr = (env if env is not None else os.environ).get("NOTIFY_SOCKET")
    if not addr:
        return False
    if addr.startswith("@"):
        addr = "\0" + addr[1:]  # abstract namespace
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.connect(addr)
            s.sendall(state.encode())
    except OSError:
        return False
    return True


def watchdog_interval_s(env: dict[str, str] | None = None) -> float | None:
    """Half of WatchdogSec when systemd asks for pings (WATCHDOG_USEC), else None."""
    e = env if env is not None else os.environ
    usec = e.get("WATCHDOG_USEC")
    pid = e.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return max(int(usec) / 2e6, 0.1)
    except ValueError:
        return None


@dataclass(slots=True)
class SignalFlags:
    """Signals only set flags; the main loop acts on them between batches."""

    stop: bool = False
    reload: bool = False

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_reload)

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        self.stop = True

    def _on_reload(self, signum: int, frame: FrameType | None) -> None:
        self.reload = True


def ignore_signals() -> None:
    """Workers leave signals to the parent, which tells them what to do over their pipe."""
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, signal.SIG_IGN)
