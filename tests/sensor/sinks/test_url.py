"""Sink URL parsing and the [sinks] config table: one-line errors, never a secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from sensor.errors import InputError
from sensor.sinks.sinkset import from_toml, open_sinks
from sensor.sinks.url import parse_sink_url, read_secret


@pytest.mark.parametrize("url,kind,host,port,path,fmt", [
    ("file:///var/log/shadowai/findings.jsonl", "file", "", 0,
     "/var/log/shadowai/findings.jsonl", None),
    ("syslog+udp://h:514", "syslog_udp", "h", 514, "", None),
    ("syslog+tcp://h", "syslog_tcp", "h", 601, "", None),
    ("syslog+tls://h:6514?ca=/p/ca.pem&format=cef", "syslog_tls", "h", 6514, "", "cef"),
    ("splunk+https://h:8088?token_env=HEC_TOKEN", "splunk", "h", 8088, "", None),
    ("elastic+https://h:9200/logs-shadowai.finding-default?format=ecs", "elastic", "h", 9200,
     "/logs-shadowai.finding-default", "ecs"),
    ("kafka://h:9092/topic", "kafka", "h", 9092, "/topic", None),
    ("https://h/path", "webhook", "h", 443, "/path", None),
    ("-", "stdout", "", 0, "-", None),
])
def test_parse(url: str, kind: str, host: str, port: int, path: str, fmt: str | None) -> None:
    s = parse_sink_url(url)
    assert (s.kind, s.host, s.port, s.path, s.format) == (kind, host, port, path, fmt)


@pytest.mark.parametrize("url", [
    "gopher://h", "syslog+tcp://", "kafka://h:9092", "elastic+https://h:9200",
    "splunk+https://h:8088", "syslog+tcp://h:99999", "file:///tmp/dir/",
    "syslog+tcp://h?format=xml", "syslog+tcp://h?bogus=1",
])
def test_bad_urls_one_line(url: str) -> None:
    with pytest.raises(InputError) as e:
        parse_sink_url(url)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("url", [
    "splunk+https://h:8088?token=s3cr3t-VALUE",
    "https://user:s3cr3t-VALUE@h/hook",
    "elastic+https://h/ds?api_key=s3cr3t-VALUE",
    "elastic+https://h/ds?password=s3cr3t-VALUE",
])
def test_secrets_in_url_are_refused_without_echo(url: str) -> None:
    with pytest.raises(InputError) as e:
        parse_sink_url(url)
    assert "s3cr3t" not in str(e.value)


def test_read_secret_names_the_variable_not_the_value(tmp_path: Path) -> None:
    s = parse_sink_url("splunk+https://h?token_env=HEC_TOKEN")
    assert read_secret(s, "token", {"HEC_TOKEN": " abc \n"}) == "abc"
    with pytest.raises(InputError, match="HEC_TOKEN is not set"):
        read_secret(s, "token", {})
    f = tmp_path / "tok"
    f.write_text("from-file\n")
    s2 = parse_sink_url(f"splunk+https://h?token_file={f}")
    assert read_secret(s2, "token", {}) == "from-file"


def test_from_toml() -> None:
    st = from_toml({"urls": ["syslog+tcp://h:601", "file:///tmp/x.jsonl"], "format": "ecs",
                    "spool_dir": "/tmp/sp", "spool_max_mb": 10, "fsync": "always"})
    assert st.urls == ("syslog+tcp://h:601", "file:///tmp/x.jsonl")
    assert (st.format, str(st.spool_dir), st.spool_max_bytes, st.fsync) == \
        ("ecs", "/tmp/sp", 10 << 20, "always")
    for bad in ({"urls": "x"}, {"format": "xml"}, {"nope": 1}, {"spool_max_mb": 0},
                {"fsync": "maybe"}, {"urls": ["gopher://x"]}):
        with pytest.raises(InputError):
            from_toml(bad)


def test_open_sinks_checks(tmp_path: Path) -> None:
    with pytest.raises(InputError):
        open_sinks(["syslog+tcp://h"], "xml", tmp_path)
    with pytest.raises(InputError, match="twice"):
        open_sinks(["syslog+tcp://h", "syslog+tcp://h:601"], "ecs", tmp_path)
    with pytest.raises(InputError, match="JSON format"):
        open_sinks(["elastic+http://h/ds?format=cef"], "ecs", tmp_path)


def test_display_hides_webhook_paths_and_query_values() -> None:
    a = parse_sink_url("https://hooks.example/services/T0/B0/s3cr3tpath?token_env=X")
    b = parse_sink_url("https://hooks.example/services/T0/B0/other")
    assert "s3cr3t" not in a.display and "token_env" not in a.display
    assert a.display == "https://hooks.example:443/..."
    assert a.spool_name != b.spool_name     # same display, separate spools
    e = parse_sink_url("elastic+https://es:9200/logs-x-default?api_key_env=K")
    assert e.display == "elastic+https://es:9200/logs-x-default"


def test_two_webhooks_on_one_host(tmp_path: Path) -> None:
    s = open_sinks(["http://127.0.0.1:9/a", "http://127.0.0.1:9/b"], "native", tmp_path)
    assert sorted(s.stats()) == ["http://127.0.0.1:9/...", "http://127.0.0.1:9/...#2"]
    s.close(0)


def test_output_shorthand_round_trips_odd_names(tmp_path: Path) -> None:
    from sensor.sinks.cli import output_url
    odd = tmp_path / "a #b?c%20.jsonl"
    spec = parse_sink_url(output_url(str(odd)))
    assert spec.path == str(odd) and spec.params == {"truncate": "1"}
    assert parse_sink_url(output_url("-")).kind == "stdout"
