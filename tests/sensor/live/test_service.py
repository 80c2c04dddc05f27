"""sd_notify, the watchdog interval, structured logs and signal flags."""

from __future__ import annotations

import io
import json
import os
import signal
import socket

from sensor.live.service import Logger, SignalFlags, sd_notify, watchdog_interval_s


def test_sd_notify_sends_one_datagram(tmp_path):
    path = str(tmp_path / "notify")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    srv.bind(path)
    try:
        assert sd_notify("READY=1\nSTATUS=ok", {"NOTIFY_SOCKET": path})
        assert srv.recv(100) == b"READY=1\nSTATUS=ok"
    finally:
        srv.close()
    assert not sd_notify("READY=1", {})
    assert not sd_notify("READY=1", {"NOTIFY_SOCKET": str(tmp_path / "gone")})


def test_sd_notify_abstract_socket():
    name = f"shadowai-test-{os.getpid()}"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    srv.bind("\0" + name)
    try:
        assert sd_notify("WATCHDOG=1", {"NOTIFY_SOCKET": "@" + name})
        assert srv.recv(100) == b"WATCHDOG=1"
    finally:
        srv.close()


def test_watchdog_interval():
    assert watchdog_interval_s({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert watchdog_interval_s({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval_s({}) is None


def test_logger_formats(monkeypatch):
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    buf = io.StringIO()
    Logger("kv", buf).info("started", iface="eth1", note="two words", n=3)
    assert buf.getvalue() == ('level=info event=started component=watch iface=eth1 '
                              'note="two words" n=3\n')
    buf = io.StringIO()
    Logger("json", buf).error("boom", error="x")
    assert json.loads(buf.getvalue()) == {"level": "error", "event": "boom",
                                          "component": "watch", "error": "x"}
    monkeypatch.setenv("JOURNAL_STREAM", "8:1234")
    buf = io.StringIO()
    Logger("kv", buf).warning("w")
    assert buf.getvalue().startswith("<4>level=warning")


def test_signal_flags():
    old = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    f = SignalFlags()
    try:
        f.install()
        os.kill(os.getpid(), signal.SIGHUP)
        assert f.reload and not f.stop
        os.kill(os.getpid(), signal.SIGTERM)
        assert f.stop
    finally:
        for s, h in old.items():
            signal.signal(s, h)
