"""Observation records: what decoders extract from the few packets that matter.

Records are frozen, slotted dataclasses. Field names carry their unit
(``ts_ns``: nanoseconds since the Unix epoch, UTC) and direction.
Decoders produce the protocol part (``TlsClientHello``...); the pipeline
wraps it with the packet's addresses in an :class:`Observation`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar


@dataclass(frozen=True, slots=True)
class TlsClientHello:
    """A TLS ClientHello (from TCP, or from QUIC CRYPTO frames).

    Lists keep wire order and include GREASE values, so JA4 and JA3 can be
    computed from the record alone.
    """

    legacy_version: int  # ClientHello.legacy_version, e.g. 0x0303
    cipher_suites: tuple[int, ...]
    compression_methods: tuple[int, ...]
    extensions: tuple[int, ...]  # extension types in wire order
    sni: str | None  # server_name host_name, None when absent
    alpn: tuple[bytes, ...]  # raw protocol names (may be non-ASCII)
    supported_versions: tuple[int, ...]  # extension 43, wire order
    signature_algorithms: tuple[int, ...]  # extension 13, wire order
    supported_groups: tuple[int, ...]  # extension 10
    ec_point_formats: tuple[int, ...]  # extension 11
    has_ech: bool  # encrypted_client_hello (0xfe0d) present
    session_id_len: int = 0
    malformed: bool = False  # the extension block was damaged: fields after it are missing

    @property
    def alpn_str(self) -> tuple[str, ...]:
        return tuple(a.decode("utf-8", "backslashreplace") for a in self.alpn)


@dataclass(frozen=True, slots=True)
class DnsQuestion:
    name: str  # lower-case, no trailing dot
    qtype: int
    qclass: int


@dataclass(frozen=True, slots=True)
class DnsAnswer:
    name: str  # owner name, lower-case, no trailing dot
    rtype: int
    ttl_s: int
    value: str  # A/AAAA: address text; CNAME/NS/PTR: target name;
    # HTTPS/SVCB: target name ("." owner-relative target is the owner name)
    hint_ips: tuple[str, ...] = ()  # HTTPS/SVCB ipv4hint/ipv6hint addresses


@dataclass(frozen=True, slots=True)
class DnsMessage:
    txid: int
    is_response: bool
    opcode: int
    rcode: int
    questions: tuple[DnsQuestion, ...]
    answers: tuple[DnsAnswer, ...]  # answer section only


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    target: str  # request-target as sent (origin-form or absolute-form)
    version: str  # "HTTP/1.1"
    host: str | None  # Host header, lower-case, port stripped
    host_port: int | None  # port from the Host header, if any
    user_agent: str | None
    content_type: str | None
    content_length: int | None
    authorization_scheme: str | None  # "Bearer", "Basic"... never the value
    api_key_headers: tuple[str, ...]  # names of API-key-like headers present
    accept: str | None
    mcp_session_id: str | None  # Mcp-Session-Id
    mcp_protocol_version: str | None  # MCP-Protocol-Version
    last_event_id: str | None  # Last-Event-ID (Streamable HTTP resumption)
    header_bytes: int  # length of the head including the final CRLFCRLF


@dataclass(frozen=True, slots=True)
class HttpResponse:
    version: str
    status: int
    reason: str
    server: str | None
    content_type: str | None
    content_length: int | None
    mcp_session_id: str | None
    header_bytes: int


if TYPE_CHECKING:  # http_stream imports this module: name its record for mypy only
    from sensor.decoders.dhcp import DhcpMessage, Dhcpv6Message
    from sensor.decoders.http_stream import HttpExchange
    from sensor.decoders.kerberos import KerberosMessage

    Payload: TypeAlias = (TlsClientHello | DnsMessage | HttpRequest | HttpResponse | HttpExchange
                          | DhcpMessage | Dhcpv6Message | KerberosMessage)
else:
    Payload = TlsClientHello | DnsMessage | HttpRequest | HttpResponse


@dataclass(frozen=True, slots=True)
class Observation:
    """A decoded message with the addresses of the packet that carried it."""

    kind: str  # "tls.client_hello" | "dns" | "http.request" | "http.response" | ...
    ts_ns: int
    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int
    transport: str  # "tcp" | "udp"
    flow_id: int  # the pipeline's 64-bit flow key
    payload: Payload


_R = TypeVar("_R")


def slot_builder(cls: type[_R]) -> Callable[..., _R]:
    """A constructor for a frozen slotted record that sets its slots directly.

    A frozen dataclass ``__init__`` pays one ``object.__setattr__`` call per
    field, as much as decoding a small DNS query; the hot-path decoders build
    their records with this instead. It takes every field, positionally or by
    name, in field order, and builds an object equal to ``cls(...)``. Records
    with a ``__post_init__`` or non-init fields get ``cls`` itself.
    """
    fs = fields(cls)  # type: ignore[arg-type]
    if hasattr(cls, "__post_init__") or not all(f.init for f in fs):
        return cls
    names = [f.name for f in fs]
    ns: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    for i, name in enumerate(names):
        ns[f"_set{i}"] = getattr(cls, name).__set__  # the slot's member descriptor
    body = "".join(f"    _set{i}(o, {name})\n" for i, name in enumerate(names))
    # generated like dataclasses' own __init__: field names are identifiers
    exec(f"def build({', '.join(names)}):\n    o = _new(_cls)\n{body}    return o\n", ns)
    build: Callable[..., _R] = ns["build"]
    return build
