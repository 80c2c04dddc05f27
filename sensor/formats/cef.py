"""ArcSight CEF:0 lines.

Escaping (CEF Implementation Standard): in the header, ``\\`` and ``|`` are escaped
with a backslash; in extension values ``\\`` and ``=`` are escaped and CR/LF become
``\\r``/``\\n``. Both live in :func:`cef_escape`, the one function tests exercise.
"""

from __future__ import annotations

from typing import Any

from sensor.formats.common import PRODUCT, VENDOR, evidence_values, summary, title, ts_ms

CEF_SEVERITY = {"info": 1, "low": 3, "medium": 5, "high": 8, "critical": 10}
_HEADER = str.maketrans({"\\": "\\\\", "|": "\\|", "\r": " ", "\n": " "})
_EXT = str.maketrans({"\\": "\\\\", "=": "\\=", "\r": "\\r", "\n": "\\n"})


def cef_escape(value: object, *, header: bool) -> str:
    """Escape ``value`` for a CEF header field (header=True) or an extension value."""
    s = value if isinstance(value, str) else str(value)
    if "\\" not in s and "\n" not in s and "\r" not in s \
            and ("|" not in s if header else "=" not in s):
        return s   # the common case: nothing to escape
    return s.translate(_HEADER if header else _EXT)


def finding_to_cef(f: dict[str, Any], product_version: str = "0.1.0") -> str:
    ftype = str(f["type"])
    client = f.get("client") or {}
    server = f.get("server") or {}
    service = f.get("service") or {}
    counts = f.get("counts") or {}
    head = [VENDOR, PRODUCT, product_version, ftype, title(f),
            str(CEF_SEVERITY.get(str(f.get("severity")), 5))]
    ext: list[tuple[str, object]] = [
        ("externalId", f["id"]), ("msg", summary(f)), ("act", ftype),
        ("rt", ts_ms(f.get("last_seen"))), ("start", ts_ms(f.get("first_seen"))),
        ("end", ts_ms(f.get("last_seen"))),
        ("src", client.get("ip")), ("smac", client.get("mac")),
        ("shost", client.get("hostname")), ("suser", client.get("user")),
        ("dst", server.get("ip")), ("dpt", server.get("port")), ("dhost", server.get("name")),
        ("in", counts.get("bytes_client_to_server")),
        ("out", counts.get("bytes_server_to_client")),
        ("cnt", counts.get("flows")),
    ]
    # custom strings: label/value pairs, labels fixed so SIEM parsers can map them
    customs = [("serviceId", service.get("id")), ("serviceName", service.get("name")),
               ("serviceVendor", service.get("vendor")),
               ("serviceCategory", service.get("category")),
               ("evidence", ",".join(f"{e.get('kind')}:{e.get('value')}"
                                     for e in (f.get("evidence") or [])[:5]) or None),
               ("sni", next(iter(evidence_values(f, "tls.sni")), None))]
    for i, (label, value) in enumerate(customs, 1):
        if value is not None:
            ext += [(f"cs{i}Label", label), (f"cs{i}", value)]
    parts = "|".join(cef_escape(h, header=True) for h in head)
    extension = " ".join(f"{k}={cef_escape(v, header=False)}" for k, v in ext
                         if v is not None and v != "")
    return f"CEF:0|{parts}|{extension}"
