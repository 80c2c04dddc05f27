"""Prometheus text rendering and the HTTP endpoint."""

from __future__ import annotations

import urllib.request

import pytest

from sensor.errors import InputError
from sensor.live.metrics import Metric, MetricsServer, from_status, parse_listen, render

STATUS = {
    "workers": 2, "workers_alive": 2, "own_drops": 3, "flows": 10, "reloads": 1,
    "interfaces": {"eth1": {"packets": 100, "bytes": 6400, "kernel_packets": 105,
                            "kernel_drops": 5, "truncated": 0}},
    "findings_active": {"ai_service_use": 7}, "findings_emitted": {"ai_service_use": 9},
    "sinks": {"https://siem:443/x": {"pending": 4, "dropped": 0}},
}


def test_render_escapes_and_formats():
    text = render([Metric("m_total", "counter", "help me", (((("a", 'x"y'),), 2.0),
                                                             ((("a", "z"),), 0.5)))])
    assert text == ('# HELP m_total help me\n# TYPE m_total counter\n'
                    'm_total{a="x\\"y"} 2\nm_total{a="z"} 0.5\n')


def test_metrics_from_status():
    text = render(from_status(STATUS))
    assert 'shadowai_packets_total{interface="eth1"} 100' in text
    assert 'shadowai_kernel_drops_total{interface="eth1"} 5' in text
    assert "shadowai_own_drops_total 3" in text
    assert 'shadowai_findings{type="ai_service_use"} 7' in text
    assert 'shadowai_findings_emitted_total{type="ai_service_use"} 9' in text
    assert 'shadowai_sink_backlog{sink="https://siem:443/x"} 4' in text
    assert "shadowai_workers 2" in text
    # every sample line belongs to a declared metric
    declared = {ln.split()[2] for ln in text.splitlines() if ln.startswith("# TYPE")}
    for ln in text.splitlines():
        if not ln.startswith("#"):
            assert ln.split("{")[0].split()[0] in declared


def test_endpoint_serves_the_latest_set():
    srv = MetricsServer("127.0.0.1", 0).start()
    try:
        srv.update(from_status(STATUS))
        with urllib.request.urlopen(f"http://127.0.0.1:{srv.port}/metrics", timeout=5) as r:
            body = r.read().decode()
            assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert 'shadowai_kernel_drops_total{interface="eth1"} 5' in body
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"http://127.0.0.1:{srv.port}/nope", timeout=5)
    finally:
        srv.close()


def test_parse_listen():
    assert parse_listen("127.0.0.1:9108") == ("127.0.0.1", 9108)
    assert parse_listen("[::1]:9108") == ("::1", 9108)
    for bad in ("9108", "host:", "h:99999", "h:x"):
        with pytest.raises(InputError):
            parse_listen(bad)


def test_a_busy_port_is_a_clear_error():
    a = MetricsServer("127.0.0.1", 0)
    try:
        with pytest.raises(InputError, match="metrics endpoint"):
            MetricsServer("127.0.0.1", a.port)
    finally:
        a.httpd.server_close()
