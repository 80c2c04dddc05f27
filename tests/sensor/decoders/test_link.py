"""Batch L2-L4 classification: every link type and encapsulation we claim."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.all import (
    GRE,
    IP,
    TCP,
    UDP,
    VXLAN,
    CookedLinux,
    Dot1AD,
    Dot1Q,
    Ether,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    Loopback,
    Raw,
)
from scapy.layers.l2 import CookedLinuxV2

from sensor.decoders.link import classify, ip_halves, ip_text
from sensor.sources import batch as lt


def run(pkts: list[tuple[bytes, int]]):
    blob = b"".join(p for p, _ in pkts)
    offs = np.cumsum([0] + [len(p) for p, _ in pkts[:-1]]).astype(np.int64)
    caps = np.array([len(p) for p, _ in pkts], dtype=np.int32)
    lts = np.array([t for _, t in pkts], dtype=np.int32)
    return classify(np.frombuffer(blob + b"\0" * 64, dtype=np.uint8), offs, caps, lts)


def src(c, i):
    return ip_text(int(c.src_hi[i]), int(c.src_lo[i]))


def dst(c, i):
    return ip_text(int(c.dst_hi[i]), int(c.dst_lo[i]))


TCP_PAY = b"GET / HTTP/1.1\r\n\r\n"


@pytest.mark.parametrize(
    "frame,linktype",
    [
        (Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1234, dport=80) / TCP_PAY,
         lt.LINKTYPE_ETHERNET),
        (Ether() / Dot1Q(vlan=7) / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1234, dport=80)
         / TCP_PAY, lt.LINKTYPE_ETHERNET),
        (Ether() / Dot1AD(vlan=7) / Dot1Q(vlan=99) / IP(src="10.0.0.1", dst="10.0.0.2")
         / TCP(sport=1234, dport=80) / TCP_PAY, lt.LINKTYPE_ETHERNET),
        (CookedLinux() / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1234, dport=80) / TCP_PAY,
         lt.LINKTYPE_LINUX_SLL),
        (CookedLinuxV2(proto=0x0800) / IP(src="10.0.0.1", dst="10.0.0.2")
         / TCP(sport=1234, dport=80) / TCP_PAY, lt.LINKTYPE_LINUX_SLL2),
        (Loopback(type=2) / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1234, dport=80)
         / TCP_PAY, lt.LINKTYPE_NULL),
        (IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1234, dport=80) / TCP_PAY,
         lt.LINKTYPE_RAW),
        (IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1234, dport=80) / TCP_PAY,
         lt.LINKTYPE_IPV4),
    ],
)
def test_ipv4_tcp_over_every_link_type(frame, linktype):
    c = run([(bytes(frame), linktype)])
    assert c.ok[0] and c.ip_version[0] == 4 and c.proto[0] == 6
    assert (src(c, 0), int(c.sport[0]), dst(c, 0), int(c.dport[0])) == (
        "10.0.0.1", 1234, "10.0.0.2", 80)
    assert int(c.pay_len[0]) == len(TCP_PAY)
    raw = bytes(frame)
    o = int(c.pay_off[0])
    assert raw[o: o + len(TCP_PAY)] == TCP_PAY


def test_null_loopback_big_endian_and_ipv6_family():
    v6 = IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(sport=5353, dport=53) / (b"x" * 5)
    le = (24).to_bytes(4, "little") + bytes(v6)
    be = (30).to_bytes(4, "big") + bytes(v6)
    c = run([(le, lt.LINKTYPE_NULL), (be, lt.LINKTYPE_LOOP)])
    assert list(c.ip_version) == [6, 6]
    assert src(c, 0) == "2001:db8::1" and dst(c, 1) == "2001:db8::2"
    assert list(c.pay_len) == [5, 5]


def test_vlan_id_and_mac():
    f = Ether(src="00:11:22:33:44:55") / Dot1Q(vlan=300) / IP(src="1.2.3.4", dst="5.6.7.8") / UDP()
    c = run([(bytes(f), lt.LINKTYPE_ETHERNET)])
    assert int(c.vlan[0]) == 300
    assert int(c.src_mac[0]) == 0x001122334455


def test_ipv6_extension_headers_and_fragments():
    f1 = (Ether() / IPv6(src="2001:db8::1", dst="2001:db8::2") / IPv6ExtHdrHopByHop()
          / IPv6ExtHdrDestOpt() / TCP(sport=5, dport=443, flags="S"))
    first = (Ether() / IPv6(src="2001:db8::1", dst="2001:db8::2")
             / IPv6ExtHdrFragment(offset=0, m=1, nh=17) / UDP(sport=9, dport=53) / (b"a" * 8))
    later = (Ether() / IPv6(src="2001:db8::1", dst="2001:db8::2")
             / IPv6ExtHdrFragment(offset=5, m=0, nh=17) / Raw(b"b" * 16))
    c = run([(bytes(f1), 1), (bytes(first), 1), (bytes(later), 1)])
    assert c.proto[0] == 6 and int(c.dport[0]) == 443 and int(c.tcp_flags[0]) == 0x02
    assert c.proto[1] == 17 and int(c.dport[1]) == 53 and not c.fragment[1]
    assert c.fragment[2] and int(c.dport[2]) == 0


def test_ipv4_fragment_not_parsed_as_l4():
    f = Ether() / IP(src="1.1.1.1", dst="2.2.2.2", frag=100, proto=17) / Raw(b"\x00" * 30)
    c = run([(bytes(f), 1)])
    assert c.ok[0] and c.fragment[0] and int(c.sport[0]) == 0


def test_ethernet_padding_is_not_payload():
    f = Ether() / IP(src="1.1.1.1", dst="2.2.2.2") / TCP(sport=1, dport=2, flags="A")
    raw = bytes(f) + b"\x00" * 6  # minimum-size frame padding
    c = run([(raw, 1)])
    assert int(c.pay_len[0]) == 0
    assert int(c.ip_bytes[0]) == 40


@pytest.mark.parametrize(
    "outer",
    [
        lambda inner: Ether() / IP(src="192.0.2.1", dst="192.0.2.2") / GRE(proto=0x0800) / inner,
        lambda inner: Ether() / IP(src="192.0.2.1", dst="192.0.2.2") / UDP(sport=4000, dport=4789)
        / VXLAN(vni=5) / Ether() / inner,
        lambda inner: Ether() / IP(src="192.0.2.1", dst="192.0.2.2") / GRE(proto=0x6558)
        / Ether() / inner,
        lambda inner: Ether() / IP(src="192.0.2.1", dst="192.0.2.2", proto=4) / inner,
    ],
    ids=["gre-ip", "vxlan", "gre-teb", "ipip"],
)
def test_tunnels_are_decapsulated(outer):
    inner = IP(src="10.1.1.1", dst="10.2.2.2") / TCP(sport=40000, dport=443) / b"\x16\x03\x01"
    c = run([(bytes(outer(inner)), 1)])
    assert c.tunnelled[0]
    assert (src(c, 0), dst(c, 0), int(c.dport[0])) == ("10.1.1.1", "10.2.2.2", 443)
    assert int(c.pay_len[0]) == 3


def test_truncated_headers_are_not_ok():
    f = bytes(Ether() / IP(src="1.1.1.1", dst="2.2.2.2") / TCP())
    pkts = [(f[:k], 1) for k in (0, 5, 14, 20, 39)]
    c = run(pkts)
    assert not c.ok[:4].any()
    # IP header complete but TCP header cut: IP ok, no ports
    assert c.ok[4] and int(c.sport[4]) == 0 and int(c.pay_len[4]) == 0


def test_ip_text_round_trip():
    for a in ("10.0.0.1", "255.255.255.255", "2001:db8::1", "::1", "::ffff:1.2.3.4"):
        hi, lo = ip_halves(a)
        assert ip_text(hi, lo) in (a, "1.2.3.4")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.binary(max_size=120), st.sampled_from([0, 1, 101, 108, 113, 276,
                                                                     228, 229, 12, 147]))
                , min_size=1, max_size=20))
def test_random_bytes_never_crash_and_stay_in_bounds(pkts):
    c = run(pkts)
    caps = [len(p) for p, _ in pkts]
    offs = np.cumsum([0, *caps[:-1]])
    for i in range(len(pkts)):
        if c.pay_len[i] > 0:
            assert offs[i] <= c.pay_off[i] and c.pay_off[i] + c.pay_len[i] <= offs[i] + caps[i]


def test_ppp_and_cisco_hdlc_link_types():
    ip = bytes(IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=2) / b"abc")
    ppp_ac = b"\xff\x03\x00\x21" + ip  # address/control + protocol IPv4
    ppp = b"\x00\x21" + ip  # address/control omitted
    chdlc = b"\x0f\x00\x08\x00" + ip
    c = run([(ppp_ac, 9), (ppp, 9), (chdlc, 104), (ppp_ac, 50)])
    assert c.ok.all() and list(c.pay_len) == [3, 3, 3, 3]
    assert {src(c, i) for i in range(4)} == {"10.0.0.1"}


def test_gre_in_udp_and_vxlan_gpe():
    inner = bytes(IP(src="10.1.1.1", dst="10.2.2.2") / UDP(sport=5, dport=53) / b"q")
    gre_udp = Ether() / IP(src="192.0.2.1", dst="192.0.2.2") / UDP(sport=999, dport=4754) / (
        b"\x00\x00\x08\x00" + inner)
    gpe = Ether() / IP(src="192.0.2.1", dst="192.0.2.2") / UDP(sport=999, dport=4790) / (
        b"\x0c\x00\x00\x01" + b"\x00\x00\x05\x00" + inner)
    c = run([(bytes(gre_udp), 1), (bytes(gpe), 1)])
    assert c.tunnelled.all()
    assert [src(c, 0), src(c, 1)] == ["10.1.1.1", "10.1.1.1"] and list(c.dport) == [53, 53]


def _nflog(inner: bytes, family: int = 2) -> bytes:
    import struct

    def tlv(t: int, v: bytes) -> bytes:
        raw = struct.pack("<HH", 4 + len(v), t) + v
        return raw + b"\0" * (-len(raw) % 4)
    return bytes([family, 0]) + b"\0\0" + tlv(1, b"\x08\x00\x00\x01") + tlv(10, b"pfx") + \
        tlv(9, inner)


def test_wifi_radiotap_nflog_and_llc_snap():
    from scapy.all import LLC, SNAP, Dot3, Dot11, Dot11QoS, RadioTap
    ip = IP(src="10.1.1.1", dst="10.2.2.2") / TCP(sport=1234, dport=80) / TCP_PAY
    data = Dot11(type=2, subtype=0, FCfield="to_DS", addr1="02:00:00:00:00:01",
                 addr2="02:00:00:00:00:aa", addr3="02:00:00:00:00:02")
    qos = Dot11(type=2, subtype=8, FCfield="from_DS", addr1="02:00:00:00:00:01",
                addr2="02:00:00:00:00:02", addr3="02:00:00:00:00:bb") / Dot11QoS()
    prot = Dot11(type=2, subtype=0, FCfield="to_DS+protected")
    snap = LLC(dsap=0xAA, ssap=0xAA, ctrl=3) / SNAP(OUI=0, code=0x0800)
    c = run([
        (bytes(RadioTap() / data / snap / ip), lt.LINKTYPE_IEEE802_11_RADIOTAP),
        (bytes(qos / snap / ip), lt.LINKTYPE_IEEE802_11),
        (bytes(RadioTap() / prot / Raw(b"\x11" * 60)), lt.LINKTYPE_IEEE802_11_RADIOTAP),
        (_nflog(bytes(ip)), lt.LINKTYPE_NFLOG),
        (_nflog(bytes(IPv6(src="fd00::1", dst="fd00::2") / UDP(sport=5, dport=53)), 10),
         lt.LINKTYPE_NFLOG),
        (bytes(Dot3(src="02:00:00:00:00:cc", dst="02:00:00:00:00:01") / snap / ip),
         lt.LINKTYPE_ETHERNET),
    ])
    assert c.ok.tolist() == [True, True, False, True, True, True]
    for i in (0, 1, 3, 5):
        assert (src(c, i), dst(c, i), int(c.dport[i])) == ("10.1.1.1", "10.2.2.2", 80)
        assert int(c.pay_len[i]) == len(TCP_PAY)
    assert (src(c, 4), int(c.dport[4])) == ("fd00::1", 53)
    # transmitter (to-DS) or the source in addr3 (from-DS)
    assert int(c.src_mac[0]) == 0x0200000000AA and int(c.src_mac[1]) == 0x0200000000BB
