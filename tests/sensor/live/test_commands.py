"""`shadowai watch` option handling and its one-line errors (no capture needed)."""

from __future__ import annotations

from click.testing import CliRunner

from sensor.live.commands import watch


def run(*args: str):
    return CliRunner().invoke(watch, list(args))


def test_no_interface_is_an_error(tmp_path):
    r = run("--state-dir", str(tmp_path), "--metrics", "off")
    assert r.exit_code == 1 and "at least one interface" in r.output


def test_unknown_interface_is_reported_by_the_worker(tmp_path):
    r = run("-i", "nonexistent0", "--state-dir", str(tmp_path), "--metrics", "off")
    assert r.exit_code == 1 and "nonexistent0: no such network interface" in r.output


def test_bad_values(tmp_path):
    r = run("-i", "lo", "--block-size", "1000", "--state-dir", str(tmp_path))
    assert r.exit_code == 1 and "page size" in r.output
    r = run("-i", "lo", "--metrics", "nope", "--state-dir", str(tmp_path))
    assert r.exit_code == 1 and "HOST:PORT" in r.output
    r = run("-i", "lo", "--workers", "0")
    assert r.exit_code == 2  # click's range check


def test_config_watch_table(tmp_path):
    cfg = tmp_path / "sensor.toml"
    cfg.write_text('[watch]\ninterfaces = ["nonexistent1"]\nmetrics = ""\n'
                   f'state_dir = "{tmp_path}"\n')
    r = run("-c", str(cfg))
    assert r.exit_code == 1 and "nonexistent1" in r.output
    cfg.write_text("[watch]\nworkers = \"two\"\n")
    r = run("-c", str(cfg), "-i", "lo")
    assert r.exit_code == 1 and "[watch] workers" in r.output


def test_pcap_backend_has_one_worker(tmp_path):
    r = run("-i", "lo", "--backend", "pcap", "--workers", "2", "--state-dir", str(tmp_path))
    assert r.exit_code == 1 and "--workers 1" in r.output
