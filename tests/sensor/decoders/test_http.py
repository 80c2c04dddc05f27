"""HTTP/1.x head decoder: requests, responses, AI-API headers, limits, hostile input."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensor.decoders.http import (
    HTTP_METHOD_PREFIXES,
    HTTP_RESPONSE_PREFIX,
    MAX_HEAD_BYTES,
    looks_like_http_request,
    looks_like_http_response,
    parse_request_head,
    parse_response_head,
)
from sensor.errors import DecodeError, NeedMoreData
from sensor.records import HttpRequest, HttpResponse

MCP_POST = (
    b"POST /v1/messages HTTP/1.1\r\n"
    b"Host: API.Anthropic.com:8443\r\n"
    b"User-Agent: claude-cli/1.0.3 (external, cli)\r\n"
    b"Content-Type: application/json\r\n"
    b"Content-Length: 1234\r\n"
    b"x-api-key: sk-ant-api03-SECRET\r\n"
    b"Authorization: Bearer sk-SECRET-TOKEN\r\n"
    b"Accept: application/json, text/event-stream\r\n"
    b"Mcp-Session-Id: 1868a90c-4f0e\r\n"
    b"MCP-Protocol-Version: 2025-06-18\r\n"
    b"Last-Event-ID: 42\r\n"
    b"\r\n"
    b'{"model": "claude"}'
)


def test_request_all_fields() -> None:
    req = parse_request_head(MCP_POST)
    assert req == HttpRequest(
        method="POST",
        target="/v1/messages",
        version="HTTP/1.1",
        host="api.anthropic.com",
        host_port=8443,
        user_agent="claude-cli/1.0.3 (external, cli)",
        content_type="application/json",
        content_length=1234,
        authorization_scheme="Bearer",
        api_key_headers=("x-api-key",),
        accept="application/json, text/event-stream",
        mcp_session_id="1868a90c-4f0e",
        mcp_protocol_version="2025-06-18",
        last_event_id="42",
        header_bytes=MCP_POST.index(b"\r\n\r\n") + 4,
    )
    assert "SECRET" not in repr(req)


def test_bare_lf_and_case_insensitive_names() -> None:
    raw = b"GET /x HTTP/1.0\nhOsT: Example.ORG\nAPI-KEY: k\nX-Goog-Api-Key: k\n\nbody"
    req = parse_request_head(raw)
    assert req.host == "example.org" and req.host_port is None and req.version == "HTTP/1.0"
    assert req.api_key_headers == ("api-key", "x-goog-api-key")
    assert req.header_bytes == raw.index(b"\n\n") + 2
    mixed = b"GET / HTTP/1.1\r\nHost: a\n\r\n"
    assert parse_request_head(mixed).header_bytes == len(mixed)


@pytest.mark.parametrize(
    ("value", "host", "port"),
    [
        ("[::1]:8080", "::1", 8080),
        ("[2001:DB8::1]", "2001:db8::1", None),
        ("localhost:11434", "localhost", 11434),
        ("10.0.0.5", "10.0.0.5", None),
        ("example.com:99999", "example.com:99999", None),  # not a port: kept whole
        ("example.com:", "example.com:", None),
        ("", "", None),
    ],
)
def test_host_port(value: str, host: str, port: int | None) -> None:
    req = parse_request_head(f"GET / HTTP/1.1\r\nHost: {value}\r\n\r\n".encode())
    assert (req.host, req.host_port) == (host, port)


def test_no_host_and_duplicates_first_wins() -> None:
    req = parse_request_head(b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n")
    assert req.host is None and req.user_agent is None and req.content_length is None
    req = parse_request_head(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\nContent-Length: x1\r\n\r\n")
    assert req.host == "a" and req.content_length is None


@pytest.mark.parametrize(
    ("value", "scheme"),
    [
        ("Bearer abc", "Bearer"),
        ("Basic dXNlcjpwYXNz", "Basic"),
        ("AWS4-HMAC-SHA256 Credential=AKIA/2024, Signature=x", "AWS4-HMAC-SHA256"),
        ("Negotiate", "Negotiate"),
        ("sk-proj-abcdef0123456789", None),  # a lone word may be the key itself
        ("abcdefghijklmnopqrstuvwxyz0123456789ABCDEF more", None),  # too long for a scheme
        ("", None),
    ],
)
def test_authorization_scheme_never_the_credential(value: str, scheme: str | None) -> None:
    req = parse_request_head(f"GET / HTTP/1.1\r\nAuthorization: {value}\r\n\r\n".encode())
    assert req.authorization_scheme == scheme
    proxy = parse_request_head(f"GET / HTTP/1.1\r\nProxy-Authorization: {value}\r\n\r\n".encode())
    assert proxy.authorization_scheme == scheme


def test_obs_fold_and_junk_lines() -> None:
    raw = b"GET / HTTP/1.1\r\nUser-Agent: a\r\n  b\r\nnot a header\r\nAccept: x\r\n\r\n"
    req = parse_request_head(raw)
    assert req.user_agent == "a b" and req.accept == "x"


@pytest.mark.parametrize(
    "method", [b"GET", b"PROPFIND", b"MKCOL", b"QUERY", b"M-SEARCH", b"BREW", b"get"]
)
def test_any_token_method(method: bytes) -> None:
    req = parse_request_head(method + b" * HTTP/1.1\r\n\r\n")
    assert req.method == method.decode() and req.target == "*"


def test_connect_and_absolute_form_targets() -> None:
    req = parse_request_head(
        b"CONNECT api.openai.com:443 HTTP/1.1\r\nHost: api.openai.com:443\r\n\r\n"
    )
    assert req.target == "api.openai.com:443" and req.host_port == 443
    req = parse_request_head(b"GET http://a.b/c d HTTP/1.1\r\n\r\n")  # SP inside target
    assert req.target == "http://a.b/c d"


def test_need_more_data_then_success() -> None:
    for cut in range(1, len(MCP_POST.split(b"\r\n\r\n")[0]) + 3):
        with pytest.raises(NeedMoreData):
            parse_request_head(MCP_POST[:cut])
    assert parse_request_head(MCP_POST[: MCP_POST.index(b"\r\n\r\n") + 4]).host_port == 8443


@pytest.mark.parametrize(
    "raw",
    [
        b"\x16\x03\x01\x02\x00\x01",  # TLS
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",  # h2 preface
        b"GET / HTTP/3.0\r\n\r\n",
        b"GET / FTP/1.0\r\n\r\n",
        b"G(T / HTTP/1.1\r\n\r\n",  # not a token
        b" GET / HTTP/1.1\r\n\r\n",
        b"",
    ],
)
def test_not_a_request(raw: bytes) -> None:
    with pytest.raises(DecodeError) as ei:
        parse_request_head(raw)
    assert not isinstance(ei.value, NeedMoreData) or raw == b""


def test_lenient_request_lines_as_zeek_reads_them() -> None:
    r = parse_request_head(b"GET /\r\n")  # HTTP/0.9: the line is the whole request
    assert (r.method, r.target, r.version, r.header_bytes) == ("GET", "/", "HTTP/0.9", 7)
    r = parse_request_head(b"GET /HTTP/1.1\r\nHost: a.example\r\n\r\n")  # no SP: 0.9
    assert (r.target, r.version, r.host) == ("/HTTP/1.1", "HTTP/0.9", "a.example")
    # no version but header lines follow (Suricata http-not09): they are read
    r = parse_request_head(b"GET /\nFakeHeader\nHost: localhost\nUser-Agent: myscript\n\n")
    assert (r.target, r.host, r.user_agent) == ("/", "localhost", "myscript")
    r = parse_request_head(b"GET HTTP/1.1\r\nHost: bro.org\r\n\r\n")  # no target
    assert (r.target, r.version, r.host) == ("", "HTTP/1.1", "bro.org")
    with pytest.raises(DecodeError):
        parse_request_head(b"GET  HTTP/1.1 x\r\n\r\n")


def test_head_size_limit() -> None:
    big = b"GET / HTTP/1.1\r\n" + b"X-Pad: " + b"a" * MAX_HEAD_BYTES + b"\r\n"
    with pytest.raises(DecodeError) as ei:
        parse_request_head(big)
    assert not isinstance(ei.value, NeedMoreData)
    with pytest.raises(DecodeError) as ei:
        parse_request_head(big + b"\r\n")
    assert not isinstance(ei.value, NeedMoreData)
    with pytest.raises(NeedMoreData):
        parse_request_head(big[: MAX_HEAD_BYTES - 10])


def test_response() -> None:
    raw = (
        b"HTTP/1.1 200 OK\r\nServer: uvicorn\r\nContent-Type: text/event-stream\r\n"
        b"mcp-session-id: abc\r\nContent-Length: 5\r\n\r\nhello"
    )
    assert parse_response_head(raw) == HttpResponse(
        version="HTTP/1.1",
        status=200,
        reason="OK",
        server="uvicorn",
        content_type="text/event-stream",
        content_length=5,
        mcp_session_id="abc",
        header_bytes=len(raw) - 5,
    )
    r = parse_response_head(b"HTTP/1.0 404\n\n")
    assert (r.status, r.reason, r.server) == (404, "", None)
    assert parse_response_head(b"HTTP/1.1 401 Unauthorized Access\r\n\r\n").reason == (
        "Unauthorized Access"
    )
    with pytest.raises(NeedMoreData):
        parse_response_head(b"HTTP/1.1 200 OK\r\nServer: x")
    with pytest.raises(NeedMoreData):
        parse_response_head(b"HTT")
    for bad in (
        b"HTTP/2 200\r\n\r\n",
        b"HTTP/1.1 20 OK\r\n\r\n",
        b"HTTP/1.1 abc\r\n\r\n",
        b"SSH-2.0",
    ):
        with pytest.raises(DecodeError) as ei:
            parse_response_head(bad)
        assert not isinstance(ei.value, NeedMoreData)


def test_looks_like() -> None:
    assert looks_like_http_request(b"GET / HTTP/1.1")
    assert looks_like_http_request(b"POS")
    assert looks_like_http_request(b"M-SEARCH * HTTP/1.1")
    assert not looks_like_http_request(b"\x16\x03\x01")
    assert not looks_like_http_request(b"")
    assert not looks_like_http_request(b"GET  /")
    assert not looks_like_http_request(b"A" * 40)
    assert looks_like_http_response(b"HTTP/1.1 200")
    assert looks_like_http_response(b"HT")
    assert not looks_like_http_response(b"HTTP/2 200")
    assert not looks_like_http_response(b"")


def test_prefix_constants() -> None:
    assert HTTP_RESPONSE_PREFIX == b"HTTP"
    assert all(len(p) == 4 for p in HTTP_METHOD_PREFIXES)
    for method in (b"GET", b"POST", b"PUT", b"HEAD", b"DELETE", b"OPTIONS", b"PATCH", b"CONNECT"):
        assert (method + b" /")[:4] in HTTP_METHOD_PREFIXES
        assert looks_like_http_request(method + b" /")


def _check_req(raw: bytes) -> None:
    with contextlib.suppress(DecodeError):
        assert isinstance(parse_request_head(raw), HttpRequest)
    with contextlib.suppress(DecodeError):
        assert isinstance(parse_response_head(raw), HttpResponse)


@given(st.binary(max_size=400))
def test_random_bytes(raw: bytes) -> None:
    _check_req(raw)
    _check_req(b"GET / HTTP/1.1\r\n" + raw)
    _check_req(b"HTTP/1.1 200 OK\r\n" + raw)


@settings(max_examples=300)
@given(st.integers(0, len(MCP_POST) - 1), st.integers(0, 255), st.integers(0, len(MCP_POST)))
def test_mutated_truncated(pos: int, byte: int, cut: int) -> None:
    raw = bytearray(MCP_POST)
    raw[pos] = byte
    _check_req(bytes(raw[:cut]))


@given(st.text(alphabet=st.characters(codec="latin-1"), max_size=200))
def test_header_values_never_crash(value: str) -> None:
    raw = b"GET / HTTP/1.1\r\nHost: " + value.replace("\n", " ").encode("latin-1") + b"\r\n\r\n"
    _check_req(raw)


def test_header_fields_keep_all_fields_in_order_with_folding() -> None:
    from sensor.decoders.http import head_end, header_fields, split_head

    raw = (b"POST / HTTP/1.1\r\nHost: a\r\nX-Multi: one\r\n  two\r\nno colon here\r\n"
           b"host: b\r\nAuthorization: Bearer t\r\n\r\nbody")
    end = head_end(raw)
    assert raw[end:] == b"body"
    start, lines, n = split_head(raw)
    assert (start, n) == ("POST / HTTP/1.1", end)
    assert header_fields(lines) == [("host", "a"), ("x-multi", "one two"), ("host", "b"),
                                    ("authorization", "Bearer t")]
    assert header_fields(lines, limit=2) == [("host", "a"), ("x-multi", "one two")]
    assert head_end(b"GET / HTTP/1.1\r\nHost: a\r\n") == -1
    with pytest.raises(NeedMoreData):
        split_head(b"GET / HTTP/1.1\r\n")


def _head_and_fields(raw: bytes, request: bool) -> tuple[object, object]:
    """What parse_*_fields must equal: the head decoder, then header_fields of split_head."""
    from sensor.decoders.http import header_fields, split_head

    head = parse_request_head(raw) if request else parse_response_head(raw)
    return head, header_fields(split_head(raw)[1], 128)


def test_parse_fields_is_head_plus_header_fields() -> None:
    from sensor.decoders.http import parse_request_fields, parse_response_fields

    raw = (b"POST / HTTP/1.1\r\nHost: a\r\nX-Multi: one\r\n  two\r\nno colon here\r\n"
           b"host: b\r\nAuthorization: Bearer t\r\n\r\n")
    head, fields = parse_request_fields(raw)
    assert (head, fields) == _head_and_fields(raw, True)
    assert head.host == "a" and fields[1] == ("x-multi", "one two")
    # a fold after a colon-less line: the head keeps the first value, the fields fold it in
    raw = b"GET / HTTP/1.1\r\nUser-Agent: x\r\njunk\r\n more\r\n\r\n"
    head, fields = parse_request_fields(raw)
    assert head.user_agent == "x" and fields == [("user-agent", "x more")]
    assert parse_request_fields(raw, limit=0)[1] == []
    # HTTP/0.9 request line alone: no fields
    assert parse_request_fields(b"GET /\r\n\r\n") == (parse_request_head(b"GET /\r\n\r\n"), [])
    rsp = b"HTTP/1.1 200 OK\r\nServer: s\r\nContent-Length: 3\r\nServer: t\r\n\r\n"
    assert parse_response_fields(rsp) == _head_and_fields(rsp, False)
    assert parse_response_fields(rsp, limit=2)[1] == [("server", "s"), ("content-length", "3")]
    with pytest.raises(NeedMoreData):
        parse_response_fields(b"HTTP/1.1 200 OK\r\n")


_LINE = st.sampled_from([b"Host: h:80", b"host: second", b"Content-Length: 7", b"junk", b" fold",
                         b"\tfold2", b"", b"Authorization: Basic x", b"X-Api-Key: k", b":",
                         b"Accept : a ", b"mcp-session-id: s", b"Server: srv", b"a:b:c"])


@settings(max_examples=300, deadline=None)
@given(st.lists(_LINE, max_size=12), st.sampled_from([b"\r\n", b"\n"]), st.integers(0, 12))
def test_parse_fields_equals_separate_decoders(lines: list[bytes], eol: bytes,
                                               limit: int) -> None:
    from sensor.decoders.http import (
        header_fields,
        parse_request_fields,
        parse_response_fields,
        split_head,
    )

    body = b"".join(ln + eol for ln in lines if ln) + eol
    for start, request in ((b"GET /x HTTP/1.1", True), (b"HTTP/1.0 404 No", False)):
        raw = start + eol + body
        try:
            want = (parse_request_head(raw) if request else parse_response_head(raw),
                    header_fields(split_head(raw)[1], limit))
        except DecodeError as e:
            with pytest.raises(type(e)):
                (parse_request_fields if request else parse_response_fields)(raw, limit)
            continue
        got = (parse_request_fields(raw, limit) if request
               else parse_response_fields(raw, limit))
        assert got == want
