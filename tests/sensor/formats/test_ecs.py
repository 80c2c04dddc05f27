"""ECS output checked against the vendored official field definitions."""

from __future__ import annotations

import ipaddress
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from sensor.formats.ecs import ECS_VERSION, asset_to_ecs, finding_to_ecs
from tests.sensor.formats._samples import TYPES, sample

SPEC = json.loads((Path(__file__).resolve().parents[3] / "sensor" / "schemas"
                   / "ecs_fields_subset.json").read_text())
FIELDS: dict[str, dict[str, Any]] = SPEC["fields"]
CUSTOM = ("shadowai.",)            # our namespace, documented in docs/sinks.md
CUSTOM_FIELDS = {"tls.client.ja4"}  # ECS has no JA4 field yet


def _flatten(doc: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in doc.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict) and FIELDS.get(name, {}).get("type") != "object" \
                and not name.startswith(CUSTOM):
            out.update(_flatten(v, name + "."))
        else:
            out[name] = v
    return out


def _check_value(name: str, ftype: str, v: Any) -> None:
    if ftype in ("keyword", "match_only_text", "wildcard", "constant_keyword"):
        assert isinstance(v, str), name
    elif ftype == "long":
        assert isinstance(v, int) and not isinstance(v, bool), name
    elif ftype in ("float", "scaled_float"):
        assert isinstance(v, int | float), name
    elif ftype == "ip":
        ipaddress.ip_address(v)
    elif ftype == "date":
        datetime.fromisoformat(v.replace("Z", "+00:00"))
    elif ftype == "boolean":
        assert isinstance(v, bool), name
    elif ftype == "object":
        assert isinstance(v, dict), name
    else:
        raise AssertionError(f"{name}: type {ftype} not handled")


def validate_ecs(doc: dict[str, Any]) -> None:
    flat = _flatten(doc)
    for name, v in flat.items():
        if name.startswith(CUSTOM) or name in CUSTOM_FIELDS:
            continue
        assert name in FIELDS, f"{name} is not an ECS field"
        spec = FIELDS[name]
        if spec["array"]:
            assert isinstance(v, list), f"{name} must be an array"
        for item in v if isinstance(v, list) else [v]:
            _check_value(name, spec["type"], item)
        if name.endswith(".mac") or name.endswith("mac"):
            for item in v if isinstance(v, list) else [v]:
                assert re.match(SPEC["mac_pattern"], item), name
    for name, allowed in SPEC["allowed"].items():
        values = flat.get(name)
        for item in values if isinstance(values, list) else [values] if values else []:
            assert item in allowed, f"{name}={item} not an allowed value"
    for cat in flat.get("event.category", []):
        exp = SPEC["expected_types_by_category"].get(cat)
        if exp:
            assert set(flat["event.type"]) <= set(exp), (cat, flat["event.type"])
    assert "@timestamp" in flat and flat["ecs.version"] == ECS_VERSION


@pytest.mark.parametrize("ftype", TYPES)
def test_every_type_is_valid_ecs(ftype: str) -> None:
    f = sample(3, ftype, client={"ip": "10.1.2.3", "mac": "02:ab:00:00:00:01",
                                 "hostname": "laptop-7", "user": "alice"})
    f["evidence"].append({"kind": "tls.ja4", "value": "t13d1516h2_8daaf6152771_02713d6af862",
                          "count": 1})
    doc = finding_to_ecs(f)
    validate_ecs(doc)
    assert doc["event"]["kind"] == "alert"
    assert doc["event"]["id"] == f["id"]
    assert doc["threat"]["technique"]["id"][0].startswith(("AML.T", "T1"))


def test_fields_carry_the_finding(finding: dict[str, Any]) -> None:
    finding["client"]["user"] = "bob"
    doc = finding_to_ecs(finding)
    assert doc["source"] == {"ip": finding["client"]["ip"], "mac": "02-00-00-00-00-01",
                             "bytes": 5000}
    assert doc["destination"] == {"ip": "104.18.7.192", "port": 443,
                                  "domain": "api.openai.com", "bytes": 90000}
    assert doc["tls"]["client"]["server_name"] == "api.openai.com"
    assert doc["dns"]["question"]["name"] == "api.openai.com"
    assert doc["user"]["name"] == "bob"
    assert doc["related"]["ip"] == [finding["client"]["ip"], "104.18.7.192"]
    assert "bob" in doc["related"]["user"]
    assert doc["rule"]["id"] == "ai_service_use"
    assert doc["threat"]["framework"] == "MITRE ATLAS"
    assert doc["threat"]["technique"]["id"] == ["AML.T0040"]
    assert doc["network"] == {"packets": 40, "bytes": 95000}
    assert doc["@timestamp"] == finding["last_seen"]
    # nothing of the finding is lost: the type-specific object rides along
    assert doc["shadowai"]["type_detail"] == {"n": 0, "note": "x"}
    assert doc["shadowai"]["counts"] == finding["counts"]


def test_server_centred_finding_without_client_or_service() -> None:
    f = sample(1, "mcp_server", client=None, service=None)
    doc = finding_to_ecs(f)
    validate_ecs(doc)
    assert "source" not in doc and "service" not in doc["shadowai"]


def test_asset_record_is_an_ecs_asset() -> None:
    rec = {"id": "a1", "ip": "10.0.0.9", "mac": "02:00:00:00:00:09", "hostname": "build-3",
           "user": "carol", "first_seen": "2026-11-26T20:00:00.000000Z",
           "last_seen": "2026-11-26T21:00:00.000000Z", "services": ["openai"]}
    doc = asset_to_ecs(rec)
    validate_ecs(doc)
    assert doc["event"]["kind"] == "asset"
    assert doc["host"]["mac"] == ["02-00-00-00-00-09"]
    assert doc["shadowai"]["asset"]["services"] == ["openai"]


def test_validator_rejects_non_ecs_fields(finding: dict[str, Any]) -> None:
    doc = finding_to_ecs(finding)
    doc["source"]["client_ip"] = "1.2.3.4"
    with pytest.raises(AssertionError):
        validate_ecs(doc)
    doc = finding_to_ecs(finding)
    doc["event"]["kind"] = "finding"
    with pytest.raises(AssertionError):
        validate_ecs(doc)
