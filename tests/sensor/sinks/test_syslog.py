"""RFC 5424 header and a TLS 1.3 receiver that sends session tickets (a live link must
not be mistaken for a closed one)."""

from __future__ import annotations

import re
import socket
import ssl
import threading
from pathlib import Path

import pytest

from sensor.errors import InputError
from sensor.sinks.sinkset import open_sinks
from sensor.sinks.syslog import SyslogFormatter
from sensor.sinks.url import parse_sink_url
from tests.sensor.formats._samples import sample
from tests.sensor.sinks._servers import make_pki, parse_octet_frames

RFC5424 = re.compile(rb"^<(\d{1,3})>1 (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z) (\S+) (\S+) "
                     rb"(\d+) (\S+) - (.*)$", re.S)


def test_header() -> None:
    fmt = SyslogFormatter(parse_sink_url("syslog+tcp://h?facility=local3&hostname=my host"
                                         "&app_name=sai"))
    line = fmt.format({"severity": "critical", "type": "bulk_upload"}, b'{"a":1}')
    m = RFC5424.match(line)
    assert m is not None
    assert int(m[1]) == 19 * 8 + 2
    assert (m[3], m[4], m[6], m[7]) == (b"my_host", b"sai", b"bulk_upload", b'{"a":1}')
    with pytest.raises(InputError):
        SyslogFormatter(parse_sink_url("syslog+tcp://h?facility=local9"))


def test_tls13_receiver_with_session_tickets(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.num_tickets = 2
    ctx.load_cert_chain(pki["server.pem"], pki["server.key"])
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(4)
    port = lsock.getsockname()[1]
    got: list[bytes] = []

    def serve() -> None:
        while True:
            try:
                raw, _ = lsock.accept()
            except OSError:
                return
            c = ctx.wrap_socket(raw, server_side=True)
            buf = bytearray()
            while True:
                try:
                    data = c.recv(65536)
                except OSError:
                    break
                if not data:
                    break
                buf += data
                got.extend(parse_octet_frames(buf))

    threading.Thread(target=serve, daemon=True).start()
    sinks = open_sinks([f"syslog+tls://127.0.0.1:{port}?ca={pki['ca.pem']}"], "native",
                       tmp_path / "spool")
    for i in range(200):
        sinks.emit(sample(i))
    assert sinks.close(timeout=10)
    lsock.close()
    st = next(iter(sinks.stats().values()))
    assert st.retries == 0, st.last_error
    assert len(got) == 200
