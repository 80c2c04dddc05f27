"""Headline numbers shared by every export (JSON, CycloneDX properties, HTML report)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sensor.inventory.store import AssetSet

ALERT_SEVERITIES = frozenset({"high", "critical"})


def summary(findings: Sequence[dict[str, Any]] | None, assets: AssetSet) -> dict[str, int]:
    """Counts of assets, and of findings/alerts when findings are given."""
    out = {
        "ai_services": len(assets.services),
        "sanctioned_services": sum(1 for s in assets.services if s.sanctioned is True),
        "unsanctioned_services": sum(1 for s in assets.services if s.sanctioned is False),
        "clients": len(assets.clients),
        "users": len(assets.users),
        "self_hosted_servers": len(assets.servers),
        "models": sum(len(s.models) for s in assets.servers),
        "mcp_servers": len(assets.mcp_servers),
        "mcp_tools": sum(len(m.tools) for m in assets.mcp_servers),
        "bytes_to_ai_services": sum(s.bytes_client_to_server for s in assets.services),
    }
    if findings:
        out["findings"] = len(findings)
        out["alerts"] = sum(1 for f in findings if f.get("severity") in ALERT_SEVERITIES)
    return out


def size_text(n: int, largest: str = "TB") -> str:
    """Bytes for people (1024-based): ``512 B``, ``1.5 KB``...; ``largest``: the biggest unit."""
    f = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if f < 1024 or unit == largest:
            return f"{int(f)} {unit}" if unit == "B" else f"{f:.1f} {unit}"
        f /= 1024
    return str(n)
