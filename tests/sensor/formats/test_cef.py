"""CEF:0 lines: the escaping rules and a parser round trip."""

from __future__ import annotations

import re
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from sensor.formats.cef import cef_escape, finding_to_cef
from tests.sensor.formats._samples import sample


def test_escape_rules() -> None:
    assert cef_escape("a|b\\c=d", header=True) == "a\\|b\\\\c=d"
    assert cef_escape("a|b\\c=d", header=False) == "a|b\\\\c\\=d"
    assert cef_escape("x\r\ny", header=False) == "x\\r\\ny"
    assert cef_escape("x\r\ny", header=True) == "x  y"


def _unescape_ext(v: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"r": "\r", "n": "\n"}.get(m[1], m[1]), v)


def parse_cef(line: str) -> tuple[list[str], dict[str, str]]:
    """An independent parser: split the header on unescaped pipes, then the extension
    on ``key=`` tokens preceded by a space."""
    assert line.startswith("CEF:0|")
    fields: list[str] = []
    cur, i = "", 0
    while len(fields) < 7:
        c = line[i]
        if c == "\\":
            cur += line[i + 1]
            i += 2
            continue
        if c == "|":
            fields.append(cur)
            cur = ""
        else:
            cur += c
        i += 1
    ext = line[i:]
    keys = list(re.finditer(r"(?:^| )([A-Za-z0-9_]+)=", ext))
    out: dict[str, str] = {}
    for n, m in enumerate(keys):
        end = keys[n + 1].start() if n + 1 < len(keys) else len(ext)
        out[m[1]] = _unescape_ext(ext[m.end():end])
    return fields, out


text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)


@given(name=text, sni=text, vendor=text)
def test_round_trip_hostile_values(name: str, sni: str, vendor: str) -> None:
    f = sample(0)
    f["service"] = {"id": "x", "name": name or "n", "vendor": vendor or "v", "category": "c"}
    f["evidence"] = [{"kind": "tls.sni", "value": sni, "count": 1}]
    line = finding_to_cef(f)
    assert "\n" not in line and "\r" not in line
    header, ext = parse_cef(line)
    assert header[0] == "CEF:0" and header[4] == "ai_service_use"
    assert header[5] == "AI service use" and header[6] == "5"
    labels = {ext[f"cs{i}Label"]: ext[f"cs{i}"] for i in range(1, 7) if f"cs{i}" in ext}
    assert labels["serviceName"] == (name or "n")
    assert labels["serviceVendor"] == (vendor or "v")
    if sni:
        assert labels["sni"] == sni


def test_extension_fields(finding: dict[str, Any]) -> None:
    _, ext = parse_cef(finding_to_cef(finding))
    assert ext["src"] == finding["client"]["ip"] and ext["dst"] == "104.18.7.192"
    assert ext["dpt"] == "443" and ext["dhost"] == "api.openai.com"
    assert ext["externalId"] == finding["id"] and ext["act"] == "ai_service_use"
    assert int(ext["end"]) > int(ext["start"])
    assert ext["in"] == "5000" and ext["out"] == "90000"
