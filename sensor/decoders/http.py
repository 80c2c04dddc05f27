"""Sans-IO HTTP/1.x request and response *head* decoder.

Only the head (start line + header fields) is read; bodies are not. Lines may
end in CRLF or a bare LF. The head must end (empty line) within
:data:`MAX_HEAD_BYTES`, else :class:`DecodeError`; a valid but unfinished
head raises :class:`NeedMoreData`. Bytes are decoded as ISO-8859-1, so any
octet maps to one character and decoding cannot fail.

Header handling: names are case-insensitive; for repeated fields the first
wins; obsolete line folding (a line starting with SP/HT) continues the
previous value; lines without a colon are ignored, as Zeek and most servers
do. Credentials are never kept: for Authorization/Proxy-Authorization only the
scheme word is returned, and only when it cannot be the credential itself.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from sensor.errors import DecodeError, NeedMoreData
from sensor.records import HttpRequest, HttpResponse, slot_builder

MAX_HEAD_BYTES = 16 * 1024

# 4-byte request-line prefixes for the pipeline's vectorised pre-filter.
HTTP_METHOD_PREFIXES: tuple[bytes, ...] = (
    b"GET ",
    b"POST",
    b"PUT ",
    b"HEAD",
    b"DELE",  # DELETE
    b"OPTI",  # OPTIONS
    b"PATC",  # PATCH
    b"CONN",  # CONNECT
    b"RPC_",  # RPC_IN_DATA / RPC_OUT_DATA (RPC over HTTP, Outlook Anywhere)
    b"TRAC",  # TRACE
    b"PROP",  # PROPFIND / PROPPATCH (WebDAV)
    b"MKCO",  # MKCOL
    b"COPY",
    b"MOVE",
    b"LOCK",
    b"UNLO",  # UNLOCK
    b"SEAR",  # SEARCH
    b"REPO",  # REPORT
    b"QUER",  # QUERY (RFC 9110 extension method, draft-ietf-httpbis-safe-method)
)
HTTP_RESPONSE_PREFIX = b"HTTP"

# Header names that carry an API key for AI/API gateways, by vendor docs:
# x-api-key (Anthropic and many others), api-key (Azure OpenAI), x-goog-api-key
# (Gemini), ocp-apim-subscription-key (Azure API Management / AI services),
# x-portkey-api-key (Portkey), x-litellm-api-key (LiteLLM proxy),
# helicone-auth (Helicone), apikey (Kong/Supabase-style gateways).
API_KEY_HEADERS: frozenset[str] = frozenset(
    {
        "x-api-key",
        "api-key",
        "apikey",
        "x-goog-api-key",
        "ocp-apim-subscription-key",
        "x-portkey-api-key",
        "x-litellm-api-key",
        "helicone-auth",
    }
)

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VERSION = re.compile(r"HTTP/1\.[0-9]")
_REQ_PREFIX = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,32}(?: (?:[^\s]|$)|$)")
# A scheme word is a short token; anything longer (or alone, below) may be a secret.
_AUTH_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9._~+/-]{0,31}")
_KNOWN_SCHEMES = frozenset(
    {"basic", "bearer", "digest", "negotiate", "ntlm", "hoba", "mutual", "vapid", "scram-sha-256"}
)
_FIELDS = (
    "host",
    "user-agent",
    "content-type",
    "content-length",
    "authorization",
    "proxy-authorization",
    "accept",
    "mcp-session-id",
    "mcp-protocol-version",
    "last-event-id",
    "server",
)
_WANTED = frozenset(_FIELDS)
# the records are built without the frozen dataclass __init__ (see slot_builder)
_http_request: Callable[..., HttpRequest] = slot_builder(HttpRequest)
_http_response: Callable[..., HttpResponse] = slot_builder(HttpResponse)


def looks_like_http_request(prefix: bytes) -> bool:
    """True when ``prefix`` starts like a request line: a method token, then SP."""
    if not prefix:
        return False
    head = prefix[:34]
    sp = head.find(b" ")
    if sp < 0:
        # No space yet: plausible only while it is all token bytes.
        return len(head) < 33 and _TOKEN.fullmatch(head) is not None
    return _REQ_PREFIX.match(head) is not None


def looks_like_http_response(prefix: bytes) -> bool:
    """True when ``prefix`` starts with ``HTTP/1.`` (or a prefix of it)."""
    if not prefix:
        return False
    want = b"HTTP/1."
    n = min(len(prefix), len(want))
    return prefix[:n] == want[:n]


def head_end(data: bytes | bytearray) -> int:
    """Offset just past the empty line ending the head at the start of ``data``, or -1.

    Only the first ``MAX_HEAD_BYTES + 4`` bytes are searched (bounded finds: no copy).
    """
    window = MAX_HEAD_BYTES + 4
    a = data.find(b"\n\r\n", 0, window)
    b = data.find(b"\n\n", 0, window if a < 0 else a + 2)  # an LF LF before the LF CR LF
    if b >= 0:
        return b + 2
    return a + 3 if a >= 0 else -1


def header_fields(lines: list[str], limit: int = 128) -> list[tuple[str, str]]:
    """All fields as (lower-case name, value) in wire order, obs-fold joined, at most ``limit``."""
    out: list[tuple[str, str]] = []
    for line in lines:
        if not line:
            continue
        if line[0] in " \t":  # obs-fold continuation (RFC 9112 5.2)
            if out:
                name, value = out[-1]
                out[-1] = (name, (value + " " + line.strip(" \t")).strip(" "))
            continue
        name, colon, value = line.partition(":")
        if not colon:
            continue
        if len(out) >= limit:
            break
        out.append((name.strip(" \t").lower(), value.strip(" \t")))
    return out


def split_head(data: bytes, what: str = "message") -> tuple[str, list[str], int]:
    """Start line, field lines and head length of the head at the start of ``data``.

    Raises NeedMoreData while the head is unfinished and DecodeError when it
    exceeds :data:`MAX_HEAD_BYTES`.
    """
    end = head_end(data)
    if end < 0:
        if len(data) >= MAX_HEAD_BYTES:
            raise DecodeError(f"HTTP {what} head exceeds {MAX_HEAD_BYTES} bytes")
        raise NeedMoreData(f"HTTP {what} head incomplete")
    if end > MAX_HEAD_BYTES:
        raise DecodeError(f"HTTP {what} head exceeds {MAX_HEAD_BYTES} bytes")
    text = data[:end].decode("latin-1")
    # every CRLF ends a line (one CR stripped per line, a lone CR stays): same as
    # splitting on LF and dropping one trailing CR, in one C pass
    lines = (text.replace("\r\n", "\n") if "\r" in text else text).split("\n")
    return lines[0], lines[1:], end


# (wanted fields, all names, all fields): one pass over the field lines
_Scan = tuple[dict[str, str], list[str], list[tuple[str, str]]]


def _scan(lines: list[str], limit: int | None) -> _Scan:
    """First value of each wanted field, all field names (lower-case, wire order) and,
    unless ``limit`` is None, :func:`header_fields` of the same lines, in one pass.

    Folding differs on purpose between the two: an obs-fold line continues a wanted
    field only right after its first occurrence, while ``header_fields`` continues
    the last field kept (a line without a colon in between is skipped).
    """
    found: dict[str, str] = {}
    names: list[str] = []
    fields: list[tuple[str, str]] = []
    keep = limit is not None  # still collecting fields (stops at the limit)
    cap = limit if limit is not None else 0
    fold_into: str | None = None  # field that an obs-fold line would continue
    wanted = _WANTED
    for line in lines:
        if not line:
            continue
        if line[0] in " \t":  # obs-fold continuation (RFC 9112 5.2)
            if fold_into is not None or (keep and fields):
                cont = line.strip(" \t")
                if fold_into is not None:
                    found[fold_into] = (found[fold_into] + " " + cont).strip(" ")
                if keep and fields:
                    fname, fvalue = fields[-1]
                    fields[-1] = (fname, (fvalue + " " + cont).strip(" "))
            continue
        name, colon, value = line.partition(":")
        fold_into = None
        if not colon:
            continue
        name = name.strip(" \t").lower()
        names.append(name)
        value = value.strip(" \t")
        if keep:
            if len(fields) >= cap:
                keep = False
            else:
                fields.append((name, value))
        if name in wanted and name not in found:
            found[name] = value
            fold_into = name
    return found, names, fields


def _content_length(value: str | None) -> int | None:
    if value is None:
        return None
    v = value.strip()
    if not v.isascii() or not v.isdigit() or len(v) > 18:
        return None
    return int(v)


def _split_host(value: str) -> tuple[str, int | None]:
    v = value.strip().lower()
    if v.startswith("["):  # IPv6 literal, RFC 3986 3.2.2
        close = v.find("]")
        if close > 0:
            host, rest = v[1:close], v[close + 1 :]
            if rest.startswith(":") and _is_port(rest[1:]):
                return host, int(rest[1:])
            return host, None
        return v, None
    host, colon, port = v.rpartition(":")
    if colon and ":" not in host and _is_port(port):
        return host, int(port)
    return v, None


def _is_port(s: str) -> bool:
    return s.isascii() and s.isdigit() and len(s) <= 5 and int(s) <= 65535


def _auth_scheme(value: str | None) -> str | None:
    if value is None:
        return None
    words = value.split(None, 1)
    if not words or _AUTH_SCHEME.fullmatch(words[0]) is None:
        return None
    scheme = words[0]
    # A lone word is only a scheme if it is a known one: otherwise it may be a raw key.
    if len(words) == 1 and scheme.lower() not in _KNOWN_SCHEMES:
        return None
    return scheme


def parse_request_head(data: bytes) -> HttpRequest:
    """Decode the request head at the start of ``data`` (client->server stream)."""
    return _parse_request(data, None)[0]


def parse_request_fields(data: bytes, limit: int = 128
                         ) -> tuple[HttpRequest, list[tuple[str, str]]]:
    """:func:`parse_request_head` and :func:`header_fields` of the same head, in one pass."""
    return _parse_request(data, limit)


def _parse_request(data: bytes, limit: int | None
                   ) -> tuple[HttpRequest, list[tuple[str, str]]]:
    if not looks_like_http_request(data[:34]):
        raise DecodeError("not an HTTP request line")
    nl = data.find(b"\n")
    if nl > 0:
        first = data[:nl].rstrip(b"\r").decode("latin-1").split(" ")
        if len(first) == 2 and first[1] and _VERSION.fullmatch(first[1]) is None:
            # No version: HTTP/0.9 ("GET /"), as Zeek logs such lines (also "GET /HTTP/1.1").
            # Header lines may still follow (Suricata's http-not09 case): read them, a
            # Host or User-Agent there is evidence like any other.
            rest = data[nl + 1:]
            if not rest or rest[:1] == b"\n" or rest[:2] == b"\r\n":
                blank = 0 if not rest else (1 if rest[:1] == b"\n" else 2)
                return _request(first[0], first[1], "HTTP/0.9", {}, (), nl + 1 + blank), []
            _start, lines, end = split_head(data, "request")
            found, names, fields = _scan(lines, limit)
            return _request(first[0], first[1], "HTTP/0.9", found, names, end), fields
    start, lines, end = split_head(data, "request")
    parts = start.split(" ")
    if len(parts) == 2 and _VERSION.fullmatch(parts[1]) is not None:
        parts.insert(1, "")  # "GET HTTP/1.1": no target (Zeek logs it empty); keep the head
    if len(parts) < 3:
        raise DecodeError("request line needs method, target and version")
    method, version = parts[0], parts[-1]
    target = " ".join(p for p in parts[1:-1] if p)  # tolerate extra SP and SP in targets
    if (not target and parts[1:-1] != [""]) or _VERSION.fullmatch(version) is None:
        # no query string in the message: it may hold a key (?key=...)
        raise DecodeError(f"not an HTTP/1.x request line: {start.partition('?')[0][:64]!r}")
    found, names, fields = _scan(lines, limit)
    return _request(method, target, version, found, names, end), fields


def _request(method: str, target: str, version: str, found: dict[str, str],
             names: tuple[str, ...] | list[str], end: int) -> HttpRequest:
    host_value = found.get("host")
    host, port = _split_host(host_value) if host_value is not None else (None, None)
    auth = _auth_scheme(found.get("authorization"))
    if auth is None:
        auth = _auth_scheme(found.get("proxy-authorization"))
    api_keys = (() if API_KEY_HEADERS.isdisjoint(names)
                else tuple(dict.fromkeys(n for n in names if n in API_KEY_HEADERS)))
    return _http_request(
        method=method,
        target=target,
        version=version,
        host=host,
        host_port=port,
        user_agent=found.get("user-agent"),
        content_type=found.get("content-type"),
        content_length=_content_length(found.get("content-length")),
        authorization_scheme=auth,
        api_key_headers=api_keys,
        accept=found.get("accept"),
        mcp_session_id=found.get("mcp-session-id"),
        mcp_protocol_version=found.get("mcp-protocol-version"),
        last_event_id=found.get("last-event-id"),
        header_bytes=end,
    )


def parse_response_head(data: bytes) -> HttpResponse:
    """Decode the response head at the start of ``data`` (server->client stream)."""
    return _parse_response(data, None)[0]


def parse_response_fields(data: bytes, limit: int = 128
                          ) -> tuple[HttpResponse, list[tuple[str, str]]]:
    """:func:`parse_response_head` and :func:`header_fields` of the same head, in one pass."""
    return _parse_response(data, limit)


def _parse_response(data: bytes, limit: int | None
                    ) -> tuple[HttpResponse, list[tuple[str, str]]]:
    if not data.startswith(b"HTTP/1.") and not (len(data) < 7 and looks_like_http_response(data)):
        raise DecodeError("not an HTTP/1.x status line")
    start, lines, end = split_head(data, "response")
    version, _, rest = start.partition(" ")
    code, _, reason = rest.lstrip(" ").partition(" ")
    if _VERSION.fullmatch(version) is None:
        raise DecodeError(f"bad HTTP version in status line: {start[:64]!r}")
    if len(code) != 3 or not code.isascii() or not code.isdigit() or code[0] == "0":
        raise DecodeError(f"bad status code in status line: {start[:64]!r}")
    found, _names, fields = _scan(lines, limit)
    return _http_response(
        version=version,
        status=int(code),
        reason=reason.strip(),
        server=found.get("server"),
        content_type=found.get("content-type"),
        content_length=_content_length(found.get("content-length")),
        mcp_session_id=found.get("mcp-session-id"),
        header_bytes=end,
    ), fields
