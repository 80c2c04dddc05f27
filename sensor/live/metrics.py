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


@dataclass(frozen=True, slots=True)
class Metric:
    name: str
    kind: str  # counter | gauge
    help: str
    samples: tuple[tuple[tuple[tuple[str, str], ...], float], ...]  # (labels, value)


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


def from_status(st: dict[str, Any]) -> list[Metric]:
    """The metric set from the status document the watch loop builds (status.py)."""
    ifaces: dict[str, dict[str, int]] = st.get("interfaces", {})

    def per_iface(key: str) -> tuple[tuple[tuple[tuple[str, str], ...], float], ...]:
        return tuple(((("interface", i),), float(c.get(key, 0))) for i, c in sorted(ifaces.items()))

    fnd: dict[str, int] = st.get("findings_active", {})
    emitted: dict[str, int] = st.get("findings_emitted", {})
    sinks: dict[str, dict[str, Any]] = st.get("sinks", {})
    return [
        Metric("shadowai_up", "gauge", "1 while the sensor runs", (((), 1.0),)),
        Metric("shadowai_workers", "gauge", "capture worker processes alive",
               (((), float(st.get("workers_alive", 0))),)),
        Metric("shadowai_packets_total", "counter", "packets captured and analysed",
               per_iface("packets")),
        Metric("shadowai_bytes_total", "counter", "captured bytes analysed", per_iface("bytes")),
        Metric("shadowai_kernel_packets_total", "counter",
               "packets the kernel offered to the capture sockets (incl. drops)",
               per_iface("kernel_packets")),
        Metric("shadowai_kernel_drops_total", "counter",
               "packets the kernel dropped because the ring was full", per_iface("kernel_drops")),
        Metric("shadowai_truncated_total", "counter", "packets cut short by the ring",
               per_iface("truncated")),
        Metric("shadowai_own_drops_total", "counter",
               "packets captured but not analysed (pipeline errors)",
               (((), float(st.get("own_drops", 0))),)),
        Metric("shadowai_flows_total", "counter", "flows created",
               (((), float(st.get("flows", 0))),)),
        Metric("shadowai_findings", "gauge", "current findings by type",
               tuple(((("type", t),), float(n)) for t, n in sorted(fnd.items()))),
        Metric("shadowai_findings_emitted_total", "counter", "findings sent to the sinks by type",
               tuple(((("type", t),), float(n)) for t, n in sorted(emitted.items()))),
        Metric("shadowai_sink_backlog", "gauge", "records waiting in a sink's spool",
               tuple(((("sink", s),), float(v.get("pending", 0)))
                     for s, v in sorted(sinks.items()))),
        Metric("shadowai_sink_dropped_total", "counter", "records a sink dropped",
               tuple(((("sink", s),), float(v.get("dropped", 0)))
                     for s, v in sorted(sinks.items()))),
        Metric("shadowai_reloads_total", "counter", "signature/config reloads (SIGHUP)",
               (((), float(st.get("reloads", 0))),)),
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
