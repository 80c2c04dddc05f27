"""Observation records as JSON: secrets in URLs never reach the output."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from sensor.cli import main
from sensor.decoders.http import parse_request_head
from sensor.observations import observation_dict, redact_query
from sensor.records import Observation


def test_secret_query_values_are_redacted():
    assert redact_query("/v1/models?key=AIzaSyA-secret&alt=json") == \
        "/v1/models?key=<redacted>&alt=json"
    assert redact_query("/x?q=hello&t=sk-proj-abcdef") == "/x?q=hello&t=<redacted>"
    # other values stay as sent (Zeek-like pivoting, differential tests)
    assert redact_query("/x?access_token=abc&page=2") == "/x?access_token=abc&page=2"
    assert redact_query("/plain/path") == "/plain/path"
    assert redact_query("/search?q=openai+key") == "/search?q=openai+key"
    assert redact_query("/a?flag&key=") == "/a?flag&key="


def _request_obs(src: str, dst: str) -> Observation:
    head = parse_request_head(b"GET / HTTP/1.1\r\nHost: api.openai.com\r\n\r\n")
    return Observation("http.request", 1_700_000_000 * 10**9, src, 34855, dst, 80, "tcp", 1,
                       head)


def test_community_id_of_an_observation() -> None:
    d = observation_dict(_request_obs("128.232.110.120", "66.35.250.204"))
    assert d["community_id"] == "1:LQU9qZlK+B5F3KDmev6m5PMibrg="  # the spec's vector


def test_log_record_without_addresses_has_no_community_id() -> None:
    # zeek-cut subsets of http.log carry no id.* columns: addresses are ""
    for src, dst in (("", ""), ("10.0.0.1", "not-an-address")):
        d = observation_dict(_request_obs(src, dst))
        assert d["community_id"] is None
        assert d["host"] == "api.openai.com"


def test_hunt_writes_observations_of_a_log_without_addresses(tmp_path: Path) -> None:
    log = tmp_path / "http.log"
    log.write_text("uid\ttrans_depth\tmethod\thost\turi\n"
                   "CHhAvVGS1DHFjwGM9\t1\tPOST\tapi.openai.com\t/v1/chat/completions\n")
    obs = tmp_path / "obs.jsonl"
    res = CliRunner().invoke(main, ["hunt", str(log), "--no-db", "-q", "-o",
                                    str(tmp_path / "f.jsonl"), "--observations", str(obs)])
    assert res.exit_code == 0, res.output
    (line,) = obs.read_text().splitlines()
    o = json.loads(line)
    assert (o["kind"], o["host"], o["community_id"]) == ("http.request", "api.openai.com", None)
