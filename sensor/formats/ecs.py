"""Elastic Common Schema 9.x documents: findings as alerts, inventory records as assets.

Custom (non-ECS) fields, documented in docs/sinks.md: ``tls.client.ja4`` (ECS has
``ja3`` only) and everything under ``shadowai.*`` (the finding's own counts and its
type-specific object, kept whole so nothing is lost in translation).
"""

from __future__ import annotations

from typing import Any

from sensor.formats.common import (
    PRODUCT,
    SEVERITY_RANK,
    TECHNIQUES,
    VENDOR,
    carry,
    evidence_by_kind,
    ja4s,
    summary,
    title,
)

ECS_VERSION = "9.0.0"
# event.severity is a number: keep the sensor's order, 1 (info) .. 5 (critical).
_RISK = {"info": 10.0, "low": 25.0, "medium": 50.0, "high": 75.0, "critical": 95.0}
_CATEGORY_TYPE = {
    "encrypted_dns": (["network"], ["protocol"]),
    "cleartext_credential": (["network", "authentication"], ["info"]),
}


def ecs_mac(mac: str | None) -> str | None:
    """ECS wants RFC 7042 notation: upper-case octets joined by hyphens."""
    return mac.replace(":", "-").upper() if mac else None


def _observer() -> dict[str, Any]:
    return {"type": "sensor", "vendor": VENDOR, "product": PRODUCT}


def _put(d: dict[str, Any], key: str, value: Any) -> None:
    if value is not None and value != [] and value != {}:
        d[key] = value


def finding_to_ecs(f: dict[str, Any]) -> dict[str, Any]:
    """One finding dict (native envelope) as an ECS alert document (nested form)."""
    ftype = str(f["type"])
    sev = str(f.get("severity", "medium"))
    client = f.get("client") or {}
    server = f.get("server") or {}
    service = f.get("service") or None
    counts = f.get("counts") or {}
    cats, types = _CATEGORY_TYPE.get(ftype, (["network"], ["connection"]))

    event: dict[str, Any] = {
        "kind": "alert", "category": cats, "type": types, "action": ftype, "code": ftype,
        "id": f["id"], "dataset": "shadowai.finding", "module": "shadowai",
        "provider": PRODUCT, "severity": SEVERITY_RANK.get(sev, 2) + 1,
        "risk_score": _RISK.get(sev, 50.0), "start": f.get("first_seen"),
        "end": f.get("last_seen"),
    }
    source: dict[str, Any] = {}
    if client.get("ip"):   # server-centred findings have no client
        source["ip"] = client["ip"]
        _put(source, "mac", ecs_mac(client.get("mac")))
        _put(source, "domain", client.get("hostname"))
        _put(source, "bytes", counts.get("bytes_client_to_server"))
    dest: dict[str, Any] = {}
    _put(dest, "ip", server.get("ip"))
    _put(dest, "port", server.get("port"))
    _put(dest, "domain", server.get("name"))
    _put(dest, "bytes", counts.get("bytes_server_to_client"))

    line = summary(f)
    name = title(f)
    ev = evidence_by_kind(f)
    doc: dict[str, Any] = {
        "@timestamp": f.get("last_seen"), "ecs": {"version": ECS_VERSION},
        "message": line, "event": event, "observer": _observer(),
    }
    _put(doc, "source", source)
    _put(doc, "destination", dest)
    network: dict[str, Any] = {}
    if "packets" in counts:
        network["packets"] = counts["packets"]
    if "bytes_client_to_server" in counts or "bytes_server_to_client" in counts:
        network["bytes"] = (counts.get("bytes_client_to_server", 0)
                            + counts.get("bytes_server_to_client", 0))
    _put(doc, "network", network)

    sni = ev.get("tls.sni", []) + ev.get("quic.sni", [])
    ja4 = ja4s(f)
    tls_client: dict[str, Any] = {}
    if sni:
        tls_client["server_name"] = sni[0]
    if ja4:
        tls_client["ja4"] = ja4[0]  # custom field: ECS defines no JA4 field
    if tls_client:
        doc["tls"] = {"client": tls_client}
    queries = ev.get("dns.query", [])
    if queries:
        doc["dns"] = {"question": {"name": queries[0]}}
    user = client.get("user")
    if user:
        doc["user"] = {"name": user}

    ips = [ip for ip in (client.get("ip"), server.get("ip")) if ip]
    hosts = [h for h in [client.get("hostname"), server.get("name"), *sni, *queries,
                         *ev.get("http.host", ())] if h]
    related: dict[str, Any] = {}
    _put(related, "ip", list(dict.fromkeys(ips)))
    _put(related, "hosts", list(dict.fromkeys(hosts)))
    _put(related, "user", [user] if user else [])
    _put(doc, "related", related)

    rule = {"id": ftype, "name": name, "ruleset": PRODUCT, "description": line}
    if service:
        rule["category"] = str(service.get("category", ""))
    doc["rule"] = rule
    t = TECHNIQUES.get(ftype)
    if t is not None:
        doc["threat"] = {"framework": t.framework,
                         "tactic": {"id": [t.tactic_id], "name": [t.tactic_name],
                                    "reference": [t.tactic_url]},
                         "technique": {"id": [t.technique_id], "name": [t.technique_name],
                                       "reference": [t.technique_url]}}
    doc["shadowai"] = carry(f, {"finding": {"id": f["id"], "type": ftype, "severity": sev,
                                            "schema": f.get("schema")},
                                "counts": dict(counts),
                                "evidence": list(f.get("evidence") or [])})
    return doc


def asset_to_ecs(rec: dict[str, Any]) -> dict[str, Any]:
    """An inventory record ({ip, mac?, hostname?, user?, first_seen, last_seen, ...}) as
    an ECS asset document (event.kind: asset); unknown keys go under ``shadowai.asset``."""
    host: dict[str, Any] = {}
    if rec.get("ip"):
        host["ip"] = [rec["ip"]]
    if rec.get("mac"):
        host["mac"] = [ecs_mac(rec["mac"])]
    if rec.get("hostname"):
        host["hostname"] = rec["hostname"]
        host["name"] = rec["hostname"]
    event: dict[str, Any] = {"kind": "asset", "category": ["host"], "type": ["info"],
                             "dataset": "shadowai.asset", "module": "shadowai",
                             "provider": PRODUCT}
    if rec.get("id"):
        event["id"] = rec["id"]
    _put(event, "start", rec.get("first_seen"))
    _put(event, "end", rec.get("last_seen"))
    doc: dict[str, Any] = {"@timestamp": rec.get("last_seen") or rec.get("first_seen"),
                           "ecs": {"version": ECS_VERSION}, "event": event,
                           "observer": _observer(), "host": host,
                           "message": f"asset {rec.get('hostname') or rec.get('ip') or '?'}"}
    if rec.get("user"):
        doc["user"] = {"name": rec["user"]}
    related: dict[str, Any] = {}
    _put(related, "ip", [rec["ip"]] if rec.get("ip") else [])
    _put(related, "hosts", [rec["hostname"]] if rec.get("hostname") else [])
    _put(related, "user", [rec["user"]] if rec.get("user") else [])
    _put(doc, "related", related)
    doc["shadowai"] = {"asset": dict(rec)}
    return doc
