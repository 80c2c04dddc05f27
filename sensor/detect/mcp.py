"""MCP servers over HTTP (Model Context Protocol), from HTTP exchanges.

Both transports of the spec (https://modelcontextprotocol.io/specification/):

* Streamable HTTP (2025-03-26 and later): the client POSTs JSON-RPC messages
  to one endpoint, with ``Accept: application/json, text/event-stream``,
  ``Mcp-Session-Id`` and ``MCP-Protocol-Version`` headers; the server answers
  with JSON or an SSE stream whose ``data:`` lines hold JSON-RPC messages.
* HTTP+SSE (2024-11-05): a GET opens an SSE stream whose first event is
  ``event: endpoint`` (the URL to POST messages to); results come back on
  that stream.

A server (IP, port) is reported once an exchange shows MCP: a JSON-RPC
message with an MCP method (``initialize`` with protocolVersion/clientInfo,
``tools/list``, ``tools/call``, ``resources/*``, ``prompts/*``,
``notifications/initialized``...), an ``initialize`` result with
``serverInfo``, or an SSE ``endpoint`` event. Finding type ``mcp_server``,
type-specific key ``mcp``. Session ids are counted, never output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sensor.decoders.http_stream import HttpExchange, HttpMessage, sse_events
from sensor.detect.selfhosted import (
    INFLATED_ENCODINGS,
    body_text,
    has_credentials,
    json_documents,
    request_path,
)
from sensor.detect.servers import MAX_VALUES, ServerState, ServerTable, exchange_request
from sensor.findings import ServerFinding, count_bounded, envelope
from sensor.records import HttpRequest, HttpResponse, Observation

TYPE = "mcp_server"

# Methods only MCP uses (initialize is checked for its MCP params separately).
MCP_METHODS = frozenset({
    "server/discover", "tools/list", "tools/call", "resources/list", "resources/read",
    "resources/templates/list",
    "resources/subscribe", "resources/unsubscribe", "prompts/list", "prompts/get",
    "completion/complete", "logging/setLevel", "sampling/createMessage", "roots/list",
    "elicitation/create", "notifications/initialized", "notifications/tools/list_changed",
    "notifications/resources/list_changed", "notifications/prompts/list_changed",
    "notifications/resources/updated", "notifications/roots/list_changed",
})


def _messages(docs: list[Any]) -> list[dict[str, Any]]:
    """JSON-RPC 2.0 message objects in parsed documents (a batch is a list)."""
    out: list[dict[str, Any]] = []
    for d in docs:
        for m in (d[:64] if isinstance(d, list) else [d]):
            if isinstance(m, dict) and m.get("jsonrpc") == "2.0":
                out.append(m)
    return out


# Protocol 2026-07-28 (stateless): no initialize; every request carries these in
# params._meta, and results carry the server's info in result._meta.
_META_VERSION = "io.modelcontextprotocol/protocolVersion"
_META_CLIENT = "io.modelcontextprotocol/clientInfo"
_META_SERVER = "io.modelcontextprotocol/serverInfo"


def _meta(d: Any) -> dict[str, Any]:
    m = d.get("_meta") if isinstance(d, dict) else None
    return m if isinstance(m, dict) else {}


def _s(v: Any, n: int = 100) -> str | None:
    return v[:n] if isinstance(v, str) and v else None


@dataclass(slots=True)
class _Server(ServerState):
    is_mcp: bool = False
    transports: set[str] = field(default_factory=set)
    protocol_versions: dict[str, int] = field(default_factory=dict)
    server_names: dict[str, int] = field(default_factory=dict)  # "name version"
    client_names: dict[str, int] = field(default_factory=dict)
    tools_listed: dict[str, int] = field(default_factory=dict)
    tools_called: dict[str, int] = field(default_factory=dict)
    methods: dict[str, int] = field(default_factory=dict)
    sessions: set[str] = field(default_factory=set)
    unauthenticated_calls: int = 0  # tools/call answered without credentials


@dataclass(frozen=True, slots=True)
class McpServerFinding(ServerFinding):
    transports: tuple[str, ...]
    paths: tuple[str, ...]
    protocol_versions: tuple[str, ...]
    server_names: tuple[str, ...]
    client_names: tuple[str, ...]
    tools_listed: tuple[str, ...]
    tools_called: tuple[tuple[str, int], ...]
    methods: tuple[tuple[str, int], ...]
    clients: tuple[tuple[str, int], ...]
    sessions: int

    def to_dict(self) -> dict[str, Any]:
        return {
            **envelope(
                self,
                client=None,
                server=self.server,
                service=None,
                evidence=[{"kind": "mcp.method", "value": m, "count": n} for m, n in self.methods],
                counts={"exchanges": self.exchanges, "sessions": self.sessions,
                        "requests_with_credentials": self.with_credentials,
                        "requests_without_credentials": self.without_credentials,
                        "tool_calls": sum(n for _, n in self.tools_called),
                        "clients": len(self.clients)},
            ),
            "mcp": {
                "transports": list(self.transports),
                "paths": list(self.paths),
                "protocol_version": self.protocol_versions[0] if self.protocol_versions else None,
                "protocol_versions": list(self.protocol_versions),
                "server_names": list(self.server_names),
                "client_names": list(self.client_names),
                "tools_listed": list(self.tools_listed),
                "tools_called": [{"name": t, "count": n} for t, n in self.tools_called],
                "clients": [{"ip": ip, "requests": n} for ip, n in self.clients],
            },
        }


def _name_version(info: Any) -> str | None:
    if not isinstance(info, dict):
        return None
    name = _s(info.get("name"))
    if name is None:
        return None
    ver = _s(info.get("version"), 40)
    return f"{name} {ver}" if ver else name


def _count_client(srv: _Server, info: Any, protocol_version: Any) -> None:
    """A client's name/version and protocol version, as initialize or _meta give them."""
    nv = _name_version(info)
    if nv:
        count_bounded(srv.client_names, nv, MAX_VALUES)
    pv = _s(protocol_version, 40)
    if pv:
        count_bounded(srv.protocol_versions, pv, MAX_VALUES)


class McpDetector:
    """Consumes ``http.exchange`` observations; one finding per MCP server (IP, port)."""

    def __init__(self) -> None:
        self._servers = ServerTable(_Server)

    observation_kinds = frozenset({"http.exchange"})  # the pipeline sends only these

    def on_observation(self, o: Observation) -> None:
        got = exchange_request(o)
        if got is None:
            return
        ex, head = got
        req_msgs = (_messages(json_documents(ex.request))
                    if head.method == "POST" and _may_contain(ex.request, b"jsonrpc") else [])
        resp = ex.response
        resp_msgs: list[dict[str, Any]] = []
        endpoint = False
        if resp is not None and isinstance(resp.head, HttpResponse):
            ctype = (resp.head.content_type or "").lower()
            text: str | None = None
            if "text/event-stream" in ctype and _may_contain(resp, b"endpoint"):
                text = body_text(resp)
                events = sse_events(text.encode("utf-8"), limit=64)
                endpoint = any(e == "endpoint" for e, _ in events)
            if ("json" in ctype or "event-stream" in ctype) and _may_contain(resp, b"jsonrpc"):
                resp_msgs = _messages(json_documents(resp, text))
        mcp_headers = head.mcp_session_id is not None or head.mcp_protocol_version is not None
        evidence = endpoint or any(self._is_mcp_request(m) for m in req_msgs) or any(
            self._is_mcp_result(m) for m in resp_msgs) or (mcp_headers and bool(req_msgs))
        srv = self._servers.get(o)
        if srv is None:
            if not evidence:
                return
            srv = self._servers.add(o)
            if srv is None:
                return
        if not (evidence or req_msgs or resp_msgs or mcp_headers):
            return  # an unrelated exchange with the same server (a web page...)
        srv.is_mcp = srv.is_mcp or evidence
        self._record(srv, o, ex, head, req_msgs, resp_msgs, endpoint)

    @staticmethod
    def _is_mcp_request(m: dict[str, Any]) -> bool:
        method = m.get("method")
        if method in MCP_METHODS:
            return True
        p = m.get("params")
        if method == "initialize":
            return isinstance(p, dict) and "protocolVersion" in p and "clientInfo" in p
        return _META_VERSION in _meta(p)

    @staticmethod
    def _is_mcp_result(m: dict[str, Any]) -> bool:
        r = m.get("result")
        if not isinstance(r, dict):
            return False
        return ("protocolVersion" in r and "serverInfo" in r) or _META_SERVER in _meta(r)

    def _record(self, srv: _Server, o: Observation, ex: HttpExchange, head: HttpRequest,
                req_msgs: list[dict[str, Any]], resp_msgs: list[dict[str, Any]],
                endpoint: bool) -> None:
        creds = has_credentials(ex.request)
        srv.add_exchange(o, head, request_path(head.target), creds)
        if endpoint or (head.method == "GET" and _accepts_sse(ex.request) and not req_msgs
                        and head.mcp_session_id is None):
            srv.transports.add("http+sse" if endpoint else "streamable-http")
        elif req_msgs:
            srv.transports.add("streamable-http" if _accepts_sse(ex.request) or head.mcp_session_id
                               or head.mcp_protocol_version else "http+sse")
        if endpoint:
            count_bounded(srv.methods, "sse:endpoint", MAX_VALUES)
        if head.mcp_protocol_version:
            count_bounded(srv.protocol_versions, head.mcp_protocol_version[:40], MAX_VALUES)
        sid = head.mcp_session_id
        if sid is None and ex.response is not None and isinstance(ex.response.head, HttpResponse):
            sid = ex.response.head.mcp_session_id
        if sid and len(srv.sessions) < 4096:
            srv.sessions.add(sid[:128])
        for m in req_msgs:
            method = _s(m.get("method"), 80)
            if method is None:
                continue
            count_bounded(srv.methods, method, MAX_VALUES)
            params = m.get("params")
            if not isinstance(params, dict):
                continue
            meta = _meta(params)
            if meta:
                _count_client(srv, meta.get(_META_CLIENT), meta.get(_META_VERSION))
            if method == "initialize":
                _count_client(srv, params.get("clientInfo"), params.get("protocolVersion"))
            elif method == "tools/call":
                name = _s(params.get("name"))
                if name:
                    count_bounded(srv.tools_called, name, MAX_VALUES)
                    if not creds:
                        srv.unauthenticated_calls += 1
        for m in resp_msgs:
            r = m.get("result")
            if not isinstance(r, dict):
                # server-to-client requests and notifications on the stream
                method = _s(m.get("method"), 80)
                if method:
                    count_bounded(srv.methods, method, MAX_VALUES)
                continue
            nv = _name_version(r.get("serverInfo")) or _name_version(
                _meta(r).get(_META_SERVER))
            if nv:
                count_bounded(srv.server_names, nv, MAX_VALUES)
                pv = _s(r.get("protocolVersion"), 40)
                if pv:
                    # the negotiated version: count it first
                    count_bounded(srv.protocol_versions, pv, MAX_VALUES)
            tools = r.get("tools")
            if isinstance(tools, list):
                for t in tools[:256]:
                    if isinstance(t, dict) and (name := _s(t.get("name"))):
                        count_bounded(srv.tools_listed, name, MAX_VALUES)

    def findings(self) -> list[McpServerFinding]:
        out: list[McpServerFinding] = []
        for s in self._servers:
            if not s.is_mcp:
                continue
            pvs = sorted(s.protocol_versions, key=lambda v: (-s.protocol_versions[v], v))
            out.append(McpServerFinding(
                type=TYPE,
                severity="high" if s.unauthenticated_calls else "medium",
                server_ip=s.ip, server_port=s.port, server_name=s.host,
                first_ns=s.first_ns, last_ns=s.last_ns,
                transports=tuple(sorted(s.transports)), paths=tuple(s.paths),
                protocol_versions=tuple(pvs), server_names=tuple(s.server_names),
                client_names=tuple(s.client_names), tools_listed=tuple(s.tools_listed),
                tools_called=tuple(s.tools_called.items()), methods=tuple(s.methods.items()),
                clients=tuple(s.clients.items()), sessions=len(s.sessions),
                exchanges=s.exchanges, with_credentials=s.with_credentials,
                without_credentials=s.without_credentials,
            ))
        out.sort(key=lambda f: (f.first_ns, f.server_ip, f.server_port))
        return out


def _may_contain(msg: HttpMessage, word: bytes) -> bool:
    """False when the decoded body cannot hold ``word`` (an ASCII JSON key or SSE field
    value): it is not in the bytes, no JSON ``\\u`` escape could spell it, and the body
    is not compressed. Skips parsing bodies that cannot concern MCP; never changes
    what is found."""
    body = msg.body
    if not body:
        return False
    if word in body or b"\\u" in body:
        return True
    # body_text inflates these encodings: anything may come out
    return (msg.header("content-encoding") or "").strip().lower() in INFLATED_ENCODINGS


def _accepts_sse(req: HttpMessage) -> bool:
    head = req.head
    return isinstance(head, HttpRequest) and "text/event-stream" in (head.accept or "").lower()
