"""[watch] settings and the emit decisions (inventory: once per asset, re-emit interval)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sensor.errors import InputError
from sensor.inventory.store import Inventory
from sensor.live.runner import LiveRunner, WatchSettings, from_toml
from sensor.live.service import Logger


def test_from_toml():
    ws = from_toml({"interfaces": ["eth1"], "workers": 2, "reemit_interval_s": 60,
                    "metrics": "", "state_dir": "/tmp/x", "filter": "tcp"})
    assert ws.interfaces == ("eth1",) and ws.workers == 2 and ws.metrics is None
    assert ws.state_dir == Path("/tmp/x") and ws.db_path == Path("/tmp/x/inventory.db")
    assert from_toml({}).interfaces == ()
    for bad in ({"nope": 1}, {"workers": "2"}, {"promisc": 1}, {"workers": 0, "interfaces": ["a"]},
                {"interfaces": [""]}, {"block_size": 1000, "interfaces": ["a"]},
                {"metrics": "x", "interfaces": ["a"]}, {"reemit_interval_s": True}):
        with pytest.raises(InputError):
            from_toml(bad)


def test_ring_from_settings():
    ring = WatchSettings(interfaces=("a",), block_size=1 << 20, ring_size=8 << 20).ring()
    assert ring.block_count == 8
    with pytest.raises(InputError, match="interface"):
        WatchSettings().check()


class FakeSinks:
    def __init__(self) -> None:
        self.out: list[dict] = []

    def emit(self, f: dict) -> None:
        self.out.append(f)

    def flush(self, timeout: float = 0.0) -> bool:
        return True


def finding(fid: str, flows: int) -> dict:
    return {"schema": "shadowai.finding/v1", "id": fid, "type": "ai_service_use",
            "severity": "medium", "first_seen": "2026-01-01T00:00:00.000000Z",
            "last_seen": "2026-01-01T00:00:01.000000Z",
            "client": {"ip": "10.0.0.1", "mac": None},
            "server": {"ip": "1.2.3.4", "port": 443, "name": "api.openai.com"},
            "service": {"id": "openai-api", "name": "OpenAI API", "vendor": "OpenAI",
                        "category": "llm-api"},
            "evidence": [], "counts": {"flows": flows, "packets": 10 * flows}}


def runner(tmp_path: Path, reemit: float) -> LiveRunner:
    ws = WatchSettings(interfaces=("x",), state_dir=tmp_path, reemit_interval_s=reemit)
    return LiveRunner(ws, [], log=Logger("kv", _Null()))


class _Null:
    def write(self, s: str) -> int:
        return len(s)

    def flush(self) -> None:
        pass


def test_findings_fire_once_and_survive_a_restart(tmp_path):
    db = tmp_path / "inventory.db"
    sinks = FakeSinks()
    r = runner(tmp_path, 3600)
    with Inventory(db) as inv:
        r._emit([finding("a", 1)], inv, sinks, final=False)
        r._emit([finding("a", 2)], inv, sinks, final=False)  # within the re-emit interval
        assert [f["counts"]["flows"] for f in sinks.out] == [1]
        assert r.new_assets == 1
        r._emit([finding("a", 3)], inv, sinks, final=True)  # shutdown: final counts
        assert [f["counts"]["flows"] for f in sinks.out] == [1, 3]
    # a restart: the same finding again is neither new nor re-sent
    sinks2 = FakeSinks()
    r2 = runner(tmp_path, 3600)
    with Inventory(db) as inv:
        r2._emit([finding("a", 3)], inv, sinks2, final=False)
        r2._emit([finding("a", 3)], inv, sinks2, final=True)
        assert sinks2.out == [] and r2.new_assets == 0
        r2._emit([finding("b", 1)], inv, sinks2, final=False)
        assert [f["id"] for f in sinks2.out] == ["b"] and r2.new_assets == 1


def test_reemit_after_the_interval(tmp_path):
    sinks = FakeSinks()
    r = runner(tmp_path, 0.000001)
    with Inventory(tmp_path / "i.db") as inv:
        r._emit([finding("a", 1)], inv, sinks, final=False)
        r._emit([finding("a", 1)], inv, sinks, final=False)  # unchanged: not re-sent
        r._emit([finding("a", 2)], inv, sinks, final=False)
        assert [f["counts"]["flows"] for f in sinks.out] == [1, 2]
        assert r.emitted == {"ai_service_use": 2}
