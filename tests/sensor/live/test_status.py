"""The status file and `shadowai status`."""

from __future__ import annotations

import json
import time

import pytest
from click.testing import CliRunner

from sensor.errors import InputError
from sensor.live.commands import status
from sensor.live.status import (
    STATUS_SCHEMA,
    format_status,
    is_stale,
    read_status,
    sum_interfaces,
    write_status,
)


def doc(**kw):
    d = {"schema": STATUS_SCHEMA, "pid": 42, "started": time.time() - 100,
         "updated": time.time(), "stopped": False, "workers": 2, "workers_alive": 2,
         "interfaces": sum_interfaces([
             {"ifaces": {"eth1": {"packets": 10, "bytes": 100, "kernel_drops": 1}}},
             {"ifaces": {"eth1": {"packets": 5, "bytes": 50, "kernel_drops": 2}}}]),
         "own_drops": 0, "flows": 3, "reloads": 0,
         "findings_active": {"ai_service_use": 2}, "findings_emitted": {"ai_service_use": 3},
         "sinks": {"file:///x": {"delivered": 3, "pending": 0, "dropped": 0}}}
    d.update(kw)
    return d


def test_sum_interfaces():
    s = doc()["interfaces"]["eth1"]
    assert (s["packets"], s["bytes"], s["kernel_drops"]) == (15, 150, 3)


def test_write_is_atomic_and_readable(tmp_path):
    p = tmp_path / "st" / "status.json"
    write_status(p, doc())
    write_status(p, doc(flows=9))
    assert read_status(p)["flows"] == 9
    assert [x.name for x in p.parent.iterdir()] == ["status.json"]  # no temp files left


def test_read_errors(tmp_path):
    with pytest.raises(InputError, match="no status file"):
        read_status(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(InputError, match="unreadable"):
        read_status(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text("{}")
    with pytest.raises(InputError, match="not a shadowai"):
        read_status(tmp_path / "other.json")


def test_staleness_and_format():
    now = time.time()
    assert not is_stale(doc(), now)
    assert is_stale(doc(updated=now - 60), now)
    assert is_stale(doc(stopped=True), now)
    text = format_status(doc(), now)
    assert "running" in text and "eth1" in text and "15" in text
    assert "findings ai_service_use: 2 current, 3 sent" in text
    assert "STALE" in format_status(doc(updated=now - 60), now)


def test_status_command(tmp_path):
    write_status(tmp_path / "status.json", doc())
    r = CliRunner().invoke(status, ["--state-dir", str(tmp_path)])
    assert r.exit_code == 0 and "eth1" in r.output
    r = CliRunner().invoke(status, ["--state-dir", str(tmp_path), "--json"])
    assert json.loads(r.output)["flows"] == 3
    write_status(tmp_path / "status.json", doc(stopped=True))
    assert CliRunner().invoke(status, ["--state-dir", str(tmp_path)]).exit_code == 1
    assert CliRunner().invoke(status, ["--state-dir", str(tmp_path / "no")]).exit_code == 1


def test_status_finds_every_instance(tmp_path, monkeypatch):
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path))
    write_status(tmp_path / "eth1" / "status.json", doc())
    write_status(tmp_path / "eth2" / "status.json", doc(flows=77))
    r = CliRunner().invoke(status, [])
    assert r.exit_code == 0 and f"== {tmp_path / 'eth2'}" in r.output
    r = CliRunner().invoke(status, ["-i", "eth2", "--json"])
    assert json.loads(r.output)["flows"] == 77
    write_status(tmp_path / "eth2" / "status.json", doc(stopped=True))
    assert CliRunner().invoke(status, []).exit_code == 1
