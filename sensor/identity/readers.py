"""Identity bindings from log and lease files, format recognised by content.

Formats (``fmt`` names):

* ``zeek-dhcp``, ``zeek-kerberos``: Zeek ``dhcp.log`` / ``kerberos.log``, TSV
  (``#fields`` header) or JSON lines (``_path``, or the field names);
* ``dhcpd-leases``: ISC dhcpd ``dhcpd.leases``;
* ``dnsmasq-leases``: dnsmasq's lease file (``expiry mac ip name client-id``);
* ``winlog``: Windows Security 4624 (logon) / 4768 (TGT requested) events as
  JSON lines in the Winlogbeat / Elastic Agent shape (``winlog.event_id``,
  ``winlog.event_data.IpAddress``, ``TargetUserName``, ``TargetDomainName``,
  ``@timestamp``);
* ``csv``, ``jsonl``: a plain identity feed with ``ip`` and any of ``mac``,
  ``user``, ``host`` (or ``hostname``), ``start``, ``end``, ``source``,
  ``confidence``.

Gzip-compressed files are read transparently. A file that cannot be read or
recognised raises :class:`InputError` (one line); lines that do not yield a
binding are counted in ``skipped``.
"""

from __future__ import annotations

import csv
import gzip
import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sensor.errors import InputError
from sensor.identity.model import Binding, norm_ip, norm_mac
from sensor.identity.store import NS, principal_identity
from sensor.sources.zeek import TsvHeader, header_line, open_text, unescape_tsv

FORMATS = ("zeek-dhcp", "zeek-kerberos", "dhcpd-leases", "dnsmasq-leases", "winlog", "csv",
           "jsonl")
_ZEEK_FORMATS = ("zeek-dhcp", "zeek-kerberos")
_SNIFF = 64 * 1024
MAX_LINE = 1 << 20  # longer lines are skipped, not parsed
_ZEEK_UNSET = ("-", "(empty)", "")
_NOT_ACCOUNTS = frozenset({"anonymous logon", "system", "local service", "network service",
                           "-", ""})
_LOOPBACK = ("127.", "::1", "0.0.0.0", "::")


class IdentityLoad(list[Binding]):
    """The bindings of one file, with its format and the count of skipped lines."""

    def __init__(self, bindings: list[Binding], fmt: str, skipped: int) -> None:
        super().__init__(bindings)
        self.fmt = fmt
        self.skipped = skipped


# -- small parsers --------------------------------------------------------------

_ISO = re.compile(r"^(\d{4}-\d\d-\d\d)[T ](\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:?\d\d)?$")


def parse_time_ns(v: object) -> int:
    """Epoch seconds (number or text) or RFC 3339 / ISO 8601 text -> ns. ValueError if neither."""
    if isinstance(v, bool):
        raise ValueError("boolean is not a time")
    if isinstance(v, int | float):
        return round(v * NS) if isinstance(v, float) else v * NS
    if not isinstance(v, str):
        raise ValueError(f"not a time: {v!r}")
    s = v.strip()
    if re.fullmatch(r"\d+(\.\d+)?", s):
        whole, _, frac = s.partition(".")
        return int(whole) * NS + int((frac + "000000000")[:9])
    m = _ISO.match(s)
    if not m:
        raise ValueError(f"not a time: {v!r}")
    tz = m.group(4) or "Z"
    base = datetime.fromisoformat(f"{m.group(1)}T{m.group(2)}{'+00:00' if tz == 'Z' else tz}")
    nanos = int(((m.group(3) or "") + "000000000")[:9])
    return int(base.timestamp()) * NS + nanos


def _opt(v: object) -> str | None:
    if v is None:
        return None
    s = str(v).strip()
    return None if s in _ZEEK_UNSET else s


def _get(row: dict[str, Any], dotted: str) -> Any:
    """``row["id.orig_h"]`` or ``row["id"]["orig_h"]`` (flattened or nested JSON)."""
    if dotted in row:
        return row[dotted]
    cur: Any = row
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


# -- per-format row converters (row -> Binding | None; None = skipped) -----------------


def _zeek_dhcp(row: dict[str, Any]) -> Binding | None:
    assigned = _opt(row.get("assigned_addr"))
    ip_text = assigned or _opt(row.get("client_addr"))
    ts = _opt(row.get("ts"))
    if ip_text is None or ts is None:
        return None
    mac = norm_mac(_opt(row.get("mac")) or "")
    name = _opt(row.get("host_name"))
    if name is None and (fq := _opt(row.get("client_fqdn"))):
        name = fq.split(".", 1)[0]
    if mac is None and name is None:
        return None
    start = parse_time_ns(row["ts"])
    lease = _opt(row.get("lease_time"))
    end = start + parse_time_ns(lease) if lease and assigned else None
    return Binding(norm_ip(ip_text), start, end, mac=mac, hostname=name, source="zeek-dhcp",
                   confidence=0.9 if assigned else 0.7)


def _zeek_kerberos(row: dict[str, Any]) -> Binding | None:
    client = _opt(row.get("client"))
    ip_text = _opt(_get(row, "id.orig_h"))
    success = row.get("success")
    if client is None or ip_text is None or success in (False, "F"):
        return None
    name, _, realm = client.rpartition("/")
    user, host = principal_identity(tuple(name.split("/")) if name else None, realm or None)
    if user is None and host is None:
        return None
    conf = 0.9 if success in (True, "T") else 0.6
    return Binding(norm_ip(ip_text), parse_time_ns(row["ts"]), None, hostname=host, user=user,
                   source="zeek-kerberos", confidence=conf)


def _winlog(row: dict[str, Any]) -> Binding | None:
    wl = row.get("winlog")
    if not isinstance(wl, dict):
        return None
    try:
        event_id = int(wl.get("event_id") or _get(row, "event.code") or 0)
    except (TypeError, ValueError):
        return None
    data = wl.get("event_data")
    if event_id not in (4624, 4768) or not isinstance(data, dict):
        return None
    ip_text = _opt(data.get("IpAddress"))
    account = _opt(data.get("TargetUserName"))
    if ip_text is None or account is None or account.lower() in _NOT_ACCOUNTS:
        return None
    if account.upper().startswith(("DWM-", "UMFD-")):
        return None
    ip = norm_ip(ip_text)
    if ip.startswith(_LOOPBACK):
        return None
    if event_id == 4768 and (_opt(data.get("Status")) or "0x0").lower() not in ("0x0", "0"):
        return None  # a refused TGT request is not a logon
    domain = _opt(data.get("TargetDomainName"))
    ts = parse_time_ns(row.get("@timestamp"))
    if account.endswith("$"):
        return Binding(ip, ts, None, hostname=account[:-1].lower(), source=f"winlog-{event_id}",
                       confidence=0.8)
    host = _opt(data.get("WorkstationName")) if event_id == 4624 else None
    return Binding(ip, ts, None, hostname=host.lower() if host else None,
                   user=f"{domain}\\{account}" if domain else account,
                   source=f"winlog-{event_id}", confidence=0.9 if event_id == 4768 else 0.8)


def _feed(row: dict[str, Any]) -> Binding | None:
    ip_text = _opt(row.get("ip"))
    if ip_text is None:
        return None
    mac_text = _opt(row.get("mac"))
    mac = norm_mac(mac_text) if mac_text else None
    if mac_text and mac is None:
        raise ValueError(f"bad MAC {mac_text!r}")
    host = _opt(row.get("host")) or _opt(row.get("hostname"))
    user = _opt(row.get("user"))
    if mac is None and host is None and user is None:
        return None
    start_v, end_v = _opt(row.get("start")), _opt(row.get("end"))
    start = parse_time_ns(row["start"]) if start_v is not None else 0
    end = parse_time_ns(row["end"]) if end_v is not None else None
    if end is not None and end <= start:
        raise ValueError("end before start")
    conf_v = _opt(row.get("confidence"))
    conf = float(conf_v) if conf_v is not None else 1.0
    if not 0.0 <= conf <= 1.0:
        raise ValueError("confidence outside [0, 1]")
    return Binding(norm_ip(ip_text), start, end, mac=mac, hostname=host, user=user,
                   source=_opt(row.get("source")) or "feed", confidence=conf)


_JSON_CONVERTERS: dict[str, Callable[[dict[str, Any]], Binding | None]] = {
    "zeek-dhcp": _zeek_dhcp, "zeek-kerberos": _zeek_kerberos, "winlog": _winlog,
    "jsonl": _feed,
}


# -- line sources ------------------------------------------------------------------


def _lines(path: Path) -> Iterator[str]:
    with open_text(path, newline=None) as f:  # universal newlines: CRLF lease files too
        for line in f:
            yield line.rstrip("\n")


def _head(path: Path) -> str:
    out: list[str] = []
    size = 0
    try:
        for line in _lines(path):
            out.append(line)
            size += len(line) + 1
            if size >= _SNIFF:
                break
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise InputError(f"{path}: cannot read: {e}") from None
    return "\n".join(out)


_DHCPD = re.compile(r"^\s*lease\s+[0-9a-fA-F.:]+\s*\{", re.M)
_DNSMASQ = re.compile(r"^\d+ ([0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}|\S+) \S+ \S+ \S+\s*$")


def sniff_format(path: Path, head: str) -> str:
    """The format of a file from its first bytes; InputError when none fits."""
    lines = [ln for ln in head.splitlines() if ln.strip()]
    if not lines:
        raise InputError(f"{path}: empty identity file")
    first = lines[0].lstrip("\ufeff")
    if first.startswith("#separator") or any(ln.startswith("#fields") for ln in lines[:12]):
        path_line = next((ln for ln in lines[:12] if ln.startswith("#path")), "")
        fields = next((ln for ln in lines[:12] if ln.startswith("#fields")), "")
        if "dhcp" in path_line or "assigned_addr" in fields:
            return "zeek-dhcp"
        if "kerberos" in path_line or ("request_type" in fields and "client" in fields):
            return "zeek-kerberos"
        raise InputError(f"{path}: a Zeek log, but neither dhcp.log nor kerberos.log")
    if first.startswith("{"):
        try:
            obj = json.loads(first)
        except ValueError:
            raise InputError(f"{path}: first line is not valid JSON") from None
        if not isinstance(obj, dict):
            raise InputError(f"{path}: JSON lines must be objects")
        zpath = obj.get("_path")
        if zpath == "dhcp" or (("assigned_addr" in obj or "msg_types" in obj) and "mac" in obj):
            return "zeek-dhcp"
        if zpath == "kerberos" or ("request_type" in obj and "client" in obj):
            return "zeek-kerberos"
        if "winlog" in obj:
            return "winlog"
        if "ip" in obj:
            return "jsonl"
        raise InputError(f"{path}: JSON lines of no known identity shape (keys: "
                         f"{', '.join(sorted(obj)[:8])})")
    if _DHCPD.search(head):
        return "dhcpd-leases"
    if _DNSMASQ.match(first) or (first.startswith("duid ") and len(lines) > 1):
        return "dnsmasq-leases"
    header = [h.strip().lower() for h in next(csv.reader([first]))]
    if "ip" in header:
        return "csv"
    raise InputError(f"{path}: not a recognised identity file (formats: {', '.join(FORMATS)})")


def _zeek_tsv_rows(lines: Iterator[str]) -> Iterator[dict[str, Any] | None]:
    """Rows of a Zeek ASCII log as text (headers, #separator and escapes as the log
    reader in sensor.sources.zeek reads them); unset and empty stay as written."""
    h = TsvHeader()
    for line in lines:
        if line.startswith("#"):
            h = header_line(h, line)
            continue
        if not line.strip():
            continue
        cols = line.split(h.sep)
        yield ({f: unescape_tsv(c) for f, c in zip(h.fields, cols, strict=True)}
               if h.fields and len(cols) == len(h.fields) else None)


def _json_rows(lines: Iterator[str]) -> Iterator[dict[str, Any] | None]:
    for line in lines:
        if not line.strip():
            continue
        if len(line) > MAX_LINE:
            yield None
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            yield None
            continue
        yield obj if isinstance(obj, dict) else None


def _dnsmasq(lines: Iterator[str]) -> Iterator[Binding | None]:
    for line in lines:
        parts = line.split()
        if not parts or parts[0] == "duid":
            continue
        if len(parts) < 4:
            yield None
            continue
        try:
            expiry = int(parts[0])
            ip = norm_ip(parts[2])
        except ValueError:
            yield None
            continue
        mac = norm_mac(parts[1]) if ":" in parts[1] else None  # IPv6 lines: IAID, no MAC
        name = None if parts[3] == "*" else parts[3]
        if mac is None and name is None:
            yield None
            continue
        # The file keeps only the expiry: the lease is known to hold until then.
        yield Binding(ip, 0, expiry * NS if expiry else None, mac=mac, hostname=name,
                      source="dnsmasq-leases", confidence=0.8)


_DHCPD_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{};]|[^\s{};"]+')
_DHCPD_STATES_KEPT = frozenset({"active", "expired", "released", None})


def _dhcpd_time(words: list[str]) -> int | None:
    # "starts 4 2026/11/26 20:00:00" (UTC) | "starts epoch 1732651200" | "ends never"
    if len(words) >= 2 and words[1] == "never":
        return None
    if len(words) >= 3 and words[1] == "epoch":
        return int(words[2]) * NS
    if len(words) >= 4:
        d = datetime.strptime(f"{words[2]} {words[3]}", "%Y/%m/%d %H:%M:%S").replace(tzinfo=UTC)
        return int(d.timestamp()) * NS
    raise ValueError("bad lease time")


def _dhcpd(lines: Iterator[str]) -> Iterator[Binding | None]:
    ip: str | None = None
    stmts: list[list[str]] = []
    cur: list[str] = []
    depth = 0
    for line in lines:
        for tok in _DHCPD_TOKEN.findall(line.split("#", 1)[0] if '"' not in line else line):
            if tok == "{":
                depth += 1
                if depth == 1 and len(cur) == 2 and cur[0] == "lease":
                    ip, stmts = cur[1], []
                cur = []
            elif tok == "}":
                depth -= 1
                if depth == 0 and ip is not None:
                    yield _dhcpd_lease(ip, stmts)
                    ip = None
                cur = []
            elif tok == ";":
                if depth == 1 and ip is not None and len(stmts) < 256:
                    stmts.append(cur)
                cur = []
            elif len(cur) < 64:
                cur.append(tok)


def _dhcpd_lease(ip_text: str, stmts: list[list[str]]) -> Binding | None:
    try:
        ip = norm_ip(ip_text)
        start: int | None = None
        end: int | None = None
        mac = host = state = None
        for w in stmts:
            if not w:
                continue
            if w[0] == "starts":
                start = _dhcpd_time(w)
            elif w[0] == "ends":
                end = _dhcpd_time(w)
            elif w[:2] == ["hardware", "ethernet"] and len(w) > 2:
                mac = norm_mac(w[2])
            elif w[0] == "client-hostname" and len(w) > 1:
                host = w[1].strip('"') or None
            elif w[:2] == ["binding", "state"] and len(w) > 2:
                state = w[2]
    except ValueError:
        return None
    if state not in _DHCPD_STATES_KEPT or (mac is None and host is None):
        return None
    return Binding(ip, start or 0, end, mac=mac, hostname=host, source="dhcpd-leases",
                   confidence=0.9)


# -- entry point ---------------------------------------------------------------------


def load_identity(path: str | Path, fmt: str | None = None) -> IdentityLoad:
    """Read the bindings of one identity file; ``fmt`` overrides content sniffing."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such identity file")
    if fmt is not None and fmt not in FORMATS:
        raise InputError(f"{p}: unknown identity format {fmt!r} (one of {', '.join(FORMATS)})")
    head = _head(p) if fmt is None or fmt in _ZEEK_FORMATS else ""
    kind = fmt or sniff_format(p, head)
    out: list[Binding] = []
    skipped = 0
    try:
        for b in _bindings(p, kind, head):
            if b is None:
                skipped += 1
            else:
                out.append(b)
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise InputError(f"{p}: read failed: {e}") from None
    return IdentityLoad(out, kind, skipped)


def _convert(rows: Iterator[dict[str, Any] | None],
             conv: Callable[[dict[str, Any]], Binding | None]) -> Iterator[Binding | None]:
    for row in rows:
        if row is None:
            yield None
            continue
        try:
            yield conv(row)
        except (ValueError, TypeError, KeyError, OverflowError):
            yield None


def _bindings(p: Path, kind: str, head: str) -> Iterator[Binding | None]:
    lines = _lines(p)
    if kind in _ZEEK_FORMATS:
        rows = _json_rows(lines) if head.lstrip().startswith("{") else _zeek_tsv_rows(lines)
        yield from _convert(rows, _JSON_CONVERTERS[kind])
    elif kind in ("winlog", "jsonl"):
        yield from _convert(_json_rows(lines), _JSON_CONVERTERS[kind])
    elif kind == "csv":
        reader = csv.DictReader(lines)
        if reader.fieldnames is None or "ip" not in [f.strip().lower() for f in
                                                     reader.fieldnames]:
            raise InputError(f"{p}: CSV identity feed needs an 'ip' column")
        rows = ({(k or "").strip().lower(): v for k, v in r.items()} for r in reader)
        yield from _convert(rows, _feed)
    elif kind == "dnsmasq-leases":
        yield from _dnsmasq(lines)
    else:
        yield from _dhcpd(lines)


__all__ = ["FORMATS", "IdentityLoad", "load_identity", "parse_time_ns", "sniff_format"]
