"""The hunt report: one self-contained HTML file (inline CSS and SVG, no script, no fetch).

Every number shown is also in a ``data-*`` attribute (``data-metric``/``data-value``
for the headline numbers, ``data-service``... for rows) so tests and tools can
read it back from the DOM. The report shows only what the findings and the
inventory carry: pseudonymized findings stay pseudonymized.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

from sensor.findings import rfc3339
from sensor.inventory.store import AssetSet, parse_ts
from sensor.inventory.summary import ALERT_SEVERITIES, size_text, summary

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2330;
background:#f4f6f9}
header{background:#1d2a44;color:#fff;padding:18px 28px}
header h1{margin:0;font-size:22px}header p{margin:4px 0 0;opacity:.8;font-size:13px}
main{padding:20px 28px;max-width:1200px}
section{background:#fff;border-radius:8px;padding:14px 18px;margin:0 0 18px;
box-shadow:0 1px 2px rgba(0,0,0,.08)}
h2{font-size:16px;margin:0 0 10px}h3{font-size:14px;margin:12px 0 6px}
.metrics{display:flex;flex-wrap:wrap;gap:12px}
.metric{background:#fff;border-radius:8px;padding:10px 16px;min-width:120px;
box-shadow:0 1px 2px rgba(0,0,0,.08)}
.metric b{display:block;font-size:26px}.metric span{font-size:12px;color:#5b6478}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #e6e9ef;vertical-align:top}
th{background:#f0f2f6}td.n{text-align:right;font-variant-numeric:tabular-nums}
.sev-high,.sev-critical{color:#b3261e;font-weight:600}.sev-medium{color:#a15c00}
.no{color:#b3261e}.yes{color:#1b7f3b}.muted{color:#7a8296}
code{font-size:12px;background:#f0f2f6;padding:1px 4px;border-radius:3px}
ul.ev{margin:0;padding-left:16px}
"""

_SANC_COLOURS = {"sanctioned": "#1b7f3b", "unsanctioned": "#d0453a", "unknown": "#9aa3b5"}


def _e(v: Any) -> str:
    return escape("" if v is None else str(v), quote=True)


def _sanc(v: bool | None) -> str:
    return "unknown" if v is None else "sanctioned" if v else "unsanctioned"


def _category_chart(assets: AssetSet) -> str:
    """Horizontal stacked bars: services per category, split by sanctioned status."""
    per: dict[str, Counter[str]] = defaultdict(Counter)
    for s in assets.services:
        per[s.category or "unknown"][_sanc(s.sanctioned)] += 1
    if not per:
        return '<p class="muted">No AI services.</p>'
    cats = sorted(per, key=lambda c: (-sum(per[c].values()), c))
    top = max(sum(c.values()) for c in per.values())
    row_h, label_w, bar_w = 24, 170, 420
    h = row_h * len(cats) + 30
    out = [f'<svg role="img" aria-label="AI services by category" width="{label_w + bar_w + 60}"'
           f' height="{h}" xmlns="http://www.w3.org/2000/svg" font-size="12">']
    for i, cat in enumerate(cats):
        y = i * row_h + 4
        total = sum(per[cat].values())
        out.append(f'<g data-category="{_e(cat)}" data-count="{total}">'
                   f'<text x="0" y="{y + 14}">{_e(cat)}</text>')
        x = float(label_w)
        for status in ("unsanctioned", "unknown", "sanctioned"):
            n = per[cat][status]
            if not n:
                continue
            w = bar_w * n / top
            out.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{row_h - 8}" '
                       f'fill="{_SANC_COLOURS[status]}" data-status="{status}" data-count="{n}">'
                       f'<title>{_e(cat)}: {n} {status}</title></rect>')
            x += w
        out.append(f'<text x="{x + 6:.1f}" y="{y + 14}">{total}</text></g>')
    ly = len(cats) * row_h + 18
    lx = 0
    for status, colour in _SANC_COLOURS.items():
        out.append(f'<rect x="{lx}" y="{ly - 10}" width="10" height="10" fill="{colour}"/>'
                   f'<text x="{lx + 14}" y="{ly}">{status}</text>')
        lx += 110
    out.append("</svg>")
    return "".join(out)


def _timeline(findings: Sequence[dict[str, Any]], names: dict[str, str]) -> str:
    """One lane per service; one bar per finding from first to last seen."""
    lanes: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for f in findings:
        s = f.get("service")
        if not isinstance(s, dict) or not isinstance(s.get("id"), str):
            continue
        a, b = parse_ts(f.get("first_seen")), parse_ts(f.get("last_seen"))
        if a is None:
            continue
        lanes[s["id"]].append((a, b if b is not None and b >= a else a))
        names.setdefault(s["id"], str(s.get("name") or s["id"]))
    if not lanes:
        return '<p class="muted">No timed AI use.</p>'
    t0 = min(a for v in lanes.values() for a, _ in v)
    t1 = max(b for v in lanes.values() for _, b in v)
    span = max(t1 - t0, 1)
    row_h, label_w, width = 22, 170, 640
    order = sorted(lanes, key=lambda k: (min(a for a, _ in lanes[k]), k))
    h = row_h * len(order) + 34
    out = [f'<svg role="img" aria-label="Timeline of AI use" width="{label_w + width + 10}" '
           f'height="{h}" xmlns="http://www.w3.org/2000/svg" font-size="12">']
    for i, sid in enumerate(order):
        y = i * row_h + 4
        out.append(f'<g data-timeline-service="{_e(sid)}" data-bars="{len(lanes[sid])}">'
                   f'<text x="0" y="{y + 13}">{_e(names[sid])}</text>'
                   f'<line x1="{label_w}" x2="{label_w + width}" y1="{y + 9}" y2="{y + 9}" '
                   'stroke="#e6e9ef"/>')
        for a, b in sorted(lanes[sid]):
            x = label_w + width * (a - t0) / span
            w = max(width * (b - a) / span, 3.0)
            out.append(f'<rect x="{x:.1f}" y="{y + 2}" width="{w:.1f}" height="14" rx="2" '
                       f'fill="#3a6fd8"><title>{_e(names[sid])}: {_e(rfc3339(a))} - '
                       f'{_e(rfc3339(b))}</title></rect>')
        out.append("</g>")
    ay = len(order) * row_h + 20
    out.append(f'<text x="{label_w}" y="{ay}">{_e(rfc3339(t0)[:19])}Z</text>'
               f'<text x="{label_w + width}" y="{ay}" text-anchor="end">'
               f'{_e(rfc3339(t1)[:19])}Z</text></svg>')
    return "".join(out)


def _table(header: Sequence[str], rows: list[str], empty: str) -> str:
    if not rows:
        return f'<p class="muted">{_e(empty)}</p>'
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _services(assets: AssetSet) -> str:
    rows = []
    for s in sorted(assets.services, key=lambda s: (-s.bytes_client_to_server, s.name)):
        st = _sanc(s.sanctioned)
        who = ", ".join(s.users or s.clients)
        rows.append(
            f'<tr data-service="{_e(s.id)}" data-flows="{s.flows}" '
            f'data-bytes-up="{s.bytes_client_to_server}" data-clients="{len(s.clients)}" '
            f'data-sanctioned="{st}"><td>{_e(s.name)}<br><span class="muted">{_e(s.vendor)}'
            f'</span></td><td>{_e(s.category)}</td>'
            f'<td class="{"yes" if s.sanctioned else "no" if s.sanctioned is False else ""}">'
            f'{st}</td><td>{_e(who)}</td><td>{_e(rfc3339(s.first_ns)[:19])}</td>'
            f'<td>{_e(rfc3339(s.last_ns)[:19])}</td><td class="n">{s.flows}</td>'
            f'<td class="n">{_e(size_text(s.bytes_client_to_server))}</td>'
            f'<td class="n">{_e(size_text(s.bytes_server_to_client))}</td></tr>')
    return _table(("Service", "Category", "Status", "Users / clients", "First seen (UTC)",
                   "Last seen (UTC)", "Flows", "Up", "Down"), rows, "No AI services seen.")


def _top(findings: Sequence[dict[str, Any]], assets: AssetSet) -> str:
    """Top users and devices by AI services used and bytes sent to them."""
    up: Counter[str] = Counter()
    for f in findings:
        c, n = f.get("client"), f.get("counts")
        if f.get("type") in ("ai_service_use", "mcp_server_use") and isinstance(c, dict) \
                and isinstance(n, dict) and isinstance(c.get("ip"), str):
            up[c["ip"]] += int(n.get("bytes_client_to_server") or 0)
    dev = sorted(assets.clients, key=lambda c: (-len(c.services), -up[c.ip], c.ip))[:10]
    rows = [f'<tr data-device="{_e(c.ip)}" data-services="{len(c.services)}" '
            f'data-bytes-up="{up[c.ip]}"><td>{_e(c.ip)}</td><td>{_e(c.hostname or "")}</td>'
            f'<td>{_e(c.mac or "")}</td><td>{_e(c.user or "")}</td>'
            f'<td class="n">{len(c.services)}</td><td class="n">{_e(size_text(up[c.ip]))}</td></tr>'
            for c in dev]
    out = "<h3>Devices</h3>" + _table(("Client", "Host", "MAC", "User", "AI services",
                                       "Sent to AI"), rows, "No clients.")
    users = sorted(assets.users, key=lambda u: (-len(u.services), u.name))[:10]
    rows = [f'<tr data-user="{_e(u.name)}" data-services="{len(u.services)}"><td>{_e(u.name)}'
            f'</td><td>{_e(", ".join(u.clients))}</td><td class="n">{len(u.services)}</td></tr>'
            for u in users]
    return out + "<h3>Users</h3>" + _table(("User", "Clients", "AI services"), rows,
                                           "No users attributed (no identity source).")


def _servers(assets: AssetSet) -> str:
    rows = [f'<tr data-server="{_e(v.key)}" data-models="{len(v.models)}"><td>{_e(v.key)}</td>'
            f'<td>{_e(v.product)} {_e(v.version or "")}</td>'
            f'<td class="{"no" if v.authentication == "none" else ""}">'
            f'{_e(v.authentication or "unknown")}</td><td>{_e(", ".join(v.models))}</td>'
            f'<td>{_e(", ".join(v.clients))}</td><td class="n">{v.exchanges}</td></tr>'
            for v in assets.servers]
    out = _table(("Server", "Product", "Authentication", "Models", "Clients", "Exchanges"),
                 rows, "No self-hosted model servers.")
    rows = [f'<tr data-mcp-server="{_e(m.key)}" data-tools="{len(m.tools)}"><td>{_e(m.key)}'
            f'</td><td>{_e(", ".join(m.server_names))}</td><td>{_e(", ".join(m.tools))}</td>'
            f'<td>{_e(", ".join(f"{t} x{n}" for t, n in m.tool_calls))}</td>'
            f'<td>{_e(", ".join(m.clients))}</td></tr>' for m in assets.mcp_servers]
    return out + "<h3>MCP servers</h3>" + _table(
        ("Server", "Name", "Tools listed", "Tool calls", "Clients"), rows, "No MCP servers.")


def _alerts(findings: Sequence[dict[str, Any]]) -> str:
    alerts = [f for f in findings if f.get("severity") in ALERT_SEVERITIES]
    alerts.sort(key=lambda f: (f.get("severity") != "critical", str(f.get("first_seen"))))
    rows = []
    for f in alerts:
        c, s, srv = f.get("client"), f.get("service"), f.get("server")
        who = ""
        if isinstance(c, dict):
            who = " / ".join(str(c[k]) for k in ("user", "hostname", "ip") if c.get(k))
        what = s.get("name") if isinstance(s, dict) else None
        if not what and isinstance(srv, dict):
            what = srv.get("name") or srv.get("ip")
        ev = "".join(f"<li><code>{_e(x.get('kind'))}</code> {_e(x.get('value'))}"
                     f" <span class=\"muted\">x{_e(x.get('count'))}</span></li>"
                     for x in (f.get("evidence") or [])[:20] if isinstance(x, dict))
        sev = str(f.get("severity"))
        rows.append(f'<tr data-alert="{_e(f.get("id"))}" data-type="{_e(f.get("type"))}">'
                    f'<td class="sev-{_e(sev)}">{_e(sev)}</td><td>{_e(f.get("type"))}</td>'
                    f'<td>{_e(what)}</td><td>{_e(who)}</td>'
                    f'<td>{_e(str(f.get("first_seen"))[:19])}</td>'
                    f'<td><ul class="ev">{ev}</ul></td></tr>')
    return _table(("Severity", "Type", "About", "Who", "First seen (UTC)", "Evidence"), rows,
                  "No high or critical findings.")


def _provenance(meta: dict[str, Any]) -> str:
    inputs = "".join(f'<li data-input="{_e(i)}"><code>{_e(i)}</code></li>'
                     for i in meta.get("inputs") or [])
    versions = "".join(f'<tr data-version="{_e(k)}"><td>{_e(k)}</td><td><code>{_e(v)}</code>'
                       f"</td></tr>" for k, v in sorted((meta.get("versions") or {}).items()))
    return (f"<h3>Inputs</h3><ul>{inputs or '<li class=muted>none recorded</li>'}</ul>"
            f"<h3>Signature and model versions</h3>"
            + (f"<table><tbody>{versions}</tbody></table>" if versions
               else '<p class="muted">none recorded</p>'))


_LABELS = {
    "ai_services": "AI services", "unsanctioned_services": "unsanctioned",
    "sanctioned_services": "sanctioned", "clients": "clients", "users": "users",
    "self_hosted_servers": "model servers", "models": "models served",
    "mcp_servers": "MCP servers", "mcp_tools": "MCP tools", "findings": "findings",
    "alerts": "alerts (high/critical)", "bytes_to_ai_services": "sent to AI services",
}


def render_report(findings: Sequence[dict[str, Any]], assets: AssetSet,
                  meta: dict[str, Any]) -> str:
    nums = summary(list(findings), assets)
    nums.setdefault("findings", 0)
    nums.setdefault("alerts", 0)
    cards = "".join(
        f'<div class="metric" data-metric="{k}" data-value="{v}"><b>'
        f'{_e(size_text(v) if k == "bytes_to_ai_services" else v)}</b>'
        f'<span>{_e(_LABELS.get(k, k))}</span></div>' for k, v in nums.items())
    names = {s.id: s.name for s in assets.services}
    times = [t for f in findings for t in (parse_ts(f.get("first_seen")),
                                           parse_ts(f.get("last_seen"))) if t is not None]
    period = (f"{rfc3339(min(times))[:19]}Z to {rfc3339(max(times))[:19]}Z" if times
              else "no timed findings")
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
        "style-src 'unsafe-inline'; img-src data:\">"
        f"<title>shadowai hunt report</title><style>{CSS}</style></head><body>"
        f'<header><h1>Shadow AI hunt report</h1><p>Traffic {_e(period)}</p></header><main>'
        f'<section id="headline"><h2>Headline</h2><div class="metrics">{cards}</div></section>'
        f'<section id="categories"><h2>AI services by category and status</h2>'
        f"{_category_chart(assets)}</section>"
        f'<section id="services"><h2>AI services used</h2>{_services(assets)}</section>'
        f'<section id="top"><h2>Top devices and users</h2>{_top(findings, assets)}</section>'
        f'<section id="timeline"><h2>Timeline of AI use per service</h2>'
        f"{_timeline(findings, names)}</section>"
        f'<section id="servers"><h2>Self-hosted model servers</h2>{_servers(assets)}</section>'
        f'<section id="alerts"><h2>Alerts</h2>{_alerts(findings)}</section>'
        f'<section id="provenance"><h2>Inputs and versions</h2>{_provenance(meta)}</section>'
        "</main></body></html>\n")


def write_report(path: Path, findings: list[dict[str, Any]], assets: AssetSet,
                 meta: dict[str, Any]) -> None:
    """Write the report for ``findings`` and the inventory ``assets`` to ``path``."""
    Path(path).write_text(render_report(findings, assets, meta), encoding="utf-8")
