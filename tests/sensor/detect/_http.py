"""Build ``http.exchange`` observations from raw HTTP bytes (through HttpConversation)."""

from __future__ import annotations

import json
from typing import Any

from sensor.decoders.http_stream import HttpConversation, HttpExchange
from sensor.records import Observation


def exchange_obs(request: bytes, response: bytes | None, *, client: str = "10.1.1.2",
                 server: str = "10.1.1.9", port: int = 11434, ts_ns: int = 1_700_000_000 * 10**9
                 ) -> list[Observation]:
    conv = HttpConversation()
    events = conv.feed(True, 1000, request, ts_ns)
    if response is not None:
        events += conv.feed(False, 5000, response, ts_ns + 1000)
    events += conv.flush()
    return [Observation("http.exchange", ts_ns, client, 40000, server, port, "tcp", 1, e)
            for e in events if isinstance(e, HttpExchange)]


def req(method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
        host: str = "10.1.1.9") -> bytes:
    raw = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    h = {"Host": host, **(headers or {})}
    if body is not None:
        h.setdefault("Content-Type", "application/json")
        h["Content-Length"] = str(len(raw))
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items())
    return head.encode() + b"\r\n" + raw


def resp(status: int, body: Any = b"", ctype: str = "application/json",
         headers: dict[str, str] | None = None) -> bytes:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    h = {"Content-Type": ctype, "Content-Length": str(len(raw)), **(headers or {})}
    head = f"HTTP/1.1 {status} X\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items())
    return head.encode() + b"\r\n" + raw
