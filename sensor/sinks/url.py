"""Sink URLs: ``scheme://host:port/path?key=value``, parsed into a :class:`SinkSpec`.

Secrets are never taken from the URL itself (URLs end up in configs, process lists and
logs): tokens come from ``token_env``/``token_file``, passwords from ``password_env``.
Errors are one line and never repeat a query value.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from sensor.errors import InputError
from sensor.formats import FORMATS

# scheme -> (kind, default port)
SCHEMES: dict[str, tuple[str, int]] = {
    "file": ("file", 0),
    "stdout": ("stdout", 0),
    "syslog+udp": ("syslog_udp", 514),
    "syslog+tcp": ("syslog_tcp", 601),
    "syslog+tls": ("syslog_tls", 6514),
    "splunk+https": ("splunk", 8088),
    "splunk+http": ("splunk", 8088),
    "elastic+https": ("elastic", 9200),
    "elastic+http": ("elastic", 9200),
    "kafka": ("kafka", 9092),
    "https": ("webhook", 443),
    "http": ("webhook", 80),
}
NETWORK_KINDS = frozenset({"syslog_udp", "syslog_tcp", "syslog_tls", "splunk", "elastic",
                           "kafka", "webhook"})
_SECRET_KEYS = frozenset({"token", "password", "secret", "api_key", "apikey", "key_password"})
_KNOWN = frozenset({"format", "ca", "cert", "key", "token_env", "token_file", "password_env",
                    "user", "api_key_env", "api_key_file", "facility", "app_name", "hostname",
                    "max_bytes", "rotate_s", "keep", "truncate", "channel", "index",
                    "sourcetype", "key_by", "server_name", "fsync", "spool_max_bytes",
                    "timeout_s"})


@dataclass(frozen=True, slots=True)
class SinkSpec:
    kind: str                     # see SCHEMES values
    scheme: str
    host: str
    port: int
    path: str
    format: str | None            # None: use the default format
    params: dict[str, str] = field(default_factory=dict)

    @property
    def display(self) -> str:
        """Safe to log: scheme, host, port and path, never query values."""
        if self.kind in ("file", "stdout"):
            return f"{self.scheme}://{self.path}"
        # webhook paths often embed a secret (Slack, Teams...): never show them
        path = "/..." if self.kind == "webhook" and self.path not in ("", "/") else self.path
        return f"{self.scheme}://{self.host}:{self.port}{path}"

    @property
    def spool_name(self) -> str:
        """Stable directory name for this sink's spool (same URL, same spool)."""
        key = f"{self.scheme}://{self.host}:{self.port}{self.path}|{self.format}"
        h = hashlib.sha256(key.encode()).hexdigest()[:12]
        return f"{self.kind}-{self.host or 'local'}-{self.port}-{h}"

    def param(self, key: str, default: str | None = None) -> str | None:
        return self.params.get(key, default)

    def int_param(self, key: str, default: int) -> int:
        raw = self.params.get(key)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise InputError(f"sink {self.display}: {key} must be an integer") from None
        if value < 0:
            raise InputError(f"sink {self.display}: {key} must not be negative")
        return value


def parse_sink_url(url: str) -> SinkSpec:
    """Parse and check one sink URL; raise InputError (one line, no secrets) if bad."""
    if url in ("-", "stdout", "stdout:", "stdout://"):
        return SinkSpec("stdout", "stdout", "", 0, "-", None)
    try:
        parts = urlsplit(url)
        port_raw = parts.port
    except ValueError:
        raise InputError("sink URL is malformed (bad port or brackets)") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        known = ", ".join(sorted(SCHEMES))
        raise InputError(f"sink URL scheme {scheme or '(none)'!r} is not one of: {known}")
    kind, default_port = SCHEMES[scheme]
    if parts.password is not None or parts.username is not None:
        raise InputError(f"sink URL for {scheme}://{parts.hostname or ''} carries credentials; "
                         "use token_env/token_file/password_env instead")
    params: dict[str, str] = {}
    for k, v in parse_qsl(parts.query, keep_blank_values=True):
        if k.lower() in _SECRET_KEYS:
            raise InputError(f"sink URL parameter {k!r} would put a secret in the URL; "
                             f"use {k.lower().split('_')[0]}_env or "
                             f"{k.lower().split('_')[0]}_file instead")
        if k not in _KNOWN:
            raise InputError(f"sink URL parameter {k!r} is not known")
        params[k] = v
    fmt = params.pop("format", None)
    if fmt is not None and fmt not in FORMATS:
        raise InputError(f"sink URL format must be one of {', '.join(FORMATS)}")
    if kind == "file":
        path = unquote((parts.netloc + parts.path) if parts.netloc not in ("", "localhost")
                       else parts.path)
        if not path or path.endswith("/"):
            raise InputError("file sink URL needs a file path, e.g. file:///var/log/x.jsonl")
        return SinkSpec(kind, scheme, "", 0, path, fmt, params)
    host = parts.hostname or ""
    if not host:
        raise InputError(f"sink URL {scheme}:// needs a host")
    port = port_raw if port_raw is not None else default_port
    path = parts.path or ""
    if kind == "kafka" and not path.strip("/"):
        raise InputError("kafka sink URL needs a topic, e.g. kafka://host:9092/findings")
    if kind == "elastic" and not path.strip("/"):
        raise InputError("elastic sink URL needs a data stream, "
                         "e.g. elastic+https://host:9200/logs-shadowai.finding-default")
    if kind == "splunk" and not (params.get("token_env") or params.get("token_file")):
        raise InputError("splunk sink URL needs token_env=VAR or token_file=PATH")
    return SinkSpec(kind, scheme, host, port, path, fmt, params)


def read_secret(spec: SinkSpec, name: str, environ: dict[str, str] | Any = None) -> str | None:
    """The secret named by ``<name>_env`` or ``<name>_file`` (None if neither is set).
    Errors name the variable or file, never the value."""
    import os
    env = os.environ if environ is None else environ
    var = spec.params.get(f"{name}_env")
    if var:
        value = env.get(var)
        if not value:
            raise InputError(f"sink {spec.display}: environment variable {var} is not set")
        return str(value).strip()
    path = spec.params.get(f"{name}_file")
    if path:
        try:
            with open(path, encoding="utf-8") as fh:
                value = fh.read().strip()
        except OSError as e:
            raise InputError(f"sink {spec.display}: cannot read {name} file {path}: "
                             f"{e.strerror}") from None
        if not value:
            raise InputError(f"sink {spec.display}: {name} file {path} is empty")
        return value
    return None
