"""``shadowai assets``: show or export the inventory (table, JSON, CSV, CycloneDX, HTML)."""

from __future__ import annotations

import csv
import io
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from sensor import __version__
from sensor.errors import InputError
from sensor.findings import rfc3339
from sensor.inventory.cyclonedx import build_bom
from sensor.inventory.store import AssetSet, Inventory, default_db_path
from sensor.inventory.summary import size_text, summary

ASSETS_SCHEMA = "shadowai.assets/v1"
FORMATS = ("table", "json", "csv", "cyclonedx", "html")


def _times(d: dict[str, Any]) -> dict[str, Any]:
    """first_ns/last_ns -> first_seen/last_seen (RFC 3339), tuples -> lists."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if k in ("first_ns", "last_ns"):
            out["first_seen" if k == "first_ns" else "last_seen"] = rfc3339(v)
        elif isinstance(v, tuple):
            out[k] = [list(x) if isinstance(x, tuple) else x for x in v]
        else:
            out[k] = v
    return out


def assets_json(assets: AssetSet, meta: dict[str, Any],
                findings: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The JSON export; ``summary`` holds the same numbers the HTML report shows."""
    return {
        "schema": ASSETS_SCHEMA,
        "summary": summary(findings, assets),
        "services": [_times(asdict(s)) for s in assets.services],
        "servers": [_times(asdict(s)) for s in assets.servers],
        "mcp_servers": [_times(asdict(s)) for s in assets.mcp_servers],
        "clients": [_times(asdict(s)) for s in assets.clients],
        "users": [_times(asdict(s)) for s in assets.users],
        "inputs": list(meta.get("inputs") or []),
        "versions": dict(meta.get("versions") or {}),
    }


CSV_FIELDS = ("kind", "id", "name", "vendor", "category", "sanctioned", "first_seen",
              "last_seen", "clients", "users", "flows", "bytes_client_to_server",
              "bytes_server_to_client", "details")


def assets_csv(assets: AssetSet) -> str:
    """One row per service, model server and MCP server (lists joined with ``;``)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    for s in assets.services:
        w.writerow({"kind": "service", "id": s.id, "name": s.name, "vendor": s.vendor,
                    "category": s.category,
                    "sanctioned": "" if s.sanctioned is None else str(s.sanctioned).lower(),
                    "first_seen": rfc3339(s.first_ns), "last_seen": rfc3339(s.last_ns),
                    "clients": ";".join(s.clients), "users": ";".join(s.users),
                    "flows": s.flows, "bytes_client_to_server": s.bytes_client_to_server,
                    "bytes_server_to_client": s.bytes_server_to_client,
                    "details": ";".join(s.endpoints)})
    for v in assets.servers:
        w.writerow({"kind": "self_hosted_llm", "id": v.key, "name": v.product,
                    "vendor": v.vendor, "category": "self-hosted-llm",
                    "first_seen": rfc3339(v.first_ns), "last_seen": rfc3339(v.last_ns),
                    "clients": ";".join(v.clients), "details": ";".join(v.models)})
    for m in assets.mcp_servers:
        w.writerow({"kind": "mcp_server", "id": m.key, "name": ";".join(m.server_names),
                    "category": "mcp-server", "first_seen": rfc3339(m.first_ns),
                    "last_seen": rfc3339(m.last_ns), "clients": ";".join(m.clients),
                    "details": ";".join(m.tools)})
    return buf.getvalue()


def _grid(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
            for r in [header, *rows]]


def _short(items: tuple[str, ...], n: int = 3) -> str:
    return ", ".join(items[:n]) + (f" +{len(items) - n}" if len(items) > n else "") or "-"


def assets_table(assets: AssetSet) -> str:
    lines = ["AI services used"]
    rows: list[tuple[str, ...]] = [(s.name, s.category,
             "yes" if s.sanctioned else "no" if s.sanctioned is False else "?",
             _short(s.users or s.clients), rfc3339(s.first_ns)[:19], rfc3339(s.last_ns)[:19],
             str(s.flows), size_text(s.bytes_client_to_server, "GB"),
             size_text(s.bytes_server_to_client, "GB"))
            for s in assets.services]
    lines += _grid(("SERVICE", "CATEGORY", "SANCTIONED", "USERS/CLIENTS", "FIRST SEEN",
                    "LAST SEEN", "FLOWS", "UP", "DOWN"), rows) if rows else ["  (none)"]
    lines += ["", "Self-hosted model servers"]
    rows = [(v.key, v.product + (f" {v.version}" if v.version else ""),
             v.authentication or "?", _short(v.models, 5), _short(v.clients))
            for v in assets.servers]
    lines += _grid(("SERVER", "PRODUCT", "AUTH", "MODELS", "CLIENTS"), rows) if rows \
        else ["  (none)"]
    lines += ["", "MCP servers"]
    rows = [(m.key, _short(m.server_names, 1), _short(m.tools, 6), _short(m.clients))
            for m in assets.mcp_servers]
    lines += _grid(("SERVER", "NAME", "TOOLS", "CLIENTS"), rows) if rows else ["  (none)"]
    s = summary(None, assets)
    lines += ["", f"{s['ai_services']} AI services ({s['unsanctioned_services']} unsanctioned), "
              f"{s['clients']} clients, {s['users']} users, {s['self_hosted_servers']} "
              f"model servers, {s['mcp_servers']} MCP servers"]
    return "\n".join(lines) + "\n"


def render(fmt: str, inv: Inventory, now_ns: int) -> str:
    """The inventory in one of :data:`FORMATS` (html is written by the caller)."""
    a = inv.assets()
    if fmt == "table":
        return assets_table(a)
    if fmt == "json":
        return json.dumps(assets_json(a, inv.meta(), inv.findings()), indent=2) + "\n"
    if fmt == "csv":
        return assets_csv(a)
    if fmt == "cyclonedx":
        return json.dumps(build_bom(a, inv.meta(), now_ns=now_ns, tool_version=__version__),
                          indent=2) + "\n"
    raise InputError(f"unknown format {fmt!r}")


@click.command("assets")
@click.option("--db", "db", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Inventory database (default: $SHADOWAI_STATE_DIR/inventory.db, else "
                   "$XDG_STATE_HOME/shadowai/inventory.db).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
              help="table, json, csv, cyclonedx (CycloneDX 1.6 AI-BOM) or html (report).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write to FILE instead of stdout (required for html).")
def assets(db: Path | None, fmt: str, output: Path | None) -> None:
    """Show the AI asset inventory built by hunt/watch runs."""
    path = db or default_db_path()
    if not path.exists():
        raise click.ClickException(f"no inventory at {path} (run `shadowai hunt --db` first)")
    try:
        with Inventory(path) as inv:
            if fmt == "html":
                if output is None:
                    raise click.UsageError("--format html needs -o FILE")
                from sensor.report.html import write_report
                write_report(output, inv.findings(), inv.assets(), inv.meta())
                return
            text = render(fmt, inv, time.time_ns())
    except InputError as e:
        raise click.ClickException(str(e)) from None
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
