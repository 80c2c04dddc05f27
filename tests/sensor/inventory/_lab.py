"""Shared by the inventory and report tests: CycloneDX 1.6 validation, captures, hunts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
from click.testing import CliRunner
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource

from sensor.cli import main
from tests.helpers.packets import Lab, client_hello_record

ROOT = Path(__file__).resolve().parents[3]
SAMPLE = ROOT / "pcaps" / "sample.pcap"
CDX_DIR = ROOT / "sensor" / "schemas" / "cyclonedx"
CDX_FILES = ("bom-1.6.schema.json", "spdx.schema.json", "jsf-0.82.schema.json")


def _no_network(uri: str) -> Resource[Any]:
    raise NoSuchResource(ref=uri)  # every $ref must resolve to a vendored file


def cdx_validator() -> jsonschema.Draft7Validator:
    """The official CycloneDX 1.6 JSON schema, its spdx/jsf schemas from a local registry."""
    res = {n: Resource.from_contents(json.loads((CDX_DIR / n).read_text("utf-8")))
           for n in CDX_FILES}
    pairs: list[tuple[str, Resource[Any]]] = []
    for name, r in res.items():
        pairs += [(r.contents["$id"], r), (name, r)]
    registry: Registry[Any] = Registry(retrieve=_no_network).with_resources(pairs)
    return jsonschema.Draft7Validator(res["bom-1.6.schema.json"].contents, registry=registry,
                                      format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)


def cdx_errors(bom: dict[str, Any]) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message[:200]}"
            for e in cdx_validator().iter_errors(bom)]


def _http(method: str, path: str, body: Any, host: str) -> bytes:
    raw = json.dumps(body).encode()
    return (f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Accept: application/json, text/event-stream\r\n"
            f"Content-Length: {len(raw)}\r\n\r\n").encode() + raw


def _resp(body: Any, headers: str = "") -> bytes:
    raw = json.dumps(body).encode()
    return (f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{headers}"
            f"Content-Length: {len(raw)}\r\n\r\n").encode() + raw


def lab_capture(path: Path) -> Path:
    """Two clients: TLS to OpenAI and Anthropic APIs, an internal MCP server, an Ollama."""
    lab = Lab()
    a, b = "10.20.0.5", "10.20.0.6"
    lab.dns(a, "api.openai.com", ["162.159.140.245"])
    lab.tcp(a, 50001, "162.159.140.245", 443, [client_hello_record("api.openai.com")],
            [b"\x16\x03\x03\x00\x02\x02\x00"])
    lab.wait(30)
    lab.tcp(b, 50002, "160.79.104.10", 443, [client_hello_record("api.anthropic.com")],
            [b"\x16\x03\x03\x00\x02\x02\x00"])
    mcp = "10.20.0.40"
    sid = "Mcp-Session-Id: s-1\r\n"
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "claude-code", "version": "1.0.3"}}}
    init_r = {"jsonrpc": "2.0", "id": 1, "result": {
        "protocolVersion": "2025-06-18", "capabilities": {"tools": {}},
        "serverInfo": {"name": "github-mcp", "version": "0.4.0"}}}
    lab.tcp(b, 50003, mcp, 8000, [_http("POST", "/mcp", init, f"{mcp}:8000")],
            [_resp(init_r, sid)])
    tools = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
    tools_r = {"jsonrpc": "2.0", "id": 2, "result": {"tools": [
        {"name": "create_issue"}, {"name": "search_code"}]}}
    lab.tcp(b, 50004, mcp, 8000, [_http("POST", "/mcp", tools, f"{mcp}:8000")],
            [_resp(tools_r, sid)])
    call = {"jsonrpc": "2.0", "id": 3, "method": "tools/call",
            "params": {"name": "search_code", "arguments": {"q": "x"}}}
    lab.tcp(b, 50005, mcp, 8000, [_http("POST", "/mcp", call, f"{mcp}:8000")],
            [_resp({"jsonrpc": "2.0", "id": 3, "result": {"content": []}}, sid)])
    ollama = "10.20.0.50"
    tags = {"models": [{"name": "qwen2.5:0.5b", "model": "qwen2.5:0.5b"}]}
    lab.tcp(a, 50006, ollama, 11434,
            [f"GET /api/tags HTTP/1.1\r\nHost: {ollama}:11434\r\n\r\n".encode()],
            [_resp(tags)])
    chat = {"model": "qwen2.5:0.5b", "messages": [{"role": "user", "content": "hi"}],
            "stream": False}
    chat_r = {"model": "qwen2.5:0.5b", "created_at": "2026-01-01T00:00:00Z",
              "message": {"role": "assistant", "content": "hello"}, "done": True}
    lab.tcp(a, 50007, ollama, 11434, [_http("POST", "/api/chat", chat, f"{ollama}:11434")],
            [_resp(chat_r)])
    return lab.write(path)


def hunt(capture: Path, out: Path) -> list[dict[str, Any]]:
    r = CliRunner().invoke(main, ["hunt", "-q", str(capture), "-o", str(out)],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
