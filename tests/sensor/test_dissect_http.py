"""The dissector's HTTP path: connections with a request head are followed both ways."""

from __future__ import annotations

from pathlib import Path

import pytest

from sensor.catalog.index import Catalog, default_signature_dir
from sensor.config import Settings
from sensor.decoders.http_stream import HttpExchange
from sensor.pipeline import Pipeline
from sensor.records import HttpRequest, HttpResponse, Observation
from sensor.sources.capture import open_capture
from tests.helpers.packets import Lab, client_hello_record

C, S = "10.0.0.5", "10.0.0.30"


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load([default_signature_dir()])


def hunt(path: Path, catalog: Catalog, batch: int = 256) -> tuple[list[object], list[Observation],
                                                                 Pipeline]:
    obs: list[Observation] = []
    pipe = Pipeline(Settings(), catalog, obs.append)
    with open_capture(path) as r:
        for b in r.batches(batch):
            pipe.feed(b)
    return pipe.finish(), obs, pipe


def test_pipelined_requests_bodies_and_pairing(tmp_path: Path, catalog: Catalog) -> None:
    lab = Lab()
    body = b'{"model":"llama3.2:1b"}'
    lab.tcp(C, 40001, S, 11434, [
        b"POST /api/chat HTTP/1.1\r\nHost: s\r\nContent-Length: %d\r\n\r\n%s"
        b"GET /api/tags HTTP/1.1\r\nHost: s\r\n\r\n" % (len(body), body)],
        [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
         b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n",
         b"0\r\n\r\n"])
    _, obs, pipe = hunt(lab.write(tmp_path / "a.pcap"), catalog)
    reqs = [o for o in obs if o.kind == "http.request"]
    assert [o.payload.target for o in reqs if isinstance(o.payload, HttpRequest)] == [
        "/api/chat", "/api/tags"]
    assert all((o.src_ip, o.dst_port) == (C, 11434) for o in reqs)
    resps = [o for o in obs if o.kind == "http.response"]
    assert len(resps) == 2 and all(isinstance(o.payload, HttpResponse) and o.src_ip == S
                                   for o in resps)
    exs = [o.payload for o in obs if o.kind == "http.exchange"]
    assert [(e.request.body, e.response.body if e.response else None) for e in exs
            if isinstance(e, HttpExchange)] == [(body, b"ok"), (b"", b"abcd")]
    assert pipe.dissector.stats.http_conversations == 1
    assert not pipe.dissector._http  # closed by FIN: nothing left to flush


def test_open_connection_is_flushed_at_the_end(tmp_path: Path, catalog: Catalog) -> None:
    lab = Lab()
    lab.tcp(C, 40002, S, 11434, [b"GET / HTTP/1.0\r\n\r\n"],
            [b"HTTP/1.0 200 OK\r\n\r\nOllama is running"], close=False)
    findings, obs, _ = hunt(lab.write(tmp_path / "b.pcap"), catalog)
    exs = [o.payload for o in obs if o.kind == "http.exchange"]
    assert len(exs) == 1 and isinstance(exs[0], HttpExchange)
    assert exs[0].response is not None and exs[0].response.body == b"Ollama is running"
    assert [getattr(f, "type", None) for f in findings] == ["self_hosted_llm"]


def test_tls_after_connect_is_still_decoded(tmp_path: Path, catalog: Catalog) -> None:
    lab = Lab()
    lab.tcp(C, 40003, S, 3128,
            [b"CONNECT api.openai.com:443 HTTP/1.1\r\nHost: api.openai.com:443\r\n\r\n",
             client_hello_record("api.openai.com")],
            [b"HTTP/1.1 200 Connection established\r\n\r\n"])
    # the server answers before the ClientHello on the wire
    lab.pkts[4], lab.pkts[5] = lab.pkts[5], lab.pkts[4]
    _, obs, _ = hunt(lab.write(tmp_path / "c.pcap"), catalog)
    kinds = [o.kind for o in obs]
    assert "tls.client_hello" in kinds and kinds.count("http.exchange") == 1


@pytest.mark.parametrize("batch", [1, 3, 256])
def test_batch_boundaries_do_not_matter(tmp_path: Path, catalog: Catalog, batch: int) -> None:
    lab = Lab()
    for i in range(3):
        lab.tcp(C, 41000 + i, S, 8080, [b"GET /x%d HTTP/1.1\r\nHost: s\r\n\r\n" % i],
                [b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", b"abc"])
    _, obs, _ = hunt(lab.write(tmp_path / "d.pcap"), catalog, batch=batch)
    exs = [o.payload for o in obs if o.kind == "http.exchange"]
    assert sorted((e.request.head.target, e.response.body) for e in exs  # type: ignore[union-attr]
                  if isinstance(e, HttpExchange) and isinstance(e.request.head, HttpRequest)) == [
        ("/x0", b"abc"), ("/x1", b"abc"), ("/x2", b"abc")]


def test_budget_spent_falls_back_to_heads_only(tmp_path: Path, catalog: Catalog) -> None:
    lab = Lab()
    big = b"x" * 1400
    segs = [b"GET /big HTTP/1.1\r\nHost: s\r\n\r\n"]
    lab.tcp(C, 42000, S, 80, segs, [b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n"
                                    % (len(big) * 300)] + [big] * 300, close=False)
    lab.tcp(C, 42000, S, 80, [b"GET /after HTTP/1.1\r\nHost: s\r\n\r\n"], handshake=False,
            close=False)
    _, obs, pipe = hunt(lab.write(tmp_path / "e.pcap"), catalog)
    st = pipe.dissector.stats
    assert st.http_budget_spent == 1
    targets = [o.payload.target for o in obs if isinstance(o.payload, HttpRequest)]
    assert targets == ["/big", "/after"]  # the later head is still decoded, alone


def test_idle_and_full_tables_report_and_let_go(tmp_path: Path, catalog: Catalog) -> None:
    lab = Lab()
    lab.tcp(C, 43000, S, 11434, [b"GET / HTTP/1.1\r\nHost: s\r\n\r\n"],
            [b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nOllama is running"],
            close=False)
    lab.wait(200)  # longer than HTTP_IDLE_NS
    for i in range(3):
        lab.tcp(C, 43001 + i, S, 8080, [b"GET /%d HTTP/1.1\r\nHost: s\r\n\r\n" % i],
                [b"HTTP/1.1 204 No Content\r\n\r\n"], close=False)
    obs: list[Observation] = []
    pipe = Pipeline(Settings(), catalog, obs.append)
    pipe.dissector.max_http_flows = 2
    with open_capture(lab.write(tmp_path / "f.pcap")) as r:
        for b in r.batches(8):
            pipe.feed(b)
    st = pipe.dissector.stats
    assert st.http_idle_ended == 1 and st.http_table_full == 1
    assert len(pipe.dissector._http) == 2
    # the idle connection (a body until close) was reported before the end of the input
    exs = [o.payload for o in obs if isinstance(o.payload, HttpExchange)]
    assert exs[0].response is not None and exs[0].response.body == b"Ollama is running"
    assert len(exs) == 4  # the 204s were complete at once
    pipe.finish()
    assert sum(o.kind == "http.exchange" for o in obs) == 4  # nothing twice
