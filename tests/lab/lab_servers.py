"""Lab servers, run inside the server network namespace by tests/lab/test_lab.py.

* an Ollama imitation (the real binary cannot be downloaded here) on :11434,
  answering like Ollama 0.6 (bodies and headers as its Go server sends them),
  also serving the OpenAI-compatible /v1 routes as Ollama does;
* a real MCP server from the official ``mcp`` SDK over Streamable HTTP on :8000
  (path /mcp) and, when the SDK still ships it, over HTTP+SSE on :8001.

usage: lab_servers.py ADDRESS READY_DIR LIFETIME_S
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ADDR, READY, LIFETIME = sys.argv[1], sys.argv[2], float(sys.argv[3])
DEADLINE = time.monotonic() + LIFETIME
MODEL = {
    "name": "llama3.2:1b", "model": "llama3.2:1b", "modified_at": "2025-01-15T10:00:00Z",
    "size": 1321098329,
    "digest": "baf6a787fdffd633537aa2eb51cfd54cb93ff08e28040095462bb63daf552878",
    "details": {"parent_model": "", "format": "gguf", "family": "llama", "families": ["llama"],
                "parameter_size": "1.2B", "quantization_level": "Q8_0"}}


class Ollama(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def send_response(self, code: int, message: str | None = None) -> None:
        self.log_request(code)  # Go net/http sends no Server header
        self.send_response_only(code, message)
        self.send_header("Date", self.date_time_string())

    def _reply(self, code: int, ctype: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, obj: object, code: int = 200) -> None:
        self._reply(code, "application/json; charset=utf-8", json.dumps(obj).encode())

    def _stream(self, lines: list[object]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for obj in lines:
            data = json.dumps(obj).encode() + b"\n"
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.write(b"0\r\n\r\n")

    def do_HEAD(self) -> None:
        self._reply(200, "text/plain; charset=utf-8", b"")

    def do_GET(self) -> None:
        if self.path == "/":
            self._reply(200, "text/plain; charset=utf-8", b"Ollama is running")
        elif self.path == "/api/tags":
            self._json({"models": [MODEL]})
        elif self.path == "/api/version":
            self._json({"version": "0.6.3"})
        elif self.path == "/v1/models":
            self._json({"object": "list", "data": [
                {"id": "llama3.2:1b", "object": "model", "created": 1736935200,
                 "owned_by": "library"}]})
        else:
            self._reply(404, "text/plain; charset=utf-8", b"404 page not found")

    def do_POST(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        req = json.loads(self.rfile.read(min(n, 1 << 20)) or b"{}")
        model = req.get("model", "llama3.2:1b")
        now = "2025-01-15T10:00:01.000000Z"
        if self.path == "/api/chat":
            self._json({"model": model, "created_at": now,
                        "message": {"role": "assistant", "content": "Hello from the lab."},
                        "done_reason": "stop", "done": True, "total_duration": 123456789,
                        "eval_count": 5})
        elif self.path == "/api/generate":
            self._json({"model": model, "created_at": now, "response": "Hello.",
                        "done": True, "done_reason": "stop"})
        elif self.path == "/api/pull" and req.get("stream") is False:
            self._json({"status": "success"})
        elif self.path == "/api/pull":
            self._stream([{"status": "pulling manifest"},
                          {"status": "verifying sha256 digest"}, {"status": "success"}])
        elif self.path == "/v1/chat/completions":
            self._json({"id": "chatcmpl-1", "object": "chat.completion", "created": 1736935201,
                        "model": model, "system_fingerprint": "fp_ollama",
                        "choices": [{"index": 0, "finish_reason": "stop", "message": {
                            "role": "assistant", "content": "Hello from the lab."}}],
                        "usage": {"prompt_tokens": 9, "completion_tokens": 5,
                                  "total_tokens": 14}})
        else:
            self._reply(404, "text/plain; charset=utf-8", b"404 page not found")

    def log_message(self, fmt: str, *args: object) -> None:
        sys.stderr.write("ollama %s\n" % (fmt % args))


def ollama() -> None:
    srv = ThreadingHTTPServer((ADDR, 11434), Ollama)
    srv.daemon_threads = True
    srv.serve_forever(poll_interval=0.2)


def mcp_server(transport: str, port: int) -> None:
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("shadowai-lab-tools", version="1.2.3")

    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    @server.tool()
    def lookup_weather(city: str) -> str:
        """Weather for a city (lab: always sunny)."""
        return f"{city}: sunny"

    server.run(transport, host=ADDR, port=port)  # "streamable-http" or "sse"


for target, args in ((ollama, ()), (mcp_server, ("streamable-http", 8000)),
                     (mcp_server, ("sse", 8001))):
    threading.Thread(target=target, args=args, daemon=True).start()  # type: ignore[arg-type]
# ready once every port accepts connections (probes stay on lo, outside the capture)
for port in (11434, 8000, 8001):
    while time.monotonic() < DEADLINE:
        try:
            socket.create_connection((ADDR, port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.1)
open(f"{READY}/ready", "w").close()
while time.monotonic() < DEADLINE:  # bounded lifetime even if nobody stops us
    time.sleep(0.2)
