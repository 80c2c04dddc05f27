"""Cleartext HTTP/2 frames, just enough for DoH in clear (sensor/decoders/h2c.py)."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st

from sensor.decoders.h2c import MAX_FRAME, PREFACE, H2cDirection


def frame(ftype: int, flags: int, sid: int, payload: bytes) -> bytes:
    return struct.pack("!I", len(payload))[1:] + bytes([ftype, flags]) + \
        struct.pack("!I", sid) + payload


def test_data_bodies_per_stream_across_segments_and_padding():
    settings = frame(4, 0, 0, b"")
    hdrs = frame(1, 4, 1, b"\x82")  # HEADERS: ignored (no HPACK needed)
    d1 = frame(0, 0, 1, b"abc")
    d2 = frame(0, 0x1 | 0x8, 1, bytes([2]) + b"def" + b"\0\0")  # padded, END_STREAM
    d3 = frame(0, 0x1, 3, b"xyz")
    wire = PREFACE + settings + hdrs + d1 + d2 + d3
    c = H2cDirection(client=True)
    out = []
    for i in range(0, len(wire), 7):  # any segmentation
        out += c.feed(wire[i:i + 7])
    assert out == [(1, b"abcdef"), (3, b"xyz")]


def test_not_h2c_or_oversized_frames_stop_the_direction():
    c = H2cDirection(client=True)
    assert c.feed(b"GET / HTTP/1.1\r\n\r\n") == [] and c.dead
    s = H2cDirection(client=False)
    assert s.feed(struct.pack("!I", MAX_FRAME + 1)[1:] + b"\0" * 6) == [] and s.dead


@given(st.binary(max_size=2000))
def test_random_bytes_never_raise(data):
    for client in (True, False):
        c = H2cDirection(client=client)
        assert isinstance(c.feed(PREFACE + data if client else data), list)
