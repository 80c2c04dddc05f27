"""The documented JSON form of observations (``shadowai hunt --observations``)."""

from __future__ import annotations

import functools
from typing import Any

from sensor.decoders.ja4 import GREASE, ja4
from sensor.errors import InputError
from sensor.findings import rfc3339
from sensor.flows import community_id
from sensor.records import (
    DnsMessage,
    HttpRequest,
    HttpResponse,
    Observation,
    TlsClientHello,
)

OBS_SCHEMA = "shadowai.observation/v1"
_TLS_VERSIONS = {0x0300: "SSLv3", 0x0301: "TLSv1.0", 0x0302: "TLSv1.1", 0x0303: "TLSv1.2",
                 0x0304: "TLSv1.3"}


def tls_version_names(versions: tuple[int, ...]) -> list[str]:
    return list(_version_names(versions))


# clients offer a handful of distinct version and ALPN lists: name each once
@functools.lru_cache(maxsize=4096)
def _version_names(versions: tuple[int, ...]) -> tuple[str, ...]:
    return tuple(_TLS_VERSIONS.get(v, f"0x{v:04x}") for v in versions if v not in GREASE)


@functools.lru_cache(maxsize=4096)
def _alpn_names(alpn: tuple[bytes, ...]) -> tuple[str, ...]:
    return tuple(a.decode("utf-8", "backslashreplace") for a in alpn)


# many observations share a flow (DNS, keep-alive HTTP): hash each flow once
@functools.lru_cache(maxsize=100_000)
def _community_id(src_ip: str, src_port: int, dst_ip: str, dst_port: int,
                  proto: int) -> str | None:
    """None when the record has no usable addresses: a zeek-cut subset of a log without
    the id.* columns, or a log line with a malformed address."""
    try:
        return community_id(src_ip, src_port, dst_ip, dst_port, proto)
    except OSError:
        return None


def observation_dict(o: Observation) -> dict[str, Any]:
    proto = 6 if o.transport == "tcp" else 17
    d: dict[str, Any] = {
        "schema": OBS_SCHEMA,
        "kind": o.kind,
        "ts": rfc3339(o.ts_ns),
        "src_ip": o.src_ip,
        "src_port": o.src_port,
        "dst_ip": o.dst_ip,
        "dst_port": o.dst_port,
        "transport": o.transport,
        "community_id": _community_id(o.src_ip, o.src_port, o.dst_ip, o.dst_port, proto),
    }
    p = o.payload
    if isinstance(p, TlsClientHello):
        d.update(sni=p.sni, alpn=list(_alpn_names(p.alpn)),
                 versions=tls_version_names(p.supported_versions or (p.legacy_version,)),
                 legacy_version=f"0x{p.legacy_version:04x}", has_ech=p.has_ech,
                 cipher_suites=len(p.cipher_suites), extensions=len(p.extensions))
        d["ja4"] = ja4(p, "q" if o.transport == "udp" else "t")
    elif isinstance(p, DnsMessage):
        q = p.questions[0] if p.questions else None
        d.update(txid=p.txid, is_response=p.is_response, opcode=p.opcode, rcode=p.rcode,
                 query=q.name if q else None, qtype=q.qtype if q else None,
                 answers=[{"name": a.name, "type": a.rtype, "ttl_s": a.ttl_s, "value": a.value,
                           **({"hints": list(a.hint_ips)} if a.hint_ips else {})}
                          for a in p.answers])
    elif isinstance(p, HttpRequest):
        d.update(method=p.method, host=p.host, uri=redact_query(p.target), version=p.version,
                 user_agent=p.user_agent, content_type=p.content_type,
                 content_length=p.content_length,
                 authorization_scheme=p.authorization_scheme,
                 api_key_headers=list(p.api_key_headers),
                 mcp_session_id=p.mcp_session_id is not None,
                 mcp_protocol_version=p.mcp_protocol_version)
    elif isinstance(p, HttpResponse):
        d.update(status=p.status, reason=p.reason, version=p.version, server=p.server,
                 content_type=p.content_type, content_length=p.content_length)
    else:
        to_dict = getattr(p, "to_dict", None)  # DHCP, Kerberos, HTTP exchanges
        if to_dict is not None:
            d.update(to_dict())
    return d


@functools.cache
def _prefixes() -> tuple[str, ...]:
    """Literal starts of the AI key formats (signatures/credentials.yaml)."""
    from sensor.detect.credentials import load_formats

    try:
        found = {f.prefix for f in load_formats()}
    except InputError:
        found = set()
    return tuple(sorted(found | {"sk-", "AIza", "hf_"}))


def redact_query(target: str) -> str:
    """The request target with AI API keys in query values replaced: a key sent in a URL
    (``?key=AIza...``) must reach no output. Other values stay, as Zeek logs them."""
    path, sep, query = target.partition("?")
    if not sep:
        return target
    prefixes = _prefixes()
    parts = []
    for item in query.split("&"):
        name, eq, value = item.partition("=")
        if eq and value.startswith(prefixes):
            item = f"{name}=<redacted>"
        parts.append(item)
    return path + "?" + "&".join(parts)


def pseudonymize_observation(d: dict[str, Any], pseudo: Any) -> dict[str, Any]:
    """Identity fields of DHCP/Kerberos observations replaced by keyed hashes."""
    kind = d["kind"]
    if kind in ("dhcp", "dhcpv6"):
        if d.get("client_mac"):
            d["client_mac"] = pseudo.mac(d["client_mac"])
        for k in ("hostname", "client_fqdn", "fqdn"):
            if d.get(k):
                d[k] = pseudo.host(d[k])
    elif kind == "kerberos" and d.get("client"):
        name = d["client"]
        d["client"] = pseudo.host(name) if name.endswith("$") or "/" in name else pseudo.user(name)
    return d
