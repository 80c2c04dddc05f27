"""The [identity] table."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from sensor.errors import InputError
from sensor.identity import IdentityFile, IdentitySettings, from_toml
from sensor.identity.store import NS


def test_defaults() -> None:
    s = from_toml({})
    assert s == IdentitySettings()
    assert s.wire and not s.pseudonymize and s.pseudonymizer() is None


def test_full_table_builds_store(tmp_path: Path) -> None:
    feed = tmp_path / "feed.csv"
    feed.write_text("ip,user,start\n10.0.0.1,alice,100\n")
    key = tmp_path / "key"
    key.write_bytes(b"0123456789abcdef0123\n")
    table = tomllib.loads(f"""
wire = false
files = ["{feed}", {{path = "{feed}", format = "csv"}}]
open_ttl_s = 60
pseudonymize = true
key_file = "{key}"
""")
    s = from_toml(table)
    assert s.files == (IdentityFile(str(feed)), IdentityFile(str(feed), "csv"))
    assert s.wire is False and s.open_ttl_s == 60
    store, loads = s.build_store()
    assert [ld.fmt for ld in loads] == ["csv", "csv"]
    a = store.lookup("10.0.0.1", 120 * NS)
    assert a is not None and a.user == "alice"
    assert store.lookup("10.0.0.1", 161 * NS) is None  # open binding capped at 60 s
    p = s.pseudonymizer()
    assert p is not None and p.user("alice").startswith("user-")


@pytest.mark.parametrize(("table", "msg"), [
    ({"bogus": 1}, "unknown setting identity.bogus"),
    ({"wire": "yes"}, "identity.wire"),
    ({"open_ttl_s": -1}, "identity.open_ttl_s"),
    ({"open_ttl_s": True}, "identity.open_ttl_s"),
    ({"files": "a"}, "identity.files must be a list"),
    ({"files": [1]}, "identity.files entries"),
    ({"files": [{"path": "a", "format": "xml"}]}, "unknown format"),
    ({"files": [{"path": "a", "extra": 1}]}, "identity.files entries"),
    ({"pseudonymize": True}, "needs identity.key_file"),
    ({"key_file": 3}, "identity.key_file"),
])
def test_bad_values(table: dict[str, Any], msg: str) -> None:
    with pytest.raises(InputError, match=msg):
        from_toml(table)


def test_missing_key_file_and_bad_identity_file(tmp_path: Path) -> None:
    s = from_toml({"pseudonymize": True, "key_file": str(tmp_path / "nokey")})
    with pytest.raises(InputError, match="cannot read"):
        s.pseudonymizer()
    with pytest.raises(InputError, match="no such identity file"):
        from_toml({"files": [str(tmp_path / "none.csv")]}).build_store()


def test_cli_check_and_lookup(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from sensor.identity.cli import identity

    feed = tmp_path / "feed.csv"
    feed.write_text("ip,user,start,end\n10.0.0.1,alice,100,200\n10.0.0.2,,,\n")
    r = CliRunner().invoke(identity, ["check", str(feed)])
    assert r.exit_code == 0 and '"format": "csv", "bindings": 1, "skipped": 1' in r.output
    r = CliRunner().invoke(identity, ["lookup", "10.0.0.1", "150", "--file", str(feed)])
    assert r.exit_code == 0 and '"user": "alice"' in r.output
    r = CliRunner().invoke(identity, ["lookup", "10.0.0.1", "250", "--file", str(feed)])
    assert r.exit_code == 0 and r.output.strip() == "null"
    r = CliRunner().invoke(identity, ["lookup", "10.0.0.1", "soon", "--file", str(feed)])
    assert r.exit_code != 0 and "bad time" in r.output
    r = CliRunner().invoke(identity, ["check", str(tmp_path / "none")])
    assert r.exit_code != 0 and "no such identity file" in r.output
