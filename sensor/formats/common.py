"""Pieces every output format shares: the envelope keys, MITRE mapping, time parsing."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

try:  # orjson is optional: ~10x faster, and JSON encoding is most of a sink's CPU
    import orjson
except ImportError:  # pragma: no cover - exercised where orjson is absent
    orjson = None  # type: ignore[assignment]

# Keys of the common finding envelope; any other top-level key is the type-specific object.
ENVELOPE = frozenset({"schema", "id", "type", "severity", "first_seen", "last_seen", "client",
                      "server", "service", "evidence", "counts"})
PRODUCT = "shadowai-sensor"
VENDOR = "shadowai-sensor"
SEVERITY_RANK = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}


@dataclass(frozen=True, slots=True)
class Technique:
    framework: str          # "MITRE ATLAS" or "MITRE ATT&CK"
    tactic_id: str
    tactic_name: str
    technique_id: str
    technique_name: str

    @property
    def tactic_url(self) -> str:
        if self.framework == "MITRE ATLAS":
            return f"https://atlas.mitre.org/tactics/{self.tactic_id}"
        return f"https://attack.mitre.org/tactics/{self.tactic_id}/"

    @property
    def technique_url(self) -> str:
        if self.framework == "MITRE ATLAS":
            return f"https://atlas.mitre.org/techniques/{self.technique_id}"
        return f"https://attack.mitre.org/techniques/{self.technique_id.replace('.', '/')}/"


_ACCESS = ("AML.TA0000", "AI Model Access")
# One table so a reviewer can audit the mapping in one place (docs/sinks.md repeats it).
TECHNIQUES: dict[str, Technique] = {
    "ai_service_use": Technique("MITRE ATLAS", *_ACCESS, "AML.T0040",
                                "AI Model Inference API Access"),
    "self_hosted_llm": Technique("MITRE ATLAS", *_ACCESS, "AML.T0040",
                                 "AI Model Inference API Access"),
    "mcp_server_use": Technique("MITRE ATLAS", "AML.TA0005", "Execution", "AML.T0053",
                                "AI Agent Tool Invocation"),
    "mcp_server": Technique("MITRE ATLAS", "AML.TA0005", "Execution", "AML.T0053",
                            "AI Agent Tool Invocation"),
    "cleartext_credential": Technique("MITRE ATLAS", "AML.TA0013", "Credential Access",
                                      "AML.T0055", "Unsecured Credentials"),
    "extraction_volume": Technique("MITRE ATLAS", "AML.TA0010", "Exfiltration", "AML.T0024",
                                   "Exfiltration via AI Inference API"),
    "bulk_upload": Technique("MITRE ATLAS", "AML.TA0010", "Exfiltration", "AML.T0025",
                             "Exfiltration via Cyber Means"),
    # ATLAS has no technique for hiding lookups in DoH/DoT; ATT&CK does.
    "encrypted_dns": Technique("MITRE ATT&CK", "TA0011", "Command and Control", "T1071.004",
                               "Application Layer Protocol: DNS"),
}

TITLES = {
    "ai_service_use": "AI service use",
    "mcp_server_use": "MCP server use",
    "self_hosted_llm": "Self-hosted LLM server",
    "mcp_server": "MCP server",
    "cleartext_credential": "Cleartext credential to AI service",
    "extraction_volume": "Large data volume from AI service",
    "bulk_upload": "Bulk upload to AI service",
    "encrypted_dns": "Encrypted DNS use",
}


def dumps(doc: Any) -> bytes:
    """Compact JSON as UTF-8 bytes."""
    if orjson is not None:
        try:
            return orjson.dumps(doc)
        except (TypeError, orjson.JSONEncodeError):
            pass   # e.g. an integer beyond 64 bits: the stdlib copes
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def title(f: dict[str, Any]) -> str:
    return TITLES.get(str(f.get("type")), str(f.get("type", "finding")).replace("_", " "))


def extra_keys(f: dict[str, Any]) -> list[str]:
    """Keys beyond the common envelope (the type-specific object, ``tls``,
    ``attributed_by``...): formats carry them whole so nothing is lost."""
    return [k for k in f if k not in ENVELOPE]


def carry(f: dict[str, Any], into: dict[str, Any]) -> dict[str, Any]:
    """``into`` plus the finding's service and every key beyond the envelope, whole
    (the ECS ``shadowai`` and OCSF ``unmapped`` objects)."""
    if f.get("service"):
        into["service"] = dict(f["service"])
    for key in extra_keys(f):
        into[key] = f[key]
    return into


def ja4s(f: dict[str, Any]) -> list[str]:
    """JA4 fingerprints of the client, from the ``tls`` object or ``tls.ja4`` evidence."""
    tls = f.get("tls")
    out = [str(x) for x in tls.get("ja4") or ()] if isinstance(tls, dict) else []
    return out + [v for v in evidence_values(f, "tls.ja4") if v not in out]


_sec_cache: dict[str, int] = {}


def ts_ms(rfc3339: str | None) -> int | None:
    """RFC 3339 (as findings.rfc3339 writes it) to epoch milliseconds."""
    if not rfc3339:
        return None
    head = rfc3339[:19]
    if len(rfc3339) == 27 and rfc3339[19] == "." and rfc3339[-1] == "Z":
        sec = _sec_cache.get(head)   # findings repeat seconds: parse each one once
        if sec is None:
            if len(_sec_cache) > 4096:
                _sec_cache.clear()
            sec = _sec_cache[head] = int(datetime.fromisoformat(head + "+00:00").timestamp())
        return sec * 1000 + int(rfc3339[20:26]) // 1000
    s = rfc3339[:-1] + "+00:00" if rfc3339.endswith("Z") else rfc3339
    return int(datetime.fromisoformat(s).astimezone(UTC).timestamp() * 1000)


def summary(f: dict[str, Any]) -> str:
    """One human line: who used what."""
    svc = f.get("service") or {}
    client = (f.get("client") or {}).get("ip") or "?"
    server = f.get("server") or {}
    target = svc.get("name") or server.get("name") or server.get("ip") or "?"
    return f"{title(f)}: {client} -> {target}"


def evidence_by_kind(f: dict[str, Any]) -> dict[str, list[str]]:
    """Distinct evidence values per kind, in order, from one pass over the list."""
    out: dict[str, list[str]] = {}
    for e in f.get("evidence") or ():
        vals = out.setdefault(str(e.get("kind")), [])
        v = str(e.get("value"))
        if v not in vals:
            vals.append(v)
    return out


def evidence_values(f: dict[str, Any], kind: str) -> list[str]:
    out: list[str] = []
    for e in f.get("evidence") or ():
        if e.get("kind") == kind and e.get("value") not in out:
            out.append(str(e["value"]))
    return out
