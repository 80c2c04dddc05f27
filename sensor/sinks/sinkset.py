"""Several sinks at once: ``open_sinks(urls, default_format, spool_dir)``.

Local sinks (file, stdout) are written synchronously. Every network sink gets its own
durable spool under ``spool_dir`` and a delivery thread, so a SIEM that is down never
blocks the sensor and nothing is lost while it is down (see docs/sinks.md).
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sensor.errors import InputError
from sensor.formats import FORMATS, check_format, render, render_doc
from sensor.formats.common import dumps, ts_ms
from sensor.sinks.file import RotatingFileSink, StdoutSink
from sensor.sinks.spool import FSYNC_POLICIES, Spool
from sensor.sinks.url import NETWORK_KINDS, SinkSpec, parse_sink_url
from sensor.sinks.worker import SinkStats, SinkWorker, Transport

Encoder = Callable[[dict[str, Any], str], bytes | None]


DEFAULT_SPOOL_DIR = Path("/var/lib/shadowai/spool")


@dataclass(frozen=True, slots=True)
class SinksSettings:
    urls: tuple[str, ...] = ()
    format: str = "native"
    spool_dir: Path = DEFAULT_SPOOL_DIR
    spool_max_bytes: int = 256 << 20
    fsync: str = "interval"


def from_toml(table: dict[str, Any]) -> SinksSettings:
    """The ``[sinks]`` config table: urls (list), format, spool_dir, spool_max_mb, fsync."""
    known = {"urls", "format", "spool_dir", "spool_max_mb", "fsync"}
    for k in table:
        if k not in known:
            raise InputError(f"[sinks] has unknown key {k!r} (known: {', '.join(sorted(known))})")
    urls = table.get("urls", [])
    if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
        raise InputError("[sinks] urls must be a list of sink URL strings")
    for u in urls:
        parse_sink_url(u)
    fmt = table.get("format", "native")
    if not isinstance(fmt, str) or fmt not in FORMATS:
        raise InputError(f"[sinks] format must be one of {', '.join(FORMATS)}")
    spool_dir = table.get("spool_dir", str(DEFAULT_SPOOL_DIR))
    if not isinstance(spool_dir, str) or not spool_dir:
        raise InputError("[sinks] spool_dir must be a directory path")
    mb = table.get("spool_max_mb", 256)
    if not isinstance(mb, int) or isinstance(mb, bool) or mb < 1:
        raise InputError("[sinks] spool_max_mb must be a positive integer")
    fsync = table.get("fsync", "interval")
    if fsync not in FSYNC_POLICIES:
        raise InputError(f"[sinks] fsync must be one of {', '.join(FSYNC_POLICIES)}")
    return SinksSettings(tuple(urls), fmt, Path(spool_dir), mb << 20, str(fsync))


def _encoder(spec: SinkSpec, fmt: str) -> Encoder:
    kind = spec.kind
    if kind in ("file", "stdout"):
        return lambda rec, rkind: render(fmt, rec, rkind)
    if kind.startswith("syslog"):
        from sensor.sinks.syslog import SyslogFormatter

        sf = SyslogFormatter(spec)

        def enc_syslog(rec: dict[str, Any], rkind: str) -> bytes | None:
            body = render(fmt, rec, rkind)
            return None if body is None else sf.format(rec, body, rkind)
        return enc_syslog
    if kind == "splunk":
        host = socket.gethostname()
        sourcetype = spec.param("sourcetype") or f"shadowai:{fmt}"
        index = spec.param("index")

        def enc_hec(rec: dict[str, Any], rkind: str) -> bytes | None:
            doc = render_doc(fmt, rec, rkind)
            if doc is None:
                return None
            ms = ts_ms(rec.get("last_seen"))
            ev: dict[str, Any] = {"host": host, "source": "shadowai-sensor",
                                  "sourcetype": sourcetype, "event": doc}
            if ms is not None:
                ev["time"] = ms / 1000
            if index:
                ev["index"] = index
            return dumps(ev)
        return enc_hec
    if kind == "elastic":
        if fmt == "cef":
            raise InputError(f"sink {spec.display}: elastic needs a JSON format "
                             "(native, ecs or ocsf), not cef")

        def enc_es(rec: dict[str, Any], rkind: str) -> bytes | None:
            doc = render_doc(fmt, rec, rkind)
            if not isinstance(doc, dict):
                return None
            if "@timestamp" not in doc:   # data streams require it
                doc = {"@timestamp": rec.get("last_seen") or rec.get("first_seen"), **doc}
            return dumps(doc)
        return enc_es
    if kind == "kafka":
        from sensor.sinks.kafka import KEY_SEP, kafka_key

        key_by = spec.param("key_by", "client") or "client"
        if key_by not in ("client", "service"):
            raise InputError(f"sink {spec.display}: key_by must be client or service")

        def enc_kafka(rec: dict[str, Any], rkind: str) -> bytes | None:
            body = render(fmt, rec, rkind)
            return None if body is None else kafka_key(rec, key_by) + KEY_SEP + body
        return enc_kafka

    def enc_webhook(rec: dict[str, Any], rkind: str) -> bytes | None:
        doc = render_doc(fmt, rec, rkind)
        return None if doc is None else dumps(doc)
    return enc_webhook


def _transport(spec: SinkSpec) -> Transport:
    # imported when such a sink is configured: a hunt to a file loads no TLS/HTTP/Kafka code
    from sensor.sinks.http import ElasticBulkTransport, SplunkHecTransport, WebhookTransport
    from sensor.sinks.kafka import KafkaTransport
    from sensor.sinks.syslog import TcpTransport, UdpTransport

    if spec.kind == "syslog_udp":
        return UdpTransport(spec)
    if spec.kind in ("syslog_tcp", "syslog_tls"):
        return TcpTransport(spec, tls=spec.kind == "syslog_tls")
    if spec.kind == "splunk":
        return SplunkHecTransport(spec)
    if spec.kind == "elastic":
        return ElasticBulkTransport(spec)
    if spec.kind == "kafka":
        return KafkaTransport(spec)
    return WebhookTransport(spec)


class _Sink:
    def __init__(self, spec: SinkSpec, fmt: str, encoder: Encoder) -> None:
        self.spec = spec
        self.format = fmt
        self.encode = encoder
        self.local: RotatingFileSink | StdoutSink | None = None
        self.worker: SinkWorker | None = None
        self.emitted = 0
        self.skipped = 0

    def put(self, rec: dict[str, Any], kind: str) -> None:
        data = self.encode(rec, kind)
        if data is None:
            self.skipped += 1
            return
        self.emitted += 1
        if self.local is not None:
            self.local.write(data)
        elif self.worker is not None:
            self.worker.spool.append(data)

    def stats(self) -> SinkStats:
        if self.worker is not None:
            s = self.worker.snapshot()
        else:
            s = SinkStats(self.spec.display, delivered=self.emitted, connected=True)
        s.emitted = self.emitted
        s.skipped = self.skipped
        return s


class SinkSet:
    """All configured sinks; ``emit`` fans a finding out to each in its own format."""

    def __init__(self, sinks: list[_Sink]) -> None:
        self._sinks = sinks

    def emit(self, finding: dict[str, Any]) -> None:
        for s in self._sinks:
            s.put(finding, "finding")

    def emit_asset(self, record: dict[str, Any]) -> None:
        """An inventory record: ECS sinks send it as event.kind asset, native as is,
        OCSF and CEF sinks skip it (counted in stats ``skipped``)."""
        for s in self._sinks:
            s.put(record, "asset")

    def flush(self, timeout: float = 0.0) -> bool:
        """Push local files to the OS and fsync spools; with ``timeout`` > 0 also wait
        that long for network sinks to deliver. True when nothing is pending."""
        ok = True
        for s in self._sinks:
            if s.local is not None:
                s.local.flush()
            elif s.worker is not None:
                s.worker.spool.flush()
                if timeout > 0:
                    ok = s.worker.drain(timeout) and ok
                else:
                    ok = ok and s.worker.spool.pending() == 0
        return ok

    def close(self, timeout: float = 10.0) -> bool:
        """Deliver what can be delivered within ``timeout`` (shared by all sinks), then
        stop. Undelivered records stay in the spool and go out on the next start."""
        import time
        end = time.monotonic() + timeout
        ok = True
        for s in self._sinks:
            if s.local is not None:
                s.local.close()
            elif s.worker is not None:
                ok = s.worker.close(max(end - time.monotonic(), 0.0)) and ok
        return ok

    def stats(self) -> dict[str, SinkStats]:
        """Per sink, keyed by its display name (``#2``... when two sinks share one)."""
        out: dict[str, SinkStats] = {}
        for s in self._sinks:
            key, n = s.spec.display, 1
            while key in out:
                n += 1
                key = f"{s.spec.display}#{n}"
            out[key] = s.stats()
        return out

    def __enter__(self) -> SinkSet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_sinks(urls: list[str], default_format: str, spool_dir: Path, *,
               spool_max_bytes: int = 256 << 20, fsync: str = "interval",
               backoff_max_s: float = 10.0) -> SinkSet:
    """Open every sink; raise InputError (one line) if any URL or option is bad."""
    check_format(default_format)
    specs = [parse_sink_url(u) for u in urls]
    seen: set[str] = set()
    for spec in specs:
        key = spec.spool_name if spec.kind not in ("file", "stdout") else \
            f"{spec.display}|{spec.format}"
        if key in seen:
            raise InputError(f"sink {spec.display} is configured twice")
        seen.add(key)
    sinks: list[_Sink] = []
    try:
        for spec in specs:
            fmt = spec.format or default_format
            sink = _Sink(spec, fmt, _encoder(spec, fmt))
            if spec.kind == "file":
                sink.local = RotatingFileSink(spec.path, spec.int_param("max_bytes", 0),
                                              spec.int_param("rotate_s", 0),
                                              spec.int_param("keep", 5),
                                              truncate=spec.int_param("truncate", 0) > 0)
            elif spec.kind == "stdout":
                sink.local = StdoutSink()
            else:
                assert spec.kind in NETWORK_KINDS
                transport = _transport(spec)
                spool = Spool(Path(spool_dir) / spec.spool_name,
                              max_bytes=spec.int_param("spool_max_bytes", spool_max_bytes),
                              fsync=spec.param("fsync", fsync) or fsync)
                sink.worker = SinkWorker(spec.display, spool, transport,
                                         backoff_max_s=backoff_max_s)
            sinks.append(sink)
    except BaseException:
        SinkSet(sinks).close(0.0)
        raise
    return SinkSet(sinks)
