"""Cleartext HTTP/2 (h2c, prior knowledge) just far enough for DNS over HTTPS in clear.

Sans-IO: ``H2cDirection.feed(bytes)`` returns the complete DATA payloads (per
stream, up to END_STREAM) that arrived. Header blocks are not decoded (HPACK is
not needed: DoH responses carry the question in their DNS message). Bounded:
frames over ``MAX_FRAME`` end the direction, stream bodies stop at ``MAX_BODY``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
MAX_FRAME = 1 << 16
MAX_BODY = 1 << 16
MAX_STREAMS = 64
_DATA = 0x0
_END_STREAM = 0x1
_PADDED = 0x8


@dataclass(slots=True)
class H2cDirection:
    """One direction of an h2c connection (``client``: the side that sent the preface)."""

    client: bool
    buf: bytearray = field(default_factory=bytearray)
    streams: dict[int, bytearray] = field(default_factory=dict)
    preface_left: int = len(PREFACE)
    dead: bool = False

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """Complete DATA bodies as (stream id, bytes)."""
        if self.dead:
            return []
        if self.client and self.preface_left:
            skip = min(self.preface_left, len(data))
            if data[:skip] != PREFACE[len(PREFACE) - self.preface_left:][:skip]:
                self.dead = True
                return []
            self.preface_left -= skip
            data = data[skip:]
        self.buf += data
        out: list[tuple[int, bytes]] = []
        while len(self.buf) >= 9:
            length = int.from_bytes(self.buf[0:3], "big")
            if length > MAX_FRAME:
                self.dead = True
                self.buf.clear()
                return out
            if len(self.buf) < 9 + length:
                break
            ftype, flags = self.buf[3], self.buf[4]
            sid = int.from_bytes(self.buf[5:9], "big") & 0x7FFFFFFF
            payload = bytes(self.buf[9:9 + length])
            del self.buf[:9 + length]
            if ftype != _DATA or sid == 0:
                continue
            if flags & _PADDED:
                if not payload or payload[0] >= len(payload):
                    continue
                payload = payload[1:len(payload) - payload[0]]
            body = self.streams.get(sid)
            if body is None:
                if len(self.streams) >= MAX_STREAMS:
                    self.streams.pop(next(iter(self.streams)))
                body = self.streams[sid] = bytearray()
            if len(body) + len(payload) <= MAX_BODY:
                body += payload
            if flags & _END_STREAM:
                out.append((sid, bytes(self.streams.pop(sid))))
        return out
