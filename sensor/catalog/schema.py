"""Typed catalog entries: what one AI service looks like on the wire.

Entries are data (one YAML file per vendor under ``signatures/services/``);
these dataclasses are what the loader builds from them and what the matcher
returns. Every entry and host pattern keeps the file and line it came from so
lint and ``signatures explain`` can point at it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal


class Category(StrEnum):
    LLM_API = "llm-api"
    CHAT_ASSISTANT = "chat-assistant"
    CODE_ASSISTANT = "code-assistant"
    AI_AGENT = "ai-agent"
    IMAGE_VIDEO_GENERATION = "image-video-generation"
    VOICE_SPEECH = "voice-speech"
    MEETING_ASSISTANT = "meeting-assistant"
    WRITING_PRODUCTIVITY = "writing-productivity"
    AI_SEARCH = "ai-search"
    MODEL_HUB = "model-hub"
    AI_GATEWAY = "ai-gateway"
    LLMOPS = "llmops"
    VECTOR_DATABASE = "vector-database"
    CLOUD_AI_PLATFORM = "cloud-ai-platform"
    MCP_SERVER = "mcp-server"
    MCP_REGISTRY = "mcp-registry"
    OTHER_AI = "other-ai"


class Role(StrEnum):
    """What a hostname does for the service.

    telemetry and cdn hosts are fetched by pages and apps in the background
    (analytics, static assets), so contact with them alone is not use.
    """

    TELEMETRY = "telemetry"
    CDN = "cdn"
    API = "api"
    WEB = "web"
    AUTH = "auth"
    DOWNLOAD = "download"


class Risk(StrEnum):
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


NOT_USE_ROLES = frozenset({Role.TELEMETRY, Role.CDN})

# "cidr" only appears in matches built from a service's ip_ranges (Catalog.match_ip)
PatternKind = Literal["exact", "suffix", "cidr"]
Severity = Literal["error", "warning"]

# A DNS name as the catalog writes it: lower-case LDH labels, no trailing dot.
_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
HOSTNAME_RE = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
ID_RE = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
URL_RE = re.compile(r"https?://[^\s/]+\.[^\s/]+(?:/\S*)?")
# An HTTP path prefix: absolute, printable, no query/fragment (matched against the
# request target's path, which never carries a fragment and whose query follows '?').
PATH_RE = re.compile(r"/[!$&'()*+,\-./0-9:;=@A-Z_a-z~%]*")


@dataclass(frozen=True, slots=True)
class Location:
    """Where something was written: file as given to the loader, 1-based line."""

    file: str
    line: int

    def __str__(self) -> str:
        # line 0: the finding is about the whole path (missing file, empty dir)
        return f"{self.file}:{self.line}" if self.line > 0 else self.file


@dataclass(frozen=True, slots=True)
class Problem:
    """One lint or load finding, printed as ``file:line: [warning: ]message``."""

    location: Location
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        prefix = "warning: " if self.severity == "warning" else ""
        return f"{self.location}: {prefix}{self.message}"


@dataclass(frozen=True, slots=True)
class HostPattern:
    kind: PatternKind
    value: str  # normalised: lower-case, no trailing dot
    role: Role | None = None
    shared: bool = False  # the name also serves non-AI use
    location: Location | None = None
    # HTTP path prefixes: the pattern only applies to requests under one of
    # them, so it is invisible to name-only matching (TLS SNI, DNS).
    paths: tuple[str, ...] = ()

    @property
    def counts_as_use(self) -> bool:
        return self.role not in NOT_USE_ROLES

    def matches_path(self, path: str) -> bool:
        return not self.paths or any(path_has_prefix(path, p) for p in self.paths)

    def matches(self, hostname: str) -> bool:
        """Reference semantics (the index is the fast path): label-boundary suffix."""
        if self.kind == "exact":
            return hostname == self.value
        if self.kind == "cidr":
            return False
        return hostname == self.value or hostname.endswith("." + self.value)


@dataclass(frozen=True, slots=True)
class IpRange:
    """A CIDR the provider publishes as its serving addresses (never egress/crawler ranges)."""

    cidr: str  # normalised network, e.g. "160.79.104.0/23"
    role: Role | None
    source: str  # URL of the provider's page that lists the range
    location: Location | None = None


@dataclass(frozen=True, slots=True)
class Service:
    id: str
    name: str
    vendor: str
    category: Category
    hosts: tuple[HostPattern, ...]
    references: tuple[str, ...]
    examples_match: tuple[str, ...]
    examples_nomatch: tuple[str, ...]
    risk: Risk | None = None
    notes: str | None = None
    location: Location | None = None
    ip_ranges: tuple[IpRange, ...] = ()


def path_has_prefix(path: str, prefix: str) -> bool:
    """Prefix match on segment boundaries: ``/mcp`` covers ``/mcp`` and ``/mcp/x``,
    not ``/mcpx``; a prefix ending in ``/`` (``/mcp/``) is a plain string prefix."""
    if not path.startswith(prefix):
        return False
    return prefix.endswith("/") or len(path) == len(prefix) or path[len(prefix)] == "/"


def is_hostname(value: str) -> bool:
    return len(value) <= 253 and HOSTNAME_RE.fullmatch(value) is not None
