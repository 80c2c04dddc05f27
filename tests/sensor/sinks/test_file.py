"""File sink: JSON Lines (or CEF lines) with size and age rotation; several sinks at once."""

from __future__ import annotations

import json
import time
from pathlib import Path

from sensor.sinks.file import RotatingFileSink
from sensor.sinks.sinkset import open_sinks
from tests.sensor.formats._samples import sample


def test_size_rotation(tmp_path: Path) -> None:
    p = tmp_path / "f.jsonl"
    s = RotatingFileSink(p, max_bytes=1000, keep=3)
    for i in range(100):
        s.write(json.dumps({"i": i, "pad": "x" * 80}).encode())
    s.close()
    files = sorted(tmp_path.iterdir())
    assert [f.name for f in files] == ["f.jsonl", "f.jsonl.1", "f.jsonl.2", "f.jsonl.3"]
    assert all(f.stat().st_size <= 1000 for f in files)
    last = [json.loads(ln)["i"] for ln in p.read_text().splitlines()]
    assert last[-1] == 99


def test_age_rotation(tmp_path: Path) -> None:
    p = tmp_path / "f.jsonl"
    s = RotatingFileSink(p, rotate_s=1)
    s.write(b"{}")
    s._opened -= 2      # pretend the file is two seconds old
    s.write(b"{}")
    s.close()
    assert (tmp_path / "f.jsonl.1").read_text() == "{}\n"
    assert s.rotations == 1
    assert time.time() - s._opened < 5


def test_several_sinks_each_in_its_format(tmp_path: Path) -> None:
    a, b = tmp_path / "native.jsonl", tmp_path / "cef.log"
    sinks = open_sinks([f"file://{a}", f"file://{b}?format=cef",
                        f"file://{a}.ecs?format=ecs"], "native", tmp_path / "spool")
    for i in range(5):
        sinks.emit(sample(i))
    sinks.emit_asset({"ip": "10.0.0.1", "last_seen": "2026-11-26T00:00:00.000000Z"})
    assert sinks.close()
    native = [json.loads(x) for x in a.read_text().splitlines()]
    assert [d.get("schema") for d in native[:5]] == ["shadowai.finding/v1"] * 5
    assert native[5] == {"ip": "10.0.0.1", "last_seen": "2026-11-26T00:00:00.000000Z"}
    cef = b.read_text().splitlines()
    assert len(cef) == 5 and all(x.startswith("CEF:0|") for x in cef)   # CEF skips assets
    ecs = [json.loads(x) for x in Path(f"{a}.ecs").read_text().splitlines()]
    assert [d["event"]["kind"] for d in ecs] == ["alert"] * 5 + ["asset"]
    st = sinks.stats()
    assert st[f"file://{b}"].skipped == 1


def test_append_by_default_truncate_on_request(tmp_path: Path) -> None:
    p = tmp_path / "f.jsonl"
    p.write_text("old\n")
    s = open_sinks([f"file://{p}"], "native", tmp_path / "sp")
    s.emit(sample(0))
    s.close()
    assert p.read_text().splitlines()[0] == "old"
    s = open_sinks([f"file://{p}?truncate=1"], "native", tmp_path / "sp")
    s.emit(sample(0))
    s.close()
    assert len(p.read_text().splitlines()) == 1
