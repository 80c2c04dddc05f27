#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Regenerate pcaps/sample.pcap: real clients (curl, glibc resolver, the openai
# and ollama Python SDKs) talking to lab servers, all inside private network
# namespaces. Nothing leaves the namespaces: the clients have no default route
# and resolve only through the lab DNS server.
#
#   usage: sudo pcaps/make_sample.sh [OUTPUT.pcap]     (default: pcaps/sample.pcap)
#
# Needs root (ip netns, tcpdump). On a fresh Debian machine it installs what is
# missing: apt packages iproute2 tcpdump curl openssl python3 python3-venv,
# and pip packages openai + ollama into a private venv (SAI_SAMPLE_VENV,
# default /var/tmp/shadowai-sample-venv). Safe to rerun: it removes any lab
# left by an earlier run first, and tears everything down on exit.
#
# Layout (everything on one bridge inside the server namespace; tcpdump listens
# on that bridge so it sees every frame):
#
#   sai-client  10.99.0.10 --veth--+
#                                  +-- sai-br0 (netns sai-server)
#   sai-client2 10.99.0.11 --veth--+     10.99.0.53  DNS (answers the lab names)
#                                        10.99.0.21-27 HTTPS :443 "AI services"
#                                        10.99.0.30  Ollama imitation :11434
#                                        10.99.0.40/41 non-AI sites :443 / :80
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=${1:-$HERE/sample.pcap}
VENV=${SAI_SAMPLE_VENV:-/var/tmp/shadowai-sample-venv}
OPENAI_PIN=${SAI_OPENAI_PIN:-openai==3.57.0}
OLLAMA_PIN=${SAI_OLLAMA_PIN:-ollama==0.6.3}
# The key is fake on purpose: it only needs to look like one on the wire.
FAKE_OPENAI_KEY="sk-proj-SAMPLEFAKEKEY0000000000000000000000000000"
FAKE_ANTHROPIC_KEY="sk-ant-api03-SAMPLEFAKEKEY000000000000000000000000"
FAKE_MISTRAL_KEY="SAMPLEFAKEKEYmistral00000000000000"
LAB_SECONDS=180          # hard upper bound on the lab servers' lifetime
NS_SRV=sai-server
NS_C1=sai-client
NS_C2=sai-client2

log() { printf '[make_sample] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (sudo $0)"
[ ! -S /var/run/nscd/socket ] || die "nscd is running; its cache would bypass the lab DNS"

# ---------------------------------------------------------------- installs
wait_for_apt() {
    local i
    for i in $(seq 1 60); do
        # /proc, not pgrep: procps may be missing on a minimal machine.
        if ! cat /proc/[0-9]*/comm 2>/dev/null | grep -qxE 'apt|apt-get|dpkg|unattended-upgr'; then
            return 0
        fi
        log "another apt/dpkg is running; waiting ($i/60)"
        sleep 5
    done
    die "apt stayed busy for 5 minutes"
}

need_apt=()
command -v ip >/dev/null       || need_apt+=(iproute2)
command -v tcpdump >/dev/null  || need_apt+=(tcpdump)
command -v curl >/dev/null     || need_apt+=(curl)
command -v openssl >/dev/null  || need_apt+=(openssl)
command -v getent >/dev/null   || need_apt+=(libc-bin)
command -v python3 >/dev/null  || need_apt+=(python3)
command -v timeout >/dev/null  || need_apt+=(coreutils)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
    log "installing with apt-get: ${need_apt[*]}"
    wait_for_apt
    timeout 300 apt-get update -q
    DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -q "${need_apt[@]}"
fi

if ! "$VENV/bin/python" -c 'import openai, ollama, httpx' 2>/dev/null; then
    log "installing with pip into $VENV: $OPENAI_PIN $OLLAMA_PIN"
    timeout 120 python3 -m venv "$VENV"
    timeout 600 "$VENV/bin/pip" install -q "$OPENAI_PIN" "$OLLAMA_PIN"
fi
CLIENT_PY="$VENV/bin/python"

# ---------------------------------------------------------------- teardown
WORK=$(mktemp -d /tmp/sai-sample.XXXXXX)
SRV_PID=""
DUMP_PID=""

teardown() {
    set +e
    if [ -n "$DUMP_PID" ] && kill -0 "$DUMP_PID" 2>/dev/null; then
        kill -INT "$DUMP_PID"; wait "$DUMP_PID" 2>/dev/null
    fi
    if [ -n "$SRV_PID" ] && kill -0 "$SRV_PID" 2>/dev/null; then
        kill -TERM "$SRV_PID"; wait "$SRV_PID" 2>/dev/null
    fi
    for ns in "$NS_C1" "$NS_C2" "$NS_SRV"; do
        ip netns pids "$ns" 2>/dev/null | while read -r p; do kill -KILL "$p" 2>/dev/null; done
        ip netns del "$ns" 2>/dev/null
        rm -rf "/etc/netns/$ns"
    done
    rmdir /etc/netns 2>/dev/null
    rm -rf "$WORK"
}
teardown_and_exit() { teardown; exit "${1:-0}"; }
trap 'teardown' EXIT
trap 'teardown_and_exit 130' INT TERM

# Remove a lab that an interrupted earlier run may have left.
for ns in "$NS_C1" "$NS_C2" "$NS_SRV"; do
    if ip netns list | grep -qw "$ns"; then
        log "removing stale namespace $ns"
        ip netns pids "$ns" | while read -r p; do kill -KILL "$p" 2>/dev/null || true; done
        ip netns del "$ns"
    fi
done

# ---------------------------------------------------------------- network
log "creating namespaces $NS_SRV $NS_C1 $NS_C2"
for ns in "$NS_SRV" "$NS_C1" "$NS_C2"; do
    ip netns add "$ns"
    # IPv4 only: keeps the capture free of router solicitations and ND chatter.
    # shellcheck disable=SC2016  # expanded by the inner sh
    ip netns exec "$ns" sh -c 'for f in all default; do
        p=/proc/sys/net/ipv6/conf/$f/disable_ipv6; [ ! -e "$p" ] || echo 1 >"$p"; done'
    ip -n "$ns" link set lo up
done
# No multicast snooping: otherwise the bridge joins 224.0.0.106 (IGMP noise).
ip -n "$NS_SRV" link add sai-br0 type bridge mcast_snooping 0
ip -n "$NS_SRV" link set sai-br0 up
for pair in "$NS_C1:10:c1" "$NS_C2:11:c2"; do
    ns=${pair%%:*}; rest=${pair#*:}; host=${rest%%:*}; tag=${rest#*:}
    ip -n "$NS_SRV" link add "veth-$tag" type veth peer name eth0 netns "$ns"
    ip -n "$NS_SRV" link set "veth-$tag" master sai-br0
    ip -n "$NS_SRV" link set "veth-$tag" up
    ip -n "$ns" addr add "10.99.0.$host/24" dev eth0
    ip -n "$ns" link set eth0 up
    # The clients resolve through the lab DNS only (ip netns exec bind-mounts these).
    mkdir -p "/etc/netns/$ns"
    printf 'nameserver 10.99.0.53\noptions timeout:2 attempts:1\n' >"/etc/netns/$ns/resolv.conf"
    printf '127.0.0.1 localhost\n' >"/etc/netns/$ns/hosts"
    printf 'hosts: files dns\n' >"/etc/netns/$ns/nsswitch.conf"
done
for a in 53 21 22 23 24 25 26 27 30 40 41; do
    ip -n "$NS_SRV" addr add "10.99.0.$a/24" dev sai-br0
done

# ---------------------------------------------------------------- lab servers
log "making a self-signed certificate for the lab names"
SANS="DNS:api.openai.com,DNS:api.anthropic.com,DNS:chatgpt.com,DNS:claude.ai,DNS:api.mistral.ai,DNS:chat.deepseek.com,DNS:www.example.com,DNS:github.com"
timeout 30 openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -days 3650 -subj "/CN=shadowai-sensor sample lab" -addext "subjectAltName=$SANS" \
    -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null

cat >"$WORK/labsrv.py" <<'PY'
"""Lab servers: DNS (UDP 53), HTTPS (443) + HTTP (80) sites, an Ollama imitation (11434)."""
import json
import socket
import ssl
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

WORK, DEADLINE = sys.argv[1], time.monotonic() + float(sys.argv[2])
ZONE = {
    "api.openai.com": "10.99.0.21", "api.anthropic.com": "10.99.0.22",
    "chatgpt.com": "10.99.0.23", "claude.ai": "10.99.0.24",
    "api.mistral.ai": "10.99.0.25", "chat.deepseek.com": "10.99.0.26",
    "api.perplexity.ai": "10.99.0.27", "www.example.com": "10.99.0.40",
    "github.com": "10.99.0.41",
}


def dns_server() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("10.99.0.53", 53))
    sock.settimeout(1.0)
    while time.monotonic() < DEADLINE:
        try:
            q, peer = sock.recvfrom(1500)
        except socket.timeout:
            continue
        if len(q) < 17:
            continue
        labels, i = [], 12
        while i < len(q) and q[i] != 0 and len(labels) < 64:
            labels.append(q[i + 1:i + 1 + q[i]].decode("ascii", "replace"))
            i += 1 + q[i]
        end = i + 5                      # root label + QTYPE + QCLASS
        if end > len(q):
            continue
        qtype = struct.unpack("!H", q[i + 1:i + 3])[0]
        name = ".".join(labels).lower()
        addr = ZONE.get(name)
        rcode = 0 if addr else 3         # NXDOMAIN for names outside the lab
        answers = b""
        if addr and qtype == 1:
            answers = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 300, 4) + socket.inet_aton(addr)
        header = q[:2] + struct.pack("!HHHHH", 0x8580 | rcode, 1, 1 if answers else 0, 0, 0)
        sock.sendto(header + q[12:end] + answers, peer)


def body_for(host: str, method: str, path: str) -> tuple[int, str, bytes]:
    now = int(time.time())
    j = "application/json"
    if host == "api.openai.com" and path == "/v1/models":
        return 200, j, json.dumps({"object": "list", "data": [
            {"id": "gpt-4o-mini", "object": "model", "created": 1721172741, "owned_by": "system"},
            {"id": "gpt-4o", "object": "model", "created": 1715367049, "owned_by": "system"}]}).encode()
    if host == "api.openai.com" and path == "/v1/chat/completions":
        return 200, j, json.dumps({
            "id": "chatcmpl-sample0001", "object": "chat.completion", "created": now,
            "model": "gpt-4o-mini", "choices": [{"index": 0, "finish_reason": "stop",
            "message": {"role": "assistant", "content": "Hello from the lab."}}],
            "usage": {"prompt_tokens": 9, "completion_tokens": 5, "total_tokens": 14}}).encode()
    if host == "api.anthropic.com" and path == "/v1/messages":
        return 200, j, json.dumps({
            "id": "msg_sample0001", "type": "message", "role": "assistant",
            "model": "claude-3-5-haiku-latest", "stop_reason": "end_turn",
            "content": [{"type": "text", "text": "Hello from the lab."}],
            "usage": {"input_tokens": 9, "output_tokens": 5}}).encode()
    if host == "api.mistral.ai" and path == "/v1/models":
        return 200, j, json.dumps({"object": "list", "data": [
            {"id": "mistral-small-latest", "object": "model", "owned_by": "mistralai"}]}).encode()
    if host in ZONE and method == "GET" and path == "/":
        return 200, "text/html", f"<!doctype html><title>{host} (lab)</title><p>lab page</p>\n".encode()
    return 404, j, b'{"error":"not found"}'


class Site(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(min(n, 65536))
        host = (self.headers.get("Host") or "").split(":")[0].lower()
        code, ctype, body = body_for(host, self.command, self.path.split("?")[0])
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer


class PlainSite(Site):
    """Port 80: AI web apps redirect to HTTPS like the real ones; others answer."""

    def do_GET(self) -> None:
        host = (self.headers.get("Host") or "").split(":")[0].lower()
        if host == "chatgpt.com":
            self.send_response(301)
            self.send_header("Location", f"https://{host}{self.path}")
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self._answer()

    def log_message(self, fmt: str, *args: object) -> None:
        sys.stderr.write("site %s %s\n" % (self.address_string(), fmt % args))


OLLAMA_MODEL = {
    "name": "llama3.2:1b", "model": "llama3.2:1b", "modified_at": "2025-01-15T10:00:00Z",
    "size": 1321098329, "digest": "baf6a787fdffd633537aa2eb51cfd54cb93ff08e28040095462bb63daf552878",
    "details": {"parent_model": "", "format": "gguf", "family": "llama", "families": ["llama"],
                "parameter_size": "1.2B", "quantization_level": "Q8_0"}}


class Ollama(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def send_response(self, code: int, message: str | None = None) -> None:
        # Ollama (Go net/http) sends no Server header; do the same.
        self.log_request(code)
        self.send_response_only(code, message)
        self.send_header("Date", self.date_time_string())

    def _reply(self, code: int, ctype: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/":
            self._reply(200, "text/plain; charset=utf-8", b"Ollama is running")
        elif self.path == "/api/tags":
            self._reply(200, "application/json; charset=utf-8", json.dumps({"models": [OLLAMA_MODEL]}).encode())
        elif self.path == "/api/version":
            self._reply(200, "application/json; charset=utf-8", b'{"version":"0.6.3"}')
        else:
            self._reply(404, "text/plain; charset=utf-8", b"404 page not found")

    def do_POST(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        req = json.loads(self.rfile.read(min(n, 65536)) or b"{}")
        if self.path == "/api/chat":
            self._reply(200, "application/json; charset=utf-8", json.dumps({
                "model": req.get("model", "llama3.2:1b"), "created_at": "2025-01-15T10:00:01.000000Z",
                "message": {"role": "assistant", "content": "Hello from the lab."},
                "done_reason": "stop", "done": True, "total_duration": 123456789,
                "load_duration": 1234567, "prompt_eval_count": 9, "prompt_eval_duration": 1234567,
                "eval_count": 5, "eval_duration": 12345678}).encode())
        else:
            self._reply(404, "text/plain; charset=utf-8", b"404 page not found")

    def log_message(self, fmt: str, *args: object) -> None:
        sys.stderr.write("ollama %s %s\n" % (self.address_string(), fmt % args))


def serve(srv: ThreadingHTTPServer) -> None:
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()


ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(f"{WORK}/cert.pem", f"{WORK}/key.pem")
https = ThreadingHTTPServer(("0.0.0.0", 443), Site)
https.socket = ctx.wrap_socket(https.socket, server_side=True)
serve(https)
serve(ThreadingHTTPServer(("0.0.0.0", 80), PlainSite))
serve(ThreadingHTTPServer(("10.99.0.30", 11434), Ollama))
threading.Thread(target=dns_server, daemon=True).start()
open(f"{WORK}/ready", "w").close()
while time.monotonic() < DEADLINE:   # bounded lifetime even if nobody stops us
    time.sleep(0.5)
PY

cat >"$WORK/openai_client.py" <<'PY'
import sys
import httpx
import openai
client = openai.OpenAI(api_key=sys.argv[1], base_url="https://api.openai.com/v1",
                       http_client=httpx.Client(verify=False, timeout=10), max_retries=0)
print("openai", openai.__version__, "models:", [m.id for m in client.models.list()])
r = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Say hello."}])
print("openai chat:", r.choices[0].message.content)
PY

cat >"$WORK/ollama_client.py" <<'PY'
import ollama
client = ollama.Client(host="http://10.99.0.30:11434", timeout=10)
print("ollama models:", [m.model for m in client.list().models])
r = client.chat(model="llama3.2:1b", messages=[{"role": "user", "content": "Say hello."}])
print("ollama chat:", r.message.content)
PY

# ---------------------------------------------------------------- capture
log "starting lab servers"
ip netns exec "$NS_SRV" timeout $((LAB_SECONDS + 10)) python3 "$WORK/labsrv.py" "$WORK" "$LAB_SECONDS" \
    2>"$WORK/labsrv.log" &
SRV_PID=$!
for _ in $(seq 1 50); do [ -e "$WORK/ready" ] && break; sleep 0.2; done
[ -e "$WORK/ready" ] || { cat "$WORK/labsrv.log" >&2; die "lab servers did not start"; }

log "starting tcpdump on sai-br0"
ip netns exec "$NS_SRV" timeout "$LAB_SECONDS" tcpdump -i sai-br0 -n -s 0 -U -Z root \
    -w "$WORK/sample.pcap" 2>"$WORK/tcpdump.log" &
DUMP_PID=$!
for _ in $(seq 1 50); do grep -q 'listening on' "$WORK/tcpdump.log" 2>/dev/null && break; sleep 0.2; done
grep -q 'listening on' "$WORK/tcpdump.log" || { cat "$WORK/tcpdump.log" >&2; die "tcpdump did not start"; }
sleep 1

# Client output goes to stderr (the log); pauses keep the timeline readable.
c1() { log "10.99.0.10: $*"; ip netns exec "$NS_C1" timeout 20 "$@" >&2; echo >&2; sleep 0.5; }
c2() { log "10.99.0.11: $*"; ip netns exec "$NS_C2" timeout 20 "$@" >&2; echo >&2; sleep 0.5; }
CURL=(curl -sS -k --max-time 10)

# Client 1 (10.99.0.10): OpenAI API, Anthropic API, ChatGPT web (HTTP -> HTTPS), openai SDK,
# non-AI example.com (HTTPS and plain HTTP), and a DNS-only Perplexity lookup.
c1 "${CURL[@]}" -H "Authorization: Bearer $FAKE_OPENAI_KEY" https://api.openai.com/v1/models
c1 "${CURL[@]}" -X POST https://api.anthropic.com/v1/messages \
    -H "x-api-key: $FAKE_ANTHROPIC_KEY" -H "anthropic-version: 2023-06-01" \
    -H "content-type: application/json" \
    -d '{"model":"claude-3-5-haiku-latest","max_tokens":64,"messages":[{"role":"user","content":"Say hello."}]}'
# Typed without a scheme: plain HTTP first, then the 301 to HTTPS (one DNS lookup).
c1 "${CURL[@]}" -L http://chatgpt.com/
c1 "$CLIENT_PY" "$WORK/openai_client.py" "$FAKE_OPENAI_KEY"
c1 "${CURL[@]}" https://www.example.com/
c1 "${CURL[@]}" http://www.example.com/
c1 getent ahostsv4 api.perplexity.ai

# Client 2 (10.99.0.11): Claude web, Mistral API, DeepSeek chat, a local Ollama
# server (plain HTTP, curl + ollama SDK), and non-AI github.com.
c2 "${CURL[@]}" https://claude.ai/
c2 "${CURL[@]}" -H "Authorization: Bearer $FAKE_MISTRAL_KEY" https://api.mistral.ai/v1/models
c2 "${CURL[@]}" https://chat.deepseek.com/
c2 "${CURL[@]}" http://10.99.0.30:11434/
c2 "$CLIENT_PY" "$WORK/ollama_client.py"
c2 "${CURL[@]}" https://github.com/

sleep 1
kill -INT "$DUMP_PID"; wait "$DUMP_PID" || true; DUMP_PID=""
cat "$WORK/tcpdump.log" >&2
install -m 0644 "$WORK/sample.pcap" "$OUT"
log "wrote $OUT ($(stat -c %s "$OUT") bytes)"
