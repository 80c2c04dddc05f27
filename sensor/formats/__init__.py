"""Output formats: native JSON, ECS, OCSF and CEF, each from the native finding dict."""

from __future__ import annotations

from typing import Any

from sensor.errors import InputError
from sensor.formats.cef import finding_to_cef
from sensor.formats.common import dumps
from sensor.formats.ecs import asset_to_ecs, finding_to_ecs
from sensor.formats.ocsf import finding_to_ocsf

FORMATS = ("native", "ecs", "ocsf", "cef")


def check_format(name: str) -> str:
    if name not in FORMATS:
        raise InputError(f"unknown output format {name!r} (use one of {', '.join(FORMATS)})")
    return name


def render_doc(fmt: str, rec: dict[str, Any], kind: str = "finding") -> dict[str, Any] | str | None:
    """The record in ``fmt`` (a dict, or a str for CEF); None if the format has no
    form for this record kind (assets exist in native and ECS only)."""
    if kind == "asset":
        if fmt == "ecs":
            return asset_to_ecs(rec)
        return rec if fmt == "native" else None
    if fmt == "ecs":
        return finding_to_ecs(rec)
    if fmt == "ocsf":
        return finding_to_ocsf(rec)
    if fmt == "cef":
        return finding_to_cef(rec)
    return rec


def render(fmt: str, rec: dict[str, Any], kind: str = "finding") -> bytes | None:
    """The record encoded as bytes: compact JSON, or the CEF line (no newline)."""
    doc = render_doc(fmt, rec, kind)
    if doc is None:
        return None
    if isinstance(doc, str):
        return doc.encode()
    return dumps(doc)
