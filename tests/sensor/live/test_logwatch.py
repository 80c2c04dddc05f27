"""`shadowai watch --eve FILE`: follow a growing, rotating eve.json; stop and restart in the
middle; every record counts exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def _events(first: int, n: int) -> str:
    out = []
    for i in range(first, first + n):
        ts = f"2026-11-26T10:{i // 60 % 60:02d}:{i % 60:02d}.000000+0000"
        base = {"timestamp": ts, "flow_id": 1000 + i, "src_ip": "10.0.0.5",
                "src_port": 40000 + i, "dest_ip": "10.9.9.9", "dest_port": 443, "proto": "TCP"}
        out.append(json.dumps(dict(base, event_type="tls",
                                   tls={"sni": "api.openai.com", "version": "TLS 1.3"})))
        out.append(json.dumps(dict(base, event_type="flow", flow={
            "pkts_toserver": 10, "pkts_toclient": 12, "bytes_toserver": 1000,
            "bytes_toclient": 5000, "start": ts, "end": ts, "state": "closed"})))
    return "\n".join(out) + "\n"


def _start(eve: Path, state: Path, out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "sensor.cli", "watch", "--eve", str(eve), "--state-dir",
         str(state), "-o", str(out), "--emit-interval", "0.5", "--reemit-interval", "0.5",
         "--metrics", "off"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _stop(p: subprocess.Popen[bytes]) -> str:
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 0, err.decode()[-2000:]
    return err.decode()


def _flows(out: Path) -> int:
    """The flow count of the last line written for the OpenAI finding."""
    lines = [json.loads(x) for x in out.read_text().splitlines() if x]
    f = [d for d in lines if d["service"] and d["service"]["id"] == "openai-api"]
    return f[-1]["counts"]["flows"] if f else 0


def _wait_for(out: Path, flows: int, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if out.exists() and _flows(out) >= flows:
            return
        time.sleep(0.2)


def test_follow_rotate_and_restart_count_each_record_once(tmp_path):
    eve, state = tmp_path / "eve.json", tmp_path / "state"
    eve.write_text(_events(0, 5))
    out1 = tmp_path / "run1.jsonl"
    p = _start(eve, state, out1)
    with eve.open("a") as f:  # grows while followed
        f.write(_events(5, 5))
    _wait_for(out1, 10)
    _stop(p)
    assert _flows(out1) == 10
    assert (state / "follow-eve.json").exists()

    # while stopped: more lines, then the file is rotated (as logrotate with create does)
    with eve.open("a") as f:
        f.write(_events(10, 3))
    os.rename(eve, tmp_path / "eve.json.1")
    eve.write_text(_events(13, 4))
    out2 = tmp_path / "run2.jsonl"
    p = _start(eve, state, out2)
    _wait_for(out2, 7)
    with eve.open("a") as f:
        f.write(_events(17, 2))
    _wait_for(out2, 9)
    _stop(p)
    # the second run saw exactly the 9 records written after the first stopped:
    # none of the first 10 again (no duplicates), the 3 in the rotated file (no loss)
    assert _flows(out2) == 9
