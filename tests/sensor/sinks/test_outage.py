"""No loss: a receiver that goes away and comes back, and a sensor killed with SIGKILL
mid-run whose spool is replayed by the next start (duplicates allowed, losses not)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from sensor.sinks.sinkset import open_sinks
from tests.sensor.formats._samples import sample
from tests.sensor.sinks._servers import OctetReceiver

ROOT = Path(__file__).resolve().parents[3]


def _ids(msgs: list[bytes]) -> Counter[str]:
    return Counter(json.loads(m.split(b" - ", 1)[1])["id"] for m in msgs)


def test_receiver_down_then_back(tmp_path: Path) -> None:
    rx = OctetReceiver()
    rx.start()
    sinks = open_sinks([f"syslog+tcp://127.0.0.1:{rx.port}"], "native", tmp_path,
                       backoff_max_s=0.2)
    sent = []
    for i in range(3000):
        f = sample(i)
        f["id"] = f"o{i:05d}"
        sent.append(f["id"])
        sinks.emit(f)
        if i == 1000:
            rx.stop()            # crash: connections reset, unread bytes lost
        if i == 2000:
            time.sleep(0.5)
            rx.start()
        if i % 100 == 0:
            time.sleep(0.01)
    assert sinks.close(timeout=20)
    got = _ids(rx.wait_for(3000, 10))
    rx.stop()
    assert set(got) == set(sent)
    st = next(iter(sinks.stats().values()))
    assert st.retries >= 1
    dups = sum(got.values()) - len(got)
    print(f"duplicates after outage: {dups}")


@pytest.mark.parametrize("receiver_up", [False, True])
def test_kill_9_then_replay(tmp_path: Path, receiver_up: bool) -> None:
    rx = OctetReceiver()
    if receiver_up:
        rx.start()
    url = f"syslog+tcp://127.0.0.1:{rx.port}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-m", "tests.sensor.sinks._emitter", "emit",
                              "100000", url, str(tmp_path)], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    last = -1
    try:
        for line in child.stdout:       # kill it mid-run, between two emits
            last = int(line)
            if last >= 1500:
                break
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        rest = child.stdout.read().split()
        if rest:
            last = int(rest[-1])
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()
    if not receiver_up:
        rx.start()
    out = subprocess.run([sys.executable, "-m", "tests.sensor.sinks._emitter", "replay", url,
                          str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=60)
    stats = json.loads(out.stdout.strip().splitlines()[-1])
    assert stats["ok"], stats
    got = _ids(rx.wait_for(last + 1, 10))
    rx.stop()
    missing = {f"x{i:06d}" for i in range(last + 1)} - set(got)
    assert not missing, f"{len(missing)} findings lost"
    dups = sum(got.values()) - len(got)
    assert dups <= stats["replayed"]     # duplicates come only from the replayed backlog
    if not receiver_up:
        assert stats["replayed"] >= last + 1
