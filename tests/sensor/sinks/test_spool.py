"""The on-disk spool: order, acknowledgement, replay after restart, overflow, torn tails."""

from __future__ import annotations

from pathlib import Path

import msgpack
import pytest

from sensor.errors import InputError
from sensor.sinks.spool import Spool


def _drain(sp: Spool, n: int = 10_000) -> list[bytes]:
    recs, cur = sp.read(n, 1 << 30)
    sp.ack(cur)
    return recs


def test_fifo_ack_and_replay(tmp_path: Path) -> None:
    sp = Spool(tmp_path, segment_bytes=1024, max_bytes=1 << 20)
    for i in range(300):
        sp.append(b"rec%d" % i)
    recs, cur = sp.read(100)
    assert recs == [b"rec%d" % i for i in range(100)]
    sp.ack(cur)
    recs, _ = sp.read(50)          # read but not acknowledged: must come back
    assert recs[0] == b"rec100"
    assert sp.pending() == 200
    sp.close()
    sp2 = Spool(tmp_path, segment_bytes=1024, max_bytes=1 << 20)
    assert sp2.replayed == 200
    assert _drain(sp2) == [b"rec%d" % i for i in range(100, 300)]
    assert sp2.pending() == 0
    sp2.close()
    # spent segments are deleted
    assert len(list(tmp_path.glob("seg-*.mpk"))) <= 1


def test_rewind_resends_unacknowledged(tmp_path: Path) -> None:
    sp = Spool(tmp_path)
    for i in range(10):
        sp.append(bytes([i]))
    first, _ = sp.read(4)
    sp.rewind()
    again, cur = sp.read(4)
    assert first == again
    sp.ack(cur)
    sp.rewind()
    assert sp.read(100)[0] == [bytes([i]) for i in range(4, 10)]
    sp.close()


def test_overflow_drops_oldest_and_counts(tmp_path: Path) -> None:
    sp = Spool(tmp_path, segment_bytes=4096, max_bytes=16384)
    payload = b"x" * 100
    for _ in range(1000):
        sp.append(payload)
    assert sp.dropped > 0
    left = _drain(sp)
    assert len(left) + sp.dropped == 1000     # every record is delivered or counted
    assert sum(p.stat().st_size for p in tmp_path.glob("seg-*.mpk")) <= 16384 + 4096
    sp.close()


def test_torn_tail_is_skipped(tmp_path: Path) -> None:
    sp = Spool(tmp_path)
    for i in range(5):
        sp.append(b"ok%d" % i)
    sp.close()
    seg = sorted(tmp_path.glob("seg-*.mpk"))[-1]
    with open(seg, "ab") as fh:           # a crash in the middle of a write
        fh.write(msgpack.packb(b"y" * 50)[:20])
    sp2 = Spool(tmp_path)
    sp2.append(b"after")
    assert _drain(sp2) == [b"ok0", b"ok1", b"ok2", b"ok3", b"ok4", b"after"]
    sp2.close()


def test_big_record(tmp_path: Path) -> None:
    sp = Spool(tmp_path, segment_bytes=1 << 20, max_bytes=64 << 20)
    big = b"z" * (3 << 20)
    sp.append(b"a")
    sp.append(big)
    sp.append(b"b")
    assert _drain(sp) == [b"a", big, b"b"]
    sp.close()


def test_bad_policy(tmp_path: Path) -> None:
    with pytest.raises(InputError):
        Spool(tmp_path, fsync="sometimes")


def test_one_process_per_spool(tmp_path: Path) -> None:
    sp = Spool(tmp_path)
    with pytest.raises(InputError, match="in use"):
        Spool(tmp_path)
    sp.close()
    Spool(tmp_path).close()
