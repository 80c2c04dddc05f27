"""HttpConversation: ordering, framing, pairing, bounds; sse_events."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensor.decoders import http_stream as hs
from sensor.decoders.http_stream import (
    HttpConversation,
    HttpExchange,
    HttpMessage,
    Secret,
    sse_events,
)
from sensor.records import HttpRequest, HttpResponse

KEY = "sk-proj-" + "Q" * 40

REQS = (
    b"POST /api/chat HTTP/1.1\r\nHost: 10.0.0.5:11434\r\nAuthorization: Bearer " + KEY.encode()
    + b"\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n"
    + b'{"model":"m1:7b"}'[:16]
    + b"GET /api/tags HTTP/1.1\r\nHost: 10.0.0.5\r\n\r\n"
    + b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n"
)
RESPS = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: 1\r\n\r\n"
    b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n{\"models\":[]}"
    b"HTTP/1.1 200 OK\r\nContent-Length: 17\r\n\r\n"  # HEAD: no body despite the length
)


def exchanges(events: list[hs.HttpEvent]) -> list[HttpExchange]:
    return [e for e in events if isinstance(e, HttpExchange)]


def feed_all(conv: HttpConversation, segs: list[tuple[bool, int, bytes]]) -> list[hs.HttpEvent]:
    out: list[hs.HttpEvent] = []
    for i, (c, seq, data) in enumerate(segs):
        out += conv.feed(c, seq, data, 1000 + i)
    return out + conv.flush()


def split(data: bytes, base: int, cuts: list[int], from_client: bool
          ) -> list[tuple[bool, int, bytes]]:
    pts = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [(from_client, (base + a) & 0xFFFFFFFF, data[a:b]) for a, b in itertools.pairwise(pts)]


def summary(events: list[hs.HttpEvent]) -> list[tuple[object, ...]]:
    out: list[tuple[object, ...]] = []
    for ex in exchanges(events):
        r = ex.response
        out.append((ex.request.head.target if isinstance(ex.request.head, HttpRequest) else None,
                    ex.request.body, ex.request.complete,
                    None if r is None else (r.head.status if isinstance(r.head, HttpResponse)
                                            else None, r.body, r.complete)))
    return out


EXPECTED = [
    ("/api/chat", b'{"model":"m1:7b"', True, (200, b"hello, world", True)),
    ("/api/tags", b"", True, (200, b'{"models":[]}', True)),
    ("/", b"", True, (200, b"", True)),
]


def test_pipelined_requests_in_one_segment_pair_in_order() -> None:
    conv = HttpConversation()
    ev = feed_all(conv, [(True, 1, REQS), (False, 9000, RESPS)])
    assert summary(ev) == EXPECTED
    heads = [e for e in ev if isinstance(e, HttpRequest)]
    assert [h.target for h in heads] == ["/api/chat", "/api/tags", "/"]
    assert sum(isinstance(e, HttpResponse) for e in ev) == 3


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(0, 400), max_size=12), st.lists(st.integers(0, 400), max_size=12),
       st.integers(0, 0xFFFFFFFF), st.randoms(use_true_random=False))
def test_segmentation_reordering_and_wraparound_do_not_change_the_result(
        cuts_c: list[int], cuts_s: list[int], isn: int, rnd: random.Random) -> None:
    segs_c = split(REQS, isn, cuts_c, True)
    segs_s = split(RESPS, isn ^ 0x5555, cuts_s, False)
    # reorder within each direction after the first segment (which syncs the direction),
    # and retransmit one segment; the server starts after the client's first segment
    rest_c, rest_s = segs_c[1:], segs_s[1:]
    rnd.shuffle(rest_c)
    rnd.shuffle(rest_s)
    order = [segs_c[0], *rest_c, segs_s[0], *rest_s]
    # a retransmitted copy of any segment, once both directions are synced
    order.insert(rnd.randrange(len(segs_c) + 1, len(order) + 1), order[rnd.randrange(len(order))])
    ev = feed_all(HttpConversation(), order)
    assert summary(ev) == EXPECTED


def test_overlapping_retransmission_keeps_the_new_tail_only() -> None:
    conv = HttpConversation()
    ev = conv.feed(True, 100, REQS[:50], 1)
    ev += conv.feed(True, 120, REQS[20:90], 2)  # overlaps 30 bytes, adds 40
    ev += conv.feed(True, 160, REQS[60:], 3)
    ev += conv.feed(False, 1, RESPS, 4)
    assert summary(ev) == EXPECTED
    assert conv.stats.retransmitted_bytes == 30 + 30


def test_gap_abandons_the_message_and_resyncs_on_the_next_head() -> None:
    conv = HttpConversation()
    body = b"x" * 200
    req = b"POST /a HTTP/1.1\r\nContent-Length: 200\r\n\r\n" + body
    ev = conv.feed(True, 0, req[:60], 1)
    # the segment [60, 100) never arrives; later ones pile up out of order
    seq = 100
    for i in range(hs.MAX_OOO_SEGMENTS + 1):
        ev += conv.feed(True, seq, b"y" * 10, 2 + i)
        seq += 10
    assert conv.stats.gaps == 1
    nxt = b"GET /b HTTP/1.1\r\nHost: h\r\n\r\n"
    ev += conv.feed(True, 5000, nxt, 100)
    ev += conv.feed(False, 7, b"HTTP/1.1 204 No Content\r\n\r\n", 101)
    ev += conv.flush()
    ex = exchanges(ev)
    # the server got the whole request (only the capture lost bytes): the first response
    # answers the abandoned /a, which is kept incomplete; /b is reported alone at flush
    assert [(e.request.head.target, e.request.complete, e.response is not None) for e in ex
            if isinstance(e.request.head, HttpRequest)] == [("/a", False, True),
                                                             ("/b", True, False)]
    assert ex[0].request.body == body[:19]


def test_body_is_capped_and_a_long_stream_is_reported_early() -> None:
    conv = HttpConversation(budget=10 * hs.BODY_CAP)
    ev = conv.feed(True, 0, b"GET /events HTTP/1.1\r\nAccept: text/event-stream\r\n\r\n", 1)
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n"
    ev += conv.feed(False, 0, head, 2)
    seq = len(head)
    chunk = b"data: " + b"z" * 1000 + b"\n\n"
    for i in range(20):
        ev += conv.feed(False, seq, chunk, 3 + i)
        seq += len(chunk)
    ex = exchanges(ev)
    assert len(ex) == 1 and ex[0].response is not None
    assert len(ex[0].response.body) == hs.BODY_CAP and not ex[0].response.complete
    assert conv.flush() == []  # already reported: nothing twice
    assert conv.stats.body_bytes_dropped > 0


def test_until_close_body_is_complete_at_flush() -> None:
    conv = HttpConversation()
    ev = conv.feed(True, 0, b"GET / HTTP/1.0\r\n\r\n", 1)
    ev += conv.feed(False, 0, b"HTTP/1.0 200 OK\r\n\r\nOllama is running", 2)
    assert exchanges(ev) == []
    ex = exchanges(conv.flush())
    assert ex[0].response is not None and ex[0].response.body == b"Ollama is running"
    assert ex[0].response.complete


def test_budget_ends_the_conversation() -> None:
    conv = HttpConversation(budget=1000)
    ev = conv.feed(True, 0, b"POST /u HTTP/1.1\r\nContent-Length: 5000\r\n\r\n", 1)
    ev += conv.feed(True, 44, b"a" * 1400, 2)
    assert conv.done
    ex = exchanges(ev)
    assert len(ex) == 1 and ex[0].response is None and not ex[0].request.complete
    assert conv.feed(True, 1444, b"more", 3) == []


def test_interim_100_and_switching_protocols() -> None:
    conv = HttpConversation()
    ev = conv.feed(True, 0, b"POST /p HTTP/1.1\r\nExpect: 100-continue\r\n"
                   b"Content-Length: 2\r\n\r\n", 1)
    ev += conv.feed(False, 0, b"HTTP/1.1 100 Continue\r\n\r\n", 2)
    ev += conv.feed(True, 62, b"ok", 3)
    ev += conv.feed(False, 25, b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n", 4)
    ex = exchanges(ev)
    assert len(ex) == 1 and ex[0].response is not None
    assert isinstance(ex[0].response.head, HttpResponse) and ex[0].response.head.status == 201
    ws = HttpConversation()
    ws.feed(True, 0, b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n", 1)
    ev = ws.feed(False, 0, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"
                 b"\x81\x05hello", 2)
    assert ws.done and len(exchanges(ev)) == 1


def test_credentials_are_kept_apart_and_never_in_repr() -> None:
    conv = HttpConversation()
    ev = feed_all(conv, [(True, 1, REQS), (False, 9000, RESPS)])
    req = exchanges(ev)[0].request
    assert ("authorization", "<redacted>") in req.headers
    assert [(n, s.reveal()) for n, s in req.secrets] == [("authorization", "Bearer " + KEY)]
    for text in (repr(req), str(req), repr(exchanges(ev)[0]), repr(req.secrets),
                 str(req.secrets[0][1])):
        assert KEY not in text and "QQQQ" not in text
    assert Secret("a") == Secret("a") and repr(Secret("abc")) == "Secret(<redacted>)"


def test_query_is_not_in_repr() -> None:
    conv = HttpConversation()
    ev = conv.feed(True, 0, b"GET /v1/models?key=AIzaSECRET HTTP/1.1\r\n\r\n", 1) + conv.flush()
    assert "AIzaSECRET" not in repr(exchanges(ev)[0])


def test_bad_chunk_framing_reports_what_it_has() -> None:
    conv = HttpConversation()
    ev = conv.feed(True, 0, b"GET / HTTP/1.1\r\n\r\n", 1)
    ev += conv.feed(False, 0, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 2)
    ex = exchanges(ev + conv.flush())
    assert len(ex) == 1 and ex[0].response is not None and not ex[0].response.complete
    assert conv.stats.errors == 1


def test_header_lookup_and_message_fields() -> None:
    conv = HttpConversation()
    ev = feed_all(conv, [(True, 1, REQS), (False, 9000, RESPS)])
    msg: HttpMessage = exchanges(ev)[0].request
    assert msg.header("content-type") == "application/json"
    assert msg.header("nope") is None and msg.body_bytes == 16


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 0xFFFFFFFF), st.binary(max_size=300)),
                max_size=30))
def test_hostile_input_never_raises_and_stays_bounded(segs: list[tuple[bool, int, bytes]]) -> None:
    conv = HttpConversation(budget=4096)
    # start each direction with a plausible head so that junk reaches the parsers
    conv.feed(True, 0, b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 0)
    conv.feed(False, 0, b"HTTP/1.1 200 OK\r\n", 0)
    for c, seq, data in segs:
        for ev in conv.feed(c, seq, data, 1):
            assert isinstance(ev, HttpRequest | HttpResponse | HttpExchange)
        for d in conv._dirs:
            assert len(d.ooo) <= hs.MAX_OOO_SEGMENTS and d.ooo_bytes <= hs.MAX_OOO_BYTES
            assert len(d.buf) <= max(4096, hs.MAX_TRAILER) + 300
        assert len(conv._pending) <= hs.MAX_PENDING
    conv.flush()


@pytest.mark.parametrize(("body", "want"), [
    (b"event: endpoint\ndata: /messages/?session_id=abc\n\n",
     [("endpoint", "/messages/?session_id=abc")]),
    (b": comment\r\ndata: {\"a\":1}\r\ndata: {\"b\":2}\r\n\r\nid: 3\ndata:x\n\n",
     [("message", "{\"a\":1}\n{\"b\":2}"), ("message", "x")]),
    (b"event: message\ndata: cut", [("message", "cut")]),
    (b"retry: 5\n\n", []),
])
def test_sse_events(body: bytes, want: list[tuple[str, str]]) -> None:
    assert sse_events(body) == want


@pytest.mark.parametrize("pad", [0, 1, 2, 3, 4])
def test_head_size_limit_at_the_boundary(pad: int) -> None:
    # a head may end exactly at MAX_HEAD_BYTES; one byte more is an error (both directions)
    from sensor.decoders.http import MAX_HEAD_BYTES

    start = b"GET / HTTP/1.1\r\nX: "
    fill = MAX_HEAD_BYTES - len(start) - 4 - 2 + pad  # pad 2: the head ends at the limit
    raw = start + b"a" * fill + b"\r\n\r\n"
    conv = HttpConversation()
    first = b"GET /a HTTP/1.1\r\n\r\n\r\n\r\n"  # blank lines between requests are tolerated
    ev = conv.feed(True, 0, first + raw[:5000], 1)
    ev += conv.feed(True, len(first) + 5000, raw[5000:], 2)
    ok = len(raw) <= MAX_HEAD_BYTES
    assert [type(e) for e in ev] == ([HttpRequest, HttpRequest] if ok else [HttpRequest])
    assert conv.stats.errors == (0 if ok else 1)
    resp = b"HTTP/1.1 200 OK\r\nX: " + b"a" * (fill - 1) + b"\r\nContent-Length: 0\r\n\r\n"
    conv = HttpConversation()
    conv.feed(True, 0, b"GET / HTTP/1.1\r\n\r\n", 1)
    ev = conv.feed(False, 0, resp, 2)
    ok = len(resp) <= MAX_HEAD_BYTES
    assert len(exchanges(ev)) == (1 if ok else 0) and conv.stats.errors == (0 if ok else 1)


def test_body_split_at_every_offset_is_the_same() -> None:
    # bodies arrive whole, split, and across the cap: the buffered and direct paths agree
    body = bytes(range(256)) * 80  # 20480 bytes: beyond BODY_CAP
    req = b"POST /u HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    rsp = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    results = set()
    for cut in (1, 40, 41, 42, 1000, hs.BODY_CAP + 41, len(req) - 1):
        conv = HttpConversation()
        conv.feed(True, 0, req[:cut], 1)
        conv.feed(True, cut, req[cut:], 2)
        ex = exchanges(conv.feed(False, 0, rsp, 3))
        assert len(ex) == 1 and ex[0].response is not None
        r = ex[0].request
        results.add((r.body, r.body_bytes, r.complete, ex[0].response.body,
                     conv.stats.body_bytes_dropped))
    assert results == {(body[:hs.BODY_CAP], len(body), True, b"hello",
                        len(body) - hs.BODY_CAP)}
