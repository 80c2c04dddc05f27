"""Sans-IO HTTP/1.x conversation reassembly: TCP payload in, messages out.

:class:`HttpConversation` is fed the TCP payload of one connection, per
direction, with sequence numbers. It puts segments in order (reordering,
retransmitted overlap), splits each direction into messages (heads plus the
first :data:`BODY_CAP` bytes of the decoded body: Content-Length, chunked, or
until close), pairs responses with requests in order (pipelining included)
and returns what completed as events:

* :class:`~sensor.records.HttpRequest` / :class:`~sensor.records.HttpResponse`
  when a head is complete (the same records as ``sensor.decoders.http``);
* :class:`HttpExchange` when a response is complete (or its body reached the
  cap: streams such as SSE are reported early), or at :meth:`flush`.

A gap (a segment that never arrives) abandons the message it falls in; the
direction then waits for a segment that starts a new message. Memory per
conversation is bounded by hard caps (see the constants) and spent budget
ends it (``done``). Credentials in headers are kept apart as :class:`Secret`
values, and the records' ``repr`` shows neither them, the query nor the body.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field

from sensor.decoders import http as http_dec
from sensor.errors import DecodeError
from sensor.records import HttpRequest, HttpResponse

BODY_CAP = 16 * 1024  # decoded body bytes kept per message
FLOW_BUDGET = 256 * 1024  # payload bytes (both directions) followed per connection
MAX_OOO_SEGMENTS = 32  # out-of-order segments held per direction before a gap is declared
MAX_OOO_BYTES = 64 * 1024
MAX_PENDING = 8  # requests awaiting a response; beyond, the oldest is reported alone
MAX_CHUNK_LINE = 1024  # chunk-size line incl. extensions
MAX_TRAILER = 8 * 1024
MAX_HEADERS = 128

# header fields whose values are credentials: kept only as Secret
CREDENTIAL_HEADERS: frozenset[str] = frozenset(
    {"authorization", "proxy-authorization", "cookie", *http_dec.API_KEY_HEADERS})

_HEAD_WINDOW = http_dec.MAX_HEAD_BYTES + 4  # blank lines stripped at once, at most
_CRLF = b"\r\n"
_SEQ_MOD = 1 << 32
_HALF = 1 << 31


class Secret:
    """A credential value: never shown by ``repr``/``str``; read it with :meth:`reveal`."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret(<redacted>)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True, slots=True, repr=False)
class HttpMessage:
    """One request or response: head, all fields, the start of the decoded body."""

    head: HttpRequest | HttpResponse
    headers: tuple[tuple[str, str], ...]  # lower-case names, wire order; credentials redacted
    secrets: tuple[tuple[str, Secret], ...]  # (field name, value) of credential fields
    body: bytes  # first BODY_CAP bytes of the body after chunked decoding
    body_bytes: int  # decoded body bytes seen (may exceed len(body))
    complete: bool  # the body ended as framed (False: cut at the cap, by a gap, or at flush)
    ts_ns: int  # when the head was complete

    def header(self, name: str) -> str | None:
        """First value of a (non-credential) field, by lower-case name."""
        for n, v in self.headers:
            if n == name:
                return v
        return None

    def __repr__(self) -> str:
        h = self.head
        if isinstance(h, HttpRequest):
            start = f"{h.method} {h.target.partition('?')[0][:64]}"
        else:
            start = f"{h.status}"
        return (f"HttpMessage({start}, headers={len(self.headers)}, "
                f"secrets={len(self.secrets)}, body_bytes={self.body_bytes}, "
                f"complete={self.complete})")


@dataclass(frozen=True, slots=True, repr=False)
class HttpExchange:
    """A request and its response (None: not seen, e.g. the capture ended first)."""

    request: HttpMessage
    response: HttpMessage | None

    def __repr__(self) -> str:
        return f"HttpExchange({self.request!r}, {self.response!r})"


HttpEvent = HttpRequest | HttpResponse | HttpExchange


@dataclass(slots=True)
class ConversationStats:
    bytes_in: int = 0
    gaps: int = 0  # messages abandoned because bytes were missing
    errors: int = 0  # heads or chunk framing that did not decode
    retransmitted_bytes: int = 0
    body_bytes_dropped: int = 0  # body bytes beyond BODY_CAP
    unpaired_responses: int = 0
    pending_overflow: int = 0


# direction states
_HEAD, _LEN, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_CRLF, _TRAILER, _CLOSE, _DEAD = range(8)
_COUNTED = (_LEN, _CHUNK_DATA)  # body states reading ``remaining`` bytes

_CHUNK_SIZE_RE = re.compile(rb"[ \t]*([0-9A-Fa-f]{1,15})[ \t]*(?:;[^\r\n]*)?\r?\n")


@dataclass(slots=True)
class _Partial:
    head: HttpRequest | HttpResponse
    headers: tuple[tuple[str, str], ...]
    secrets: tuple[tuple[str, Secret], ...]
    ts_ns: int
    body: bytearray = field(default_factory=bytearray)
    body_bytes: int = 0
    reported: bool = False  # already returned (cut at the cap); later bytes only counted

    def message(self, complete: bool) -> HttpMessage:
        return HttpMessage(self.head, self.headers, self.secrets, bytes(self.body),
                           self.body_bytes, complete, self.ts_ns)


@dataclass(slots=True)
class _Pending:
    """A request whose response has not been paired yet."""

    partial: _Partial
    done: HttpMessage | None = None  # set when the request body ended


@dataclass(slots=True)
class _Direction:
    from_client: bool
    synced: bool = False
    next_seq: int = 0
    buf: bytearray = field(default_factory=bytearray)
    ooo: dict[int, bytes] = field(default_factory=dict)
    ooo_bytes: int = 0
    state: int = _HEAD
    remaining: int = 0  # body or chunk bytes still to read
    cur: _Partial | None = None
    cur_pending: _Pending | None = None  # for a request: its queue entry


def _looks_like_start(from_client: bool, data: bytes) -> bool:
    """The segment may start a message (a short one: a prefix of a start)."""
    if from_client:
        if len(data) < 4:
            return any(p.startswith(data) for p in _METHOD_PREFIXES)
        return data[:4] in _METHOD_PREFIXES and http_dec.looks_like_http_request(data[:34])
    return http_dec.looks_like_http_response(data[:7])


_METHOD_PREFIXES = frozenset(http_dec.HTTP_METHOD_PREFIXES)


# (fields with credentials redacted, the credentials, Transfer-Encoding values,
# the first Content-Length value)
_Fields = tuple[tuple[tuple[str, str], ...], tuple[tuple[str, Secret], ...], list[str], str | None]


def _split_fields(fields: list[tuple[str, str]]) -> _Fields:
    """One pass over the fields: what the message keeps and what framing needs."""
    plain: list[tuple[str, str]] = []
    secrets: list[tuple[str, Secret]] = []
    te: list[str] = []
    cl: str | None = None
    for name, value in fields:
        if name in CREDENTIAL_HEADERS:
            secrets.append((name, Secret(value)))
            plain.append((name, "<redacted>"))
        else:
            plain.append((name, value))
            if name == "transfer-encoding":
                te.append(value)
            elif name == "content-length" and cl is None:
                cl = value
    return tuple(plain), tuple(secrets), te, cl


def _last_coding(te: list[str]) -> str | None:
    """The last transfer coding named (lower-case), or None without Transfer-Encoding
    (``te``: the Transfer-Encoding values in wire order)."""
    if not te:
        return None
    # "identity" is a no-op (dropped from the registry by RFC 7230): "chunked, identity" is
    # chunked, as Zeek and tshark read it
    codings = [c for c in (c.strip().lower() for c in ",".join(te).split(","))
               if c and c != "identity"]
    return codings[-1] if codings else ""


def _content_length(v: str | None) -> int | None:
    """The first Content-Length (``v``), leading zeros allowed (as Zeek and tshark read it)."""
    if v is None:
        return None
    t = v.strip().lstrip("0") or ("0" if v.strip() else "")
    if t.isascii() and t.isdigit() and len(t) <= 18:
        return int(t)
    return None


class HttpConversation:
    """One TCP connection's HTTP/1.x messages. Feed payload, collect events."""

    def __init__(self, budget: int = FLOW_BUDGET) -> None:
        self.budget = budget
        self.stats = ConversationStats()
        self.done = False  # budget spent or the protocol switched: stop feeding
        self._dirs = (_Direction(True), _Direction(False))
        self._pending: deque[_Pending] = deque()
        self._events: list[HttpEvent] = []
        self._ts = 0

    # -- input ---------------------------------------------------------------

    def feed(self, from_client: bool, seq: int, data: bytes, ts_ns: int) -> list[HttpEvent]:
        """Add one segment's payload (``seq``: sequence number of its first byte)."""
        if self.done or not data:
            return []
        self._ts = ts_ns
        self.stats.bytes_in += len(data)
        d = self._dirs[0 if from_client else 1]
        seq &= 0xFFFFFFFF
        if not d.synced:
            if not _looks_like_start(from_client, data):
                return self._take()
            d.synced, d.next_seq, d.state = True, seq, _HEAD
            d.buf.clear()
        self._segment(d, seq, data)
        if self.stats.bytes_in >= self.budget:
            self.done = True
            self._flush_all()
        return self._take()

    def flush(self) -> list[HttpEvent]:
        """The connection ended (or is given up): report what is held."""
        self._flush_all()
        self.done = True
        return self._take()

    # -- ordering ------------------------------------------------------------

    def _segment(self, d: _Direction, seq: int, data: bytes) -> None:
        delta = (seq - d.next_seq) % _SEQ_MOD
        if delta >= _HALF:  # starts before next_seq: keep only the new tail
            back = _SEQ_MOD - delta
            self.stats.retransmitted_bytes += min(back, len(data))
            if back >= len(data):
                return
            data = data[back:]
            delta = 0
        if delta > 0:
            if seq not in d.ooo or len(d.ooo[seq]) < len(data):
                d.ooo_bytes += len(data) - len(d.ooo.get(seq, b""))
                d.ooo[seq] = data
            if len(d.ooo) > MAX_OOO_SEGMENTS or d.ooo_bytes > MAX_OOO_BYTES:
                self._gap(d)
            return
        self._consume(d, data)
        if d.ooo:
            self._drain_ooo(d)

    def _drain_ooo(self, d: _Direction) -> None:
        progressed = True
        while d.ooo and progressed and d.synced:
            progressed = False
            for s in list(d.ooo):
                delta = (s - d.next_seq) % _SEQ_MOD
                seg = d.ooo[s]
                if delta < _HALF and delta > 0:
                    continue
                del d.ooo[s]
                d.ooo_bytes -= len(seg)
                back = 0 if delta == 0 else _SEQ_MOD - delta
                if back < len(seg):
                    self._consume(d, seg[back:])
                    progressed = True
                    break

    def _gap(self, d: _Direction) -> None:
        """Bytes are missing for good: abandon this direction's message and resync."""
        self.stats.gaps += 1
        if d.cur is not None and d.cur.head is not None:
            self._end_message(d, complete=False)
        d.ooo.clear()
        d.ooo_bytes = 0
        d.buf.clear()
        d.synced = False
        d.state = _HEAD
        d.cur = None
        d.cur_pending = None
        if not d.from_client:
            # pairing is unreliable after a lost response: report requests alone
            while self._pending:
                self._report_request_alone(self._pending.popleft())

    # -- message parsing -----------------------------------------------------

    def _consume(self, d: _Direction, data: bytes) -> None:
        d.next_seq = (d.next_seq + len(data)) % _SEQ_MOD
        state = d.state
        if state == _DEAD:
            return
        if not d.buf and (state == _CLOSE or (state in _COUNTED and len(data) <= d.remaining)):
            # the whole segment is body: skip the buffer (what the loop below would do)
            self._body_take(d, data, len(data))
            return
        d.buf += data
        # every pass consumes bytes or returns: bounded by len(buf)
        while d.buf and d.state != _DEAD:
            if d.state == _HEAD:
                if not self._head(d):
                    return
            elif d.state in (_LEN, _CLOSE):
                self._body_bytes(d, d.remaining if d.state == _LEN else len(d.buf))
            elif d.state == _CHUNK_SIZE:
                if not self._chunk_size(d):
                    return
            elif d.state == _CHUNK_DATA:
                self._body_bytes(d, d.remaining)
            elif d.state == _CHUNK_CRLF:
                if not self._chunk_crlf(d):
                    return
            elif d.state == _TRAILER and not self._trailer(d):
                return

    def _head(self, d: _Direction) -> bool:
        dbuf = d.buf
        if d.from_client and dbuf[0] in _CRLF:
            # tolerate blank lines between messages (RFC 9112 2.2)
            window = bytes(dbuf[:_HEAD_WINDOW])
            del dbuf[: len(window) - len(window.lstrip(b"\r\n"))]
            return bool(dbuf)
        end = http_dec.head_end(dbuf)  # bounded finds: no copy of the buffer
        if end < 0:
            if len(dbuf) >= http_dec.MAX_HEAD_BYTES:
                self._bad(d)
            return False
        if end > http_dec.MAX_HEAD_BYTES:  # the head decoders reject it
            self._bad(d)
            return False
        raw = bytes(dbuf[:end])
        try:
            head: HttpRequest | HttpResponse
            head, fields = (http_dec.parse_request_fields(raw, MAX_HEADERS) if d.from_client
                            else http_dec.parse_response_fields(raw, MAX_HEADERS))
        except DecodeError:
            self._bad(d)
            return False
        del dbuf[:end]
        headers, secrets, te, cl = _split_fields(fields)
        d.cur = _Partial(head, headers, secrets, self._ts)
        self._events.append(head)
        if isinstance(head, HttpRequest):
            self._request_framing(d, te, cl)
        else:
            self._response_framing(d, head, headers, te, cl)
        return True

    def _bad(self, d: _Direction) -> None:
        self.stats.errors += 1
        d.buf.clear()
        d.synced = False
        d.state = _HEAD
        d.cur = None
        d.cur_pending = None

    def _request_framing(self, d: _Direction, te: list[str], cl: str | None) -> None:
        assert d.cur is not None
        p = _Pending(d.cur)
        d.cur_pending = p
        self._pending.append(p)
        if len(self._pending) > MAX_PENDING:
            self.stats.pending_overflow += 1
            self._report_request_alone(self._pending.popleft())
        coding = _last_coding(te)
        if coding is not None:
            if coding == "chunked":
                d.state = _CHUNK_SIZE
            else:  # a request body without a length cannot be framed (RFC 9112 6.3)
                self._end_message(d, complete=False)
                d.state = _DEAD
            return
        self._start_length(d, _content_length(cl) or 0)

    def _response_framing(self, d: _Direction, head: HttpResponse,
                          headers: tuple[tuple[str, str], ...], te: list[str],
                          cl: str | None) -> None:
        req = self._pending[0].partial.head if self._pending else None
        method = req.method if isinstance(req, HttpRequest) else ""
        status = head.status
        if 100 <= status < 200:
            d.cur = None  # interim response: not the answer
            if status == 101:  # protocol switch (WebSocket...): not HTTP any more
                self._switch_protocols(d, head, headers)
            else:
                d.state = _HEAD
            return
        if method == "CONNECT" and 200 <= status < 300:
            self._switch_protocols(d, head, headers)
            return
        if method == "HEAD" or status in (204, 304):
            self._start_length(d, 0)
            return
        coding = _last_coding(te)
        if coding == "chunked":
            d.state = _CHUNK_SIZE
        elif coding is None and (n := _content_length(cl)) is not None:
            self._start_length(d, n)
        else:
            d.state = _CLOSE  # read until the connection closes

    def _switch_protocols(self, d: _Direction, head: HttpResponse,
                          headers: tuple[tuple[str, str], ...]) -> None:
        d.cur = _Partial(head, headers, (), self._ts)
        self._end_message(d, complete=True)
        for x in self._dirs:
            x.state = _DEAD
            x.buf.clear()
        self.done = True
        self._flush_all()

    def _start_length(self, d: _Direction, n: int) -> None:
        if n <= 0:
            self._end_message(d, complete=True)
        else:
            d.state, d.remaining = _LEN, n

    def _body_bytes(self, d: _Direction, want: int) -> None:
        buf = d.buf
        take = min(want, len(buf))
        self._body_take(d, buf, take)
        if take == len(buf):
            buf.clear()
        else:
            del buf[:take]

    def _body_take(self, d: _Direction, data: bytes | bytearray, take: int) -> None:
        """The first ``take`` bytes of ``data`` are body of the current message."""
        cur = d.cur
        if cur is not None:
            room = BODY_CAP - len(cur.body)
            if take <= room:
                cur.body += data if take == len(data) else data[:take]
            elif room > 0:
                cur.body += data[:room]
                self.stats.body_bytes_dropped += take - room
            else:
                self.stats.body_bytes_dropped += take
            cur.body_bytes += take
            if len(cur.body) >= BODY_CAP and not cur.reported:
                self._report_early(d)
        if d.state == _CLOSE:
            return
        d.remaining -= take
        if d.remaining == 0:
            if d.state == _LEN:
                self._end_message(d, complete=True)
            else:
                d.state = _CHUNK_CRLF

    def _chunk_size(self, d: _Direction) -> bool:
        line_end = d.buf.find(b"\n", 0, MAX_CHUNK_LINE)
        if line_end < 0:
            if len(d.buf) >= MAX_CHUNK_LINE:
                self._bad_body(d)
            return False
        m = _CHUNK_SIZE_RE.fullmatch(bytes(d.buf[: line_end + 1]))
        if m is None:
            self._bad_body(d)
            return False
        del d.buf[: line_end + 1]
        n = int(m[1], 16)
        if n == 0:
            d.state, d.remaining = _TRAILER, 0
        else:
            d.state, d.remaining = _CHUNK_DATA, n
        return True

    def _chunk_crlf(self, d: _Direction) -> bool:
        if d.buf[:1] == b"\n":
            del d.buf[:1]
        elif d.buf[:2] == b"\r\n":
            del d.buf[:2]
        elif len(d.buf) < 2 and d.buf[:1] == b"\r":
            return False
        else:
            self._bad_body(d)
            return False
        d.state = _CHUNK_SIZE
        return True

    def _trailer(self, d: _Direction) -> bool:
        # trailer fields end with an empty line; usually it is just CRLF
        for term in (b"\r\n", b"\n"):
            if d.buf.startswith(term):
                del d.buf[: len(term)]
                self._end_message(d, complete=True)
                return True
        end = http_dec.head_end(b"x\r\n" + bytes(d.buf[:MAX_TRAILER]))
        if end < 0:
            if len(d.buf) >= MAX_TRAILER:
                self._bad_body(d)
            return False
        del d.buf[: end - 3]
        self._end_message(d, complete=True)
        return True

    def _bad_body(self, d: _Direction) -> None:
        if d.cur is not None:
            self._end_message(d, complete=False)
        self._bad(d)

    # -- message completion and pairing ----------------------------------------

    def _report_early(self, d: _Direction) -> None:
        """The body reached the cap: report now (long streams), count the rest only."""
        cur = d.cur
        assert cur is not None
        if isinstance(cur.head, HttpResponse):
            self._pair(cur.message(complete=False))
            cur.reported = True

    def _end_message(self, d: _Direction, complete: bool) -> None:
        cur = d.cur
        d.cur = None
        d.state = _HEAD
        d.remaining = 0
        if cur is None:
            return
        if isinstance(cur.head, HttpRequest):
            p = d.cur_pending
            d.cur_pending = None
            if p is not None:
                p.done = cur.message(complete)
        elif not cur.reported:
            self._pair(cur.message(complete))

    def _pair(self, resp: HttpMessage) -> None:
        if not self._pending:
            self.stats.unpaired_responses += 1
            return
        p = self._pending.popleft()
        req = p.done if p.done is not None else p.partial.message(complete=False)
        self._events.append(HttpExchange(req, resp))

    def _report_request_alone(self, p: _Pending) -> None:
        req = p.done if p.done is not None else p.partial.message(complete=False)
        self._events.append(HttpExchange(req, None))
        for d in self._dirs:
            if d.cur_pending is p:
                d.cur_pending = None

    def _flush_all(self) -> None:
        srv = self._dirs[1]
        if srv.cur is not None and not srv.cur.reported:
            # a response still being read (until close, or cut by the capture's end)
            self._pair(srv.cur.message(complete=srv.state == _CLOSE))
            srv.cur = None
        cli = self._dirs[0]
        if cli.cur is not None and cli.cur_pending is not None:
            cli.cur_pending.done = cli.cur.message(complete=False)
            cli.cur = None
            cli.cur_pending = None
        while self._pending:
            self._report_request_alone(self._pending.popleft())
        for d in self._dirs:
            d.ooo.clear()
            d.ooo_bytes = 0
            d.buf.clear()

    def _take(self) -> list[HttpEvent]:
        ev, self._events = self._events, []
        return ev


# -- body helpers for detectors ------------------------------------------------


def sse_events(body: bytes, limit: int = 256) -> list[tuple[str, str]]:
    """(event type, data) of each complete event in a text/event-stream body.

    WHATWG HTML "server-sent events" parsing: ``data:`` lines are joined with
    LF, the type defaults to "message", lines starting with ":" are comments.
    A last event without its terminating blank line is kept (cut streams).
    """
    out: list[tuple[str, str]] = []
    text = body.decode("utf-8", "replace").replace("\r\n", "\n").replace("\r", "\n")
    event, has_data = "", False
    data: list[str] = []
    for line in text.split("\n"):
        if not line:
            if has_data:
                out.append((event or "message", "\n".join(data)))
                if len(out) >= limit:
                    return out
            event, has_data = "", False
            data = []
            continue
        if line.startswith(":"):
            continue
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            data.append(value)
            has_data = True
        elif name == "event":
            event = value
    if has_data:
        out.append((event or "message", "\n".join(data)))
    return out
