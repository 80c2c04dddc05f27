"""A Prometheus text-format endpoint (plain http.server in a daemon thread).

The main loop replaces the whole sample set at once (``Metrics.update``); the
HTTP thread only renders the latest set, so no metric is ever half-updated.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sensor.errors import InputError

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
Samples = tuple[tuple[tuple[tuple[str, str], ...], float], ...]  # (labels, value)


@dataclass(frozen=True, slots=True)
class Metric:
    name: str
    kind: str  # counter | gauge
    help: str
    samples: Samples


def _esc(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def render(metrics: list[Metric]) -> str:
    out: list[str] = []
    for m in metrics:
        out.append(f"# HELP {m.name} {m.help}")
        out.append(f"# TYPE {m.name} {m.kind}")
        for labels, value in m.samples:
            lab = ",".join(f'{k}="{_esc(v)}"' for k, v in labels)
            num = repr(float(value)) if not float(value).is_integer() else str(int(value))
            out.append(f"{m.name}{{{lab}}} {num}" if lab else f"{m.name} {num}")
    return "\n".join(out) + "\n"


def _one(st: dict[str, Any], key: str) -> Samples:
    return (((), float(st.get(key, 0))),)


def _per(label: str, items: dict[str, Any], key: str | None = None) -> Samples:
    """One sample per item, labelled with its name; ``key`` picks from a dict value."""
    return tuple((((label, name),), float(v if key is None else v.get(key, 0)))
                 for name, v in sorted(items.items()))


def from_status(st: dict[str, Any]) -> list[Metric]:
    """The metric set from the status document the watch loop builds (status.py)."""
    ifaces: dict[str, dict[str, int]] = st.get("interfaces", {})
    sinks: dict[str, dict[str, Any]] = st.get("sinks", {})
    return [
        Metric("shadowai_up", "gauge", "1 while the sensor runs", (((), 1.0),)),
        Metric("shadowai_workers", "gauge", "capture worker processes alive",
               _one(st, "workers_alive")),
        Metric("shadowai_packets_total", "counter", "packets captured and analysed",
               _per("interface", ifaces, "packets")),
        Metric("shadowai_bytes_total", "counter", "captured bytes analysed",
               _per("interface", ifaces, "bytes")),
        Metric("shadowai_kernel_packets_total", "counter",
               "packets the kernel offered to the capture sockets (incl. drops)",
               _per("interface", ifaces, "kernel_packets")),
        Metric("shadowai_kernel_drops_total", "counter",
               "packets the kernel dropped because the ring was full",
               _per("interface", ifaces, "kernel_drops")),
        Metric("shadowai_truncated_total", "counter", "packets cut short by the ring",
               _per("interface", ifaces, "truncated")),
        Metric("shadowai_own_drops_total", "counter",
               "packets captured but not analysed (pipeline errors)", _one(st, "own_drops")),
        Metric("shadowai_flows_total", "counter", "flows created", _one(st, "flows")),
        Metric("shadowai_findings", "gauge", "current findings by type",
               _per("type", st.get("findings_active", {}))),
        Metric("shadowai_findings_emitted_total", "counter", "findings sent to the sinks by type",
               _per("type", st.get("findings_emitted", {}))),
        Metric("shadowai_sink_backlog", "gauge", "records waiting in a sink's spool",
               _per("sink", sinks, "pending")),
        Metric("shadowai_sink_dropped_total", "counter", "records a sink dropped",
               _per("sink", sinks, "dropped")),
        Metric("shadowai_reloads_total", "counter", "signature/config reloads (SIGHUP)",
               _one(st, "reloads")),
    ]


class MetricsServer:
    """Serves ``/metrics``; ``update`` swaps the rendered text under a lock."""

    def __init__(self, host: str, port: int) -> None:
        self._text = render([Metric("shadowai_up", "gauge", "1 while the sensor runs",
                                    (((), 1.0),))])
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # http.server's naming
                if self.path.split("?")[0] not in ("/metrics", "/"):
                    self.send_error(404)
                    return
                body = owner.text().encode()
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # scrapes are not log events

        try:
            self.httpd = ThreadingHTTPServer((host, port), Handler)
        except OSError as e:
            raise InputError(f"metrics endpoint {host}:{port}: {e.strerror or e}") from None
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="metrics",
                                        daemon=True)

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def text(self) -> str:
        with self._lock:
            return self._text

    def update(self, metrics: list[Metric]) -> None:
        t = render(metrics)
        with self._lock:
            self._text = t

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def parse_listen(addr: str) -> tuple[str, int]:
    """``HOST:PORT`` (IPv6 as ``[::1]:9108``); InputError if malformed."""
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise InputError(f"metrics address must be HOST:PORT, not {addr!r}")
    return host.strip("[]") or "127.0.0.1", int(port)
