"""The documented configuration example parses with every table's own loader."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from sensor.config import load_settings, load_tables
from sensor.detect.credentials import from_toml as credentials_from_toml
from sensor.errors import InputError
from sensor.identity.config import from_toml as identity_from_toml
from sensor.policy import Policy
from sensor.sinks.sinkset import from_toml as sinks_from_toml
from sensor.volume.detector import from_toml as volume_from_toml

DOC = Path(__file__).resolve().parents[2] / "docs" / "config.md"


def _example(tmp_path: Path) -> Path:
    text = re.search(r"```toml\n(.*?)```", DOC.read_text(), re.S)
    assert text is not None
    p = tmp_path / "sensor.toml"
    p.write_text(text.group(1))
    return p


def test_documented_example_loads(tmp_path):
    path = _example(tmp_path)
    tables = load_tables(path)
    settings = load_settings(path)
    assert settings.batch_packets == 32768 and settings.timeouts.active_s == 1800
    policy = Policy.from_toml(tables["policy"])
    assert policy.decide("10.20.1.1", "chatgpt", "chat-assistant", None, False).sanctioned
    assert not policy.decide("10.1.1.1", "chatgpt", "chat-assistant", None, False).sanctioned
    ident = identity_from_toml(tables["identity"])
    assert [f.format for f in ident.files] == [None, "csv"]
    assert sinks_from_toml(tables["sinks"]).format == "native"
    assert volume_from_toml(tables["model"]).bulk_upload_bytes == 20_000_000
    with pytest.raises(InputError, match=r"credential\.key"):  # the example's key file
        credentials_from_toml(tables["credentials"])
    assert set(tomllib.loads(path.read_text())) == set(tables)


def test_unknown_table_and_key_are_one_line_errors(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text("[polcy]\nx = 1\n")
    with pytest.raises(InputError, match=r"unknown table \[polcy\]"):
        load_tables(p)
    p.write_text("[sensor]\nbatch_pakets = 1\n")
    with pytest.raises(InputError, match=r"unknown setting sensor\.batch_pakets"):
        load_settings(p)
    p.write_text("[sensor\n")
    with pytest.raises(InputError, match="cannot read config"):
        load_tables(p)
