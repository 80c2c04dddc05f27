"""MCP server detection over Streamable HTTP (both protocol eras) and HTTP+SSE."""

from __future__ import annotations

import json
from typing import Any

from sensor.detect.mcp import McpDetector
from tests.sensor.detect._http import exchange_obs, req, resp

ACCEPT = {"Accept": "application/json, text/event-stream"}


def rpc(method: str, params: dict[str, Any] | None = None, id_: int | None = 1) -> dict[str, Any]:
    m: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        m["params"] = params
    if id_ is not None:
        m["id"] = id_
    return m


def sse(*msgs: dict[str, Any], event: str = "message") -> bytes:
    return b"".join(f"event: {event}\r\ndata: {json.dumps(m)}\r\n\r\n".encode() for m in msgs)


def run(*pairs: tuple[bytes, bytes | None], port: int = 8000) -> list[dict[str, Any]]:
    d = McpDetector()
    for q, r in pairs:
        for o in exchange_obs(q, r, port=port):
            d.on_observation(o)
    return [f.to_dict() for f in d.findings()]


INIT = rpc("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                          "clientInfo": {"name": "claude-code", "version": "1.0.3"}})
INIT_RESULT = {"jsonrpc": "2.0", "id": 1, "result": {
    "protocolVersion": "2025-06-18", "capabilities": {"tools": {}},
    "serverInfo": {"name": "github-mcp", "version": "0.4.0"}}}
TOOLS = {"jsonrpc": "2.0", "id": 2, "result": {"tools": [{"name": "create_issue"},
                                                         {"name": "search_code"}]}}


def test_streamable_http_session_with_sse_responses() -> None:
    hdrs = {**ACCEPT, "Mcp-Session-Id": "s3cr3t-session", "MCP-Protocol-Version": "2025-06-18"}
    (f,) = run(
        (req("POST", "/mcp", INIT, ACCEPT),
         resp(200, sse(INIT_RESULT), "text/event-stream", {"Mcp-Session-Id": "s3cr3t-session"})),
        (req("POST", "/mcp", rpc("notifications/initialized", id_=None), hdrs), resp(202, b"")),
        (req("POST", "/mcp", rpc("tools/list", id_=2), hdrs), resp(200, TOOLS)),
        (req("POST", "/mcp", rpc("tools/call", {"name": "create_issue", "arguments": {}}, 3),
             hdrs), resp(200, sse({"jsonrpc": "2.0", "id": 3, "result": {"content": []}}),
                         "text/event-stream")),
    )
    m = f["mcp"]
    assert f["type"] == "mcp_server" and f["server"]["port"] == 8000
    assert m["transports"] == ["streamable-http"] and m["paths"] == ["/mcp"]
    assert m["protocol_version"] == "2025-06-18"
    assert m["server_names"] == ["github-mcp 0.4.0"]
    assert m["client_names"] == ["claude-code 1.0.3"]
    assert m["tools_listed"] == ["create_issue", "search_code"]
    assert m["tools_called"] == [{"name": "create_issue", "count": 1}]
    assert f["counts"]["sessions"] == 1 and f["severity"] == "high"  # unauthenticated call
    assert "s3cr3t-session" not in json.dumps(f)


def test_stateless_2026_protocol_with_meta() -> None:
    meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "mcp", "version": "0.1.0"}}
    (f,) = run((req("POST", "/mcp", rpc("server/discover", {"_meta": meta}), ACCEPT),
                resp(200, {"jsonrpc": "2.0", "id": 1, "result": {"supportedVersions": [
                    "2026-07-28"], "_meta": {"io.modelcontextprotocol/serverInfo": {
                        "name": "lab", "version": "1"}}}})))
    m = f["mcp"]
    assert (m["protocol_version"], m["server_names"], m["client_names"]) == (
        "2026-07-28", ["lab 1"], ["mcp 0.1.0"])


def test_old_http_sse_transport() -> None:
    stream = (b"event: endpoint\r\ndata: /messages/?session_id=abc\r\n\r\n"
              + sse(INIT_RESULT, TOOLS))
    (f,) = run(
        (req("GET", "/sse", headers={"Accept": "text/event-stream"}),
         resp(200, stream, "text/event-stream")),
        (req("POST", "/messages/?session_id=abc", INIT), resp(202, b"Accepted", "text/plain")),
        (req("POST", "/messages/?session_id=abc",
             rpc("tools/call", {"name": "search_code"}, 4),
             {"Authorization": "Bearer abcdefghijklmnop"}), resp(202, b"Accepted", "text/plain")),
    )
    m = f["mcp"]
    assert m["transports"] == ["http+sse"] and m["paths"] == ["/sse", "/messages/"]
    assert m["tools_listed"] == ["create_issue", "search_code"]
    assert m["tools_called"] == [{"name": "search_code", "count": 1}]
    assert f["severity"] == "medium"  # the tool call carried credentials


def test_other_json_rpc_and_plain_http_are_not_mcp() -> None:
    assert run((req("POST", "/rpc", rpc("eth_blockNumber", [])),  # type: ignore[arg-type]
                resp(200, {"jsonrpc": "2.0", "id": 1, "result": "0x1"}))) == []
    assert run((req("POST", "/lsp", rpc("initialize", {"processId": 1, "rootUri": None})),
                resp(200, {"jsonrpc": "2.0", "id": 1, "result": {"capabilities": {}}}))) == []
    assert run((req("GET", "/events", headers={"Accept": "text/event-stream"}),
                resp(200, b"data: tick\n\n", "text/event-stream"))) == []
    assert run((req("GET", "/"), resp(200, b"<html/>", "text/html"))) == []


def test_bodies_are_skipped_only_when_they_cannot_hold_mcp() -> None:
    import gzip

    # a JSON \u escape can spell the key, and compressed bodies hold anything: both still read
    escaped = json.dumps(rpc("tools/list")).replace('"jsonrpc"', '"\\u006asonrpc"').encode()
    assert b"jsonrpc" not in escaped
    (f,) = run((req("POST", "/mcp", escaped, ACCEPT), resp(202, b"")))
    assert f["mcp"]["transports"] == ["streamable-http"]
    packed = gzip.compress(json.dumps(INIT_RESULT).encode())
    (f,) = run((req("GET", "/x"), resp(200, packed, headers={"Content-Encoding": "gzip"})))
    assert f["mcp"]["server_names"] == ["github-mcp 0.4.0"]
    stream = gzip.compress(b"event: endpoint\ndata: /messages?sessionId=1\n\n")
    (f,) = run((req("GET", "/sse", headers={"Accept": "text/event-stream"}),
                resp(200, stream, "text/event-stream", {"Content-Encoding": "x-gzip"})))
    assert f["mcp"]["transports"] == ["http+sse"]
    # a body that names neither: nothing, whatever the content type
    assert run((req("POST", "/mcp", {"method": "tools/list"}, ACCEPT),
                resp(200, b"event: end\ndata: {}\n\n", "text/event-stream"))) == []
