"""Syslog: RFC 5424 messages over UDP (RFC 5426), TCP with octet counting (RFC 6587)
and TLS (RFC 5425, default port 6514, server verified against ``ca``, optional client
certificate ``cert``/``key``)."""

from __future__ import annotations

import contextlib
import os
import select
import socket
import ssl
import time
from typing import Any

from sensor.errors import InputError
from sensor.findings import rfc3339
from sensor.sinks.url import SinkSpec
from sensor.sinks.worker import PermanentError, TransientError, Transport

FACILITIES = {"kern": 0, "user": 1, "daemon": 3, "auth": 4, "syslog": 5, "authpriv": 10,
              **{f"local{i}": 16 + i for i in range(8)}}
# finding severity -> syslog severity (RFC 5424 table 2)
SEVERITY = {"critical": 2, "high": 3, "medium": 4, "low": 5, "info": 6}
UDP_MAX = 65000   # a bigger datagram would fail with EMSGSIZE; such messages are cut


def _header_token(value: str, limit: int) -> str:
    """PRINTUSASCII without spaces, as RFC 5424 requires for HOSTNAME/APP-NAME/MSGID."""
    out = "".join(c if 33 <= ord(c) <= 126 else "_" for c in value)[:limit]
    return out or "-"


class SyslogFormatter:
    """Builds ``<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - MSG`` lines."""

    def __init__(self, spec: SinkSpec) -> None:
        fac = spec.param("facility", "local0") or "local0"
        if fac not in FACILITIES:
            raise InputError(f"sink {spec.display}: facility must be one of "
                             f"{', '.join(FACILITIES)}")
        self.facility = FACILITIES[fac]
        self.hostname = _header_token(spec.param("hostname") or socket.gethostname(), 255)
        self.app = _header_token(spec.param("app_name", "shadowai") or "shadowai", 48)
        self._procid = str(os.getpid())
        self._msgids: dict[str, str] = {}

    def format(self, rec: dict[str, Any], body: bytes, kind: str = "finding") -> bytes:
        pri = self.facility * 8 + SEVERITY.get(str(rec.get("severity")), 6)
        raw = str(rec.get("type") or kind)
        msgid = self._msgids.get(raw)
        if msgid is None:
            if len(self._msgids) > 256:
                self._msgids.clear()
            msgid = self._msgids[raw] = _header_token(raw, 32)
        now = rfc3339(time.time_ns())
        head = f"<{pri}>1 {now} {self.hostname} {self.app} {self._procid} {msgid} - "
        return head.encode() + body


class UdpTransport(Transport):
    """One message per datagram. UDP has no acknowledgement: the spool only covers local
    send errors (no route, ...), not datagrams lost on the way."""

    batch_records = 200

    def __init__(self, spec: SinkSpec) -> None:
        self.addr = (spec.host, spec.port)
        self.sock: socket.socket | None = None

    def open(self) -> None:
        try:
            info = socket.getaddrinfo(*self.addr, type=socket.SOCK_DGRAM)[0]
            self.sock = socket.socket(info[0], socket.SOCK_DGRAM)
            self.sock.connect(info[4])
        except OSError as e:
            raise TransientError(f"UDP {self.addr[0]}:{self.addr[1]}: {e.strerror or e}") from None

    def send(self, batch: list[bytes]) -> int:
        assert self.sock is not None
        try:
            for msg in batch:
                self.sock.send(msg[:UDP_MAX])
        except OSError as e:
            raise TransientError(f"UDP send: {e.strerror or e}") from None
        return 0

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class TcpTransport(Transport):
    """Octet-counting framing (``LEN SP MSG``), optionally inside TLS."""

    confirm_s = 0.25
    batch_records = 1000

    def __init__(self, spec: SinkSpec, tls: bool) -> None:
        self.spec = spec
        self.addr = (spec.host, spec.port)
        self.timeout = float(spec.int_param("timeout_s", 10))
        self.sock: socket.socket | None = None
        self.ctx: ssl.SSLContext | None = self._tls_context(spec) if tls else None

    @staticmethod
    def _tls_context(spec: SinkSpec) -> ssl.SSLContext:
        from sensor.sinks.http import tls_context

        ctx = tls_context(spec)  # RFC 5425 asks for TLS 1.2 at least
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        return ctx

    def open(self) -> None:
        try:
            raw = socket.create_connection(self.addr, timeout=self.timeout)
        except OSError as e:
            raise TransientError(f"connect {self.addr[0]}:{self.addr[1]}: "
                                 f"{e.strerror or type(e).__name__}") from None
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.ctx is None:
            self.sock = raw
            return
        try:
            self.sock = self.ctx.wrap_socket(
                raw, server_hostname=self.spec.param("server_name") or self.spec.host)
        except ssl.SSLCertVerificationError as e:
            raw.close()
            raise PermanentError(f"TLS to {self.addr[0]}:{self.addr[1]}: certificate "
                                 f"not trusted ({e.verify_message})") from None
        except (OSError, ssl.SSLError) as e:
            raw.close()
            raise TransientError(f"TLS to {self.addr[0]}:{self.addr[1]}: "
                                 f"{type(e).__name__}") from None

    def send(self, batch: list[bytes]) -> int:
        assert self.sock is not None
        data = b"".join(b"%d %s" % (len(m), m) for m in batch)
        try:
            self.sock.sendall(data)
        except OSError as e:
            raise TransientError(f"send to {self.addr[0]}:{self.addr[1]}: "
                                 f"{e.strerror or type(e).__name__}") from None
        return 0

    def healthy(self) -> bool:
        """Syslog receivers do not write back: readable means EOF or reset, except for
        TLS records such as session tickets, which a non-blocking read consumes."""
        if self.sock is None:
            return False
        try:
            r, _, _ = select.select([self.sock], [], [], 0)
        except (OSError, ValueError):
            return False
        if not r:
            return True
        try:
            self.sock.setblocking(False)
            return bool(self.sock.recv(4096))     # b"": the receiver closed
        except (ssl.SSLWantReadError, BlockingIOError):
            return True
        except OSError:
            return False
        finally:
            with contextlib.suppress(OSError):
                self.sock.settimeout(self.timeout)

    def close(self) -> None:
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.close()
            self.sock = None
