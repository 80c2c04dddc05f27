"""The systemd units: `systemd-analyze verify` passes and the service's exposure
(`systemd-analyze security --offline=yes`) is at most 3.0."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "shadowai-sensor@.service"

pytestmark = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                reason="systemd-analyze absent")


def installed_copy(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at an executable that exists here (verify checks)."""
    exe = Path(sys.executable).with_name("shadowai")
    if not exe.exists():
        pytest.skip("the shadowai entry point is not installed in this environment")
    text = UNIT.read_text().replace("/opt/shadowai/bin/shadowai", str(exe))
    out = tmp_path / UNIT.name
    out.write_text(text)
    return out


def test_unit_has_the_required_settings():
    text = UNIT.read_text()
    for line in ("Type=notify", "WatchdogSec=", "StateDirectory=", "CacheDirectory=",
                 "SHADOWAI_CACHE_DIR=%C/shadowai", "User=shadowai", "ExecReload=",
                 "AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN CAP_IPC_LOCK",
                 "CapabilityBoundingSet=CAP_NET_RAW CAP_NET_ADMIN CAP_IPC_LOCK",
                 "ProtectSystem=strict", "NoNewPrivileges=yes", "--interface %I"):
        assert line in text, line


def test_systemd_analyze_verify(tmp_path):
    unit = installed_copy(tmp_path)
    r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    # warnings about our unit (not about the host's other units) count as failures
    assert "shadowai-sensor@" not in r.stderr, r.stderr


def test_security_exposure_at_most_3(tmp_path):
    unit = installed_copy(tmp_path)
    r = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(unit)],
                       capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", r.stdout)
    assert m, r.stdout + r.stderr
    assert float(m.group(1)) <= 3.0, r.stdout


@pytest.mark.skipif(shutil.which("systemd-sysusers") is None
                    or shutil.which("systemd-tmpfiles") is None, reason="systemd tools absent")
def test_sysusers_then_tmpfiles_in_a_scratch_root(tmp_path):
    """The user is created, then the directories are made with it as owner."""
    (tmp_path / "etc").mkdir()
    r = subprocess.run(["systemd-sysusers", f"--root={tmp_path}",
                        str(ROOT / "systemd" / "shadowai.sysusers.conf")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "shadowai:" in (tmp_path / "etc" / "passwd").read_text()
    r = subprocess.run(["systemd-tmpfiles", "--create", f"--root={tmp_path}",
                        str(ROOT / "systemd" / "shadowai.tmpfiles.conf")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    st = (tmp_path / "etc" / "shadowai").stat()
    assert oct(st.st_mode & 0o777) == "0o750"
    assert (tmp_path / "var" / "lib" / "shadowai").is_dir()


def test_example_config_loads():
    from sensor.config import load_settings, load_tables
    from sensor.live.runner import from_toml
    from sensor.sinks.sinkset import from_toml as sinks_from_toml
    cfg = ROOT / "systemd" / "sensor.toml.example"
    load_settings(cfg)
    tables = load_tables(cfg)
    ws = from_toml(tables["watch"])
    assert ws.workers == 2 and ws.ring().block_count == 128
    sinks_from_toml(tables["sinks"])
