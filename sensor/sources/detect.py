"""What an input is, by content (never by file name); gzip is looked through."""

from __future__ import annotations

import json
import re
import zlib
from pathlib import Path
from typing import Literal

from sensor.sources.capture import capture_kind

InputKind = Literal["pcap", "pcapng", "zeek-tsv", "zeek-json", "eve", "zeek-dir", "unknown"]

_SNIFF = 64 * 1024
_DIR_FILES = 200  # files looked at in a directory before giving up


def head_bytes(path: Path, n: int = _SNIFF) -> bytes:
    """The first ``n`` (decompressed) bytes; a truncated gzip gives what it has."""
    with path.open("rb") as f:
        raw = f.read(n)
        if raw[:2] != b"\x1f\x8b":
            return raw
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        out = b""
        while len(out) < n:
            try:
                out += d.decompress(raw, n - len(out))
            except zlib.error:
                break
            raw = d.unconsumed_tail or f.read(_SNIFF)
            if not raw or d.eof:
                break
        return out[:n]


def sniff_lines(path: Path, n: int) -> list[str]:
    """Up to ``n`` complete leading lines of a text file (plain or gzip)."""
    return _head_lines(head_bytes(path), n)


def _head_lines(data: bytes, n: int) -> list[str]:
    """Up to ``n`` complete leading lines of :func:`head_bytes`' ``data``."""
    lines = data.decode("utf-8", "surrogateescape").split("\n")
    if len(data) == _SNIFF:
        lines = lines[:-1]  # the last piece may be cut
    return [ln.rstrip("\r") for ln in lines[:n]]


# btest baselines canonify times to a bare XXXXXXXXXX.XXXXXX (not JSON): read as null
BTEST_TS = re.compile(r":X{10}\.X{6}(?=[,}])")
_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")


def is_cut_header(parts: list[str]) -> bool:
    """zeek-cut output: a first line of field names (one a ``uid``), no ``#`` header."""
    names = [p.rstrip("\r\n") for p in parts]
    return ("uid" in names or "uids" in names) and all(_FIELD_NAME.match(n) for n in names)


def _json_kind(line: str) -> InputKind:
    try:
        obj = json.loads(BTEST_TS.sub(":null", line))
    except ValueError:
        return "unknown"
    if not isinstance(obj, dict):
        return "unknown"
    if "event_type" in obj and ("timestamp" in obj or "flow_id" in obj):
        return "eve"
    if "_path" in obj or "uid" in obj or "uids" in obj or "id.orig_h" in obj or (
            isinstance(obj.get("id"), dict) and "orig_h" in obj["id"]):
        return "zeek-json"
    return "unknown"


def detect_file(path: Path) -> InputKind:
    head = head_bytes(path)
    kind = capture_kind(head)
    if kind is not None:
        return kind
    for line in _head_lines(head, 16):
        s = line.strip()
        if not s or s.startswith("### "):  # btest banners
            continue
        if s.startswith("#separator") or s.startswith("#fields"):
            return "zeek-tsv"
        if s.startswith("{"):
            return _json_kind(s)
        if is_cut_header(s.split("\t")):
            return "zeek-tsv"  # zeek-cut output: field names, no # header
        if not s.startswith("#"):
            return "unknown"
    return "unknown"


def detect_input(path: str | Path) -> InputKind:
    """pcap, pcapng, zeek-tsv, zeek-json, eve; a directory holding Zeek logs is
    ``zeek-dir``; anything else (unreadable too) ``unknown``."""
    p = Path(path)
    try:
        if p.is_dir():
            for i, f in enumerate(sorted(q for q in p.rglob("*") if q.is_file())):
                if i >= _DIR_FILES:
                    break
                if detect_file(f) in ("zeek-tsv", "zeek-json"):
                    return "zeek-dir"
            return "unknown"
        return detect_file(p)
    except OSError:
        return "unknown"
