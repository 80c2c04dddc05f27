"""IP fragment reassembly (sensor/defrag.py) and its use by the pipeline."""

from __future__ import annotations

import random

from scapy.all import IP, TCP, UDP, Ether, IPv6, IPv6ExtHdrFragment, fragment, fragment6, wrpcap

from sensor.catalog.index import Catalog, default_signature_dir
from sensor.config import Settings
from sensor.defrag import Defragmenter
from sensor.pipeline import Pipeline
from sensor.sources.capture import open_capture

REQ = (b"GET /v1/models HTTP/1.1\r\nHost: api.openai.com\r\nUser-Agent: frag-test\r\n"
       + b"X-Pad: " + b"a" * 3000 + b"\r\n\r\n")


def _v4_frags(size: int = 400) -> tuple[bytes, list[bytes]]:
    pkt = IP(src="10.0.0.5", dst="10.9.9.9", id=77) / TCP(sport=5000, dport=80, flags="PA",
                                                          seq=1) / REQ
    return bytes(pkt), [bytes(f) for f in fragment(pkt, fragsize=size)]


def test_v4_in_order_out_of_order_and_duplicates():
    whole, frags = _v4_frags()
    assert len(frags) > 5
    for order in (frags, frags[::-1], random.Random(1).sample(frags, len(frags))):
        d = Defragmenter()
        got = [d.add(f, i) for i, f in enumerate([*order, order[0]])]
        out = [g for g in got if g is not None]
        assert len(out) == 1
        assert out[0][20:] == whole[20:]  # payload identical; header rewritten
        assert int.from_bytes(out[0][2:4], "big") == len(whole)
        assert out[0][6:8] == b"\x00\x00"


def test_a_hole_never_completes_and_times_out():
    _, frags = _v4_frags()
    d = Defragmenter(timeout_ns=1000)
    assert all(d.add(f, 0) is None for i, f in enumerate(frags) if i != 2)
    d.expire(5000)
    assert d.stats.dropped_timeout == 1 and not d._open


def test_bounded_datagrams_and_size():
    d = Defragmenter(max_datagrams=2, max_bytes=1000)
    for ident in range(5):
        p = IP(src="10.0.0.5", dst="10.9.9.9", id=ident, flags="MF", frag=0) / (b"x" * 64)
        d.add(bytes(p), 0)
    assert len(d._open) == 2 and d.stats.dropped_overflow == 3
    big = IP(src="10.0.0.5", dst="10.9.9.9", id=99, frag=200) / (b"x" * 64)  # ends past 1000
    assert d.add(bytes(big), 0) is None


def test_v6_fragments():
    pkt = IPv6(src="fd00::5", dst="fd00::9") / IPv6ExtHdrFragment(id=5) / UDP(
        sport=5000, dport=53) / (b"q" * 2500)
    frags = [bytes(f) for f in fragment6(pkt, 600)]
    d = Defragmenter()
    out = [x for x in (d.add(f, 0) for f in frags[::-1]) if x is not None]
    assert len(out) == 1
    assert out[0][6] == 17 and out[0][40 + 8:] == b"q" * 2500


def test_garbage_is_counted_not_raised():
    d = Defragmenter()
    for junk in (b"", b"\x45", b"\x60" + b"\x00" * 10, b"\x99" * 40, bytes(range(60))):
        assert d.add(junk, 0) is None
    assert d.stats.malformed == 5


def test_pipeline_dissects_a_fragmented_request(tmp_path):
    _, frags = _v4_frags()
    eth = Ether(src="02:00:00:00:00:05", dst="02:00:00:00:00:09")
    pkts = []
    for i, f in enumerate(frags):
        p = eth / IP(f)
        p.time = 1_700_000_000 + i * 0.001
        pkts.append(p)
    path = tmp_path / "frag.pcap"
    wrpcap(str(path), pkts)
    obs = []
    pipe = Pipeline(Settings(), Catalog.load([default_signature_dir()]), obs.append)
    with open_capture(path) as r:
        for b in r.batches(3):  # fragments spread over several batches
            pipe.feed(b)
    found = pipe.finish()
    reqs = [o.payload for o in obs if o.kind == "http.request"]
    assert [(q.host, q.user_agent) for q in reqs] == [("api.openai.com", "frag-test")]
    assert any(getattr(f, "service", None) and f.service.id == "openai-api" for f in found)
