"""Input kinds recognised by content, whatever the file name."""

from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import pytest

from sensor.sources.detect import detect_input

ZEEK_TSV = ("#separator \\x09\n#set_separator\t,\n#path\tconn\n#fields\tts\tuid\n"
            "#types\ttime\tstring\n")
ZEEK_JSON = json.dumps({"_path": "dns", "ts": 1.5, "uid": "C1", "id.orig_h": "1.1.1.1"}) + "\n"
ZEEK_JSON_NESTED = json.dumps({"ts": 1.5, "uid": "C1", "id": {"orig_h": "1.1.1.1"}}) + "\n"
EVE = json.dumps({"timestamp": "2026-11-26T10:00:00.000000+0000", "flow_id": 1,
                  "event_type": "dns"}) + "\n"
PCAP = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
PCAPNG = b"\x0a\x0d\x0d\x0a" + struct.pack("<I", 28) + b"\x4d\x3c\x2b\x1a" + bytes(16)


@pytest.mark.parametrize(("data", "kind"), [
    (PCAP, "pcap"), (PCAPNG, "pcapng"), (ZEEK_TSV.encode(), "zeek-tsv"),
    (ZEEK_JSON.encode(), "zeek-json"), (ZEEK_JSON_NESTED.encode(), "zeek-json"),
    (EVE.encode(), "eve"), (b"ts\tuid\tquery\n1.0\tC1\tx.example\n", "zeek-tsv"),
    (b"### BTest baseline\n" + ZEEK_TSV.encode(), "zeek-tsv"),
    (b'{"hello": "world"}\n', "unknown"), (b"just text\n", "unknown"), (b"", "unknown"),
    (b"\x00\x01\x02\x03garbage", "unknown"), (b"{truncated json", "unknown"),
])
@pytest.mark.parametrize("gz", [False, True])
def test_kinds_by_content_not_name(tmp_path: Path, data: bytes, kind: str, gz: bool) -> None:
    p = tmp_path / "misleading.pcap.log.json"  # the name says nothing true
    p.write_bytes(gzip.compress(data) if gz else data)
    assert detect_input(p) == kind


def test_truncated_gzip_still_sniffs(tmp_path: Path) -> None:
    p = tmp_path / "eve"
    p.write_bytes(gzip.compress(EVE.encode() * 2000)[:200])
    assert detect_input(p) == "eve"


def test_directories(tmp_path: Path) -> None:
    assert detect_input(tmp_path) == "unknown"  # empty
    (tmp_path / "notes.txt").write_text("hello\n")
    assert detect_input(tmp_path) == "unknown"
    day = tmp_path / "2026-11-26"
    day.mkdir()
    (day / "conn.00:00:00-01:00:00.log.gz").write_bytes(gzip.compress(ZEEK_TSV.encode()))
    assert detect_input(tmp_path) == "zeek-dir"
    assert detect_input(tmp_path / "missing") == "unknown"
