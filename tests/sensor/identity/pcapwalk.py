"""Walk a corpus capture with the project's reader: UDP datagrams and TCP streams.

Shared by the DHCP/Kerberos decoder tests and the identity tests. TCP streams
are reassembled per direction by sequence number (enough for the small test
captures: duplicates are dropped, gaps end the stream).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sensor.decoders.link import PROTO_TCP, PROTO_UDP, classify, ip_text
from sensor.sources.capture import open_capture

REPO = Path(__file__).resolve().parents[3]
CORPUS = REPO / ".." / "shared" / "corpus"


def corpus_file(rel: str) -> Path:
    """A corpus file, or a clean skip when the corpus (or that file) is absent."""
    p = CORPUS / rel
    if not p.is_file():
        pytest.skip(f"corpus file {rel} not present")
    return p


@dataclass(frozen=True, slots=True)
class Datagram:
    index: int  # 1-based packet number in the capture (tshark's frame.number)
    ts_ns: int
    src: str
    sport: int
    dst: str
    dport: int
    src_mac: str | None
    payload: bytes


@dataclass(slots=True)
class Stream:
    """One direction of a TCP connection."""

    src: str
    sport: int
    dst: str
    dport: int
    first_ts_ns: int
    segments: dict[int, bytes] = field(default_factory=dict)  # seq -> payload

    def data(self) -> bytes:
        out = bytearray()
        nxt: int | None = None
        for seq in sorted(self.segments):
            seg = self.segments[seq]
            if nxt is None:
                nxt = seq
            if seq > nxt:
                break  # gap
            out += seg[nxt - seq:] if seq < nxt else seg
            nxt = max(nxt, seq + len(seg))
        return bytes(out)


def _mac(v: int) -> str | None:
    return ":".join(f"{(v >> s) & 0xFF:02x}" for s in range(40, -8, -8)) if v else None


def walk(path: Path) -> tuple[list[Datagram], list[Stream]]:
    """All UDP datagrams (in order) and TCP directions of a capture."""
    udp: list[Datagram] = []
    streams: dict[tuple[str, int, str, int], Stream] = {}
    index = 0
    with open_capture(path) as reader:
        for batch in reader.batches():
            cols = classify(batch.buf, batch.offsets, batch.caplens, batch.linktypes)
            for i in range(len(batch)):
                index += 1
                if not cols.ok[i] or cols.fragment[i]:
                    continue
                proto = int(cols.proto[i])
                if proto not in (PROTO_TCP, PROTO_UDP):
                    continue
                off, n = int(cols.pay_off[i]), int(cols.pay_len[i])
                payload = batch.buf[off : off + n].tobytes()
                src = ip_text(int(cols.src_hi[i]), int(cols.src_lo[i]))
                dst = ip_text(int(cols.dst_hi[i]), int(cols.dst_lo[i]))
                sport, dport = int(cols.sport[i]), int(cols.dport[i])
                ts = int(batch.ts_ns[i])
                if proto == PROTO_UDP:
                    udp.append(Datagram(index, ts, src, sport, dst, dport,
                                        _mac(int(cols.src_mac[i])), payload))
                elif payload:
                    key = (src, sport, dst, dport)
                    st = streams.get(key)
                    if st is None:
                        st = streams[key] = Stream(src, sport, dst, dport, ts)
                    seq = int(cols.tcp_seq[i])
                    if seq not in st.segments or len(payload) > len(st.segments[seq]):
                        st.segments[seq] = payload
    return udp, list(streams.values())


def udp_on_port(path: Path, *ports: int) -> Iterator[Datagram]:
    udp, _ = walk(path)
    return (d for d in udp if d.sport in ports or d.dport in ports)
