"""The AI-BOM: the inventory as a CycloneDX 1.6 JSON document.

* external AI services (and catalog MCP services) -> ``services[]``, outside the
  trust boundary, with provider, endpoints and a bi-directional data flow;
* self-hosted model servers -> ``application`` components, each model they
  serve -> a ``machine-learning-model`` component with a ``modelCard``;
  the server ``dependsOn`` its models;
* MCP servers seen on the wire -> ``services[]`` with their tools.

Everything the sensor adds is a property under the ``shadowai:`` namespace.
The root component (``metadata.component``) is the monitored network; it
depends on every service and server, so the graph is complete.
"""

from __future__ import annotations

import uuid
from typing import Any

from sensor.findings import rfc3339
from sensor.inventory.store import AssetSet, McpServerAsset, ServerAsset, ServiceAsset
from sensor.inventory.summary import summary

SPEC_VERSION = "1.6"
SCHEMA_URL = "http://cyclonedx.org/schema/bom-1.6.schema.json"
ROOT_REF = "shadowai:network"


def _props(pairs: list[tuple[str, Any]]) -> list[dict[str, str]]:
    out = []
    for k, v in pairs:
        if v is None:
            continue
        vals = v if isinstance(v, (list, tuple)) else [v]
        for x in vals:
            val = ("true" if x else "false") if isinstance(x, bool) else str(x)
            out.append({"name": f"shadowai:{k}", "value": val})
    return out


def _service(s: ServiceAsset) -> dict[str, Any]:
    return {
        "bom-ref": f"service:{s.id}",
        "provider": {"name": s.vendor or s.name},
        "name": s.name,
        "endpoints": [f"https://{e}" for e in s.endpoints],
        "x-trust-boundary": True,
        "trustZone": "external",
        "data": [{"flow": "bi-directional", "classification": "user-content",
                  "description": "prompts and files sent by clients; model output returned"}],
        "properties": _props([
            ("service.id", s.id), ("category", s.category),
            ("sanctioned", "unknown" if s.sanctioned is None else s.sanctioned),
            ("first_seen", rfc3339(s.first_ns)), ("last_seen", rfc3339(s.last_ns)),
            ("clients.count", len(s.clients)), ("users.count", len(s.users)),
            ("client", list(s.clients)), ("user", list(s.users)),
            ("counts.flows", s.flows), ("counts.bytes_client_to_server", s.bytes_client_to_server),
            ("counts.bytes_server_to_client", s.bytes_server_to_client),
            ("counts.dns_queries", s.dns_queries)]),
    }


def _mcp(m: McpServerAsset) -> dict[str, Any]:
    host = m.name or m.ip
    name = m.server_names[0] if m.server_names else f"MCP server {m.key}"
    return {
        "bom-ref": f"mcp:{m.key}",
        "name": name,
        "endpoints": [f"http://{host}:{m.port}" if m.port else f"http://{host}"],
        "x-trust-boundary": False,
        "trustZone": "internal",
        "data": [{"flow": "bi-directional", "classification": "tool-calls",
                  "description": "JSON-RPC tool calls from AI agents and their results"}],
        "properties": _props([
            ("kind", "mcp-server"), ("server.ip", m.ip), ("server.port", m.port),
            ("mcp.protocol_version", m.protocol_version), ("mcp.transport", list(m.transports)),
            ("mcp.server_name", list(m.server_names)), ("mcp.tool", list(m.tools)),
            ("mcp.tool_call", [f"{t}={n}" for t, n in m.tool_calls]),
            ("client", list(m.clients)), ("counts.exchanges", m.exchanges),
            ("first_seen", rfc3339(m.first_ns)), ("last_seen", rfc3339(m.last_ns))]),
    }


def _model_ref(srv: ServerAsset, model: str) -> str:
    return f"model:{srv.key}:{model}"


def _server(srv: ServerAsset) -> list[dict[str, Any]]:
    comp: dict[str, Any] = {
        "type": "application",
        "bom-ref": f"server:{srv.key}",
        "name": srv.product,
        "properties": _props([
            ("kind", "self-hosted-llm"), ("server.ip", srv.ip), ("server.port", srv.port),
            ("server.name", srv.name), ("authentication", srv.authentication),
            ("client", list(srv.clients)), ("counts.exchanges", srv.exchanges),
            ("first_seen", rfc3339(srv.first_ns)), ("last_seen", rfc3339(srv.last_ns))]),
    }
    if srv.vendor:
        comp["supplier"] = {"name": srv.vendor}
    if srv.version:
        comp["version"] = srv.version
    out = [comp]
    for model, pulled in [(m, False) for m in srv.models] + \
            [(m, True) for m in srv.pulled_models if m not in srv.models]:
        ref = _model_ref(srv, model)
        name, _, tag = model.partition(":")
        mc: dict[str, Any] = {
            "type": "machine-learning-model",
            "bom-ref": ref,
            "name": name or model,
            "modelCard": {
                "bom-ref": f"modelcard:{srv.key}:{model}",
                "modelParameters": {"task": "text-generation"},
                "properties": _props([("served_by", f"server:{srv.key}"),
                                      ("model.name", model), ("pulled_only", pulled)]),
            },
        }
        if tag:
            mc["version"] = tag
        out.append(mc)
    return out


def build_bom(assets: AssetSet, meta: dict[str, Any], *, now_ns: int,
              serial: str | None = None, tool_version: str = "0") -> dict[str, Any]:
    """A CycloneDX 1.6 BOM (a dict ready for json.dump) of the inventory."""
    services = [_service(s) for s in assets.services] + [_mcp(m) for m in assets.mcp_servers]
    components: list[dict[str, Any]] = []
    deps: list[dict[str, Any]] = []
    for srv in assets.servers:
        comps = _server(srv)
        components.extend(comps)
        deps.append({"ref": comps[0]["bom-ref"], "dependsOn": [c["bom-ref"] for c in comps[1:]]})
        deps.extend({"ref": c["bom-ref"]} for c in comps[1:])
    deps.extend({"ref": s["bom-ref"]} for s in services)
    top = [s["bom-ref"] for s in services] + [f"server:{srv.key}" for srv in assets.servers]
    deps.insert(0, {"ref": ROOT_REF, "dependsOn": top})
    totals = summary([], assets)
    versions = meta.get("versions") or {}
    return {
        "$schema": SCHEMA_URL,
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "serialNumber": serial or f"urn:uuid:{uuid.uuid4()}",
        "version": 1,
        "metadata": {
            "timestamp": rfc3339(now_ns),
            "lifecycles": [{"phase": "operations"}],
            "tools": {"components": [{"type": "application", "name": "shadowai-sensor",
                                      "version": tool_version,
                                      "bom-ref": "shadowai:tool"}]},
            "component": {"type": "platform", "bom-ref": ROOT_REF,
                          "name": "monitored network",
                          "description": "AI services, model servers and MCP servers seen in "
                                         "network traffic by shadowai-sensor"},
            "properties": _props(
                [("input", list(meta.get("inputs") or []))]
                + [(f"version.{k}", str(v)) for k, v in sorted(versions.items())]
                + [(f"summary.{k}", v) for k, v in totals.items()]),
        },
        "components": components,
        "services": services,
        "dependencies": deps,
    }
