"""OCSF Detection Finding output checked against the vendored schema subset."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

import pytest

from sensor.formats.ocsf import OCSF_VERSION, finding_to_ocsf
from tests.sensor.formats._samples import TYPES, sample

SPEC = json.loads((Path(__file__).resolve().parents[3] / "sensor" / "schemas"
                   / "ocsf_detection_finding_subset.json").read_text())
OBJECTS: dict[str, Any] = SPEC["objects"]


def _check(kind: str, v: Any, where: str) -> None:
    if kind.endswith("[]"):
        assert isinstance(v, list), where
        for i, item in enumerate(v):
            _check(kind[:-2], item, f"{where}[{i}]")
        return
    if kind in OBJECTS:
        _check_object(kind, v, where)
    elif kind in ("string",):
        assert isinstance(v, str), where
    elif kind in ("integer", "timestamp", "port"):
        assert isinstance(v, int) and not isinstance(v, bool), where
        if kind == "timestamp":
            assert v > 1_000_000_000_000, f"{where}: timestamps are epoch milliseconds"
        if kind == "port":
            assert 0 <= v <= 65535, where
    elif kind == "ip":
        ipaddress.ip_address(v)
    elif kind == "mac":
        assert isinstance(v, str) and len(v.split(":")) == 6, where
    elif kind == "boolean":
        assert isinstance(v, bool), where
    elif kind in ("json", "array"):
        json.dumps(v)
    else:
        raise AssertionError(f"{where}: unknown type {kind}")


def _check_object(name: str, obj: Any, where: str) -> None:
    spec = OBJECTS[name]
    assert isinstance(obj, dict), where
    for k in spec["required"]:
        assert k in obj, f"{where}.{k} is required"
    if spec.get("at_least_one"):
        assert any(k in obj for k in spec["at_least_one"]), f"{where}: needs one of ..."
    for k, v in obj.items():
        assert k in spec["attributes"], f"{where}.{k} is not an attribute of {name}"
        _check(spec["attributes"][k], v, f"{where}.{k}")
        enum = spec.get("enums", {}).get(k)
        if enum:
            assert str(v) in enum, f"{where}.{k}={v}"


def validate_ocsf(doc: dict[str, Any]) -> None:
    cls = SPEC["class"]
    for k in cls["required"]:
        assert k in doc, f"{k} is required"
    for k, v in doc.items():
        assert k in cls["attributes"], f"{k} is not an attribute of {cls['name']}"
        _check(cls["attributes"][k], v, k)
    assert doc["class_uid"] == cls["uid"] and doc["category_uid"] == cls["category_uid"]
    assert doc["type_uid"] == doc["class_uid"] * 100 + doc["activity_id"]
    assert str(doc["activity_id"]) in cls["activity_id"]
    assert str(doc["severity_id"]) in cls["severity_id"]
    assert doc.get("severity", cls["severity_id"][str(doc["severity_id"])]) \
        == cls["severity_id"][str(doc["severity_id"])]
    if "activity_name" in doc:
        assert doc["activity_name"] == cls["activity_id"][str(doc["activity_id"])]
    if "status_id" in doc:
        assert str(doc["status_id"]) in cls["status_id"]
    assert doc["metadata"]["version"].startswith("1.")


@pytest.mark.parametrize("ftype", TYPES)
@pytest.mark.parametrize("sev", ["info", "low", "medium", "high", "critical"])
def test_every_type_and_severity_is_valid(ftype: str, sev: str) -> None:
    f = sample(2, ftype, severity=sev, client={"ip": "10.9.9.9", "mac": "02:00:00:00:00:02",
                                                "hostname": "pc-1", "user": "dave"})
    validate_ocsf(finding_to_ocsf(f))


def test_mapping(finding: dict[str, Any]) -> None:
    doc = finding_to_ocsf(finding)
    assert (doc["class_uid"], doc["type_uid"], doc["severity_id"]) == (2004, 200401, 3)
    assert doc["metadata"]["version"] == OCSF_VERSION
    info = doc["finding_info"]
    assert info["uid"] == finding["id"]
    assert info["attacks"][0]["technique"]["uid"] == "AML.T0040"
    assert info["attacks"][0]["tactic"]["uid"] == "AML.TA0000"
    ev = doc["evidences"][0]
    assert ev["src_endpoint"] == {"ip": finding["client"]["ip"], "mac": "02:00:00:00:00:01"}
    assert ev["dst_endpoint"] == {"ip": "104.18.7.192", "port": 443,
                                  "hostname": "api.openai.com"}
    assert ev["query"] == {"hostname": "api.openai.com"}
    assert doc["time"] == doc["end_time"] and doc["start_time"] < doc["end_time"]
    assert doc["unmapped"]["type_detail"] == {"n": 0, "note": "x"}
    assert doc["unmapped"]["service"]["id"] == "openai"


def test_validator_catches_wrong_type_uid(finding: dict[str, Any]) -> None:
    doc = finding_to_ocsf(finding)
    doc["type_uid"] = 2004
    with pytest.raises(AssertionError):
        validate_ocsf(doc)
