"""Splunk HEC, Elasticsearch _bulk and webhook sinks against a loopback HTTP receiver that
checks the exact wire format and answers with scripted failures (429, 503, partial)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from sensor.sinks.sinkset import open_sinks
from tests.sensor.formats._samples import sample

Reply = tuple[int, dict[str, Any]]


class Receiver:
    """Records every request; ``script`` decides each reply from (request number, body)."""

    def __init__(self, script: Callable[[int, Req], Reply]) -> None:
        self.requests: list[Req] = []
        self.script = script
        rec = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                req = Req(self.path, dict(self.headers), body)
                rec.requests.append(req)
                status, reply = rec.script(len(rec.requests) - 1, req)
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class Req:
    def __init__(self, path: str, headers: dict[str, str], body: bytes) -> None:
        self.path, self.headers, self.body = path, headers, body


def _hec_events(body: bytes) -> list[dict[str, Any]]:
    """HEC bodies are JSON objects one after another (we put a newline between)."""
    dec = json.JSONDecoder()
    text, i, out = body.decode(), 0, []
    while i < len(text):
        while i < len(text) and text[i] in " \n":
            i += 1
        if i == len(text):
            break
        obj, i = dec.raw_decode(text, i)
        out.append(obj)
    return out


@pytest.fixture
def receiver() -> Iterator[Callable[[Callable[[int, Req], Reply]], Receiver]]:
    made: list[Receiver] = []

    def make(script: Callable[[int, Req], Reply]) -> Receiver:
        made.append(Receiver(script))
        return made[-1]
    yield make
    for r in made:
        r.close()


def _findings(n: int) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        f = sample(i)
        f["id"] = f"h{i:05d}"
        out.append(f)
    return out


def test_splunk_hec_wire_format_and_failures(receiver: Any, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    token = "11111111-2222-3333-4444-555555555555"
    monkeypatch.setenv("HEC_TOKEN", token)

    def script(n: int, req: Req) -> Reply:
        if n == 0:
            return 503, {"text": "Server is busy", "code": 9}
        if n == 1:
            return 429, {"text": "Too many requests"}
        events = _hec_events(req.body)
        for j, ev in enumerate(events):   # reject the first event carrying finding h00007
            if ev["event"]["event"]["id"] == "h00007":
                return 400, {"text": "Invalid data format", "code": 6,
                             "invalid-event-number": j}
        return 200, {"text": "Success", "code": 0}

    r = receiver(script)
    sinks = open_sinks([f"splunk+http://127.0.0.1:{r.port}?token_env=HEC_TOKEN"
                        "&sourcetype=shadowai:ecs&index=sec"], "ecs", tmp_path,
                       backoff_max_s=0.1)
    sent = _findings(50)
    for f in sent:
        sinks.emit(f)
    assert sinks.close(timeout=15)
    st = next(iter(sinks.stats().values()))
    assert (st.delivered, st.rejected, st.pending) == (49, 1, 0)
    assert st.retries >= 2
    for req in r.requests:
        assert req.path == "/services/collector/event"
        assert req.headers["Authorization"] == f"Splunk {token}"
        assert len(req.headers["X-Splunk-Request-Channel"]) == 36
        assert req.headers["Content-Type"] == "application/json"
    # the invalid event is dropped, every other one reaches a 200 reply
    indexed: list[str] = []
    for n, req in enumerate(r.requests):
        evs = _hec_events(req.body)
        assert all(set(ev) == {"time", "host", "source", "sourcetype", "index", "event"}
                   for ev in evs)
        assert all(ev["sourcetype"] == "shadowai:ecs" and ev["index"] == "sec" for ev in evs)
        ids = [ev["event"]["event"]["id"] for ev in evs]
        if n >= 2 and "h00007" not in ids:
            indexed += ids
    assert sorted(indexed) == sorted(f["id"] for f in sent if f["id"] != "h00007")
    assert token not in (st.last_error or "")


def test_elastic_bulk_retries_only_failed_items(receiver: Any, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ES_KEY", "c2VjcmV0")
    stored: list[str] = []
    attempts: dict[str, int] = {}

    def script(n: int, req: Req) -> Reply:
        if n == 0:
            return 503, {"error": "unavailable"}
        lines = req.body.decode().split("\n")
        assert lines[-1] == "" and len(lines) % 2 == 1      # NDJSON ends with a newline
        items = []
        for action, doc in zip(lines[0::2], lines[1::2], strict=False):
            assert json.loads(action) == {"create": {}}
            d = json.loads(doc)
            fid = d["event"]["id"]
            attempts[fid] = attempts.get(fid, 0) + 1
            if fid.endswith("3") and attempts[fid] == 1:     # first try: 429 per item
                items.append({"create": {"status": 429, "error": {"type": "es_rejected"}}})
            elif fid == "h00010":                             # a mapping error: never ok
                items.append({"create": {"status": 400, "error": {"type": "mapper"}}})
            else:
                stored.append(fid)
                items.append({"create": {"_index": ".ds-x", "status": 201}})
        return 200, {"took": 1, "errors": any(i["create"]["status"] >= 300 for i in items),
                     "items": items}

    r = receiver(script)
    sinks = open_sinks([f"elastic+http://127.0.0.1:{r.port}/logs-shadowai.finding-default"
                        "?api_key_env=ES_KEY"], "ecs", tmp_path, backoff_max_s=0.1)
    sent = _findings(40)
    for f in sent:
        sinks.emit(f)
    assert sinks.close(timeout=15)
    st = next(iter(sinks.stats().values()))
    assert (st.delivered, st.rejected) == (39, 1)
    for req in r.requests:
        assert req.path == "/logs-shadowai.finding-default/_bulk"
        assert req.headers["Content-Type"] == "application/x-ndjson"
        assert req.headers["Authorization"] == "ApiKey c2VjcmV0"
    assert sorted(stored) == sorted(f["id"] for f in sent if f["id"] != "h00010")
    assert len(stored) == len(set(stored))                  # retried only the failed items
    assert all(v == 2 for k, v in attempts.items() if k.endswith("3"))


def test_webhook_posts_json_arrays_and_survives_a_restart(receiver: Any,
                                                          tmp_path: Path) -> None:
    got: list[dict[str, Any]] = []

    def script(n: int, req: Req) -> Reply:
        if n in (0, 1):
            return 502, {}
        recs = json.loads(req.body)
        if len(recs) > 8:
            return 413, {}          # the receiver takes at most 8 records a request
        got.extend(recs)
        return 200, {}

    r = receiver(script)
    sinks = open_sinks([f"http://127.0.0.1:{r.port}/hook?format=ocsf"], "ecs", tmp_path,
                       backoff_max_s=0.1)
    for f in _findings(30):
        sinks.emit(f)
    assert sinks.close(timeout=10)
    assert sorted(d["finding_info"]["uid"] for d in got) == [f"h{i:05d}" for i in range(30)]
    assert max(len(json.loads(req.body)) for req in r.requests) == 30   # then split
    assert all(req.path == "/hook" for req in r.requests)


def test_down_receiver_keeps_findings_in_the_spool(tmp_path: Path) -> None:
    from tests.sensor.sinks._servers import free_port
    port = free_port()
    sinks = open_sinks([f"http://127.0.0.1:{port}/"], "native", tmp_path, backoff_max_s=0.1)
    for f in _findings(5):
        sinks.emit(f)
    assert not sinks.close(timeout=0.5)
    st = next(iter(sinks.stats().values()))
    assert st.pending == 5 and st.delivered == 0 and st.last_error
    got: list[Any] = []
    r = Receiver(lambda n, req: (got.extend(json.loads(req.body)), (200, {}))[1])
    try:
        sinks = open_sinks([f"http://127.0.0.1:{r.port}/"], "native", tmp_path)
        # a different port is a different spool: replay happens per sink URL
        assert not got
        sinks.close(timeout=1)
        sinks = open_sinks([f"http://127.0.0.1:{port}/"], "native", tmp_path)
        assert next(iter(sinks.stats().values())).replayed == 5
        sinks.close(timeout=0.2)
    finally:
        r.close()
