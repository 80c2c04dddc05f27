"""Classic pcap: header variants, record walk, damage."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensor.errors import InputError
from sensor.sources.capture import open_capture
from sensor.sources.pcap import (
    MAX_CAPLEN,
    PcapParser,
    parse_pcap_header,
    walk_native,
    walk_struct,
)
from tests.helpers.captures import read_records

Rec = tuple[int, int, bytes, int]  # sec, frac, data, origlen


def build_pcap(
    recs: list[Rec],
    order: str = "<",
    nanos: bool = False,
    lt_field: int = 1,
    snaplen: int = 65535,
) -> bytes:
    magic = 0xA1B23C4D if nanos else 0xA1B2C3D4
    out = [struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, snaplen, lt_field)]
    for sec, frac, data, orig in recs:
        out.append(struct.pack(order + "IIII", sec, frac, len(data), orig) + data)
    return b"".join(out)


RECS: list[Rec] = [
    (1_700_000_000, 1, b"\x01" * 60, 60),
    (1_700_000_001, 999_999, b"\x02\x03" * 41, 1500),
    (1_700_000_002, 0, b"", 0),
    (4_000_000_000, 500_000, bytes(range(256)) * 3, 768),
]


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("nanos", [False, True])
def test_header_variants(tmp_path: Path, order: str, nanos: bool) -> None:
    p = tmp_path / "x.bin"  # the name says nothing: detection is by magic
    p.write_bytes(build_pcap(RECS, order, nanos))
    got, damage = read_records(p)
    assert damage is None
    mul = 1 if nanos else 1000
    assert got == [(s * 10**9 + f * mul, len(d), o, 1, d) for s, f, d, o in RECS]
    with open_capture(p) as r:
        assert r.format == "pcap"
        assert r.bytes_total == p.stat().st_size


def test_fcs_bits_are_masked_off_the_linktype(tmp_path: Path) -> None:
    # P bit (26) set, FCS length 2 (x16 bits) in the top 4 bits, LINKTYPE_RAW
    field = (2 << 28) | 0x04000000 | 101
    data = build_pcap(RECS[:1], lt_field=field)
    h = parse_pcap_header(data[:24], "x")
    assert (h.linktype, h.fcs_len) == (101, 4)
    p = tmp_path / "a.pcap"
    p.write_bytes(data)
    got, _ = read_records(p)
    assert got[0][3] == 101


def test_header_errors() -> None:
    good = build_pcap([])
    with pytest.raises(InputError, match="truncated"):
        parse_pcap_header(good[:20], "f")
    with pytest.raises(InputError, match="version"):
        parse_pcap_header(good[:4] + struct.pack("<H", 3) + good[6:], "f")
    with pytest.raises(InputError, match="not a pcap"):
        parse_pcap_header(b"GET / HTTP/1.1\r\n" * 2, "f")


def test_scapy_roundtrip(tmp_path: Path) -> None:
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    from scapy.utils import wrpcap

    pkts = []
    for i in range(50):
        pk = Ether() / IP(dst="10.0.0.1") / UDP(dport=53) / (b"x" * i)
        pk.time = 1_600_000_000 + i / 7
        pkts.append(pk)
    for nano in (False, True):
        p = tmp_path / f"s{nano}.pcap"
        wrpcap(str(p), pkts, nano=nano)
        got, damage = read_records(p, batch=7)
        assert damage is None
        assert [g[4] for g in got] == [bytes(pk) for pk in pkts]
        # float times: exact ns values are checked with hand-built files
        assert all(
            abs(g[0] - int(pk.time * 10**9)) <= 1000 for g, pk in zip(got, pkts, strict=True)
        )


def test_absurd_caplen_is_damage_and_keeps_earlier_packets(tmp_path: Path) -> None:
    data = build_pcap(RECS[:2])
    bad_at = len(data)
    data += struct.pack("<IIII", 1, 2, MAX_CAPLEN + 1, 70) + b"\0" * 100
    p = tmp_path / "d.pcap"
    p.write_bytes(data + build_pcap(RECS)[24:])
    got, damage = read_records(p)
    assert [g[4] for g in got] == [RECS[0][2], RECS[1][2]]
    assert damage is not None
    assert damage.byte_offset == bad_at and "caplen" in damage.reason


@settings(max_examples=60, deadline=None)
@given(
    caplens=st.lists(st.integers(0, 300), max_size=60),
    order=st.sampled_from(["<", ">"]),
    window=st.integers(16, 400),
    cut=st.integers(0, 20000),
)
def test_windowed_parse_equals_whole(caplens: list[int], order: str, window: int, cut: int) -> None:
    recs = [(i, i, bytes([i % 256]) * c, c + 1) for i, c in enumerate(caplens)]
    data = build_pcap(recs, order)
    end = min(len(data), 24 + cut)
    buf = np.frombuffer(data, np.uint8)
    mv = memoryview(data)
    parser = PcapParser(parse_pcap_header(data, "x"))
    pos, got, damage = 24, [], None
    while pos < end:
        r = parser.parse(buf, mv, pos, min(end, pos + window), end, True)
        got += [
            bytes(data[o : o + c])
            for o, c in zip(r.records.offsets, r.records.caplens, strict=True)
        ]
        if r.damage:
            damage = r.damage
            break
        assert r.next_pos > pos or min(end, pos + window) < end
        pos = r.next_pos if r.next_pos > pos else pos
        window = window * 2 if r.next_pos == pos else window
    # expected: every record that fits entirely before ``end``
    want, off = [], 24
    for _, _, d, _ in recs:
        if off + 16 + len(d) > end:
            break
        want.append(d)
        off += 16 + len(d)
    assert got == want
    assert (damage is None) == (off == end)
    if damage:
        assert damage[0] == off


@given(st.lists(st.integers(0, 2000), min_size=1, max_size=40))
def test_native_and_struct_walks_agree(caplens: list[int]) -> None:
    recs = [(0, 0, b"\0" * c, c) for c in caplens]
    native = "<" if np.little_endian else ">"
    data = build_pcap(recs, native)
    mv = memoryview(data)
    assert walk_native(mv, 24, len(data)) == walk_struct(mv, 24, len(data), native)
