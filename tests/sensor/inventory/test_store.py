"""The SQLite inventory: upserts, episodes, new-asset detection, re-emission, restarts."""

from __future__ import annotations

import copy
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from sensor.errors import InputError
from sensor.findings import rfc3339
from sensor.inventory.store import (
    SCHEMA_VERSION,
    Inventory,
    assets_of,
    default_db_path,
    parse_ts,
)

S = 1_000_000_000
T0 = 1_800_000_000 * S


def usage(client: str = "10.0.0.5", service: str = "openai-api", first: int = T0,
          last: int | None = None, flows: int = 1, up: int = 100, user: str | None = None,
          sanctioned: bool | None = False, name: str = "api.openai.com") -> dict[str, Any]:
    return {
        "schema": "shadowai.finding/v1", "id": f"id-{client}-{service}",
        "type": "ai_service_use", "severity": "medium",
        "first_seen": rfc3339(first), "last_seen": rfc3339(last or first + S),
        "client": {"ip": client, "mac": "02:00:00:00:00:01", "user": user},
        "server": {"ip": "162.159.140.245", "port": 443, "name": name},
        "service": {"id": service, "name": service.upper(), "vendor": "OpenAI",
                    "category": "llm-api", "sanctioned": sanctioned},
        "evidence": [], "counts": {"flows": flows, "packets": 10 * flows,
                                   "bytes_client_to_server": up,
                                   "bytes_server_to_client": 2 * up, "dns_queries": 1},
    }


def ollama(models: list[str], first: int = T0, exchanges: int = 3) -> dict[str, Any]:
    return {
        "id": "srv-ollama", "type": "self_hosted_llm", "severity": "high",
        "first_seen": rfc3339(first), "last_seen": rfc3339(first + S), "client": None,
        "server": {"ip": "10.0.0.30", "port": 11434, "name": "10.0.0.30"},
        "service": {"id": "selfhosted:ollama", "name": "Ollama", "vendor": "Ollama",
                    "category": "self-hosted-llm"},
        "evidence": [], "counts": {"exchanges": exchanges},
        "self_hosted_llm": {"product": "Ollama", "version": None, "models": models,
                            "pulled_models": [], "authentication": "none",
                            "clients": [{"ip": "10.0.0.7", "requests": 3}]},
    }


def mcp(calls: int, first: int = T0, tools: tuple[str, ...] = ("a", "b")) -> dict[str, Any]:
    return {
        "id": "srv-mcp", "type": "mcp_server", "severity": "medium",
        "first_seen": rfc3339(first), "last_seen": rfc3339(first + S), "client": None,
        "server": {"ip": "10.0.0.40", "port": 8000, "name": "10.0.0.40"}, "service": None,
        "evidence": [], "counts": {"exchanges": calls + 2},
        "mcp": {"transports": ["streamable-http"], "protocol_version": "2025-06-18",
                "server_names": ["github-mcp 0.4.0"], "tools_listed": list(tools),
                "tools_called": [{"name": "a", "count": calls}],
                "clients": [{"ip": "10.0.0.8", "requests": calls + 2}]},
    }


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state" / "inventory.db"


def test_new_assets_are_reported_once_and_survive_a_restart(db: Path) -> None:
    fs = [usage(), usage(client="10.0.0.6"), ollama(["llama3"])]
    with Inventory(db) as inv:
        assert [f["id"] for f in inv.record(fs, T0)] == [f["id"] for f in fs]
        assert inv.record(fs, T0 + S) == []
    with Inventory(db) as inv:  # restart
        assert inv.record([usage(client="10.0.0.9"), *fs], T0 + 2 * S) == [
            usage(client="10.0.0.9")]
        a = inv.assets()
    assert [s.id for s in a.services] == ["openai-api"]
    assert a.services[0].clients == ("10.0.0.5", "10.0.0.6", "10.0.0.9")
    assert a.services[0].endpoints == ("api.openai.com",)
    assert a.services[0].sanctioned is False
    assert [c.ip for c in a.clients] == ["10.0.0.5", "10.0.0.6", "10.0.0.7", "10.0.0.9"]
    assert a.servers[0].models == ("llama3",) and a.servers[0].clients == ("10.0.0.7",)


def test_counts_are_per_episode_watch_updates_replace_new_captures_add(db: Path) -> None:
    with Inventory(db) as inv:
        inv.record([usage(flows=1, up=100)], T0)
        inv.record([usage(flows=3, up=300, last=T0 + 9 * S)], T0)  # same episode grew
        assert inv.assets().services[0].flows == 3
        inv.record([usage(flows=3, up=300, last=T0 + 9 * S)], T0)  # re-hunt: same again
        assert inv.assets().services[0].bytes_client_to_server == 300
        day2 = T0 + 86400 * S
        inv.record([usage(first=day2, flows=2, up=50)], day2)  # another capture
        s = inv.assets().services[0]
    assert (s.flows, s.bytes_client_to_server, s.bytes_server_to_client) == (5, 350, 700)
    assert (s.first_ns, s.last_ns) == (T0, day2 + S)


def test_users_services_and_sanction_status(db: Path) -> None:
    with Inventory(db) as inv:
        inv.record([usage(user="user-0123456789ab", sanctioned=False),
                    usage(service="claude", user="user-0123456789ab", client="10.0.0.5",
                          sanctioned=True)], T0)
        inv.record([usage(sanctioned=None)], T0)  # no decision does not erase a decision
        a = inv.assets()
    assert {(s.id, s.sanctioned) for s in a.services} == {("openai-api", False),
                                                           ("claude", True)}
    assert [u.name for u in a.users] == ["user-0123456789ab"]
    assert a.users[0].services == ("claude", "openai-api")
    assert a.users[0].clients == ("10.0.0.5",)
    assert a.clients[0].user == "user-0123456789ab"


def test_model_servers_accumulate_models_and_mcp_tool_calls(db: Path) -> None:
    with Inventory(db) as inv:
        inv.record([ollama(["llama3"]), mcp(2)], T0)
        inv.record([ollama(["llama3", "qwen"], exchanges=5), mcp(4)], T0)  # grew
        inv.record([mcp(1, first=T0 + 3600 * S, tools=("c",))], T0)  # later episode
        a = inv.assets()
    assert a.servers[0].models == ("llama3", "qwen") and a.servers[0].exchanges == 5
    assert a.servers[0].authentication == "none" and a.servers[0].product == "Ollama"
    m = a.mcp_servers[0]
    assert m.tools == ("a", "b", "c")
    assert m.tool_calls == (("a", 5),)
    assert m.exchanges == 6 + 3
    assert m.server_names == ("github-mcp 0.4.0",) and m.clients == ("10.0.0.8",)


def test_due_and_mark_sent(db: Path) -> None:
    f = usage()
    with Inventory(db) as inv:
        assert inv.due([f], T0, 3600) == [f]  # never sent
        inv.mark_sent([f["id"]], T0)
        assert inv.due([f], T0 + 10 * S, 3600) == []
        grown = usage(flows=2, up=200)
        assert inv.due([grown], T0 + 10 * S, 3600) == []  # changed, but within interval
        assert inv.due([f], T0 + 7200 * S, 3600) == []  # interval passed, unchanged
        assert inv.due([grown], T0 + 7200 * S, 3600) == [grown]
        inv.mark_sent([grown["id"]], T0 + 7200 * S)
    with Inventory(db) as inv:  # the sent state survives a restart
        assert inv.due([grown], T0 + 9000 * S, 3600) == []
        assert inv.due([usage(flows=9)], T0 + 20000 * S, 3600) != []
        # mark_sent of an id due() never saw takes the recorded counts
        inv.record([usage(client="10.9.9.9")], T0)
        inv.mark_sent(["id-10.9.9.9-openai-api"], T0)
        assert inv.due([usage(client="10.9.9.9")], T0 + 99999 * S, 1) == []


def test_meta_records_runs_inputs_and_versions(db: Path) -> None:
    with Inventory(db) as inv:
        inv.record_run(["a.pcap"], {"signatures": "v1"}, {"packets": 10}, now_ns=T0)
        inv.record_run(["b.pcap", "a.pcap"], {"signatures": "v2", "model": "m1"},
                       {"packets": 5}, now_ns=T0 + S)
    with Inventory(db) as inv:
        m = inv.meta()
    assert m["inputs"] == ["a.pcap", "b.pcap"]
    assert m["versions"] == {"signatures": "v2", "model": "m1"}
    assert [r["stats"]["packets"] for r in m["runs"]] == [10, 5]
    assert (m["first_run_ns"], m["last_run_ns"]) == (T0, T0 + S)


def test_schema_version_wal_and_migration_refusal(db: Path) -> None:
    with Inventory(db) as inv:
        assert inv.schema_version == SCHEMA_VERSION
        inv.record([usage()], T0)
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    con.commit()
    con.close()
    with pytest.raises(InputError, match="newer"):
        Inventory(db)


def test_not_a_database_is_an_input_error(tmp_path: Path) -> None:
    p = tmp_path / "junk.db"
    p.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(InputError):
        Inventory(p)


def test_findings_round_trip_and_hostile_values(db: Path) -> None:
    odd = usage()
    odd["first_seen"] = "garbage"
    odd["counts"] = {"flows": "many", "bytes_client_to_server": True}
    odd["client"] = "not a dict"
    with Inventory(db) as inv:
        assert len(inv.record([odd, {"no": "id"}], T0)) == 1
        back = inv.findings()
        s = inv.assets().services[0]
    assert back == [copy.deepcopy(odd)]
    assert s.flows == 0 and s.first_ns == T0


def test_default_db_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SHADOWAI_STATE_DIR", str(tmp_path / "s"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "x"))
    assert default_db_path() == tmp_path / "s" / "inventory.db"
    monkeypatch.delenv("SHADOWAI_STATE_DIR")
    assert default_db_path() == tmp_path / "x" / "shadowai" / "inventory.db"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "h"))
    assert default_db_path() == tmp_path / "h" / ".local" / "state" / "shadowai" / "inventory.db"


def test_parse_ts_inverts_rfc3339() -> None:
    for ns in (0, T0 + 123_456_000, T0 + 999_999_000):
        assert parse_ts(rfc3339(ns)) == ns
    assert parse_ts("2026-11-26T20:35:00Z") == parse_ts("2026-11-26T20:35:00.000000Z")
    assert parse_ts("nope") is None and parse_ts(None) is None


def test_assets_of_uses_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    a = assets_of([usage(), usage(client="10.0.0.6"), ollama(["m"]), mcp(1)], T0)
    assert [s.clients for s in a.services] == [("10.0.0.5", "10.0.0.6")]
    assert len(a.servers) == 1 and len(a.mcp_servers) == 1
    assert list(tmp_path.iterdir()) == []
