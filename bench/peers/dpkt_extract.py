#!/usr/bin/env python3
"""Baseline peer: a plain dpkt loop extracting TLS SNI, DNS query names and HTTP hosts.

    python bench/peers/dpkt_extract.py CAPTURE.pcap > counts.json

What a competent engineer would write in an afternoon: Ethernet -> IPv4/IPv6
-> TCP/UDP with dpkt, a per-flow buffer so a ClientHello split over several
TCP segments is reassembled (in arrival order, no retransmission handling),
dpkt.ssl for the ClientHello, dpkt.dns for queries, dpkt.http.Request for
requests.  No QUIC (dpkt cannot decrypt Initials).  Prints one JSON object.
"""

from __future__ import annotations

import json
import struct
import sys
from collections import Counter

import dpkt  # type: ignore[import-untyped]

HTTP_METHODS = (
    b"GET ",
    b"POST ",
    b"PUT ",
    b"HEAD ",
    b"DELETE ",
    b"OPTIONS ",
    b"PATCH ",
    b"CONNECT ",
)
MAX_HELLO = 1 << 16


def sni_from_hello(record: bytes) -> str | None:
    """SNI host_name from a whole TLS handshake record holding a ClientHello."""
    rec = dpkt.ssl.TLSRecord(record)
    hs = dpkt.ssl.TLSHandshake(rec.data)
    hello = hs.data
    if not isinstance(hello, dpkt.ssl.TLSClientHello):
        return None
    for etype, edata in getattr(hello, "extensions", []):
        if etype == 0 and len(edata) >= 5:
            (nlen,) = struct.unpack_from("!H", edata, 3)
            return str(edata[5 : 5 + nlen].decode("ascii", "replace").lower())
    return None


def main(path: str) -> int:
    pkts = 0
    sni: Counter[str] = Counter()
    dns: Counter[str] = Counter()
    http: Counter[str] = Counter()
    pending: dict[tuple[bytes, int, bytes, int], bytes] = {}
    errors = 0
    with open(path, "rb") as f:
        for _ts, buf in dpkt.pcap.Reader(f):
            pkts += 1
            try:
                eth = dpkt.ethernet.Ethernet(buf)
                ip = eth.data
                if not isinstance(ip, (dpkt.ip.IP, dpkt.ip6.IP6)):
                    continue
                l4 = ip.data
                if isinstance(l4, dpkt.tcp.TCP):
                    data = l4.data
                    if not data:
                        continue
                    key = (ip.src, l4.sport, ip.dst, l4.dport)
                    buffered = pending.pop(key, None)
                    if buffered is not None:
                        data = buffered + data
                    elif not (data[0] == 0x16 and len(data) > 5 and data[5] == 1):
                        if data.startswith(HTTP_METHODS):
                            try:
                                req = dpkt.http.Request(data)
                            except dpkt.NeedData:  # body not all here: headers are enough
                                req = dpkt.http.Request()
                                req.unpack(data.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n")
                            host = req.headers.get("host")
                            if host:
                                http[host.split(":")[0].lower()] += 1
                        continue
                    if len(data) < 5:
                        pending[key] = data
                        continue
                    need = 5 + struct.unpack_from("!H", data, 3)[0]
                    if len(data) < need:
                        if need <= MAX_HELLO:
                            pending[key] = data
                        continue
                    name = sni_from_hello(data[:need])
                    if name:
                        sni[name] += 1
                elif isinstance(l4, dpkt.udp.UDP) and l4.dport == 53:
                    msg = dpkt.dns.DNS(l4.data)
                    if msg.qr == dpkt.dns.DNS_Q:
                        for q in msg.qd:
                            dns[q.name.lower()] += 1
            except (dpkt.UnpackError, dpkt.NeedData, ValueError, IndexError, struct.error):
                errors += 1
    out = {
        "tool": "dpkt " + dpkt.__version__,
        "packets": pkts,
        "sni": dict(sni),
        "quic_sni": None,  # not supported
        "dns": dict(dns),
        "http": dict(http),
        "errors": errors,
    }
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
