"""IdentityStore: time-aware lookups, IP reuse, conflicts, wire helpers."""

from __future__ import annotations

import random
import socket
import struct
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from sensor.decoders.dhcp import parse_dhcp, parse_dhcpv6
from sensor.decoders.kerberos import KerberosMessage
from sensor.findings import client_object
from sensor.identity import Attribution, Binding, IdentityStore, principal_identity
from sensor.identity.store import NS

T0 = 1_700_000_000 * NS
H = 3600 * NS


def lease(ip: str, start: int, hours: int, mac: str, host: str | None = None) -> Binding:
    return Binding(ip, start, start + hours * H, mac=mac, hostname=host, source="dhcp",
                   confidence=0.9)


def logon(ip: str, ts: int, user: str, source: str = "kerberos", conf: float = 0.9) -> Binding:
    return Binding(ip, ts, None, user=user, source=source, confidence=conf)


def test_ip_reuse_attributes_each_time_to_its_device_and_user() -> None:
    """Two devices hold 10.0.0.5 one after the other; flows go to the right one."""
    s = IdentityStore()
    s.add(lease("10.0.0.5", T0, 1, "aa:aa:aa:aa:aa:01", "alice-laptop"))
    s.add(logon("10.0.0.5", T0 + 60 * NS, "alice@CORP"))
    s.add(lease("10.0.0.5", T0 + 2 * H, 1, "bb:bb:bb:bb:bb:02", "bob-pc"))
    s.add(logon("10.0.0.5", T0 + 2 * H + 30 * NS, "bob@CORP"))

    a = s.lookup("10.0.0.5", T0 + 30 * 60 * NS)
    assert a is not None
    assert (a.mac, a.hostname, a.user) == ("aa:aa:aa:aa:aa:01", "alice-laptop", "alice@CORP")
    b = s.lookup("10.0.0.5", T0 + 2 * H + 10 * 60 * NS)
    assert b is not None
    assert (b.mac, b.hostname, b.user) == ("bb:bb:bb:bb:bb:02", "bob-pc", "bob@CORP")
    assert not a.conflicts and not b.conflicts
    # between the leases: alice's logon still stands (open-ended until bob logs on),
    # but no device is known
    gap = s.lookup("10.0.0.5", T0 + 90 * 60 * NS)
    assert gap is not None and gap.mac is None and gap.user == "alice@CORP"
    assert s.lookup("10.0.0.5", T0 - 1) is None
    assert s.lookup("10.9.9.9", T0) is None


def test_logon_lasts_until_next_different_logon() -> None:
    s = IdentityStore()
    s.add(logon("10.0.0.7", T0, "CORP\\alice", "winlog-4624"))
    s.add(logon("10.0.0.7", T0 + 10 * NS, "alice@CORP.EXAMPLE"))  # same account, other spelling
    s.add(logon("10.0.0.7", T0 + 100 * NS, "carol@CORP"))
    a = s.lookup("10.0.0.7", T0 + 50 * NS)
    assert a is not None and not a.conflicts and {b.source for b in a.bindings} == {
        "winlog-4624", "kerberos"}
    c = s.lookup("10.0.0.7", T0 + 200 * NS)
    assert c is not None and c.user == "carol@CORP" and len(c.bindings) == 1


def test_open_ttl_caps_open_bindings() -> None:
    s = IdentityStore(open_ttl_ns=10 * NS)
    s.add(logon("10.0.0.8", T0, "dave@CORP"))
    assert s.lookup("10.0.0.8", T0 + 9 * NS) is not None
    assert s.lookup("10.0.0.8", T0 + 10 * NS) is None


def test_conflict_is_kept_with_lower_confidence() -> None:
    s = IdentityStore()
    s.add(Binding("10.0.0.9", T0, T0 + H, user="erin", source="feed-a", confidence=1.0))
    s.add(Binding("10.0.0.9", T0 + 60 * NS, T0 + H, user="frank", source="feed-b",
                  confidence=0.8))
    a = s.lookup("10.0.0.9", T0 + 120 * NS)
    assert a is not None and a.conflicts == frozenset({"user"})
    assert a.user == "erin"  # most confident wins the headline field
    entries = a.attribution
    assert [(e["user"], e["confidence"], e.get("conflict")) for e in entries] == [
        ("erin", 0.5, True), ("frank", 0.4, True)]


def test_simultaneous_logons_conflict_not_end_each_other() -> None:
    s = IdentityStore()
    s.add(logon("10.0.0.10", T0, "gina"))
    s.add(logon("10.0.0.10", T0, "hank"))
    a = s.lookup("10.0.0.10", T0 + NS)
    assert a is not None and a.conflicts == {"user"} and len(a.bindings) == 2


def test_dhcp_reassignment_ends_the_earlier_lease() -> None:
    s = IdentityStore()
    s.add(lease("10.0.0.11", T0, 8, "aa:00:00:00:00:01"))
    s.add(lease("10.0.0.11", T0 + H, 8, "aa:00:00:00:00:02"))
    a = s.lookup("10.0.0.11", T0 + 2 * H)
    assert a is not None and a.mac == "aa:00:00:00:00:02" and not a.conflicts
    assert len(a.bindings) == 1


def test_renewals_are_merged() -> None:
    s = IdentityStore()
    for i in range(100):
        s.add(lease("10.0.0.12", T0 + i * H // 2, 1, "aa:00:00:00:00:03"))
    assert len(s) == 1
    a = s.lookup("10.0.0.12", T0 + 50 * H)
    assert a is not None and a.bindings[0].end_ns == T0 + 99 * H // 2 + H


def test_out_of_order_adds() -> None:
    s = IdentityStore()
    s.add(logon("10.0.0.13", T0 + 100 * NS, "late"))
    s.add(logon("10.0.0.13", T0, "early"))
    a, b = s.lookup("10.0.0.13", T0 + 50 * NS), s.lookup("10.0.0.13", T0 + 150 * NS)
    assert a is not None and a.user == "early" and b is not None and b.user == "late"


def test_release_ends_lease() -> None:
    s = IdentityStore()
    s.add(lease("10.0.0.14", T0, 8, "aa:00:00:00:00:04"))
    s.release("10.0.0.14", "aa:00:00:00:00:04", T0 + H)
    assert s.lookup("10.0.0.14", T0 + H - 1) is not None
    assert s.lookup("10.0.0.14", T0 + H) is None


def test_max_per_ip_drops_oldest() -> None:
    s = IdentityStore(max_per_ip=3)
    for i in range(5):
        s.add(logon("10.0.0.15", T0 + i * NS, f"u{i}"))
    assert len(s) == 3 and s.lookup("10.0.0.15", T0) is None


def test_client_dict_shapes() -> None:
    s = IdentityStore()
    s.add(lease("10.0.0.16", T0, 1, "aa:00:00:00:00:05", "pc5"))
    a = s.lookup("10.0.0.16", T0 + 1)
    assert a is not None
    d = a.to_client_dict("10.0.0.16")
    assert d["ip"] == "10.0.0.16" and d["mac"] == "aa:00:00:00:00:05" and d["hostname"] == "pc5"
    assert d["user"] is None
    assert d["attribution"] == [{"source": "dhcp", "confidence": 0.9,
                                 "since": "2023-11-14T22:13:20.000000Z",
                                 "until": "2023-11-14T23:13:20.000000Z",
                                 "mac": "aa:00:00:00:00:05", "hostname": "pc5"}]
    assert client_object("10.1.1.1", None, "de:ad:be:ef:00:01") == {
        "ip": "10.1.1.1", "mac": "de:ad:be:ef:00:01", "hostname": None, "user": None,
        "attribution": []}
    assert client_object("10.0.0.16", a, "ff:ff:ff:ff:ff:ff")["mac"] == "aa:00:00:00:00:05"


# -- wire helpers -----------------------------------------------------------------------


def _bootp(op: int, mtype: int, xid: int, mac: bytes, yiaddr: str = "0.0.0.0",
           ciaddr: str = "0.0.0.0", opts: bytes = b"") -> bytes:
    head = struct.pack(">BBBBIHH", op, 1, 6, 0, xid, 0, 0) + socket.inet_aton(ciaddr)
    head += socket.inet_aton(yiaddr) + b"\0" * 8 + mac.ljust(16, b"\0") + b"\0" * 192
    return head + b"\x63\x82\x53\x63" + bytes([53, 1, mtype]) + opts + b"\xff"


def test_add_from_dhcp_request_then_ack() -> None:
    s = IdentityStore()
    mac = bytes.fromhex("0011321749f0")
    req = parse_dhcp(_bootp(1, 3, 7, mac, opts=b"\x0c\x05nas1\x00"))
    ack = parse_dhcp(_bootp(2, 5, 7, mac, yiaddr="10.16.1.4", opts=b"\x33\x04\x00\x00\x0e\x10"))
    assert s.add_from_dhcp(req, T0) is None
    b = s.add_from_dhcp(ack, T0 + NS)
    assert b == Binding("10.16.1.4", T0 + NS, T0 + NS + H, mac="00:11:32:17:49:f0",
                        hostname="nas1", source="dhcp", confidence=0.9)
    a = s.lookup("10.16.1.4", T0 + 2 * NS)
    assert a is not None and a.hostname == "nas1"
    rel = parse_dhcp(_bootp(1, 7, 8, mac, ciaddr="10.16.1.4"))
    assert s.add_from_dhcp(rel, T0 + 10 * NS) is None
    assert s.lookup("10.16.1.4", T0 + 11 * NS) is None


def test_add_from_dhcp_ignores_non_acks() -> None:
    s = IdentityStore()
    offer = parse_dhcp(_bootp(2, 2, 9, b"\x01" * 6, yiaddr="10.0.0.1"))
    nak = parse_dhcp(_bootp(2, 6, 9, b"\x01" * 6))
    assert s.add_from_dhcp(offer, T0) is None and s.add_from_dhcp(nak, T0) is None
    assert len(s) == 0


def test_add_from_dhcpv6_reply() -> None:
    duid = struct.pack(">HH", 3, 1) + bytes.fromhex("020000000001")
    ia = struct.pack(">HH", 5, 24) + socket.inet_pton(socket.AF_INET6, "2001:db8::9") + \
        struct.pack(">II", 100, 200)
    msg = b"\x07\0\0\1" + struct.pack(">HH", 1, len(duid)) + duid + \
        struct.pack(">HH", 3, 12 + len(ia)) + b"\0" * 12 + ia
    s = IdentityStore()
    [b] = s.add_from_dhcpv6(parse_dhcpv6(msg), T0)
    assert (b.ip, b.mac, b.end_ns) == ("2001:db8::9", "02:00:00:00:00:01", T0 + 200 * NS)


def krb(msg_type: int, cname: tuple[str, ...] | None, realm: str) -> KerberosMessage:
    req = msg_type in (10, 12)
    return KerberosMessage(msg_type, cname, 1 if cname else None, realm,
                           None if req else realm, ("krbtgt", realm))


def test_add_from_kerberos() -> None:
    s = IdentityStore()
    b = s.add_from_kerberos(krb(11, ("alice",), "CORP"), "10.0.0.20", T0)
    assert b is not None and (b.user, b.confidence, b.end_ns) == ("alice@CORP", 0.9, None)
    b = s.add_from_kerberos(krb(10, ("bob",), "CORP"), "10.0.0.21", T0)
    assert b is not None and b.confidence == 0.6
    b = s.add_from_kerberos(krb(13, ("PC7$",), "CORP"), "10.0.0.22", T0)
    assert b is not None and (b.user, b.hostname) == (None, "pc7")
    assert s.add_from_kerberos(krb(30, ("x",), "CORP"), "10.0.0.23", T0) is None
    assert s.add_from_kerberos(krb(12, None, "CORP"), "10.0.0.23", T0) is None


def test_principal_identity() -> None:
    assert principal_identity(("alice",), "CORP") == ("alice@CORP", None)
    assert principal_identity(("alice",), None) == ("alice", None)
    assert principal_identity(("PC1$",), "CORP") == (None, "pc1")
    assert principal_identity(("host", "pc2.corp.example"), "CORP") == (None, "pc2")
    assert principal_identity(("WELLKNOWN", "ANONYMOUS"), "CORP") == (None, None)
    assert principal_identity(("",), "CORP") == (None, None)
    assert principal_identity(None, "CORP") == (None, None)


# -- properties and speed ----------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 50), st.integers(1, 20), st.sampled_from("abc"),
                          st.booleans()), min_size=1, max_size=25),
       st.integers(0, 80), st.booleans())
def test_lookup_matches_brute_force(spec: list[tuple[int, int, str, bool]], t: int,
                                    one_source: bool) -> None:
    """Every binding returned is live at t by the documented rules, and none is missed.

    With one source and in time order (as the wire feeds them) repeats are merged:
    the answers must not change. Otherwise bindings come in any order.
    """
    if one_source:
        spec = sorted(spec, key=lambda x: x[0])
    bs = [Binding("10.1.0.1", s * NS, (s + d) * NS if explicit else None, user=u,
                  source="s" if one_source else f"s{i}", confidence=0.5)
          for i, (s, d, u, explicit) in enumerate(spec)]
    store = IdentityStore()
    store.add_all(bs)
    ts = t * NS

    def live(b: Binding) -> bool:
        if b.start_ns > ts:
            return False
        if b.end_ns is not None:
            return ts < b.end_ns
        return not any(o.user != b.user and b.start_ns < o.start_ns <= ts for o in bs)

    want = {(b.user, b.source) for b in bs if live(b)}
    got = {(b.user, b.source) for b in store.bindings_at("10.1.0.1", ts)}
    assert got == want
    a = store.lookup("10.1.0.1", ts)
    assert (a is None) == (not want)
    if a is not None:
        assert isinstance(a, Attribution)
        assert ("user" in a.conflicts) == (len({u for u, _ in want}) > 1)


def test_lookup_speed() -> None:
    """20k IPs with 3 leases + 3 logons each; lookups stay in the microseconds."""
    rng = random.Random(5)
    s = IdentityStore()
    ips = [f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" for i in range(20_000)]
    for n, ip in enumerate(ips):
        for k in range(3):
            mac = f"02:00:00:{n >> 8 & 255:02x}:{n & 255:02x}:{k:02x}"
            s.add(lease(ip, T0 + k * 2 * H, 1, mac))
            s.add(logon(ip, T0 + k * 2 * H + NS, f"user{n}-{k}"))
    probes = [(rng.choice(ips), T0 + rng.randrange(6 * H)) for _ in range(20_000)]
    s.lookup(ips[0], T0)  # first lookups rebuild lazily; include them in the timing
    t = time.perf_counter()
    hits = sum(s.lookup(ip, ts) is not None for ip, ts in probes)
    per_lookup = (time.perf_counter() - t) / len(probes)
    assert hits > len(probes) * 0.9
    assert per_lookup < 60e-6, per_lookup
