"""The optional C record walk (sensor/_walk.c) against the pure-Python walks that
define it, on well-formed, damaged and random bytes, in both byte orders."""

from __future__ import annotations

import struct
from types import ModuleType

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensor.sources import pcap, pcapng

pytestmark = pytest.mark.skipif(pcap._cwalk is None, reason="the C walk is not built here")


def _pcap_records(caplens: list[int], order: str) -> bytes:
    out = bytearray(24)
    for c in caplens:
        out += struct.pack(order + "IIII", 1, 2, c, c) + b"\x5a" * c
    return bytes(out)


@given(st.lists(st.integers(0, 3000), max_size=60), st.sampled_from("<>"),
       st.integers(0, 64), st.integers(-40, 40))
@settings(max_examples=300, deadline=None)
def test_pcap_walk_matches_python(caplens: list[int], order: str, cut: int,
                                  walk_shift: int) -> None:
    data = _pcap_records(caplens, order)
    data = data[: max(24, len(data) - cut)]
    mv = memoryview(data)
    walk_end = max(24, min(len(data), len(data) + walk_shift))
    c = pcap.walk(mv, 24, walk_end, order, use_c=True)
    py = pcap.walk(mv, 24, walk_end, order, use_c=False)
    assert c.tolist() == py.tolist()


@pytest.mark.parametrize("module", [pcap, pcapng], ids=["pcap", "pcapng"])
@given(data=st.binary(min_size=0, max_size=4000), start=st.integers(0, 64),
       order=st.sampled_from("<>"))
@settings(max_examples=300, deadline=None)
def test_walks_match_python_on_garbage(module: ModuleType, data: bytes, start: int,
                                       order: str) -> None:
    mv = memoryview(data)
    start = min(start, len(data))
    c = module.walk(mv, start, len(data), order, use_c=True)
    assert c.tolist() == module.walk(mv, start, len(data), order, use_c=False).tolist()


def test_pcapng_walk_of_blocks_and_zero_lengths() -> None:
    # blocks of 12, 0 (advances one word), 16 bytes: word positions 0, 3, 4, then 8
    data = (struct.pack("<II", 1, 12) + b"\0" * 4 + struct.pack("<II", 2, 0)
            + struct.pack("<II", 3, 16) + b"\0" * 8)
    got = pcapng.walk(memoryview(data), 0, len(data), "<", use_c=True)
    assert got.tolist() == [0, 3, 4, 5, 9]
    assert got.tolist() == pcapng.walk(memoryview(data), 0, len(data), "<", use_c=False).tolist()


def test_bad_arguments_are_errors_not_crashes() -> None:
    assert pcap._cwalk is not None
    with pytest.raises(ValueError):
        pcap._cwalk.pcap_walk(b"\0" * 64, 0, 64, False, np.empty(3, np.int8))
    with pytest.raises(ValueError):
        pcap._cwalk.pcap_walk(b"\0" * 64, -1, 64, False, np.empty(4, np.int64))
    # a walk end past the buffer is clamped to it
    out = np.empty(10, np.int64)
    n = pcap._cwalk.pcap_walk(b"\0" * 40, 0, 10**9, False, out)
    assert out[:n].tolist() == [8, 24, 40]


@pytest.mark.parametrize("name", ["sample.pcap"])
def test_a_capture_reads_the_same_without_the_c_walk(
        name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from pathlib import Path

    from sensor.sources.capture import open_capture

    path = Path(__file__).resolve().parents[3] / "pcaps" / name

    def records() -> list[tuple[int, int, int]]:
        with open_capture(path) as r:
            return [(int(o), int(c), int(t)) for b in r.batches(64)
                    for o, c, t in zip(b.offsets, b.caplens, b.ts_ns, strict=True)]

    with_c = records()
    monkeypatch.setattr(pcap, "_cwalk", None)
    assert records() == with_c and len(with_c) > 10
