"""Self-hosted LLM servers, found from HTTP exchanges (never from port numbers).

Server fingerprints are data: ``signatures/selfhosted/*.yaml``, one product
per file (format in docs/selfhosted.md). A rule matches one exchange (request
method/path, request body, response status/headers/body); a server (IP, port)
is reported as a product once one *strong* rule or two distinct *weak* rules
of that product matched it. When several products match, the highest
``priority`` names the server (a generic OpenAI-compatible server is the
lowest, and only counts from an internal address).

Finding type ``self_hosted_llm``, type-specific key ``self_hosted_llm``:
product, products, version, models, pulled_models, authenticated /
unauthenticated request counts, clients. Severity ``high`` when the server
answered (2xx) a request that carried no credentials, else ``medium``.
"""

from __future__ import annotations

import gzip
import json
import re
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sensor.datafiles import read_yaml
from sensor.decoders.http_stream import HttpExchange, HttpMessage, sse_events
from sensor.detect.servers import MAX_VALUES, ServerState, ServerTable, exchange_request
from sensor.errors import InputError
from sensor.findings import ServerFinding, count_bounded, envelope
from sensor.policy import Policy
from sensor.records import HttpRequest, HttpResponse, Observation

TYPE = "self_hosted_llm"
MAX_DECODED = 64 * 1024  # bytes a compressed body may inflate to
CREDENTIAL_QUERY_KEYS = frozenset({"key", "api_key", "apikey", "api-key", "access_token", "token"})
INFLATED_ENCODINGS = ("gzip", "x-gzip", "deflate")  # Content-Encodings body_bytes inflates
_STRENGTHS = ("strong", "weak")
_REQ_CACHE = 4096  # (method, path) -> matching rules, memoised per detector

# -- helpers shared by the HTTP detectors -----------------------------------------


# RFC 1918, RFC 4193 ULA, loopback and link-local: the default policy's internal networks
# (the pipeline passes the configured policy's check instead)
is_internal = Policy().is_internal


def request_path(target: str) -> str:
    """Path of an origin- or absolute-form target, without query or fragment."""
    t = target
    if "://" in t[:12]:
        rest = t.partition("://")[2]
        slash = rest.find("/")
        t = rest[slash:] if slash >= 0 else "/"
    return t.partition("?")[0].partition("#")[0] or "/"


def query_params(target: str) -> list[tuple[str, str]]:
    q = target.partition("?")[2].partition("#")[0]
    out: list[tuple[str, str]] = []
    for part in q.split("&")[:64]:
        k, _, v = part.partition("=")
        if k:
            out.append((k.lower(), v))
    return out


def body_bytes(msg: HttpMessage) -> bytes:
    """The body as kept, inflated when Content-Encoding is gzip/deflate (bounded)."""
    enc = (msg.header("content-encoding") or "").strip().lower()
    data = msg.body
    if enc in INFLATED_ENCODINGS and data:
        try:
            wbits = 47 if enc != "deflate" else 15  # 32+15: gzip or zlib header
            d = zlib.decompressobj(wbits)
            out = d.decompress(data, MAX_DECODED)
            if enc == "deflate" and not out:
                out = zlib.decompressobj(-15).decompress(data, MAX_DECODED)
            return out
        except (zlib.error, gzip.BadGzipFile):
            return b""
    return data


def body_text(msg: HttpMessage) -> str:
    return body_bytes(msg).decode("utf-8", "replace")


def json_documents(msg: HttpMessage, text: str | None = None) -> list[Any]:
    """JSON values in a body: the whole body, or each SSE ``data:`` event (bounded).

    ``text``: ``body_text(msg)`` when the caller already has it."""
    if text is None:
        text = body_text(msg)
    ctype = (msg.header("content-type") or "").lower()
    docs: list[Any] = []
    if "text/event-stream" in ctype:
        for _ev, data in sse_events(text.encode("utf-8"), limit=64):
            v = _loads(data)
            if v is not None:
                docs.append(v)
        return docs
    if "ndjson" in ctype or "x-ndjson" in ctype:
        for line in text.splitlines()[:64]:
            v = _loads(line)
            if v is not None:
                docs.append(v)
        return docs
    v = _loads(text)
    if v is None and "\n" in text.strip():  # Ollama streams NDJSON as application/json too
        for line in text.splitlines()[:64]:
            w = _loads(line)
            if w is not None:
                docs.append(w)
        return docs
    return [v] if v is not None else []


def _loads(text: str) -> Any:
    t = text.strip()
    if not t or t[0] not in "{[":
        return None
    try:
        return json.loads(t)
    except (ValueError, RecursionError):
        return None


def json_path(doc: Any, path: str) -> list[str]:
    """Strings at a dotted path; lists are walked (``models.name``: every model's name)."""
    cur: list[Any] = [doc]
    for key in path.split("."):
        nxt: list[Any] = []
        for v in cur:
            for item in (v[:256] if isinstance(v, list) else [v]):
                if isinstance(item, dict) and key in item:
                    nxt.append(item[key])
        cur = nxt
    out: list[str] = []
    for v in cur:
        for item in (v[:256] if isinstance(v, list) else [v]):
            if isinstance(item, str) and 0 < len(item) <= 200:
                out.append(item)
    return out


def has_credentials(req: HttpMessage) -> bool:
    """The request carried a credential: Authorization, an API-key header, a key in the query."""
    if any(n != "cookie" for n, _ in req.secrets):
        return True
    head = req.head
    if isinstance(head, HttpRequest):
        return any(k in CREDENTIAL_QUERY_KEYS and v for k, v in query_params(head.target))
    return False


# -- signatures ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    strength: str  # "strong" | "weak"
    methods: frozenset[str]  # empty: any
    paths: frozenset[str]  # exact paths; empty with no regex: any
    path_regex: re.Pattern[str] | None
    request_body: re.Pattern[str] | None
    status: frozenset[int]  # empty: any (a response is still required when response: given)
    response_body: re.Pattern[str] | None
    response_headers: tuple[tuple[str, re.Pattern[str]], ...]
    needs_response: bool

    def matches_request(self, method: str, path: str) -> bool:
        if self.methods and method not in self.methods:
            return False
        if self.paths or self.path_regex is not None:
            if path in self.paths:
                return True
            return self.path_regex is not None and self.path_regex.search(path) is not None
        return True


@dataclass(frozen=True, slots=True)
class Extract:
    request: Rule  # only its request part is used (path selects the exchange)
    pattern: re.Pattern[str]  # group 1 is the value


@dataclass(frozen=True, slots=True)
class ServerSignature:
    id: str
    product: str
    vendor: str
    priority: int
    internal_only: bool
    rules: tuple[Rule, ...]
    version: tuple[Extract, ...]
    request_json: tuple[str, ...]
    response_json: tuple[str, ...]
    pull_paths: frozenset[str]
    source: str


def default_signature_dir() -> Path:
    from sensor.catalog.index import default_signature_dir as root

    return root() / "selfhosted"


def load_signatures(dirs: Sequence[Path] | None = None) -> tuple[ServerSignature, ...]:
    """Every ``*.yaml`` under the given directories (default: signatures/selfhosted)."""
    paths: list[Path] = []
    for d in dirs or (default_signature_dir(),):
        if d.is_file():
            paths.append(d)
        elif d.is_dir():
            paths.extend(sorted([*d.glob("*.yaml"), *d.glob("*.yml")]))
        else:
            raise InputError(f"{d}: no such self-hosted signature file or directory")
    sigs: list[ServerSignature] = []
    seen: set[str] = set()
    for p in paths:
        sig = parse_signature(read_yaml(p), str(p))
        if sig.id in seen:
            raise InputError(f"{p}: duplicate signature id {sig.id!r}")
        seen.add(sig.id)
        sigs.append(sig)
    return tuple(sorted(sigs, key=lambda s: -s.priority))


def _strs(v: Any, where: str) -> list[str]:
    if v is None:
        return []
    if isinstance(v, str):
        return [v]
    if isinstance(v, list) and all(isinstance(x, str) for x in v):
        return list(v)
    raise InputError(f"{where}: expected a string or a list of strings")


def _regex(v: Any, where: str, flags: int = re.DOTALL) -> re.Pattern[str] | None:
    if v is None:
        return None
    if not isinstance(v, str):
        raise InputError(f"{where}: expected a regular expression string")
    try:
        return re.compile(v, flags)
    except re.error as e:
        raise InputError(f"{where}: bad regular expression: {e}") from e


def _table(v: Any, where: str, keys: frozenset[str]) -> dict[str, Any]:
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise InputError(f"{where}: expected a mapping")
    extra = set(v) - keys
    if extra:
        raise InputError(f"{where}: unknown key(s) {sorted(extra)}")
    return v


_REQ_KEYS = frozenset({"method", "path", "path_regex"})
_RESP_KEYS = frozenset({"status", "body_regex", "header"})
_RULE_KEYS = frozenset({"id", "strength", "request", "request_body_regex", "response"})
_SIG_KEYS = frozenset({"id", "product", "vendor", "priority", "internal_only", "references",
                       "rules", "version", "models", "pull_paths"})


def _rule(v: Any, where: str) -> Rule:
    r = _table(v, where, _RULE_KEYS)
    rid = r.get("id")
    if not isinstance(rid, str) or not rid:
        raise InputError(f"{where}: rule needs an id")
    where = f"{where} ({rid})"
    strength = r.get("strength", "weak")
    if strength not in _STRENGTHS:
        raise InputError(f"{where}: strength must be strong or weak")
    req = _table(r.get("request"), f"{where} request", _REQ_KEYS)
    resp_given = "response" in r
    resp = _table(r.get("response"), f"{where} response", _RESP_KEYS)
    status = resp.get("status", [])
    statuses = [status] if isinstance(status, int) else status
    if not isinstance(statuses, list) or not all(isinstance(s, int) for s in statuses):
        raise InputError(f"{where}: status must be an integer or a list of integers")
    headers = _table(resp.get("header"), f"{where} response header",
                     frozenset(resp.get("header") or {}))
    paths = _strs(req.get("path"), f"{where} path")
    if not paths and req.get("path_regex") is None and not resp_given:
        raise InputError(f"{where}: a rule without a path needs a response condition")
    return Rule(
        id=rid, strength=strength,
        methods=frozenset(m.upper() for m in _strs(req.get("method"), f"{where} method")),
        paths=frozenset(paths),
        path_regex=_regex(req.get("path_regex"), f"{where} path_regex", 0),
        request_body=_regex(r.get("request_body_regex"), f"{where} request_body_regex"),
        status=frozenset(statuses),
        response_body=_regex(resp.get("body_regex"), f"{where} body_regex"),
        response_headers=tuple((str(k).lower(), p) for k, v in headers.items()
                               if (p := _regex(v, f"{where} header {k}", re.I)) is not None),
        needs_response=resp_given,
    )


def parse_signature(data: Any, source: str) -> ServerSignature:
    d = _table(data, source, _SIG_KEYS)
    for k in ("id", "product", "vendor"):
        if not isinstance(d.get(k), str) or not d[k]:
            raise InputError(f"{source}: {k} must be a non-empty string")
    refs = _strs(d.get("references"), f"{source} references")
    if not refs or not all(r.startswith("https://") for r in refs):
        raise InputError(f"{source}: references must list at least one https:// URL")
    rules_v = d.get("rules")
    if not isinstance(rules_v, list) or not rules_v:
        raise InputError(f"{source}: rules must be a non-empty list")
    rules = tuple(_rule(r, f"{source} rules[{i}]") for i, r in enumerate(rules_v))
    versions: list[Extract] = []
    for i, v in enumerate(d.get("version") or []):
        t = _table(v, f"{source} version[{i}]", frozenset({"request", "response"}))
        rq = _table(t.get("request"), f"{source} version[{i}] request", _REQ_KEYS)
        rs = _table(t.get("response"), f"{source} version[{i}] response", frozenset({"body_regex"}))
        pat = _regex(rs.get("body_regex"), f"{source} version[{i}] body_regex")
        if pat is None or pat.groups < 1:
            raise InputError(f"{source} version[{i}]: body_regex needs a capture group")
        versions.append(Extract(_rule({"id": f"version{i}", "request": rq, "response": {}},
                                      f"{source} version[{i}]"), pat))
    models = _table(d.get("models"), f"{source} models",
                    frozenset({"request_json", "response_json"}))
    prio = d.get("priority", 0)
    if not isinstance(prio, int):
        raise InputError(f"{source}: priority must be an integer")
    return ServerSignature(
        id=d["id"], product=d["product"], vendor=d["vendor"], priority=prio,
        internal_only=bool(d.get("internal_only", False)), rules=rules,
        version=tuple(versions),
        request_json=tuple(_strs(models.get("request_json"), f"{source} request_json")),
        response_json=tuple(_strs(models.get("response_json"), f"{source} response_json")),
        pull_paths=frozenset(_strs(d.get("pull_paths"), f"{source} pull_paths")),
        source=source,
    )


class _Bodies:
    """An exchange's body texts, decoded (and inflated) once however many rules read them."""

    __slots__ = ("_req", "_resp", "ex")

    def __init__(self, ex: HttpExchange) -> None:
        self.ex = ex
        self._req: str | None = None
        self._resp: str | None = None

    def request(self) -> str:
        if self._req is None:
            self._req = body_text(self.ex.request)
        return self._req

    def response(self, resp: HttpMessage) -> str:
        if self._resp is None:
            self._resp = body_text(resp)
        return self._resp


def _rest_matches(rule: Rule, bodies: _Bodies) -> bool:
    """Whether the exchange meets the rule beyond its request line (see
    :meth:`Rule.matches_request`): request body, response status, headers and body."""
    ex = bodies.ex
    if rule.request_body is not None and rule.request_body.search(bodies.request()) is None:
        return False
    if not rule.needs_response:
        return True
    resp = ex.response
    if resp is None or not isinstance(resp.head, HttpResponse):
        return False
    if rule.status and resp.head.status not in rule.status:
        return False
    for name, pat in rule.response_headers:
        v = resp.header(name)
        if v is None or pat.search(v) is None:
            return False
    return (rule.response_body is None
            or rule.response_body.search(bodies.response(resp)) is not None)


# A rule index: (signature, rule) pairs in evaluation order (signatures by priority,
# rules as written), and per request which of them can match at all.
_Pair = tuple[ServerSignature, Rule]


@dataclass(frozen=True, slots=True)
class _RuleIndex:
    pairs: tuple[_Pair, ...]
    exact: dict[str, tuple[int, ...]]  # path -> rules naming it exactly (no regex)
    other: dict[str, tuple[int, ...]]  # method -> rules with a regex or no path
    other_any: tuple[int, ...]  # such rules for any other method (no method condition)

    @classmethod
    def build(cls, sigs: Sequence[ServerSignature]) -> _RuleIndex:
        pairs = tuple((s, r) for s in sigs for r in s.rules)
        exact: dict[str, list[int]] = {}
        other: list[int] = []
        for i, (_s, r) in enumerate(pairs):
            if r.paths and r.path_regex is None:
                for p in r.paths:
                    exact.setdefault(p, []).append(i)
            else:
                other.append(i)
        methods = {m for _s, r in pairs for m in r.methods}
        by_method = {m: tuple(i for i in other if not pairs[i][1].methods
                              or m in pairs[i][1].methods) for m in methods}
        return cls(pairs, {p: tuple(v) for p, v in exact.items()}, by_method,
                   tuple(i for i in other if not pairs[i][1].methods))

    def candidates(self, method: str, path: str) -> tuple[int, ...]:
        """Indexes, in evaluation order, of every rule whose request part may match."""
        other = self.other.get(method, self.other_any)
        exact = self.exact.get(path)
        if exact is None:
            return other
        return tuple(sorted({*exact, *other}))


def is_ai_request(sigs: Iterable[ServerSignature], method: str, path: str) -> bool:
    """The request's method and path are those of some model-server rule (no response needed)."""
    return any(r.matches_request(method, path) and (r.paths or r.path_regex is not None)
               for s in sigs for r in s.rules)


# -- detector ------------------------------------------------------------------


@dataclass(slots=True)
class _Server(ServerState):
    strong: dict[str, set[str]] = field(default_factory=dict)  # signature id -> rule ids
    weak: dict[str, set[str]] = field(default_factory=dict)
    version: dict[str, str] = field(default_factory=dict)  # signature id -> version
    models: dict[str, int] = field(default_factory=dict)
    pulled: dict[str, int] = field(default_factory=dict)
    unauthenticated_ok: int = 0  # 2xx answers to requests without credentials
    auth_refused: int = 0  # 401/403 answers


@dataclass(frozen=True, slots=True)
class SelfHostedLlmFinding(ServerFinding):
    product_id: str
    product: str
    vendor: str
    products: tuple[str, ...]
    version: str | None
    models: tuple[str, ...]
    pulled_models: tuple[str, ...]
    clients: tuple[tuple[str, int], ...]
    evidence: tuple[tuple[str, str, int], ...]
    unauthenticated_ok: int
    auth_refused: int

    def to_dict(self) -> dict[str, Any]:
        return {
            **envelope(
                self,
                client=None,
                server=self.server,
                service={"id": f"selfhosted:{self.product_id}", "name": self.product,
                         "vendor": self.vendor, "category": "self-hosted-llm"},
                evidence=[{"kind": k, "value": v, "count": n} for k, v, n in self.evidence],
                counts={"exchanges": self.exchanges,
                        "requests_with_credentials": self.with_credentials,
                        "requests_without_credentials": self.without_credentials,
                        "responses_unauthenticated_ok": self.unauthenticated_ok,
                        "responses_auth_refused": self.auth_refused,
                        "clients": len(self.clients)},
            ),
            "self_hosted_llm": {
                "product": self.product, "products": list(self.products),
                "version": self.version, "models": list(self.models),
                "pulled_models": list(self.pulled_models),
                "authentication": ("none" if self.unauthenticated_ok
                                   else "required" if self.with_credentials or self.auth_refused
                                   else "unknown"),
                "clients": [{"ip": ip, "requests": n} for ip, n in self.clients],
            },
        }


class SelfHostedDetector:
    """Consumes ``http.exchange`` observations; one finding per (server IP, port)."""

    def __init__(self, signatures: Sequence[ServerSignature] | None = None,
                 internal: Callable[[str], bool] = is_internal) -> None:
        """``internal``: which server addresses count as internal (a policy may widen it)."""
        self.signatures = tuple(signatures) if signatures is not None else load_signatures()
        self.internal = internal
        self._index = _RuleIndex.build(self.signatures)
        self._req_cache: dict[tuple[str, str], tuple[int, ...]] = {}
        self._servers = ServerTable(_Server)

    observation_kinds = frozenset({"http.exchange"})  # the pipeline sends only these

    def on_observation(self, o: Observation) -> None:
        got = exchange_request(o)
        if got is None:
            return
        ex, head = got
        method, path = head.method, request_path(head.target)
        srv = self._servers.get(o)
        # only the rules whose method and path match are evaluated further, in order
        hits = self._request_matches(method, path)
        if not hits and srv is None:
            return  # nothing can match and the server is not followed
        internal: bool | None = None  # asked only when an internal-only rule is reached
        matched: list[tuple[ServerSignature, Rule]] = []
        pairs = self._index.pairs
        bodies = _Bodies(ex)
        for i in hits:
            sig, rule = pairs[i]
            if sig.internal_only:
                if internal is None:
                    internal = self.internal(o.dst_ip)
                if not internal:
                    continue
            if _rest_matches(rule, bodies):
                matched.append((sig, rule))
        if srv is None:
            if not matched:
                return
            srv = self._servers.add(o)
            if srv is None:
                return
        self._record(srv, o, ex, head, path, matched, bodies)

    def _request_matches(self, method: str, path: str) -> tuple[int, ...]:
        """Indexes (evaluation order) of the rules whose request part matches; memoised,
        as the same API paths recur (bounded: cleared when full)."""
        key = (method, path)
        hit = self._req_cache.get(key)
        if hit is None:
            pairs = self._index.pairs
            hit = tuple(i for i in self._index.candidates(method, path)
                        if pairs[i][1].matches_request(method, path))
            if len(self._req_cache) >= _REQ_CACHE:
                self._req_cache.clear()
            self._req_cache[key] = hit
        return hit

    def _record(self, srv: _Server, o: Observation, ex: HttpExchange, head: HttpRequest,
                path: str, matched: list[tuple[ServerSignature, Rule]],
                bodies: _Bodies) -> None:
        creds = has_credentials(ex.request)
        srv.add_exchange(o, head, f"{head.method} {path}", creds)
        for sig, rule in matched:
            bucket = srv.strong if rule.strength == "strong" else srv.weak
            bucket.setdefault(sig.id, set()).add(rule.id)
        resp = ex.response
        status = resp.head.status if resp is not None and isinstance(resp.head,
                                                                     HttpResponse) else 0
        if status in (401, 403):
            srv.auth_refused += 1
        elif 200 <= status < 300 and not creds:
            srv.unauthenticated_ok += 1
        sigs = [s for s in self.signatures if s.id in srv.strong or s.id in srv.weak]
        req_docs: list[Any] | None = None
        resp_docs: list[Any] | None = None
        for sig in sigs:
            for ext in sig.version:
                if resp is not None and ext.request.matches_request(head.method, path):
                    m = ext.pattern.search(bodies.response(resp))
                    if m is not None:
                        srv.version[sig.id] = m[1][:40]
            if sig.request_json:
                if req_docs is None:
                    req_docs = json_documents(ex.request, bodies.request())[:1]
                names = [v for doc in req_docs for p in sig.request_json
                         for v in json_path(doc, p)][:1]
                for v in names:
                    count_bounded(srv.models, v, MAX_VALUES)
                    if path in sig.pull_paths:
                        count_bounded(srv.pulled, v, MAX_VALUES)
            if sig.response_json and resp is not None and 200 <= status < 300:
                if resp_docs is None:
                    resp_docs = json_documents(resp, bodies.response(resp))[:4]
                for doc in resp_docs:
                    for p in sig.response_json:
                        for v in json_path(doc, p):
                            count_bounded(srv.models, v, MAX_VALUES)

    def _confirmed(self, srv: _Server) -> list[ServerSignature]:
        out = []
        for sig in self.signatures:  # sorted by priority, highest first
            if srv.strong.get(sig.id) or len(srv.weak.get(sig.id, ())) >= 2:
                out.append(sig)
        return out

    def findings(self) -> list[SelfHostedLlmFinding]:
        out: list[SelfHostedLlmFinding] = []
        for srv in self._servers:
            conf = self._confirmed(srv)
            if not conf:
                continue
            top = conf[0]
            evidence: list[tuple[str, str, int]] = []
            for sig in conf:
                for rid in sorted(srv.strong.get(sig.id, set()) | srv.weak.get(sig.id, set())):
                    evidence.append(("http.signature", f"{sig.id}/{rid}", 1))
            evidence += [("http.request", p, n) for p, n in srv.paths.items()]
            version = srv.version.get(top.id) or next(
                (srv.version[s.id] for s in conf if s.id in srv.version), None)
            out.append(SelfHostedLlmFinding(
                type=TYPE, severity="high" if srv.unauthenticated_ok else "medium",
                server_ip=srv.ip, server_port=srv.port, server_name=srv.host,
                first_ns=srv.first_ns, last_ns=srv.last_ns, product_id=top.id,
                product=top.product, vendor=top.vendor,
                products=tuple(s.product for s in conf), version=version,
                models=tuple(srv.models), pulled_models=tuple(srv.pulled),
                clients=tuple(srv.clients.items()), evidence=tuple(evidence),
                exchanges=srv.exchanges, with_credentials=srv.with_credentials,
                without_credentials=srv.without_credentials,
                unauthenticated_ok=srv.unauthenticated_ok, auth_refused=srv.auth_refused,
            ))
        out.sort(key=lambda f: (f.first_ns, f.server_ip, f.server_port))
        return out
