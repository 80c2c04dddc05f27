"""pcapng: sections, interfaces, timestamp resolutions, block kinds, damage."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensor.sources.batch import Damage
from sensor.sources.capture import open_capture
from sensor.sources.pcapng import PcapngParser, ticks_to_ns
from tests.helpers.captures import Row, read_records

CORPUS = Path(__file__).resolve().parents[3] / ".." / "shared" / "corpus"


def block(btype: int, body: bytes, order: str = "<") -> bytes:
    body += b"\0" * (-len(body) % 4)
    n = len(body) + 12
    return struct.pack(order + "II", btype, n) + body + struct.pack(order + "I", n)


def shb(order: str = "<") -> bytes:
    return block(0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1), order)


def opt(code: int, val: bytes, order: str = "<") -> bytes:
    return struct.pack(order + "HH", code, len(val)) + val + b"\0" * (-len(val) % 4)


def idb(
    lt: int, snap: int = 0, tsresol: int | None = None, tsoffset: int = 0, order: str = "<"
) -> bytes:
    opts = b""
    if tsresol is not None:
        opts += opt(9, bytes([tsresol]), order)
    if tsoffset:
        opts += opt(14, struct.pack(order + "q", tsoffset), order)
    if opts:
        opts += opt(0, b"", order)
    return block(1, struct.pack(order + "HHI", lt, 0, snap) + opts, order)


def epb(ifid: int, ticks: int, data: bytes, orig: int | None = None, order: str = "<") -> bytes:
    hdr = struct.pack(
        order + "IIIII",
        ifid,
        ticks >> 32,
        ticks & 0xFFFFFFFF,
        len(data),
        len(data) if orig is None else orig,
    )
    return block(6, hdr + data, order)


def spb(data: bytes, orig: int, order: str = "<") -> bytes:
    return block(3, struct.pack(order + "I", orig) + data, order)


def pb(ifid: int, ticks: int, data: bytes, order: str = "<") -> bytes:
    hdr = struct.pack(
        order + "HHIIII", ifid, 0, ticks >> 32, ticks & 0xFFFFFFFF, len(data), len(data)
    )
    return block(2, hdr + data, order)




def read(path: Path, batch: int = 65536) -> tuple[list[Row], Damage | None]:
    return read_records(path, batch, fmt="pcapng")


def write(tmp_path: Path, data: bytes, name: str = "c.pcapng") -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


T = 1_700_000_000


@pytest.mark.parametrize("order", ["<", ">"])
def test_two_interfaces_different_linktypes_and_resolutions(tmp_path: Path, order: str) -> None:
    data = (
        shb(order)
        + idb(1, tsresol=9, order=order)  # ns
        + idb(101, tsresol=0x80 | 20, order=order)  # 2^-20 s
        + block(4, b"\x01\x00\x04\x00abcd\0\0\0\0", order)  # NRB: skipped
        + epb(0, T * 10**9 + 123, b"A" * 60, order=order)
        + epb(1, (T << 20) | (1 << 19), b"B" * 41, orig=1500, order=order)
        + block(5, struct.pack(order + "IIII", 0, 0, 0, 0), order)  # ISB: skipped
        + block(0x00000BAD, b"custom", order)
        + epb(0, T * 10**9 + 7, b"", order=order)
    )
    rows, damage = read(write(tmp_path, data))
    assert damage is None
    assert rows == [
        (T * 10**9 + 123, 60, 60, 1, b"A" * 60),
        (T * 10**9 + 500_000_000, 41, 1500, 101, b"B" * 41),
        (T * 10**9 + 7, 0, 0, 1, b""),
    ]


def test_default_resolution_offset_spb_and_obsolete_pb(tmp_path: Path) -> None:
    data = (
        shb()
        + idb(1, snap=50, tsoffset=100)  # default µs, +100 s
        + pb(0, T * 10**6 + 5, b"P" * 10)
        + spb(b"S" * 64, orig=64)  # snaplen 50 limits it
        + spb(b"s" * 3, orig=3)
        + epb(0, T * 10**6 + 9, b"E" * 5)
    )
    rows, damage = read(write(tmp_path, data))
    assert damage is None
    t0 = (T + 100) * 10**9 + 5000
    assert rows == [
        (t0, 10, 10, 1, b"P" * 10),
        (t0, 50, 64, 1, b"S" * 50),  # no timestamp of its own: the previous one
        (t0, 3, 3, 1, b"sss"),
        ((T + 100) * 10**9 + 9000, 5, 5, 1, b"E" * 5),
    ]


def test_sections_with_byte_order_switch_reset_interfaces(tmp_path: Path) -> None:
    data = (
        shb("<")
        + idb(1, order="<")
        + idb(113, order="<")
        + epb(1, 5, b"x", order="<")
        + shb(">")
        + idb(276, tsresol=3, order=">")
        + epb(0, 7, b"yy", order=">")
        + shb("<")
        + idb(0, order="<")
        + epb(0, 9, b"zzz", order="<")
    )
    rows, damage = read(write(tmp_path, data), batch=1)
    assert damage is None
    assert [(r[0], r[3], r[4]) for r in rows] == [
        (5000, 113, b"x"),
        (7_000_000, 276, b"yy"),
        (9000, 0, b"zzz"),
    ]
    # interface 1 existed only in the first section
    bad = shb() + idb(1) + idb(1) + epb(1, 1, b"a") + shb() + idb(1) + epb(1, 2, b"b")
    rows, damage = read(write(tmp_path, bad, "b.pcapng"))
    assert [r[4] for r in rows] == [b"a"]
    assert damage is not None and "undefined interface 1" in damage.reason
    assert damage.byte_offset == len(bad) - len(epb(1, 2, b"b"))


def test_damage_before_an_unsupported_section_is_reported_where_it_is(tmp_path: Path) -> None:
    # a packet block naming an undefined interface, then a section of pcapng version 2,
    # in one read window: the first damage is the packet block, not the later section
    v2 = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 2, 0, -1))
    data = shb() + idb(1) + epb(0, 1, b"a") + epb(5, 2, b"b") + epb(0, 3, b"c") + v2
    rows, damage = read(write(tmp_path, data))
    assert [r[4] for r in rows] == [b"a"]
    assert damage is not None and "undefined interface 5" in damage.reason
    assert damage.byte_offset == len(shb() + idb(1) + epb(0, 1, b"a"))


@pytest.mark.parametrize(
    ("tail", "reason"),
    [
        (struct.pack("<II", 6, 30) + b"\0" * 24, "bad block length 30"),
        (struct.pack("<II", 6, 4) + b"\0" * 24, "bad block length 4"),
        (block(6, b"\0" * 20)[:-4] + struct.pack("<I", 99), "trailing length"),
        (block(6, b"\0" * 8), "too short"),
        (block(6, struct.pack("<IIIII", 0, 0, 0, 100, 100) + b"\0" * 8), "exceeds its block"),
        (block(0x0A0D0D0A, struct.pack("<IHHq", 0xDEADBEEF, 1, 0, -1)), "byte-order magic"),
        (block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 2, 0, -1)), "version 2"),
        (struct.pack("<II", 6, 1 << 30) + b"\0" * 24, "bad block length"),
    ],
)
def test_damage_keeps_packets_before_it(tmp_path: Path, tail: bytes, reason: str) -> None:
    good = shb() + idb(1) + epb(0, 1, b"ok1") + epb(0, 2, b"ok2")
    rows, damage = read(write(tmp_path, good + tail + epb(0, 3, b"after")))
    assert [r[4] for r in rows] == [b"ok1", b"ok2"]
    assert damage is not None
    assert reason in damage.reason
    assert damage.byte_offset == len(good)


def test_scapy_pcapng_writer(tmp_path: Path) -> None:
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether
    from scapy.utils import PcapNgWriter

    p = tmp_path / "s.pcapng"
    pkts = [Ether() / IP() / TCP(sport=i) / (b"q" * i) for i in range(30)]
    for i, pk in enumerate(pkts):
        pk.time = T + i
    with PcapNgWriter(str(p)) as w:
        for pk in pkts:
            w.write(pk)
    rows, damage = read(p, batch=4)
    assert damage is None
    assert [r[4] for r in rows] == [bytes(pk) for pk in pkts]
    assert [r[0] for r in rows] == [(T + i) * 10**9 for i in range(30)]


def test_ticks_to_ns_resolutions() -> None:
    t = np.array([1000 * 2**40 + 2**39], np.uint64)
    assert int(ticks_to_ns(t, 0x80 | 40)[0]) == 1000 * 10**9 + 500_000_000
    assert int(ticks_to_ns(np.array([10**18 + 1234], np.uint64), 12)[0]) == 10**15 + 1
    assert int(ticks_to_ns(np.array([T], np.uint64), 0)[0]) == T * 10**9
    assert int(ticks_to_ns(np.array([5], np.uint64), 100)[0]) == 0  # absurd: no crash
    assert int(ticks_to_ns(np.array([5], np.uint64), 0xFF)[0]) == 0


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 200), max_size=30),
    window=st.integers(12, 300),
    order=st.sampled_from(["<", ">"]),
)
def test_windowed_parse_equals_whole(sizes: list[int], window: int, order: str) -> None:
    data = (
        shb(order)
        + idb(1, order=order)
        + b"".join(
            epb(0, i, bytes([i]) * s, order=order) if i % 3 else spb(bytes([i]) * s, s, order=order)
            for i, s in enumerate(sizes)
        )
    )
    buf = np.frombuffer(data, np.uint8)
    mv = memoryview(data)
    parser = PcapngParser(order)
    pos, got = 0, []
    while pos < len(data):
        r = parser.parse(buf, mv, pos, min(len(data), pos + window), len(data), True)
        assert r.damage is None
        got += [
            bytes(data[o : o + c])
            for o, c in zip(r.records.offsets, r.records.caplens, strict=True)
        ]
        if r.next_pos == pos:
            window *= 2
        pos = r.next_pos
    assert got == [bytes([i]) * s for i, s in enumerate(sizes)]


@pytest.mark.corpus
def test_corpus_multi_interface_matches_tshark() -> None:
    p = CORPUS / "zeek" / "Traces" / "pcapng-multi-interface.pcapng"
    if not p.exists():
        pytest.skip("corpus absent")
    rows, damage = read(p)
    assert damage is None
    # tshark 4.0.17: frame.time_epoch, frame.cap_len (interface 0 is ns, 1 is µs)
    assert [(r[0], r[1]) for r in rows] == [
        (1767663089500330493, 96),
        (1767663089514291940, 214),
        (1767663437111897000, 70),
        (1767663437126460000, 166),
        (1767663437128303000, 70),
        (1767663437140942000, 182),
    ]


def test_hostile_idb_options_do_not_crash(tmp_path: Path) -> None:
    data = (
        shb()
        + idb(1, tsresol=0xFF, tsoffset=2**63 - 1)
        + block(1, struct.pack("<HHI", 1, 0, 0) + struct.pack("<HH", 9, 0xFFFF))  # option overruns
        + epb(0, 2**64 - 1, b"a")
        + epb(1, 12345, b"b")
    )
    rows, damage = read(write(tmp_path, data))
    assert damage is None
    assert [(r[0], r[4]) for r in rows][1] == (12_345_000, b"b")  # defaults kept


@settings(max_examples=200, deadline=None)
@given(
    flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=6)
)
def test_mutated_pcapng_never_raises(
    tmp_path_factory: pytest.TempPathFactory, flips: list[tuple[int, int]]
) -> None:
    base = bytearray(
        shb()
        + idb(1, tsresol=9)
        + idb(113, snap=20, tsresol=0x94)
        + epb(0, 1, b"x" * 30)
        + spb(b"y" * 30, 30)
        + pb(1, 2, b"z" * 7)
        + shb(">")
        + idb(1, order=">")
        + epb(0, 3, b"w" * 9, order=">")
    )
    for pos, val in flips:
        base[pos % len(base)] = val
    p = tmp_path_factory.mktemp("m") / "x"
    p.write_bytes(bytes(base))
    try:
        r = open_capture(p)
    except Exception as e:  # only InputError is allowed, and only at open
        from sensor.errors import InputError

        assert isinstance(e, InputError)
        return
    with r:
        for b in r.batches(2):
            assert ((b.offsets + b.caplens) <= len(b.buf)).all()
            assert (b.caplens >= 0).all() and (b.caplens <= 262144).all()
