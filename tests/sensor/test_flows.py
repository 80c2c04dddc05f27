"""Flow keys, Community ID and the flow table's accounting."""

from __future__ import annotations

import numpy as np
from scapy.all import IP, TCP, UDP, Ether, IPv6

from sensor.decoders.link import classify
from sensor.flows import FlowTable, FlowTimeouts, community_id, flow_keys


def batch(frames, ts):
    raws = [bytes(f) for f in frames]
    offs = np.cumsum([0] + [len(r) for r in raws[:-1]]).astype(np.int64)
    caps = np.array([len(r) for r in raws], dtype=np.int32)
    buf = np.frombuffer(b"".join(raws) + b"\0" * 64, dtype=np.uint8)
    c = classify(buf, offs, caps, np.ones(len(raws), dtype=np.int32))
    return c, np.array([int(t * 1e9) for t in ts], dtype=np.int64)


def test_community_id_spec_vectors():
    # from the community-id-spec baseline (seed 0)
    assert community_id("128.232.110.120", 34855, "66.35.250.204", 80, 6) == \
        "1:LQU9qZlK+B5F3KDmev6m5PMibrg="
    assert community_id("66.35.250.204", 80, "128.232.110.120", 34855, 6) == \
        "1:LQU9qZlK+B5F3KDmev6m5PMibrg="
    assert community_id("2001:db8::1", 1234, "2001:db8::2", 53, 17).startswith("1:")


def test_keys_are_direction_independent():
    a = Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1000, dport=443)
    b = Ether() / IP(src="10.0.0.2", dst="10.0.0.1") / TCP(sport=443, dport=1000)
    c_ = Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1001, dport=443)
    d = Ether() / IPv6(src="::1", dst="::2") / UDP(sport=1, dport=2)
    c, _ = batch([a, b, c_, d], [0, 0, 0, 0])
    k, low = flow_keys(c)
    assert k[0] == k[1] and k[0] != k[2] and k[3] not in (k[0], k[2])
    assert low[0] != low[1]


def test_table_counts_per_direction_and_client_from_syn():
    C, S = "10.0.0.1", "10.0.0.2"
    frames = [
        Ether() / IP(src=C, dst=S) / TCP(sport=5000, dport=80, flags="S"),
        Ether() / IP(src=S, dst=C) / TCP(sport=80, dport=5000, flags="SA"),
        Ether() / IP(src=C, dst=S) / TCP(sport=5000, dport=80, flags="A") / (b"x" * 100),
        Ether() / IP(src=S, dst=C) / TCP(sport=80, dport=5000, flags="A") / (b"y" * 1000),
    ]
    t = FlowTable()
    # split across two batches: the second sees an existing flow
    for part in (frames[:2], frames[2:]):
        c, ts = batch(part, [1.0, 1.5][: len(part)])
        k, low = flow_keys(c)
        t.update(c, ts, k, low)
    [exp] = t.flush()
    r = exp.record(0)
    assert (r.client_ip, r.client_port, r.server_ip, r.server_port) == (C, 5000, S, 80)
    assert (r.packets_client_to_server, r.packets_server_to_client) == (2, 2)
    assert r.bytes_client_to_server == 40 + 140 and r.bytes_server_to_client == 40 + 1040


def test_client_is_the_high_port_side_without_handshake():
    C, S = "10.0.0.1", "10.0.0.2"
    # first packet seen goes server -> client (capture started mid-flow)
    frames = [Ether() / IP(src=S, dst=C) / TCP(sport=443, dport=51000, flags="A") / b"x",
              Ether() / IP(src=C, dst=S) / TCP(sport=51000, dport=443, flags="A") / b"y"]
    c, ts = batch(frames, [1, 2])
    t = FlowTable()
    t.update(c, ts, *flow_keys(c))
    r = t.flush()[0].record(0)
    assert (r.client_ip, r.server_port) == (C, 443)


def test_idle_and_closed_expiry():
    C, S = "10.0.0.1", "10.0.0.2"
    t = FlowTable(timeouts=FlowTimeouts(udp_idle_s=10, closed_linger_s=1))
    frames = [Ether() / IP(src=C, dst=S) / UDP(sport=1, dport=2),
              Ether() / IP(src=C, dst=S) / TCP(sport=3, dport=4, flags="FA"),
              Ether() / IP(src=S, dst=C) / TCP(sport=4, dport=3, flags="FA")]
    c, ts = batch(frames, [0, 0, 0])
    t.update(c, ts, *flow_keys(c))
    assert t.expire(int(0.5e9)) == []
    [closed] = t.expire(int(2e9))
    assert closed.reason == "closed" and len(closed) == 1
    [idle] = t.expire(int(11e9))
    assert idle.reason == "idle" and len(t) == 0


def test_scalar_pair_key_equals_vector_pair_key():
    from sensor.decoders.link import ip_halves
    from sensor.enrich.dns_correlation import _pair
    from sensor.flows import pair_keys

    for a, b in (("10.0.0.1", "192.0.2.7"), ("2001:db8::1", "2606:4700::1"), ("::1", "1.2.3.4")):
        (ah, al), (bh, bl) = ip_halves(a), ip_halves(b)
        u = lambda x: np.array([x], dtype=np.uint64)  # noqa: E731
        assert _pair(a, b) == int(pair_keys(u(ah), u(al), u(bh), u(bl))[0])
