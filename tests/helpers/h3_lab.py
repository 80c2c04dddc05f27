"""A real HTTP/3 exchange with aioquic: server and client in one process.

Run inside a network namespace by tests/sensor/test_http3_lab.py:
``python -m tests.helpers.h3_lab HOST PORT SNI CERT KEY``. The client asks for
``GET /v1/models`` with the given SNI and prints the status it got.
"""

from __future__ import annotations

import asyncio
import ssl
import sys

from aioquic.asyncio import connect, serve
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, H3Event, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import QuicEvent


class _Server(QuicConnectionProtocol):
    def __init__(self, *a, **k) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*a, **k)
        self._h3: H3Connection | None = None

    def quic_event_received(self, event: QuicEvent) -> None:
        if self._h3 is None:
            self._h3 = H3Connection(self._quic)
        for ev in self._h3.handle_event(event):
            if isinstance(ev, HeadersReceived) and ev.stream_ended:
                body = b'{"object":"list","data":[]}'
                self._h3.send_headers(ev.stream_id, [(b":status", b"200"),
                                                     (b"content-type", b"application/json")])
                self._h3.send_data(ev.stream_id, body, end_stream=True)
                self.transmit()


class _Client(QuicConnectionProtocol):
    def __init__(self, *a, **k) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*a, **k)
        self.h3 = H3Connection(self._quic)
        self.done: asyncio.Future[int] = asyncio.get_event_loop().create_future()
        self.status = 0

    def quic_event_received(self, event: QuicEvent) -> None:
        for ev in self.h3.handle_event(event):
            self._h3_event(ev)

    def _h3_event(self, ev: H3Event) -> None:
        if isinstance(ev, HeadersReceived):
            self.status = int(dict(ev.headers)[b":status"])
        if isinstance(ev, (HeadersReceived, DataReceived)) and ev.stream_ended \
                and not self.done.done():
            self.done.set_result(self.status)


async def main(host: str, port: int, sni: str, cert: str, key: str) -> int:
    scfg = QuicConfiguration(is_client=False, alpn_protocols=H3_ALPN)
    scfg.load_cert_chain(cert, key)
    server = await serve(host, port, configuration=scfg, create_protocol=_Server)
    try:
        ccfg = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN, server_name=sni)
        ccfg.verify_mode = ssl.CERT_NONE
        async with connect(host, port, configuration=ccfg, create_protocol=_Client) as c:
            assert isinstance(c, _Client)
            sid = c._quic.get_next_available_stream_id()
            c.h3.send_headers(sid, [(b":method", b"GET"), (b":scheme", b"https"),
                                    (b":authority", sni.encode()), (b":path", b"/v1/models"),
                                    (b"user-agent", b"h3-lab")], end_stream=True)
            c.transmit()
            status = await asyncio.wait_for(c.done, 10)
        return status
    finally:
        server.close()


if __name__ == "__main__":
    st = asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]))
    print(st)
    sys.exit(0 if st == 200 else 1)
