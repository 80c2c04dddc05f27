"""OCSF 1.x Detection Finding (class 2004) events.

type_uid = class_uid * 100 + activity_id; every finding is reported as activity 1
(Create): the sensor re-emits an aggregated finding rather than tracking its life cycle.
"""

from __future__ import annotations

from typing import Any

from sensor.formats.common import (
    PRODUCT,
    TECHNIQUES,
    VENDOR,
    carry,
    evidence_values,
    summary,
    title,
    ts_ms,
)

OCSF_VERSION = "1.3.0"
CATEGORY_UID, CATEGORY_NAME = 2, "Findings"
CLASS_UID, CLASS_NAME = 2004, "Detection Finding"
ACTIVITY_ID, ACTIVITY_NAME = 1, "Create"
TYPE_UID = CLASS_UID * 100 + ACTIVITY_ID
SEVERITY_ID = {"info": 1, "low": 2, "medium": 3, "high": 4, "critical": 5}
SEVERITY_NAME = {1: "Informational", 2: "Low", 3: "Medium", 4: "High", 5: "Critical"}
# observable type_id values from the OCSF dictionary
OBS_HOSTNAME, OBS_IP, OBS_MAC, OBS_USER = 1, 2, 3, 4


def _endpoint(ip: str | None, **extra: Any) -> dict[str, Any] | None:
    ep = {"ip": ip} if ip else {}
    ep.update({k: v for k, v in extra.items() if v is not None})
    return ep or None


def finding_to_ocsf(f: dict[str, Any], product_version: str = "0.1.0") -> dict[str, Any]:
    ftype = str(f["type"])
    sev_id = SEVERITY_ID.get(str(f.get("severity")), 0)
    client = f.get("client") or {}
    server = f.get("server") or {}
    first, last = ts_ms(f.get("first_seen")), ts_ms(f.get("last_seen"))
    ftitle, line = title(f), summary(f)
    product = {"name": PRODUCT, "vendor_name": VENDOR, "version": product_version}

    info: dict[str, Any] = {
        "uid": f["id"], "title": ftitle, "desc": line, "types": [ftype],
        "analytic": {"uid": ftype, "name": ftitle, "type_id": 1, "type": "Rule"},
        "product": product,
    }
    if first is not None:
        info["first_seen_time"] = first
    if last is not None:
        info["last_seen_time"] = last
    tech = TECHNIQUES.get(ftype)
    if tech is not None:
        info["attacks"] = [{
            "tactic": {"uid": tech.tactic_id, "name": tech.tactic_name,
                       "src_url": tech.tactic_url},
            "technique": {"uid": tech.technique_id, "name": tech.technique_name,
                          "src_url": tech.technique_url},
        }]

    src = _endpoint(client.get("ip"), mac=client.get("mac"), hostname=client.get("hostname"))
    dst = _endpoint(server.get("ip"), port=server.get("port"), hostname=server.get("name"))
    evidence: dict[str, Any] = {}
    if src:
        evidence["src_endpoint"] = src
    if dst:
        evidence["dst_endpoint"] = dst
    queries = evidence_values(f, "dns.query")
    if queries:
        evidence["query"] = {"hostname": queries[0]}
    if client.get("user"):
        evidence["user"] = {"name": client["user"]}
    evidence["data"] = {"evidence": list(f.get("evidence") or []),
                        "counts": dict(f.get("counts") or {})}

    observables: list[dict[str, Any]] = []
    for name, type_id, tname, value in (
            ("evidences.src_endpoint.ip", OBS_IP, "IP Address", client.get("ip")),
            ("evidences.src_endpoint.mac", OBS_MAC, "MAC Address", client.get("mac")),
            ("evidences.dst_endpoint.ip", OBS_IP, "IP Address", server.get("ip")),
            ("evidences.dst_endpoint.hostname", OBS_HOSTNAME, "Hostname", server.get("name")),
            ("evidences.user.name", OBS_USER, "User Name", client.get("user"))):
        if value:
            observables.append({"name": name, "type_id": type_id, "type": tname,
                                "value": str(value)})

    doc: dict[str, Any] = {
        "activity_id": ACTIVITY_ID, "activity_name": ACTIVITY_NAME,
        "category_uid": CATEGORY_UID, "category_name": CATEGORY_NAME,
        "class_uid": CLASS_UID, "class_name": CLASS_NAME,
        "type_uid": TYPE_UID, "type_name": f"{CLASS_NAME}: {ACTIVITY_NAME}",
        "severity_id": sev_id, "severity": SEVERITY_NAME.get(sev_id, "Unknown"),
        "time": last if last is not None else 0,
        "message": line,
        "status_id": 1, "status": "New",
        "metadata": {"version": OCSF_VERSION, "uid": f["id"], "log_name": "finding",
                     "product": dict(product)},
        "finding_info": info,
        "evidences": [evidence],
    }
    if first is not None:
        doc["start_time"] = first
    if last is not None:
        doc["end_time"] = last
    if observables:
        doc["observables"] = observables
    doc["unmapped"] = carry(f, {"schema": f.get("schema")})
    return doc
