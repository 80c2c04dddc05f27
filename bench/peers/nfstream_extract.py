#!/usr/bin/env python3
"""Peer: nfstream (libpcap + nDPI) flow export, counting names per flow.

    python bench/peers/nfstream_extract.py CAPTURE.pcap > counts.json

nfstream reports flows, not messages: one requested_server_name per flow
(the TLS/QUIC SNI, the DNS query name of the flow's first query, the HTTP
Host of the first request).  n_meters=1 keeps it on one process so the
run is comparable with the single-threaded peers.
"""

from __future__ import annotations

import json
import sys
from collections import Counter

import nfstream  # type: ignore[import-untyped]


def main(path: str) -> int:
    flows = 0
    packets = 0
    sni: Counter[str] = Counter()
    quic: Counter[str] = Counter()
    dns: Counter[str] = Counter()
    http: Counter[str] = Counter()
    apps: Counter[str] = Counter()
    streamer = nfstream.NFStreamer(
        source=path,
        n_dissections=20,
        statistical_analysis=False,
        n_meters=1,
        idle_timeout=120,
        active_timeout=1800,
    )
    for fl in streamer:
        flows += 1
        packets += fl.bidirectional_packets
        app = fl.application_name or ""
        master = app.split(".")[0]
        apps[master] += 1
        name = (fl.requested_server_name or "").lower()
        if not name:
            continue
        if master == "TLS":
            sni[name] += 1
        elif master == "QUIC":
            quic[name] += 1
        elif master == "DNS":
            dns[name] += 1
        elif master == "HTTP":
            http[name.split(":")[0]] += 1
    out = {
        "tool": "nfstream " + nfstream.__version__,
        "per_flow": True,
        "flows": flows,
        "packets": packets,
        "sni": dict(sni),
        "quic_sni": dict(quic),
        "dns": dict(dns),
        "http": dict(http),
        "applications": dict(apps.most_common(20)),
    }
    sys.stdout.write("\n" + json.dumps(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
