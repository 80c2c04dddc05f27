"""DHCPv4/DHCPv6 decoder: crafted messages, fuzzing, and the corpus peers.

Peers: Zeek dhcp.log (mac, host_name, requested_addr, assigned_addr,
lease_time per transaction), Suricata dhcp EVE events (incl. the
NUL-terminated host name and option 52 overload), Arkime dhcp session
fields, and tshark's per-packet DHCP fields.
"""

from __future__ import annotations

import contextlib
import csv
import json
import socket
import struct
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from sensor.decoders.dhcp import (
    ACK,
    DISCOVER,
    REQUEST,
    DhcpMessage,
    parse_dhcp,
    parse_dhcpv6,
    text,
)
from sensor.errors import DecodeError
from tests.sensor.identity.pcapwalk import corpus_file, walk

MAC = bytes.fromhex("0011321749f0")


def opt(code: int, val: bytes) -> bytes:
    return bytes([code, len(val)]) + val


def bootp(op: int = 1, options: bytes = b"", *, xid: int = 0x1234, ciaddr: str = "0.0.0.0",
          yiaddr: str = "0.0.0.0", mac: bytes = MAC, sname: bytes = b"", file: bytes = b"",
          magic: bool = True, hlen: int | None = None) -> bytes:
    head = struct.pack(">BBBBIHH", op, 1, len(mac) if hlen is None else hlen, 0, xid, 0, 0)
    head += socket.inet_aton(ciaddr) + socket.inet_aton(yiaddr) + b"\0" * 8
    head += mac.ljust(16, b"\0") + sname.ljust(64, b"\0") + file.ljust(128, b"\0")
    assert len(head) == 236
    return head + (b"\x63\x82\x53\x63" + options + b"\xff" if magic else b"")


def request(*opts: bytes, **kw: object) -> bytes:
    return bootp(1, opt(53, bytes([REQUEST])) + b"".join(opts), **kw)  # type: ignore[arg-type]


# -- crafted DHCPv4 ------------------------------------------------------------------------


def test_request_fields() -> None:
    m = parse_dhcp(request(opt(50, socket.inet_aton("10.0.0.7")), opt(12, b"laptop-7"),
                           opt(60, b"MSFT 5.0"), opt(55, bytes([1, 3, 6, 15])),
                           opt(61, b"\x01" + MAC)))
    assert (m.op, m.xid, m.msg_type, m.msg_type_name, m.from_client) == (
        1, 0x1234, REQUEST, "REQUEST", True)
    assert m.client_mac == "00:11:32:17:49:f0"
    assert (m.requested_ip, m.hostname, m.vendor_class) == ("10.0.0.7", "laptop-7", "MSFT 5.0")
    assert m.params == (1, 3, 6, 15) and m.client_id == b"\x01" + MAC
    assert m.assigned_ip is None and m.device_name == "laptop-7"


def test_ack_fields() -> None:
    opts = (opt(53, bytes([ACK])) + opt(51, struct.pack(">I", 3600)) + opt(58, b"\0\0\x06\x91")
            + opt(59, b"\0\0\x0b\xd7") + opt(1, socket.inet_aton("255.255.0.0"))
            + opt(3, socket.inet_aton("10.16.1.1")) + opt(6, socket.inet_aton("10.16.1.1")
                                                          + socket.inet_aton("9.9.9.9"))
            + opt(54, socket.inet_aton("10.16.1.1")) + opt(15, b"corp.example"))
    m = parse_dhcp(bootp(2, opts, yiaddr="10.16.1.4"))
    assert (m.msg_type_name, m.assigned_ip, m.lease_time_s) == ("ACK", "10.16.1.4", 3600)
    assert (m.renewal_time_s, m.rebinding_time_s) == (1681, 3031)
    assert m.subnet_mask == "255.255.0.0" and m.routers == ("10.16.1.1",)
    assert m.dns_servers == ("10.16.1.1", "9.9.9.9") and m.server_id == "10.16.1.1"
    assert m.domain == "corp.example" and m.from_client is False
    assert m.to_dict() == {"msg_type": "ACK", "xid": "00001234",
                           "client_mac": "00:11:32:17:49:f0", "requested_ip": None,
                           "assigned_ip": "10.16.1.4", "hostname": None, "client_fqdn": None,
                           "vendor_class": None, "lease_time_s": 3600}


def test_ack_to_inform_assigns_ciaddr() -> None:
    m = parse_dhcp(bootp(2, opt(53, bytes([ACK])), ciaddr="10.1.2.3"))
    assert m.assigned_ip == "10.1.2.3"


def test_nul_terminated_hostname() -> None:
    """Suricata logs "nas1\\u0000"; we strip the C terminator and keep the raw bytes."""
    m = parse_dhcp(request(opt(12, b"nas1\x00")))
    assert m.hostname == "nas1" and m.hostname_raw == b"nas1\x00"


def test_control_bytes_and_bad_utf8_are_escaped() -> None:
    m = parse_dhcp(request(opt(12, b"a\x01b\xffc")))
    assert m.hostname == "a\\x01b\\xffc"
    assert text(b"plain") == "plain"


@pytest.mark.parametrize(("flags", "name", "want"), [
    (0x04, b"\x06laptop\x04corp\x07example\x00", "laptop.corp.example"),  # wire format
    (0x00, b"laptop.corp.example.", "laptop.corp.example"),  # deprecated ASCII form
    (0x04, b"\x50bad", None),  # label runs past the option
])
def test_client_fqdn(flags: int, name: bytes, want: str | None) -> None:
    m = parse_dhcp(request(opt(81, bytes([flags, 0, 0]) + name)))
    assert m.client_fqdn == want
    if want:
        assert m.device_name == "laptop"


@pytest.mark.parametrize("overload", [1, 2, 3])
def test_option_overload(overload: int) -> None:
    in_file = opt(12, b"from-file") + b"\xff"
    in_sname = opt(3, socket.inet_aton("10.9.9.9")) + b"\xff"
    m = parse_dhcp(bootp(2, opt(53, bytes([ACK])) + opt(52, bytes([overload])),
                         yiaddr="10.0.0.2", file=in_file, sname=in_sname))
    assert m.overload == overload
    assert m.hostname == ("from-file" if overload & 1 else None)
    assert m.routers == (("10.9.9.9",) if overload & 2 else ())


def test_no_overload_means_sname_file_are_not_options() -> None:
    m = parse_dhcp(bootp(2, opt(53, bytes([ACK])), sname=opt(12, b"x") + b"\xff"))
    assert m.hostname is None and m.overload == 0


def test_split_long_option_is_concatenated() -> None:
    m = parse_dhcp(request(opt(12, b"very-long-"), opt(12, b"host")))
    assert m.hostname == "very-long-host"


def test_cut_option_keeps_earlier_ones() -> None:
    data = bootp(1, opt(53, bytes([DISCOVER])) + opt(12, b"pc1"), magic=True)[:-1]
    data += b"\x32\x04\x0a"  # option 50 cut short, no END
    m = parse_dhcp(data)
    assert m.msg_type == DISCOVER and m.hostname == "pc1" and m.requested_ip is None


def test_plain_bootp_without_cookie() -> None:
    m = parse_dhcp(bootp(1, magic=False))
    assert m.msg_type is None and m.msg_type_name == "BOOTP" and m.hostname is None


def test_zero_hlen_has_no_mac() -> None:
    assert parse_dhcp(bootp(1, opt(53, b"\x01"), mac=b"")).client_mac is None


@pytest.mark.parametrize("data", [b"", b"\x01" * 235, bootp(3), bootp(1, hlen=17)])
def test_malformed(data: bytes) -> None:
    with pytest.raises(DecodeError):
        parse_dhcp(data)


# -- crafted DHCPv6 ------------------------------------------------------------------------


def v6opt(code: int, val: bytes) -> bytes:
    return struct.pack(">HH", code, len(val)) + val


def v6_reply(addr: str = "2001:db8::42", valid: int = 7200) -> bytes:
    duid_ll = struct.pack(">HH", 3, 1) + MAC
    iaaddr = v6opt(5, socket.inet_pton(socket.AF_INET6, addr) + struct.pack(">II", 3600, valid))
    ia_na = v6opt(3, b"\0\0\0\1" + b"\0" * 8 + iaaddr)
    fqdn = v6opt(39, b"\x01\x06laptop\x04corp\x00")
    vclass = v6opt(16, b"\0\0\x01\x37" + struct.pack(">H", 8) + b"MSFT 5.0")
    return b"\x07\xab\xcd\xef" + v6opt(1, duid_ll) + ia_na + fqdn + vclass


def test_dhcpv6_reply() -> None:
    m = parse_dhcpv6(v6_reply())
    assert (m.msg_type, m.msg_type_name, m.transaction_id) == (7, "REPLY", 0xABCDEF)
    assert m.client_mac == "00:11:32:17:49:f0" and m.fqdn == "laptop.corp"
    assert m.vendor_class == "MSFT 5.0"
    assert [(a.address, a.preferred_s, a.valid_s) for a in m.addresses] == [
        ("2001:db8::42", 3600, 7200)]
    assert m.to_dict()["addresses"] == [{"address": "2001:db8::42", "valid_s": 7200}]


def test_dhcpv6_relay_unwrapped() -> None:
    inner = v6_reply()
    relay = b"\x0d\x00" + b"\0" * 32 + v6opt(9, inner)
    assert parse_dhcpv6(relay).addresses == parse_dhcpv6(inner).addresses


@pytest.mark.parametrize("data", [b"", b"\x07\x00", b"\x0c" + b"\0" * 40, b"\x63\0\0\0",
                                  b"\x0c" + b"\0" * 33 + v6opt(9, b"\x0c" + b"\0" * 33) * 1])
def test_dhcpv6_malformed(data: bytes) -> None:
    with pytest.raises(DecodeError):
        parse_dhcpv6(data)


def test_dhcpv6_relay_depth_capped() -> None:
    data = v6_reply()
    for _ in range(12):
        data = b"\x0c\x00" + b"\0" * 32 + v6opt(9, data)
    with pytest.raises(DecodeError):
        parse_dhcpv6(data)


# -- fuzzing --------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_fuzz_random(data: bytes) -> None:
    for fn in (parse_dhcp, parse_dhcpv6):
        with contextlib.suppress(DecodeError):
            fn(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=0, max_size=200), st.integers(0, 3), st.binary(max_size=64),
       st.binary(max_size=128))
def test_fuzz_options(options: bytes, overload: int, sname: bytes, file: bytes) -> None:
    data = bootp(1, opt(52, bytes([overload])) + options, sname=sname, file=file)
    m = parse_dhcp(data)  # a valid header never fails, whatever the options
    assert isinstance(m, DhcpMessage)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_dhcpv6_options(options: bytes) -> None:
    with contextlib.suppress(DecodeError):
        parse_dhcpv6(b"\x07\x00\x00\x01" + options)


# -- corpus ------------------------------------------------------------------------------



def decoded(rel: str) -> list[tuple[int, DhcpMessage]]:
    """(frame number, message) of every DHCPv4 datagram of a capture."""
    udp, _ = walk(corpus_file(rel))
    out = []
    for d in udp:
        if {d.sport, d.dport} & {67, 68}:
            with contextlib.suppress(DecodeError):
                out.append((d.index, parse_dhcp(d.payload)))
    return out


def read_zeek(path: Path) -> list[dict[str, str]]:
    """A Zeek TSV log, or a zeek-cut output whose first line is a plain header."""
    fields: list[str] = []
    rows = []
    for line in path.read_text(encoding="utf-8", errors="surrogateescape").splitlines():
        if line.startswith("#fields"):
            fields = line.split("\t")[1:]
        elif line.startswith("ts\t") and not fields:
            fields = line.split("\t")
        elif line and not line.startswith("#") and fields:
            rows.append(dict(zip(fields, line.split("\t"), strict=False)))
    return rows


Row = tuple[str, str, str, str, str]


def zeek_style(msgs: list[tuple[int, DhcpMessage]]) -> set[Row]:
    """(mac, host_name, requested_addr, assigned_addr, lease_time) per transaction id,
    merged like Zeek's dhcp.log: later messages overwrite, the server's ACK gives the
    assigned address (yiaddr) and lease time."""
    tx: dict[int, dict[str, str]] = {}
    for _n, m in msgs:
        t = tx.setdefault(m.xid, {"mac": "-", "host": "-", "req": "-", "asg": "-", "lease": "-"})
        if m.client_mac:
            t["mac"] = m.client_mac
        if m.hostname_raw is not None:
            t["host"] = m.hostname or "-"
        if m.requested_ip:
            t["req"] = m.requested_ip
        if m.msg_type == ACK:
            if m.yiaddr != "0.0.0.0":
                t["asg"] = m.yiaddr
            if m.lease_time_s is not None:
                t["lease"] = f"{m.lease_time_s}.000000"
    return {(t["mac"], t["host"], t["req"], t["asg"], t["lease"]) for t in tx.values()}


ZEEK_DHCP = {
    "scripts.base.protocols.dhcp.dhcp-all-msg-types/dhcp.log": "zeek/Traces/dhcp/dhcp.pcap",
    "scripts.base.protocols.dhcp.dhcp-ack-msg-types/dhcp.log":
        "zeek/Traces/dhcp/dhcp_ack_subscriber_id_and_agent_remote_id.pcap",
    "scripts.base.protocols.dhcp.dhcp-sub-opts/dhcp.log":
        "zeek/Traces/dhcp/dhcp_ack_subscriber_id_and_agent_remote_id.pcap",
    "scripts.base.protocols.dhcp.cluster/manager.dhcp.log":
        "zeek/Traces/dhcp/dhcp_ack_subscriber_id_and_agent_remote_id.pcap",
    "scripts.base.protocols.dhcp.dhcp-discover-msg-types/dhcp.log":
        "zeek/Traces/dhcp/dhcp_discover_param_req_and_client_id.pcap",
    "scripts.base.protocols.dhcp.inform/dhcp.log": "zeek/Traces/dhcp/dhcp_inform.pcap",
    "scripts.base.protocols.dhcp.dhcp-max-tracked-transactions/dhcp.log":
        "zeek/Traces/dhcp/dhcp-unique-xid-join-data-growth.pcapng",
    "scripts.base.protocols.dhcp.dhcp-prevent-large-uids/dhcp.log":
        "zeek/Traces/dhcp/dhcp_flood.pcap",
    "scripts.base.protocols.dhcp.dhcp-prevent-large-msgtypes/dhcp.log":
        "zeek/Traces/dhcp/dhcp_flood.pcap",
}


@pytest.mark.corpus
@pytest.mark.parametrize("baseline", sorted(ZEEK_DHCP))
def test_equals_zeek_dhcp_log(baseline: str) -> None:
    rows = read_zeek(corpus_file(f"zeek/Baseline/{baseline}"))
    zeek = {(r["mac"], r["host_name"], r["requested_addr"], r["assigned_addr"], r["lease_time"])
            for r in rows}
    assert zeek
    assert zeek_style(decoded(ZEEK_DHCP[baseline])) == zeek


@pytest.mark.corpus
def test_zeek_dhcp_client_fqdn_and_macs() -> None:
    """Every MAC Zeek logs in the flood/tracking tests is one we decode (and only those)."""
    for baseline in ("scripts.base.protocols.dhcp.dhcp-max-tracked-transactions/dhcp.log",
                     "scripts.base.protocols.dhcp.dhcp-prevent-large-msgtypes/dhcp.log"):
        zeek_macs = {r["mac"] for r in read_zeek(corpus_file(f"zeek/Baseline/{baseline}"))}
        ours = {m.client_mac for _n, m in decoded(ZEEK_DHCP[baseline])}
        assert ours == zeek_macs


# Suricata logs only the parameter requests it has names for, in request order
_PARAMS = {1: "subnet_mask", 3: "router", 15: "domain", 6: "dns_server", 35: "arp_timeout",
           42: "ntp_server", 66: "tftp_server_name", 150: "tftp_server_ip"}
_V4_TYPES = {1: "discover", 2: "offer", 3: "request", 4: "decline", 5: "ack", 6: "nak",
             7: "release", 8: "inform"}


def suricata_view(m: DhcpMessage) -> dict[str, object]:
    v: dict[str, object] = {
        "dhcp.type": "request" if m.from_client else "reply",
        "dhcp.id": m.xid, "dhcp.client_mac": m.client_mac, "dhcp.client_ip": m.ciaddr,
        "dhcp.assigned_ip": m.yiaddr, "dhcp.relay_ip": "0.0.0.0",
        "dhcp.dhcp_type": _V4_TYPES.get(m.msg_type or 0),
        # Suricata keeps the NUL; we strip it and keep the raw bytes (asserted below)
        "dhcp.hostname": m.hostname_raw.decode() if m.hostname_raw is not None else None,
        "dhcp.lease_time": m.lease_time_s, "dhcp.renewal_time": m.renewal_time_s,
        "dhcp.rebinding_time": m.rebinding_time_s, "dhcp.subnet_mask": m.subnet_mask,
        "dhcp.vendor_class_identifier": m.vendor_class,
        "dhcp.client_id": ":".join(f"{b:02x}" for b in m.client_id[1:]) if m.client_id else None,
    }
    for i, r in enumerate(m.routers):
        v[f"dhcp.routers[{i}]"] = r
    for i, r in enumerate(m.dns_servers):
        v[f"dhcp.dns_servers[{i}]"] = r
    for i, name in enumerate(_PARAMS[p] for p in m.params if p in _PARAMS):
        v[f"dhcp.params[{i}]"] = name
    return v


SURICATA_DHCP = ["dhcp-eve-extended", "dhcp-eve-extended-option-60", "dhcp-option-52-overload",
                 "dhcp-option-52-overload-both"]
_NOT_OURS = {"event_type", "pcap_cnt", "proto", "src_ip", "src_port", "dest_ip", "dest_port",
             "dhcp.next_server_ip"}


@pytest.mark.corpus
@pytest.mark.parametrize("test", SURICATA_DHCP)
def test_suricata_dhcp_events(test: str) -> None:
    spec = yaml.safe_load(corpus_file(f"suricata-verify/tests/{test}/test.yaml").read_text())
    msgs = dict(decoded(f"suricata-verify/tests/{test}/input.pcap"))
    checked = 0
    for check in spec["checks"]:
        match = check["filter"]["match"]
        if match.get("event_type") != "dhcp" or "pcap_cnt" not in match:
            continue
        view = suricata_view(msgs[match["pcap_cnt"]])
        for k, want in match.items():
            if k not in _NOT_OURS:
                assert view.get(k) == want, (match["pcap_cnt"], k)
                checked += 1
    assert checked >= 4


@pytest.mark.corpus
def test_suricata_nul_hostname_case() -> None:
    msgs = dict(decoded("suricata-verify/tests/dhcp-eve-extended/input.pcap"))
    assert msgs[1].hostname_raw == b"nas1\x00" and msgs[1].hostname == "nas1"
    assert msgs[2].assigned_ip == "10.16.1.4" and msgs[2].lease_time_s == 3600


@pytest.mark.corpus
def test_arkime_wireshark_dhcp() -> None:
    doc = json.loads(corpus_file("arkime/expected/wireshark-dhcp.test").read_text())
    want = next(s["body"]["dhcp"] for s in doc["sessions3"] if "dhcp" in s["body"])
    msgs = [m for _n, m in decoded("arkime/pcap/wireshark-dhcp.pcap")]
    assert sorted({m.client_mac or "" for m in msgs}) == want["mac"]
    assert sorted({m.requested_ip for m in msgs if m.requested_ip}) == want["requestIp"]
    assert sorted({m.msg_type_name for m in msgs}) == want["type"]
    assert sorted({f"{m.xid:x}" for m in msgs}) == want["id"]


@pytest.mark.corpus
def test_arkime_wireshark_dhcpv6() -> None:
    doc = json.loads(corpus_file("arkime/expected/wireshark-dhcpv6.test").read_text())
    want_ids, want_types = set(), set()
    for s in doc["sessions3"]:
        d = s["body"].get("dhcp")
        if d:
            want_ids |= set(d["id"])
            want_types |= set(d["type"])
    udp, _ = walk(corpus_file("arkime/pcap/wireshark-dhcpv6.pcap"))
    msgs = [parse_dhcpv6(d.payload) for d in udp if {d.sport, d.dport} & {546, 547}]
    assert {f"{m.transaction_id:x}" for m in msgs} == want_ids
    assert {m.msg_type_name for m in msgs} == want_types
    assert {m.client_mac for m in msgs} == {"08:00:27:fe:8f:95"}


TSHARK_DHCP = ["arkime/pcap/arkime_synthetic.pcap", "arkime/pcap/wireshark-dhcp.pcap",
               "ja4/pcap/dhcp.pcapng", "ndpi/pcap/dhcp-fuzz.pcapng", "ndpi/pcap/wechat.pcap",
               "suricata-verify/tests/dhcp-eve-extended/input.pcap",
               "suricata-verify/tests/dhcp-option-52-overload/input.pcap",
               "zeek/Traces/dhcp/dhcp.pcap", "zeek/Traces/dhcp/hw-type0.pcap",
               "zeek/Traces/dhcp/dhcp_time_and_nameserver.pcap",
               "zeek/Traces/dhcp/dhcp_flood.pcap"]


@pytest.mark.corpus
@pytest.mark.parametrize("rel", TSHARK_DHCP)
def test_per_packet_equals_tshark(rel: str) -> None:
    tsv = corpus_file(f"_generated/tshark-4.0.17/{rel}.tsv")
    ours = dict(decoded(rel))
    compared = 0
    with tsv.open(newline="", encoding="utf-8", errors="surrogateescape") as f:
        for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            if "dhcp" not in row["frame.protocols"].split(":"):
                continue
            m = ours[int(row["frame.number"])]
            assert str(m.msg_type or "") == row["dhcp.option.dhcp"]
            assert m.client_mac == row["dhcp.hw.mac_addr"].split(",")[0]
            assert (m.requested_ip or "") == row["dhcp.option.requested_ip_address"]
            # tshark cuts a C string at the NUL, as our text form does
            assert (m.hostname or "") == row["dhcp.option.hostname"]
            compared += 1
    assert compared
