"""Opening captures by content, gzip, truncation, garbage, and the corpus."""

from __future__ import annotations

import gzip
import json
import os
import random
import struct
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sensor.sources.capture as capture
from sensor.errors import InputError
from sensor.sources.batch import Damage
from sensor.sources.capture import open_capture
from tests.helpers.captures import read_records
from tests.sensor.sources.test_pcap import build_pcap
from tests.sensor.sources.test_pcapng import block, epb, idb, shb

CORPUS = Path(__file__).resolve().parents[3] / ".." / "shared" / "corpus"

Row = tuple[int, int, bytes]


def pcap(recs: list[tuple[int, bytes]], order: str = "<", nanos: bool = False) -> bytes:
    return build_pcap([(t, 5, d, len(d)) for t, d in recs], order, nanos)


def pcapng(recs: list[tuple[int, bytes]]) -> bytes:
    return shb() + idb(1) + b"".join(epb(0, t, d) for t, d in recs)


RECS = [(i, bytes([65 + i]) * (3 * i + 1)) for i in range(6)]


def rows(path: Path, batch: int = 65536) -> tuple[list[Row], Damage | None]:
    got, damage = read_records(path, batch)
    return [(ts, caplen, data) for ts, caplen, _orig, _lt, data in got], damage


def put(tmp_path: Path, data: bytes, name: str = "f") -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


@pytest.mark.parametrize("kind", ["pcap", "pcapng"])
@pytest.mark.parametrize("gz", [False, True])
def test_formats_by_magic_and_gzip(tmp_path: Path, kind: str, gz: bool) -> None:
    raw = pcap(RECS) if kind == "pcap" else pcapng(RECS)
    data = gzip.compress(raw) if gz else raw
    p = put(tmp_path, data, "capture.txt")
    with open_capture(p) as r:
        assert r.format == kind + (".gz" if gz else "")
        assert r.bytes_total == len(data)
        batches = list(r.batches(4))
        assert [len(b) for b in batches] == [4, 2]
        assert batches[-1].bytes_consumed == len(data)
        assert r.damage is None
    got, _ = rows(p)
    assert [g[2] for g in got] == [d for _, d in RECS]


def test_gzip_small_chunks_carry_records_across(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recs = [(i, bytes([i % 256]) * (i * 7 % 300)) for i in range(300)]
    for raw in (pcap(recs), pcapng(recs)):
        p = put(
            tmp_path, gzip.compress(raw[:1000]) + gzip.compress(raw[1000:]), "m.gz"
        )  # 2 members
        for chunk in (13, 64, 1000, 1 << 20):
            monkeypatch.setattr(capture, "GZIP_CHUNK", chunk)
            with open_capture(p) as r:
                got = []
                for b in r.batches(50):
                    assert len(b) <= 50
                    got += [b.packet(i) for i in range(len(b))]  # buf valid until next batch
                assert r.damage is None
            assert got == [d for _, d in recs]


def test_gzip_truncated_and_corrupt(tmp_path: Path) -> None:
    raw = pcap([(i, b"z" * 1000) for i in range(200)])
    gz = gzip.compress(raw, compresslevel=1)
    got, damage = rows(put(tmp_path, gz[: len(gz) // 2]))
    assert damage is not None and "gzip stream truncated" in damage.reason
    n = len(got)
    assert 0 < n < 200
    assert damage.byte_offset == 24 + n * 1016
    bad = bytearray(gz)
    bad[len(gz) // 2] ^= 0xFF
    got, damage = rows(put(tmp_path, bytes(bad), "c.gz"))
    assert damage is not None and "gzip" in damage.reason
    assert all(g[2] == b"z" * 1000 for g in got)
    got, damage = rows(put(tmp_path, gz + b"\0" * 100, "pad.gz"))  # zero padding is fine
    assert damage is None and len(got) == 200


@pytest.mark.parametrize(
    ("data", "msg"),
    [
        (b"", "empty"),
        (b"hello world, this is text\n" * 3, "not a pcap/pcapng"),
        (b"\xd4\xc3\xb2\xa1\x02\x00", "truncated"),
        (b"\x0a\x0d\x0d\x0a\x1c\x00", "not a pcapng"),
        (b"\x0a\x0d\x0d\x0a\x1c\x00\x00\x00\x01\x02\x03\x04", "byte-order magic"),
        (gzip.compress(b"just some text inside gzip"), "not a pcap/pcapng"),
        (gzip.compress(b"")[:5], "gzip"),
        (b"\x1f\x8b" + b"\xff" * 30, "gzip"),
    ],
)
def test_not_a_capture_is_one_line_input_error(tmp_path: Path, data: bytes, msg: str) -> None:
    with pytest.raises(InputError, match=msg) as ei:
        open_capture(put(tmp_path, data))
    assert "\n" not in str(ei.value)


def test_unreadable_paths(tmp_path: Path) -> None:
    for p in (tmp_path / "missing.pcap", tmp_path):
        with pytest.raises(InputError, match="cannot read"):
            open_capture(p)


@pytest.mark.parametrize("kind", ["pcap", "pcapng", "pcapng.gz"])
def test_header_only_yields_nothing(tmp_path: Path, kind: str) -> None:
    raw = pcap([]) if kind == "pcap" else pcapng([])
    p = put(tmp_path, gzip.compress(raw) if kind.endswith("gz") else raw)
    with open_capture(p) as r:
        assert list(r.batches()) == []
        assert r.damage is None


@pytest.mark.parametrize("kind", ["pcap", "pcap-be-ns", "pcapng", "pcap.gz", "pcapng.gz"])
def test_truncated_at_every_offset(tmp_path: Path, kind: str) -> None:
    raw = (
        pcapng(RECS)
        if kind.startswith("pcapng")
        else pcap(RECS, *((">", True) if "be" in kind else ()))
    )
    ends = []  # byte offset where each packet's record ends
    if kind.startswith("pcapng"):
        off = len(pcapng([]))
        bounds = [0, 28, off]  # SHB, IDB, first EPB
        for _, d in RECS:
            off += len(block(6, b"\0" * 20 + d))
            ends.append(off)
        min_ok = 12  # the SHB start must be readable to open at all
    else:
        off = min_ok = 24
        bounds = [24]
        for _, d in RECS:
            off += 16 + len(d)
            ends.append(off)
    bounds += ends
    p = tmp_path / "t"
    for cut in range(min_ok, len(raw) + 1):
        body = raw[:cut]
        p.write_bytes(gzip.compress(body) if kind.endswith("gz") else body)
        got, damage = rows(p, batch=2)
        n = sum(e <= cut for e in ends)
        assert [g[2] for g in got] == [d for _, d in RECS[:n]], cut
        if cut in bounds:
            assert damage is None, cut
        else:
            assert damage is not None, cut
            assert damage.byte_offset == max(b for b in bounds if b <= cut), (cut, damage)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=400), st.sampled_from(["pcap", "pcap-be", "pcapng", "gz"]))
def test_random_garbage_never_raises_beyond_input_error(
    tmp_path_factory: pytest.TempPathFactory, junk: bytes, kind: str
) -> None:
    if kind == "pcapng":
        data = pcapng(RECS[:2]) + junk
    elif kind == "gz":
        data = gzip.compress(pcap(RECS[:2]) + junk)[: 30 + len(junk) // 2] + junk[:5]
    else:
        data = pcap(RECS[:2], ">" if kind == "pcap-be" else "<") + junk
    p = tmp_path_factory.mktemp("g") / "x"
    p.write_bytes(data)
    try:
        r = open_capture(p)
    except InputError:
        return
    with r:
        for b in r.batches(3):
            assert ((b.offsets + b.caplens) <= len(b.buf)).all()
            assert (b.caplens >= 0).all()


def test_random_bytes_files(tmp_path: Path) -> None:
    rnd = random.Random(7)
    for i in range(200):
        data = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 300)))
        with pytest.raises(InputError):
            open_capture(put(tmp_path, b"X" + data, f"r{i}"))


def test_close_while_batches_alive(tmp_path: Path) -> None:
    p = put(tmp_path, pcap(RECS))
    r = open_capture(p)
    b = next(iter(r.batches()))
    r.close()  # must not raise although ``b.buf`` still maps the file
    assert b.packet(0) == RECS[0][1]
    with pytest.raises(ValueError, match="closed"):
        next(iter(r.batches()))


# -- corpus -------------------------------------------------------------------

DAMAGED = {
    "ndpi/pcap/fuzz-2021-10-13.pcap",
    "suricata-verify/tests/bug-1450-04/tls_DER-incomplete-header.pcap",
    "suricata-verify/tests/bug-1450-05/tls_DER-incomplete-content.pcap",
    "suricata-verify/tests/http-mime-truncated/input.pcap",
}


def _corpus_captures() -> list[str]:
    man = CORPUS / "MANIFEST.json"
    if not man.exists():
        pytest.skip("corpus absent")
    files = json.loads(man.read_text())["files"]
    return [f["file"] for f in files if f["role"] == "capture"]


def _dpkt_rows(path: Path) -> list[tuple[int, bytes]] | None:
    import dpkt  # type: ignore[import-untyped]

    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:
            rd = dpkt.pcap.UniversalReader(fh)
            if isinstance(rd, dpkt.pcapng.Reader):
                return (
                    None  # dpkt applies one interface's resolution to all: tshark checked instead
                )
            return [(round(float(ts) * 1e9), bytes(d)) for ts, d in rd]
    except (dpkt.NeedData, ValueError, struct.error, zlib.error):
        return None


@pytest.mark.corpus
def test_corpus_against_dpkt_and_damage_list() -> None:
    caps = _corpus_captures()
    damaged, compared = set(), 0
    for rel in caps:
        p = CORPUS / rel
        try:
            r = open_capture(p)
        except InputError:
            continue
        with r:
            ours = [(int(b.ts_ns[i]), b.packet(i)) for b in r.batches() for i in range(len(b))]
            if r.damage is not None:
                damaged.add(rel)
                continue
        theirs = _dpkt_rows(p)
        if theirs is None:
            continue
        compared += 1
        assert len(ours) == len(theirs), rel
        for (t1, d1), (t2, d2) in zip(ours, theirs, strict=True):
            assert d1 == d2, rel
            assert abs(t1 - t2) <= 1000, rel  # dpkt's float seconds lose sub-µs
    assert damaged == DAMAGED
    assert compared > 400


def test_fifo_is_rejected_not_read_as_empty(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="not a regular file"):
        open_capture(fifo)
