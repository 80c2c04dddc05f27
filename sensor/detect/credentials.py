"""AI credentials sent in cleartext HTTP.

Looks at every request of an ``http.exchange`` (plain HTTP by construction):
the Authorization / Proxy-Authorization value (Bearer, Basic user and
password, or a bare key), API-key headers (x-api-key, api-key...), key-like
query parameters (``?key=``) and, for provider formats only, the request body.

A token that matches a provider's published key format
(``signatures/credentials.yaml``) is reported with that provider; any other
bearer token or API-key header sent to an AI endpoint (a path that some
model-server signature uses, or an MCP JSON-RPC message) is reported with
provider ``unknown``. Finding type ``cleartext_credential``, type-specific key
``credential``: provider, format, a short prefix (the format's literal prefix
plus at most 4 characters of secret material) and an HMAC-SHA256 of the token
under a deployment key. The token itself is never stored, logged or shown.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets as _random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from sensor.datafiles import read_yaml
from sensor.decoders.http_stream import HttpMessage
from sensor.detect.selfhosted import (
    CREDENTIAL_QUERY_KEYS,
    ServerSignature,
    is_ai_request,
    load_signatures,
    query_params,
    request_path,
)
from sensor.detect.servers import exchange_request
from sensor.errors import InputError
from sensor.findings import count_bounded, envelope, finding_id, server_object
from sensor.records import HttpRequest, Observation

TYPE = "cleartext_credential"
KEY_ENV = "SHADOWAI_CREDENTIAL_KEY"
SECRET_CHARS_SHOWN = 4
MAX_FINDINGS = 10_000
MAX_VALUES = 16
_MIN_TOKEN = 8
_BODY_TYPES = ("json", "x-www-form-urlencoded", "text/plain")
_MCP_BODY = re.compile(rb'"jsonrpc"\s*:\s*"2\.0".{0,4096}?"method"\s*:', re.DOTALL)


@dataclass(frozen=True, slots=True)
class KeyFormat:
    id: str
    provider: str
    prefix: str
    regex: re.Pattern[str]
    source: str
    scan_body: bool = True  # also searched for in request bodies (distinctive formats only)


@dataclass(frozen=True, slots=True)
class CredentialSettings:
    """``[credentials]`` table: ``hmac_key`` (>= 16 characters) or ``hmac_key_file``."""

    hmac_key: bytes | None = field(default=None, repr=False)


def from_toml(table: dict[str, Any]) -> CredentialSettings:
    unknown = set(table) - {"hmac_key", "hmac_key_file"}
    if unknown:
        raise InputError(f"credentials: unknown setting(s) {sorted(unknown)}")
    key: bytes | None = None
    if "hmac_key" in table:
        v = table["hmac_key"]
        if not isinstance(v, str) or len(v) < 16:
            raise InputError("credentials.hmac_key must be a string of at least 16 characters")
        key = v.encode()
    if "hmac_key_file" in table:
        p = table["hmac_key_file"]
        if not isinstance(p, str):
            raise InputError("credentials.hmac_key_file must be a path string")
        try:
            key = Path(p).read_bytes().strip()
        except OSError as e:
            raise InputError(f"credentials.hmac_key_file: cannot read {p}: {e.strerror}") from e
        if len(key) < 16:
            raise InputError("credentials.hmac_key_file must hold at least 16 bytes")
    return CredentialSettings(key)


def default_formats_path() -> Path:
    from sensor.catalog.index import default_signature_dir

    return default_signature_dir() / "credentials.yaml"


def load_formats(path: Path | None = None) -> tuple[KeyFormat, ...]:
    p = path or default_formats_path()
    data = read_yaml(p)
    items = data.get("formats") if isinstance(data, dict) else None
    if not isinstance(items, list) or not items:
        raise InputError(f"{p}: needs a non-empty formats: list")
    out: list[KeyFormat] = []
    for i, it in enumerate(items):
        where = f"{p} formats[{i}]"
        if not isinstance(it, dict):
            raise InputError(f"{where}: expected a mapping")
        vals = {k: it.get(k) for k in ("id", "provider", "prefix", "regex", "source")}
        bad = [k for k, v in vals.items() if not isinstance(v, str) or not v]
        if bad:
            raise InputError(f"{where}: {', '.join(bad)} must be non-empty strings")
        try:
            rx = re.compile(str(vals["regex"]))
        except re.error as e:
            raise InputError(f"{where}: bad regex: {e}") from e
        out.append(KeyFormat(str(vals["id"]), str(vals["provider"]), str(vals["prefix"]), rx,
                             str(vals["source"]), bool(it.get("scan_body", True))))
    return tuple(out)


@dataclass(slots=True)
class _Cred:
    client_ip: str
    server_ip: str
    server_port: int
    provider: str
    format_id: str
    prefix: str
    digest: str
    first_ns: int
    last_ns: int
    requests: int = 0
    locations: dict[str, int] = field(default_factory=dict)
    hosts: dict[str, int] = field(default_factory=dict)
    paths: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CleartextCredentialFinding:
    """Safe to show: holds the prefix and keyed hash only, never the token."""

    type: str
    severity: str
    client_ip: str
    server_ip: str
    server_port: int
    server_name: str | None
    first_ns: int
    last_ns: int
    provider: str
    format_id: str
    prefix: str
    hmac_sha256: str
    hmac_key: str  # "configured" | "ephemeral" (hashes comparable within this run only)
    requests: int
    locations: tuple[tuple[str, int], ...]
    hosts: tuple[str, ...]
    paths: tuple[tuple[str, int], ...]

    @property
    def id(self) -> str:
        return finding_id(self.type, self.client_ip, self.server_ip, str(self.server_port),
                          self.hmac_sha256)

    def to_dict(self) -> dict[str, Any]:
        return {
            **envelope(
                self,
                client={"ip": self.client_ip, "mac": None},
                server=server_object(self.server_ip, self.server_port, self.server_name),
                service=None,
                evidence=[{"kind": "http.request", "value": p, "count": n} for p, n in self.paths],
                counts={"requests": self.requests},
            ),
            "credential": {
                "provider": self.provider, "format": self.format_id, "prefix": self.prefix,
                "hmac_sha256": self.hmac_sha256, "hmac_key": self.hmac_key,
                "locations": [{"location": loc, "count": n} for loc, n in self.locations],
                "hosts": list(self.hosts),
            },
        }


def _candidates(req: HttpMessage) -> Iterator[tuple[str, str, bool]]:
    """(location, token, sent as a credential) for each token the request carries."""
    for name, sec in req.secrets:
        if name == "cookie":
            continue
        value = sec.reveal().strip()
        if name in ("authorization", "proxy-authorization"):
            scheme, _, rest = value.partition(" ")
            rest = rest.strip()
            if not rest:  # a bare key without a scheme word
                yield f"header:{name}", scheme, True
            elif scheme.lower() == "basic":
                try:
                    raw = base64.b64decode(rest, validate=True).decode("utf-8", "replace")
                except (binascii.Error, ValueError):
                    continue
                user, _, password = raw.partition(":")
                yield f"header:{name}:basic-password", password, True
                yield f"header:{name}:basic-user", user, False
            else:
                yield f"header:{name}", rest, True
        else:
            if value.lower().startswith("bearer "):
                value = value[7:].strip()
            yield f"header:{name}", value, True
    head = req.head
    if isinstance(head, HttpRequest):
        for k, v in query_params(head.target):
            if k in CREDENTIAL_QUERY_KEYS and v:
                yield f"query:{k}", unquote(v), True


class CredentialDetector:
    """Consumes ``http.exchange`` observations; one finding per (client, server, token)."""

    def __init__(self, settings: CredentialSettings | None = None,
                 formats: Sequence[KeyFormat] | None = None,
                 signatures: Sequence[ServerSignature] | None = None) -> None:
        key = settings.hmac_key if settings is not None else None
        if key is None and os.environ.get(KEY_ENV):
            key = os.environ[KEY_ENV].encode()
        self._key_kind = "configured" if key is not None else "ephemeral"
        self._key = key if key is not None else _random.token_bytes(32)
        self.formats = tuple(formats) if formats is not None else load_formats()
        self.signatures = tuple(signatures) if signatures is not None else load_signatures()
        body_fmts = [f.regex.pattern for f in self.formats if f.scan_body]
        self._body_rx = re.compile(
            r"(?<![A-Za-z0-9_-])(?:" + "|".join(f"(?:{p})" for p in body_fmts)
            + r")(?![A-Za-z0-9_-])") if body_fmts else None
        self._creds: dict[tuple[str, str, int, str], _Cred] = {}
        self.dropped = 0

    def _digest(self, token: str) -> str:
        return hmac.new(self._key, token.encode("utf-8", "surrogatepass"),
                        hashlib.sha256).hexdigest()

    def classify(self, token: str) -> KeyFormat | None:
        """The first format matching the whole token."""
        for f in self.formats:
            if f.regex.fullmatch(token):
                return f
        return None

    @staticmethod
    def short_prefix(token: str, fmt: KeyFormat | None) -> str:
        lit = fmt.prefix if fmt is not None else ""
        shown = min(SECRET_CHARS_SHOWN, max(0, (len(token) - len(lit)) // 8))
        return token[: len(lit) + shown] + "..."

    observation_kinds = frozenset({"http.exchange"})  # the pipeline sends only these

    def on_observation(self, o: Observation) -> None:
        got = exchange_request(o)
        if got is None:
            return
        req, head = got[0].request, got[1]
        ctype = (head.content_type or "").lower()
        scan_body = (self._body_rx is not None and bool(req.body)
                     and any(t in ctype for t in _BODY_TYPES))
        # tokens come from credential headers (not cookies), the query or the body
        if not scan_body and "?" not in head.target and all(
                n == "cookie" for n, _ in req.secrets):
            return
        path = request_path(head.target)
        ai: bool | None = None  # computed on demand
        seen: set[str] = set()
        for loc, token, as_cred in _candidates(req):
            if len(token) < _MIN_TOKEN or len(token) > 4096:
                continue
            fmt = self.classify(token)
            if fmt is None:
                if not as_cred:
                    continue
                if ai is None:
                    ai = is_ai_request(self.signatures, head.method, path) or bool(
                        _MCP_BODY.search(req.body[:8192]))
                if not ai:
                    continue
            self._add(o, head, path, loc, token, fmt, seen)
        if scan_body and self._body_rx is not None:
            text = req.body.decode("utf-8", "replace")
            for m in self._body_rx.finditer(text[:16384]):
                token = m[0]
                fmt = self.classify(token)
                if fmt is not None:
                    self._add(o, head, path, "body", token, fmt, seen)

    def _add(self, o: Observation, head: HttpRequest, path: str, loc: str, token: str,
             fmt: KeyFormat | None, seen: set[str]) -> None:
        digest = self._digest(token)
        if digest in seen:  # the same token twice in one request: one count
            return
        seen.add(digest)
        key = (o.src_ip, o.dst_ip, o.dst_port, digest)
        c = self._creds.get(key)
        if c is None:
            if len(self._creds) >= MAX_FINDINGS:
                self.dropped += 1
                return
            c = self._creds[key] = _Cred(
                o.src_ip, o.dst_ip, o.dst_port,
                fmt.provider if fmt is not None else "unknown",
                fmt.id if fmt is not None else "unknown", self.short_prefix(token, fmt),
                digest, o.ts_ns, o.ts_ns)
        c.first_ns = min(c.first_ns, o.ts_ns)
        c.last_ns = max(c.last_ns, o.ts_ns)
        c.requests += 1
        count_bounded(c.locations, loc, MAX_VALUES)
        if head.host:
            count_bounded(c.hosts, head.host, MAX_VALUES)
        count_bounded(c.paths, f"{head.method} {path}", MAX_VALUES)

    def findings(self) -> list[CleartextCredentialFinding]:
        out = [CleartextCredentialFinding(
            type=TYPE, severity="high" if c.provider != "unknown" else "medium",
            client_ip=c.client_ip, server_ip=c.server_ip, server_port=c.server_port,
            server_name=next(iter(c.hosts), None), first_ns=c.first_ns, last_ns=c.last_ns,
            provider=c.provider, format_id=c.format_id, prefix=c.prefix,
            hmac_sha256=c.digest, hmac_key=self._key_kind, requests=c.requests,
            locations=tuple(c.locations.items()), hosts=tuple(c.hosts),
            paths=tuple(c.paths.items()),
        ) for c in self._creds.values()]
        out.sort(key=lambda f: (f.first_ns, f.client_ip, f.server_ip, f.hmac_sha256))
        return out


def http_detectors(settings: CredentialSettings | None = None,
                   internal: Callable[[str], bool] | None = None) -> list[object]:
    """The three HTTP-exchange detectors (self-hosted LLM servers, MCP servers, credentials);
    ``internal``: the policy's internal-network test for server addresses."""
    from sensor.detect.mcp import McpDetector
    from sensor.detect.selfhosted import SelfHostedDetector

    sigs = load_signatures()
    hosted = SelfHostedDetector(sigs) if internal is None else SelfHostedDetector(sigs, internal)
    return [hosted, McpDetector(), CredentialDetector(settings, signatures=sigs)]
