"""Integration: findings into a real rsyslogd over UDP, TCP (octet counting) and TLS
(CA-verified server, client certificate required), started on loopback by the test."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sensor.sinks.sinkset import open_sinks
from tests.sensor.formats._samples import TYPES, sample
from tests.sensor.sinks._servers import Rsyslog, gtls_missing, make_pki, rsyslog_missing

pytestmark = pytest.mark.skipif(rsyslog_missing() is not None,
                                reason=rsyslog_missing() or "")


@pytest.fixture(scope="module")
def rsyslog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rsyslog]:
    d = tmp_path_factory.mktemp("rsyslog")
    pki = make_pki(d) if gtls_missing() is None else None
    r = Rsyslog(d, (pki["ca.pem"], pki["server.pem"], pki["server.key"]) if pki else None)
    r.start()
    yield r
    r.stop()


def _findings(n: int, tag: str) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        f = sample(i, TYPES[i % len(TYPES)], severity=("medium", "high", "info")[i % 3])
        f["id"] = f"{tag}{i:05d}"
        out.append(f)
    return out


def _check(lines: list[list[str]], sent: list[dict[str, Any]], fmt: str) -> None:
    by_id: dict[str, list[str]] = {}
    for _inp, pri, _host, app, msgid, msg in lines:
        if fmt == "ecs":
            doc = json.loads(msg)
            fid = doc["event"]["id"]
        else:
            fid = msg.split("externalId=")[1].split(" ")[0]
        by_id[fid] = [pri, app, msgid]
    counts = Counter(ln[5] for ln in lines)
    assert max(counts.values()) == 1, "a finding arrived twice"
    assert set(by_id) == {f["id"] for f in sent}
    for f in sent:
        pri, app, msgid = by_id[f["id"]]
        sev = {"medium": 4, "high": 3, "info": 6}[f["severity"]]
        assert int(pri) == 16 * 8 + sev       # local0
        assert app == "shadowai" and msgid == f["type"]


@pytest.mark.parametrize("scheme,fmt", [("udp", "ecs"), ("tcp", "ecs"), ("tcp", "cef"),
                                        ("tls", "ecs")])
def test_every_finding_arrives_once(rsyslog: Rsyslog, tmp_path: Path, scheme: str,
                                    fmt: str) -> None:
    if scheme == "tls" and rsyslog.tls is None:
        pytest.skip(gtls_missing() or "no TLS")
    tag = f"{scheme}{fmt}"
    n = 100 if scheme == "udp" else 300
    port = {"udp": rsyslog.udp, "tcp": rsyslog.tcp, "tls": rsyslog.tls}[scheme]
    url = f"syslog+{scheme}://127.0.0.1:{port}?format={fmt}"
    if scheme == "tls":
        url += (f"&ca={rsyslog.dir / 'ca.pem'}&cert={rsyslog.dir / 'client.pem'}"
                f"&key={rsyslog.dir / 'client.key'}")
    sent = _findings(n, tag)
    sinks = open_sinks([url], "native", tmp_path / "spool")
    for i, f in enumerate(sent):
        sinks.emit(f)
        if scheme == "udp" and i % 10 == 9:   # pace datagrams: the kernel drops UDP
            assert sinks.flush(timeout=5)      # when the receive buffer is full
            time.sleep(0.01)
    assert sinks.close(timeout=20)
    st = next(iter(sinks.stats().values()))
    assert st.delivered == n and st.pending == 0
    assert st.retries == 0, st.last_error      # no spurious reconnects (TLS tickets)
    lines = rsyslog.wait_lines(lambda ln: tag in ln[5], n, timeout=15)
    assert all(ln[0] == scheme for ln in lines)
    _check(lines, sent, fmt)


def test_tls_refuses_an_untrusted_server(rsyslog: Rsyslog, tmp_path: Path) -> None:
    if rsyslog.tls is None:
        pytest.skip(gtls_missing() or "no TLS")
    other = tmp_path / "other"
    other.mkdir()
    pki = make_pki(other)      # a CA that did not sign rsyslog's certificate
    sinks = open_sinks([f"syslog+tls://127.0.0.1:{rsyslog.tls}?ca={pki['ca.pem']}"],
                       "ecs", tmp_path / "spool")
    sinks.emit(sample(1))
    assert not sinks.close(timeout=1.5)
    st = next(iter(sinks.stats().values()))
    assert st.delivered == 0 and st.pending == 1
    assert st.last_error is not None and "certificate not trusted" in st.last_error


def test_outage_and_restart_loses_nothing(rsyslog: Rsyslog, tmp_path: Path) -> None:
    """rsyslogd is stopped while findings are emitted, then restarted: all arrive."""
    tag = "outage"
    sent = _findings(600, tag)
    sinks = open_sinks([f"syslog+tcp://127.0.0.1:{rsyslog.tcp}"], "ecs", tmp_path / "spool",
                       backoff_max_s=0.5)
    for f in sent[:200]:
        sinks.emit(f)
    assert sinks.flush(timeout=10)
    rsyslog.stop()
    for f in sent[200:500]:
        sinks.emit(f)
    time.sleep(1.0)
    rsyslog.start()
    for f in sent[500:]:
        sinks.emit(f)
    assert sinks.close(timeout=20)
    st = next(iter(sinks.stats().values()))
    assert st.retries >= 1
    lines = rsyslog.wait_lines(lambda ln: tag in ln[5], 600, timeout=15)
    ids = Counter(json.loads(ln[5])["event"]["id"] for ln in lines)
    assert set(ids) == {f["id"] for f in sent}       # no loss; duplicates allowed
