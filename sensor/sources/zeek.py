"""Zeek logs (ASCII TSV and JSON, plain or gzip) as observations and flows.

Each log line becomes a dict of the few fields we use, with one value
convention whatever the format: times and intervals in ns (microsecond
resolution, as Zeek writes them), counts as int, bools as bool, sets and
vectors as lists, strings unescaped (``\\xNN`` of an ASCII byte becomes the
character, a non-ASCII escaped byte stays the text ``\\xNN``), unset as None.
The TSV and JSON forms of the same events therefore give equal records.
conn.log TSV takes a direct path to FlowRecord (it is most of the volume).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import itertools
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from sensor.flows import FlowRecord
from sensor.sources.detect import BTEST_TS, is_cut_header, sniff_lines
from sensor.sources.logs import (
    PROTO_NUMBERS,
    IdentityEvent,
    LogRecord,
    ReadStats,
    dns_answers,
    dns_observation,
    epoch_text_ns,
    flow_id_of,
    flow_record,
    http_request,
    http_response,
    iso_ns,
    mac_norm,
    seconds_ns,
    tls_observation,
)

Row = dict[str, Any]

APP_LOGS = ("quic", "ssl", "dns", "http", "dhcp", "kerberos")  # read before conn
LOGS = (*APP_LOGS, "conn")
_ID = ("ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p")
NEEDED: dict[str, tuple[str, ...]] = {
    "conn": (*_ID, "proto", "duration", "orig_pkts", "orig_ip_bytes", "resp_pkts",
             "resp_ip_bytes", "conn_state", "orig_l2_addr", "vlan"),
    "dns": (*_ID, "proto", "trans_id", "rtt", "query", "qclass", "qtype", "rcode", "answers",
            "TTLs"),
    "ssl": (*_ID, "version", "server_name", "next_protocol", "ja4", "ja3"),
    "quic": (*_ID, "version", "server_name", "client_protocol"),
    "http": (*_ID, "method", "host", "uri", "version", "user_agent", "status_code",
             "status_msg"),
    "dhcp": ("ts", "uids", "client_addr", "mac", "host_name", "requested_addr",
             "assigned_addr", "msg_types"),
    "kerberos": (*_ID, "request_type", "client", "service", "success"),
}
# the types of the fields we use, for TSV without #types (zeek-cut output)
DEFAULT_TYPES = {
    "ts": "time", "duration": "interval", "rtt": "interval", "TTLs": "vector[interval]",
    "id.orig_p": "port", "id.resp_p": "port", "orig_pkts": "count", "resp_pkts": "count",
    "orig_ip_bytes": "count", "resp_ip_bytes": "count", "vlan": "int", "trans_id": "count",
    "qclass": "count", "qtype": "count", "rcode": "count", "answers": "vector[string]",
    "status_code": "count", "uids": "set[string]", "msg_types": "vector[string]",
    "success": "bool",
}
# JSON carries no types: the fields we use that are times / intervals
_JSON_TIME = frozenset({"ts"})
_JSON_INTERVAL = frozenset({"duration", "rtt", "TTLs"})

_ESC = re.compile(r"\\(\\|x[0-9a-fA-F]{2})")
_JSON_ESC = re.compile(r"\\x([0-9a-fA-F]{2})")


def _esc_char(m: re.Match[str]) -> str:
    s = m[1]
    if s == "\\":
        return "\\"
    b = int(s[1:], 16)
    return chr(b) if b < 0x80 else "\\" + s


def unescape_tsv(s: str) -> str:
    return _ESC.sub(_esc_char, s) if "\\" in s else s


def _json_esc_char(m: re.Match[str]) -> str:
    b = int(m[1], 16)
    return chr(b) if b < 0x80 else m[0]


def unescape_json(s: str) -> str:
    return _JSON_ESC.sub(_json_esc_char, s) if "\\x" in s else s


def open_bytes(path: Path) -> IO[bytes]:
    """A binary stream of a plain or gzip file (recognised by magic), decompressed."""
    with path.open("rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gz else path.open("rb")  # type: ignore[return-value]


def open_text(path: Path, newline: str | None = "\n") -> IO[str]:
    """A text stream of a plain or gzip file (``newline`` as for :func:`open`)."""
    return io.TextIOWrapper(open_bytes(path), encoding="utf-8", errors="surrogateescape",
                            newline=newline)


def _sep(v: str, default: str) -> str:
    # an empty separator (a damaged header) cannot split anything: keep the default
    return (unescape_tsv(v) if v.startswith("\\x") else v) or default


# -- TSV ----------------------------------------------------------------------------------


@dataclass(slots=True)
class TsvHeader:
    sep: str = "\t"
    set_sep: str = ","
    empty: str = "(empty)"
    unset: str = "-"
    path: str = ""
    fields: tuple[str, ...] = ()
    types: tuple[str, ...] = ()


def _tsv_converter(typ: str, h: TsvHeader) -> Callable[[str], Any]:
    unset, empty, set_sep = h.unset, h.empty, h.set_sep
    if typ.startswith(("set[", "vector[")):
        elem = _tsv_converter(typ[typ.index("[") + 1:-1], h)

        def conv_list(s: str) -> Any:
            if s == unset:
                return None
            if s == empty:
                return []
            return [elem(x) for x in s.split(set_sep)]
        return conv_list
    if typ in ("time", "interval"):
        def conv_time(s: str) -> Any:
            if s == unset:
                return None
            try:
                return epoch_text_ns(s)
            except ValueError:
                return _BAD_TIME  # e.g. btest's XXXXXXXXXX.XXXXXX: keep the record
        return conv_time
    if typ in ("count", "int", "port"):
        return lambda s: None if s == unset else int(s)
    if typ == "double":
        return lambda s: None if s == unset else float(s)
    if typ == "bool":
        return lambda s: None if s == unset else s == "T"

    def conv_str(s: str) -> Any:
        if s == unset:
            return None
        if s == empty:
            return ""
        return unescape_tsv(s)
    return conv_str


_B2B_8 = hashlib.blake2b(digest_size=8)  # copied per uid: flow_id_of() without its setup
_CHUNK_CHARS = 1 << 15  # characters per read: ~200 rows, fewer than the GC's 700-object trigger
_BAD_TIME = -1  # a time that does not parse: the record is kept with ts 0 (counted)


def _none(_s: str) -> None:
    return None


def header_line(h: TsvHeader, line: str) -> TsvHeader:
    """Apply one ``#`` line; a new ``#separator`` starts a new header (concatenated logs)."""
    if line.startswith("#separator"):
        return TsvHeader(sep=_sep(line[len("#separator"):].strip(), "\t"))
    key, _, val = line[1:].partition(h.sep)
    if key == "fields":
        h.fields = tuple(val.split(h.sep))
    elif key == "types":
        h.types = tuple(val.split(h.sep))
    elif key == "set_separator":
        h.set_sep = _sep(val, ",")
    elif key == "empty_field":
        h.empty = val
    elif key == "unset_field":
        h.unset = val
    elif key == "path":
        h.path = val
    return h  # #open/#close/btest banners: nothing to take


def iter_tsv(path: Path, name_hint: str, st: ReadStats,
             conv: RowConverter) -> Iterator[LogRecord]:
    """Records of one Zeek ASCII log; conn rows take a direct path to FlowRecord."""
    p = ZeekLineParser(name_hint, st, conv, fast=True)
    lines = flows = 0
    with open_text(path) as fh:
        while chunk := fh.readlines(_CHUNK_CHARS):
            lines += len(chunk)
            if p.fast is not None:
                # the common case: a chunk of complete default conn rows, in one comprehension
                try:
                    recs = list(map(p.fast, chunk))
                except (ValueError, IndexError):
                    pass  # a header, an unset value or a short row: line by line below
                else:
                    flows += len(recs)
                    yield from recs
                    continue
            for line in chunk:
                if line[0] == "#":
                    p.header(line.rstrip("\n"))
                else:
                    yield from p.tsv(line.rstrip("\n"))
    st.lines += lines
    st.records += flows
    st.flows += flows


def _cut_header(parts: list[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    fields = tuple(p.rstrip("\r\n") for p in parts)
    return fields, tuple(DEFAULT_TYPES.get(f, "string") for f in fields)


def _plan(h: TsvHeader, log: str) -> tuple[list[tuple[str, int, Callable[[str], Any]]],
                                           Callable[[str], FlowRecord] | None]:
    idx = {f: i for i, f in enumerate(h.fields)}
    types = dict(zip(h.fields, h.types, strict=False))
    needed = NEEDED.get(log, ())
    plan = [(f, idx[f], _tsv_converter(types.get(f, "string"), h)) if f in idx
            else (f, 0, _none) for f in needed]
    # the fast path covers the default columns only (no vlan / MAC columns)
    fast = _conn_fast(idx, h) if log == "conn" and all(
        f in idx for f in NEEDED["conn"][:12]) and "vlan" not in idx and (
        "orig_l2_addr" not in idx) and h.unset not in ("", "0") else None
    return plan, fast


def _conn_fast(idx: dict[str, int], h: TsvHeader) -> Callable[[str], FlowRecord]:
    """conn row -> FlowRecord for the common row (every count set); a ValueError
    sends the row to the typed path."""
    its, iuid, ioh, iop, irh, irp, ipr, idu, iopk, iob, irpk, irb = (
        idx[f] for f in NEEDED["conn"][:12])
    unset = h.unset
    protos = PROTO_NUMBERS
    b2b = _B2B_8.copy
    from_bytes = int.from_bytes

    sep = h.sep
    last = max(its, iuid, ioh, iop, irh, irp, ipr, idu, iopk, iob, irpk, irb)
    # split only as far as the last column used; the remainder (and its newline) is not read
    maxsplit = last + 1 if last < len(idx) - 1 else -1

    def conv(line: str) -> FlowRecord:
        p = line.split(sep, maxsplit) if maxsplit > 0 else line.rstrip("\n").split(sep)
        uid = p[iuid]
        if uid == unset:
            raise ValueError("unset uid")
        # Zeek writes times and intervals with 6 decimals: the digits are the microseconds
        ts, d = p[its], p[idu]
        t = int(ts.replace(".", "")) * 1000 if ts[-7:-6] == "." else epoch_text_ns(ts)
        if d == unset:
            e = t
        else:
            e = t + (int(d.replace(".", "")) * 1000 if d[-7:-6] == "." else epoch_text_ns(d))
        hasher = b2b()
        hasher.update(uid.encode())
        return FlowRecord(
            from_bytes(hasher.digest(), "big"),
            protos.get(p[ipr], 0), p[ioh], int(p[iop]), p[irh], int(p[irp]), 0, None, t, e,
            int(p[iopk]), int(p[irpk]), int(p[iob]), int(p[irb]), "end")
    return conv


# -- JSON ---------------------------------------------------------------------------------


def _flatten(d: dict[str, Any], prefix: str, out: dict[str, Any]) -> None:
    for k, v in d.items():
        if isinstance(v, dict):
            _flatten(v, f"{prefix}{k}.", out)
        else:
            out[prefix + k] = v


def _json_time(v: Any) -> int | None:
    if v is None:
        return None
    if isinstance(v, str):
        return iso_ns(v) if "-" in v[:8] else epoch_text_ns(v)
    return seconds_ns(float(v))


def _json_value(f: str, v: Any) -> Any:
    if v is None:
        return None
    if f in _JSON_TIME:
        return _json_time(v)
    if f in _JSON_INTERVAL:
        return [seconds_ns(float(x)) for x in v] if isinstance(v, list) else seconds_ns(
            float(v))
    if isinstance(v, str):
        return unescape_json(v)
    if isinstance(v, list):
        return [unescape_json(x) if isinstance(x, str) else x for x in v]
    return v


def json_row(line: str, name_hint: str, st: ReadStats) -> tuple[str, Row] | None:
    """(log path, typed row) of one JSON line; None (counted) when it is not one we use."""
    line = line.strip()
    if not line or line[0] != "{":
        if line and not line.startswith("#"):
            st.skip("json: not an object")
        return None
    try:
        obj = json.loads(line)
    except ValueError:
        try:  # btest canonifies times to a bare XXXXXXXXXX.XXXXXX: keep the record, ts 0
            obj = json.loads(BTEST_TS.sub(":null", line))
        except ValueError:
            st.skip("json: does not parse")
            return None
        st.ts_unreadable += 1
    if not isinstance(obj, dict):
        st.skip("json: not an object")
        return None
    if any(isinstance(v, dict) for v in obj.values()):
        flat: dict[str, Any] = {}
        _flatten(obj, "", flat)
        obj = flat
    log = obj.get("_path") or name_hint
    needed = NEEDED.get(log)
    if needed is None:
        st.ignored += 1
        return None
    try:
        return log, {f: _json_value(f, obj.get(f)) for f in needed}
    except (ValueError, TypeError):
        st.skip(f"{log}: bad value")
        return None


class ZeekLineParser:
    """One Zeek log (TSV or JSON) a line at a time: follow mode calls :meth:`feed`,
    :func:`iter_tsv` :meth:`header` and :meth:`tsv`. ``fast=True`` sends default conn
    rows straight to FlowRecord (:func:`_conn_fast`); else they take the typed path."""

    def __init__(self, name_hint: str, st: ReadStats, conv: RowConverter,
                 fast: bool = False) -> None:
        self.name_hint = name_hint
        self.st = st
        self.conv = conv
        self.use_fast = fast
        self.h = TsvHeader()
        self.log = name_hint
        self.plan: list[tuple[str, int, Callable[[str], Any]]] = []
        self.fast: Callable[[str], FlowRecord] | None = None
        self.nfields = -1

    def feed(self, line: str) -> list[LogRecord]:
        st = self.st
        st.lines += 1
        s = line.rstrip("\r\n")
        if not s.strip():
            return []
        if s[0] == "#":
            self.header(s)
            return []
        if s[0] != "{":
            return self.tsv(s)
        r = json_row(s, self.name_hint, st)
        if r is None:
            return []
        st.records += 1
        out = self.conv.convert(*r)
        for rec in out:
            st.count(rec)
        return out

    def _replan(self) -> None:
        self.nfields = len(self.h.fields)
        self.plan, fast = _plan(self.h, self.log)
        self.fast = fast if self.use_fast else None

    def header(self, s: str) -> None:
        """One ``#`` line (without its newline)."""
        self.h = header_line(self.h, s)
        if s.startswith("#types"):
            self.log = self.h.path or self.name_hint
            self._replan()

    def tsv(self, s: str) -> list[LogRecord]:
        """The records of one TSV row (without its newline)."""
        st = self.st
        parts = s.split(self.h.sep)
        if len(parts) != self.nfields:
            if self.nfields < 0 and is_cut_header(parts):
                self.h.fields, self.h.types = _cut_header(parts)
                self._replan()
            elif s.strip():
                st.skip("tsv: data line before #fields" if self.nfields < 0
                        else "tsv: field count differs from #fields")
            return []
        if self.fast is not None:
            try:
                flow = self.fast(s)
            except ValueError:
                pass  # an unset value in a fast column: take the typed path
            else:
                st.records += 1
                st.flows += 1
                return [flow]
        if not self.plan:
            st.ignored += 1
            return []
        try:
            row = {f: c(parts[i]) for f, i, c in self.plan}
        except ValueError:
            st.skip(f"{self.log}: bad value")
            return []
        st.records += 1
        out = self.conv.convert(self.log, row)
        for rec in out:
            st.count(rec)
        return out


# -- rows -> records ----------------------------------------------------------------------


def _addr(r: Row) -> tuple[int, int, str, int, str, int] | None:
    ts, uid = r["ts"], r["uid"]  # a _BAD_TIME ts is 0 by now (RowConverter.convert)
    oh, op, rh, rp = r["id.orig_h"], r["id.orig_p"], r["id.resp_h"], r["id.resp_p"]
    if uid is None:
        return None
    # a zeek-cut subset may lack the addresses: kept, with "" and port 0
    return (ts or 0), flow_id_of(uid), oh or "", op or 0, rh or "", rp or 0


class RowConverter:
    """Typed rows -> records; remembers QUIC uids so ssl.log's duplicate row of a
    QUIC connection (Zeek logs QUIC handshakes in both) is not a second hello."""

    MAX_QUIC_UIDS = 1_000_000

    def __init__(self, st: ReadStats) -> None:
        self.st = st
        self.quic_uids: set[str] = set()

    def convert(self, log: str, r: Row) -> list[LogRecord]:
        if r["ts"] == _BAD_TIME:
            self.st.ts_unreadable += 1
            r["ts"] = 0
        for f in ("duration", "rtt"):
            if r.get(f) == _BAD_TIME:
                r[f] = None
        if log == "dhcp":
            return self._dhcp(r)
        a = _addr(r)
        if a is None:
            self.st.skip(f"{log}: no uid or addresses")
            return []
        if log == "conn":
            return [self._conn(r, a)]
        if log == "dns":
            return self._dns(r, a)
        if log == "ssl":
            if r["uid"] in self.quic_uids:
                self.st.ignored += 1
                return []
            return [tls_observation(*a, quic=False, sni=r["server_name"] or None,
                                    version=r["version"],
                                    alpn=(r["next_protocol"],) if r["next_protocol"] else (),
                                    ja4=r["ja4"], ja3_hash=r["ja3"])]
        if log == "quic":
            if len(self.quic_uids) > self.MAX_QUIC_UIDS:
                self.quic_uids.clear()
            self.quic_uids.add(r["uid"])
            return [tls_observation(*a, quic=True, sni=r["server_name"] or None, version=None,
                                    alpn=(r["client_protocol"],) if r["client_protocol"] else ())]
        if log == "http":
            return self._http(r, a)
        if log == "kerberos":
            return self._krb(r, a)
        return []

    def _conn(self, r: Row, a: tuple[int, int, str, int, str, int]) -> FlowRecord:
        def n(f: str) -> int:
            v = r[f]
            return int(v) if v is not None else 0
        return flow_record(a[1], PROTO_NUMBERS.get(r["proto"] or "", 0), a[2], a[3], a[4], a[5],
                           a[0], n("duration"), n("orig_pkts"), n("resp_pkts"),
                           n("orig_ip_bytes"), n("resp_ip_bytes"), vlan=n("vlan"),
                           mac=mac_norm(r["orig_l2_addr"]))

    def _dns(self, r: Row, a: tuple[int, int, str, int, str, int]) -> list[LogRecord]:
        ts, fid, oh, op, rh, rp = a
        transport = r["proto"] or "udp"
        query = r["query"]
        qtype, qclass = r["qtype"] or 0, r["qclass"] or 0
        txid = r["trans_id"] or 0
        out: list[LogRecord] = [dns_observation(ts, fid, oh, op, rh, rp, transport, txid, False,
                                                query, qtype, qclass, 0, ())]
        answers = r["answers"] or []
        if r["rcode"] is not None or answers:
            ttls = r["TTLs"] or []
            vals = [(v, 0, (ttls[i] // 1_000_000_000) if i < len(ttls) else 0)
                    for i, v in enumerate(answers)]
            ans = dns_answers((query or "").lower().rstrip("."), qtype, vals)
            rtt = r["rtt"] or 0
            out.append(dns_observation(ts + rtt, fid, rh, rp, oh, op, transport, txid, True,
                                       query, qtype, qclass, r["rcode"] or 0, ans))
        return out

    def _http(self, r: Row, a: tuple[int, int, str, int, str, int]) -> list[LogRecord]:
        out: list[LogRecord] = []
        if r["method"] is not None or r["host"] is not None or r["uri"] is not None:
            out.append(http_request(*a, method=r["method"], uri=r["uri"], version=r["version"],
                                    host=r["host"], user_agent=r["user_agent"]))
        if r["status_code"] is not None:
            out.append(http_response(*a, version=r["version"], status=r["status_code"],
                                     reason=r["status_msg"]))
        return out

    def _krb(self, r: Row, a: tuple[int, int, str, int, str, int]) -> list[LogRecord]:
        client = r["client"]
        if not client:
            return []
        user, _, realm = client.rpartition("/") if "@" not in client else client.partition("@")
        return [IdentityEvent("kerberos", a[0], a[2], None, None, user or None, realm or None,
                              a[1], r["request_type"])]

    def _dhcp(self, r: Row) -> list[LogRecord]:
        uids = r["uids"] or []
        ip = r["assigned_addr"] or r["client_addr"] or r["requested_addr"]
        types = r["msg_types"] or []
        return [IdentityEvent("dhcp", r["ts"] or 0, ip, mac_norm(r["mac"]), r["host_name"] or None,
                              None, None, flow_id_of(sorted(uids)[0]) if uids else 0,
                              ",".join(types) or None)]


# -- files and directories ----------------------------------------------------------------


def log_name(path: Path) -> str:
    """conn.log, conn.00:00:00-01:00:00.log.gz, conn.json -> "conn"."""
    return path.name.split(".", 1)[0]


def _chunk(path: Path) -> str:
    """The rotation interval part of a name (``00:00:00-01:00:00``), "" for live logs."""
    parts = path.name.split(".")
    return parts[1] if len(parts) > 2 and parts[1][:1].isdigit() else ""


def _peek_log(path: Path) -> tuple[str, bool]:
    """(log path, is JSON) from a file's first lines."""
    try:
        lines = sniff_lines(path, 12)
    except OSError:
        return log_name(path), False
    for ln in lines:
        if ln.startswith("#path"):
            return ln.split(None, 1)[1].strip() if " " in ln or "\t" in ln else "", False
        if ln.startswith("{"):
            try:
                obj = json.loads(BTEST_TS.sub(":null", ln))
            except ValueError:
                return log_name(path), True
            return (str(obj.get("_path") or log_name(path)) if isinstance(obj, dict)
                    else log_name(path)), True
        if is_cut_header(ln.split("\t")):  # zeek-cut output: a header of names, no "#"
            return log_name(path), False
    return log_name(path), not any(ln.startswith("#") for ln in lines)


def iter_file(path: Path, st: ReadStats, conv: RowConverter) -> Iterator[LogRecord]:
    st.files += 1
    log, is_json = _peek_log(path)
    if not is_json:
        return iter_tsv(path, log, st, conv)
    return _json_records(path, log, st, conv)


def _json_records(path: Path, log: str, st: ReadStats, conv: RowConverter) -> Iterator[LogRecord]:
    with open_text(path) as fh:
        for line in fh:
            st.lines += 1
            r = json_row(line, log, st)
            if r is not None:
                st.records += 1
                for rec in conv.convert(*r):
                    st.count(rec)
                    yield rec


def order_files(paths: Iterable[Path]) -> list[Path]:
    """Rotation chunks in time order; in each, app logs first and conn.log last."""
    def key(p: Path) -> tuple[bool, str, str, int, str]:
        name = log_name(p)
        if name not in LOGS:
            name = _peek_log(p)[0]  # the name says nothing: #path / _path does
        rank = LOGS.index(name) if name in LOGS else len(LOGS)
        chunk = _chunk(p)
        return chunk == "", str(p.parent), chunk, rank, p.name  # live logs after archives
    return sorted(paths, key=key)


def iter_zeek(paths: Iterable[Path], st: ReadStats) -> Iterator[LogRecord]:
    conv = RowConverter(st)
    # chain, not a delegating generator: one less frame per record on the hot path
    return itertools.chain.from_iterable(iter_file(p, st, conv) for p in order_files(paths))


def zeek_dir_files(root: Path) -> list[Path]:
    """The logs we read in a Zeek log directory (live logs and YYYY-MM-DD/ archives)."""
    out = []
    for p in root.rglob("*"):
        if p.is_file() and log_name(p) in LOGS and not p.name.endswith((".cut", ".tmp")):
            out.append(p)
    return out
