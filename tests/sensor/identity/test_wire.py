"""End to end on corpus captures: decode DHCP/Kerberos, feed the store, attribute."""

from __future__ import annotations

import pytest

from sensor.decoders.dhcp import parse_dhcp
from sensor.decoders.kerberos import AS_REP, KerberosMessage, parse_kerberos, parse_kerberos_tcp
from sensor.errors import DecodeError
from sensor.identity import Binding, IdentityStore
from sensor.identity.store import NS
from tests.sensor.identity.pcapwalk import corpus_file, walk

pytestmark = pytest.mark.corpus


KrbEvent = tuple[int, str, KerberosMessage, Binding | None]


def feed(rel: str, store: IdentityStore) -> tuple[list[Binding], list[KrbEvent]]:
    """Feed every DHCP/Kerberos message of a capture to ``store`` in time order.

    Returns the DHCP bindings made, and (ts_ns, client ip, message, binding or
    None) for each Kerberos message.
    """
    udp, streams = walk(corpus_file(rel))
    events: list[tuple[int, str, bytes, str, bool]] = []  # ts, kind, data, client ip, is tcp
    for d in udp:
        if {d.sport, d.dport} & {67, 68}:
            events.append((d.ts_ns, "dhcp", d.payload, "", False))
        elif 88 in (d.sport, d.dport):
            events.append((d.ts_ns, "krb", d.payload, d.src if d.dport == 88 else d.dst, False))
    for s in streams:
        if 88 in (s.sport, s.dport):
            events.append((s.first_ts_ns, "krb", s.data(), s.src if s.dport == 88 else s.dst,
                           True))
    events.sort(key=lambda e: e[0])
    leases: list[Binding] = []
    out: list[KrbEvent] = []
    for ts, kind, data, cli, tcp in events:
        try:
            if kind == "dhcp":
                b = store.add_from_dhcp(parse_dhcp(data), ts)
                if b is not None:
                    leases.append(b)
                continue
            msgs = parse_kerberos_tcp(data)[0] if tcp else [parse_kerberos(data)]
        except DecodeError:
            continue
        out += [(ts, cli, m, store.add_from_kerberos(m, cli, ts)) for m in msgs]
    return leases, out


def test_dhcp_nul_hostname_capture_attributes_device() -> None:
    s = IdentityStore()
    [b], _ = feed("suricata-verify/tests/dhcp-eve-extended/input.pcap", s)
    assert b.ip == "10.16.1.4"
    a = s.lookup("10.16.1.4", b.start_ns + 60 * NS)
    assert a is not None
    assert (a.mac, a.hostname, a.user) == ("00:11:32:17:49:f0", "nas1", None)
    assert s.lookup("10.16.1.4", b.start_ns + 3600 * NS) is None  # lease over


def test_zeek_dhcp_capture_binds_acked_address() -> None:
    s = IdentityStore()
    [b], _ = feed("zeek/Traces/dhcp/dhcp.pcap", s)
    assert s.bindings_at("128.2.6.189", b.start_ns + 60 * NS) == [b]
    assert b.end_ns is not None
    assert (b.ip, b.mac, b.hostname, b.end_ns - b.start_ns) == (
        "128.2.6.189", "90:b1:1c:99:49:29", "btest.is.cool", 900 * NS)
    assert s.ips == 1  # the NAKed and DECLINEd addresses bind nothing


def test_kerberos_tso_user_and_machine() -> None:
    s = IdentityStore()
    _, events = feed("zeek/Traces/krb/kerberos_tso.pcapng", s)
    last = max(e[0] for e in events)
    a = s.lookup("172.16.0.211", last + NS)
    assert a is not None and not a.conflicts
    # AS-REQ "administrator" and AS-REP "Administrator" are one account, not a conflict
    assert a.user == "Administrator@TEST.LOCAL" and a.hostname == "desktop-rbdmvva"
    assert {e["source"] for e in a.attribution} == {"kerberos"}


def test_kinit_each_logon_attributed_until_the_next() -> None:
    """kinit.pcap: one client IP, a sequence of principals; each AS-REP's principal
    is the user of that IP right after it."""
    s = IdentityStore()
    _, events = feed("zeek/Traces/krb/kinit.pcap", s)
    checked = 0
    for ts, cli, m, b in events:
        if m.msg_type == AS_REP and b is not None and b.user is not None:
            a = s.lookup(cli, ts)
            assert a is not None and a.user is not None
            assert a.user.lower() == b.user.lower(), (ts, a.user, b.user)
            checked += 1
    assert checked >= 30


def test_krb5_frag_tcp_user() -> None:
    s = IdentityStore()
    _, events = feed("suricata-verify/tests/krb5-request-frag-log/krb5-frag.pcap", s)
    last = max(e[0] for e in events)
    a = s.lookup("192.168.51.206", last)
    assert a is not None and a.user == "user01@dom.test.lo.com"
    assert max(e["confidence"] for e in a.attribution) == 0.9
