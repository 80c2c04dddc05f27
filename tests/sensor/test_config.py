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


@pytest.mark.parametrize(("body", "message"), [
    ('max_flows = "many"', r"sensor\.max_flows must be a whole number above 0, not 'many'"),
    ("batch_packets = 0", r"sensor\.batch_packets must be a whole number above 0"),
    ("max_flows = 1.5", r"sensor\.max_flows must be a whole number"),
    ("dns_max_age_s = true", r"sensor\.dns_max_age_s must be a number above 0"),
    ('signature_dirs = "sigs"', r"sensor\.signature_dirs must be a list of paths"),
    ("signature_dirs = [1]", r"sensor\.signature_dirs must be a list of paths"),
    ("timeouts = 5", r"sensor\.timeouts must be a table"),
    ("timeouts = {tcp_idle_s = -1}", r"sensor\.timeouts\.tcp_idle_s must be a number above 0"),
    ("timeouts = {tcp_idel_s = 1}", r"sensor\.timeouts: .*tcp_idel_s"),
])
def test_bad_sensor_values_are_one_line_errors(tmp_path: Path, body: str, message: str) -> None:
    p = tmp_path / "bad.toml"
    p.write_text(f"[sensor]\n{body}\n")
    with pytest.raises(InputError, match=message):
        load_settings(p)


def test_sensor_values_keep_their_types(tmp_path: Path) -> None:
    p = tmp_path / "ok.toml"
    p.write_text("[sensor]\nmax_flows = 1000\ndns_max_age_s = 60\n"
                 "timeouts = {tcp_idle_s = 10, active_s = 600.5}\nsignature_dirs = ['sigs']\n")
    s = load_settings(p)
    assert (s.max_flows, s.dns_max_age_s, s.signature_dirs) == (1000, 60.0, (Path("sigs"),))
    assert isinstance(s.dns_max_age_s, float)
    assert (s.timeouts.tcp_idle_s, s.timeouts.active_s, s.timeouts.udp_idle_s) == (10.0, 600.5,
                                                                                   60.0)
