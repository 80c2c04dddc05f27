"""Time-aware IP -> device/user bindings, answered per flow or finding.

Per IP the bindings are kept sorted by start, with their *effective* end
computed once after changes (lazily, on the next lookup):

* an explicit ``end_ns`` (lease expiry, feed interval end) ends a binding;
* an open-ended binding (a logon, a Kerberos ticket request) lasts until the
  next binding **of the same dimension with a different value** on that IP:
  the next different user for user bindings, the next different MAC for
  MAC-keyed device bindings, the next different host name for name-only
  device bindings (optionally capped by ``open_ttl_ns``);
* a device binding from an address-assignment source (DHCP, lease files)
  also ends when the address is handed to a different MAC, or at a DHCP
  RELEASE for it: the server moved the address, so the old lease is over.

Several bindings can hold at one instant (a lease + a logon, or two feeds
disagreeing). A lookup merges them: every field takes the value of the most
confident (then most recent) binding that has it; when bindings disagree on
a field the disagreement is kept, marked ``conflict`` and their confidence is
halved, never silently overwritten.

A lookup is a bisect plus a backwards scan over the bindings that can still
be live (a prefix maximum of effective ends stops it early).
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from sensor.decoders.dhcp import ACK, DECLINE, RELEASE, DhcpMessage, Dhcpv6Message
from sensor.decoders.kerberos import AS_REP, AS_REQ, TGS_REP, TGS_REQ, KerberosMessage
from sensor.identity.model import Attribution, Binding, user_key

NS = 1_000_000_000
FOREVER = 1 << 62
CONFLICT_FACTOR = 0.5
MAX_SCAN = 4096  # bindings examined per lookup at most
# sources whose device bindings say "the address server gave this IP to this MAC"
ASSIGNMENT_SOURCES = frozenset({"dhcp", "dhcpv6", "zeek-dhcp", "dhcpd-leases", "dnsmasq-leases"})
_INFINITE_LEASE = 0xFFFFFFFF
_NAME_CACHE = 65536  # client MAC -> host name remembered from DHCP client messages
_MERGE_LOOKBACK = 16  # recent bindings of an IP a repeat may extend
_NOT_USERS = frozenset({"wellknown/anonymous", "anonymous logon", "anonymous", "-", ""})

# confidences of the wire sources
CONF_DHCP_ACK = 0.9
CONF_DHCP_INFORM = 0.7
CONF_KRB_REPLY = 0.9  # the KDC vouched for the client
CONF_KRB_REQUEST = 0.6  # the client claimed a name; the reply may be an error


def _dims(b: Binding) -> list[tuple[str, str]]:
    """The (dimension, key) pairs along which later bindings can end ``b``."""
    out = []
    if b.user is not None:
        out.append(("user", user_key(b.user)))
    if b.mac is not None:
        out.append(("mac", b.mac))
    elif b.hostname is not None:
        out.append(("host", b.hostname.lower()))
    return out


@dataclass(slots=True)
class _Timeline:
    bindings: list[Binding] = field(default_factory=list)  # sorted by start_ns
    # start of the latest repeat merged into each binding (its own start if none):
    # a repeat is a new start for the time rules, so it is kept as an event
    restarts: list[int] = field(default_factory=list)
    latest: int = -1  # the latest start or restart added
    releases: list[tuple[int, str]] = field(default_factory=list)  # (ts_ns, mac)
    starts: list[int] = field(default_factory=list)
    eff_end: list[int] = field(default_factory=list)
    max_end: list[int] = field(default_factory=list)  # prefix maximum of eff_end
    cache: dict[tuple[int, ...], Attribution] = field(default_factory=dict)  # live set -> merge
    dirty: bool = True

    def insert(self, b: Binding) -> None:
        i = bisect.bisect_right(self.bindings, b.start_ns, key=lambda x: x.start_ns)
        self.bindings.insert(i, b)
        self.restarts.insert(i, b.start_ns)

    def rebuild(self, open_ttl_ns: int | None) -> None:
        bs, rs = self.bindings, self.restarts
        dims = [_dims(b) for b in bs]
        # per dimension, every start event (starts and restarts) in time order, and for
        # each event the index of the next event with another key: "the first later start
        # with a different value" is then one bisect away
        events: dict[str, list[tuple[int, str]]] = {}
        for k, b in enumerate(bs):
            for d, key in dims[k]:
                ev = events.setdefault(d, [])
                ev.append((b.start_ns, key))
                if rs[k] != b.start_ns:
                    ev.append((rs[k], key))
        table: dict[str, tuple[list[int], list[str], list[int]]] = {}
        for d, ev in events.items():
            ev.sort()
            times = [t for t, _ in ev]
            keys = [key for _, key in ev]
            nxt = [len(ev)] * len(ev)
            for i in range(len(ev) - 2, -1, -1):
                nxt[i] = i + 1 if keys[i + 1] != keys[i] else nxt[i + 1]
            table[d] = (times, keys, nxt)

        ends: list[int] = []
        for k, b in enumerate(bs):
            end = b.end_ns if b.end_ns is not None else (
                rs[k] + open_ttl_ns if open_ttl_ns is not None else FOREVER)
            assign = b.source in ASSIGNMENT_SOURCES
            for d, key in dims[k]:
                if b.end_ns is not None and not (d == "mac" and assign):
                    continue  # explicit ends stand, except an address handed to another MAC
                times, keys, nxt = table[d]
                i = bisect.bisect_right(times, rs[k])  # strictly later: ties end nothing
                if i < len(times) and keys[i] == key:
                    i = nxt[i]
                if i < len(times) and times[i] < end:
                    end = times[i]
            for ts, mac in self.releases:
                if b.mac == mac and b.start_ns <= ts < end:
                    end = ts
            ends.append(end)
        self.starts = [b.start_ns for b in bs]
        self.eff_end = ends
        mx, run = [], -1
        for e in ends:
            run = max(run, e)
            mx.append(run)
        self.max_end = mx
        self.cache.clear()
        self.dirty = False


class IdentityStore:
    """IP -> who, at a time. Not thread-safe (one pipeline thread feeds and asks)."""

    def __init__(self, open_ttl_ns: int | None = None, max_per_ip: int = 1024) -> None:
        self.open_ttl_ns = open_ttl_ns
        self.max_per_ip = max_per_ip
        self._ips: dict[str, _Timeline] = {}
        self._dhcp_names: OrderedDict[str, str] = OrderedDict()
        self._v6_names: OrderedDict[str, str] = OrderedDict()  # DUID hex -> name

    def __len__(self) -> int:
        return sum(len(t.bindings) for t in self._ips.values())

    @property
    def ips(self) -> int:
        return len(self._ips)

    # -- adding ------------------------------------------------------------

    def add(self, b: Binding) -> None:
        """Add one binding, in any order.

        A repeat of a recent binding (same facts and source: a lease renewal inside
        the lease, the same logon again) added in time order extends it instead of
        growing the list; the answers are the same as with both kept.
        """
        tl = self._ips.get(b.ip)
        if tl is None:
            tl = self._ips[b.ip] = _Timeline()
        k = self._mergeable(tl, b)
        if k is not None:
            c = tl.bindings[k]
            end = None if b.end_ns is None or c.end_ns is None else max(b.end_ns, c.end_ns)
            tl.bindings[k] = replace(c, end_ns=end, confidence=max(c.confidence, b.confidence))
            tl.restarts[k] = b.start_ns
        else:
            tl.insert(b)
        tl.latest = max(tl.latest, b.start_ns)
        if len(tl.bindings) > self.max_per_ip:
            del tl.bindings[0]  # the oldest binding goes first
            del tl.restarts[0]
        tl.dirty = True

    def _mergeable(self, tl: _Timeline, b: Binding) -> int | None:
        """Index of a recent binding ``b`` can extend without changing any answer, or None.

        Only for an in-order add (``b`` starts at or after every start seen on the
        IP), when no binding after the candidate, or starting with it, has another
        value in one of its dimensions, and no release or TTL gap lies in between.
        """
        bs = tl.bindings
        if not bs or b.start_ns < tl.latest:
            return None
        facts = (b.mac, b.hostname, b.user, b.source)
        dims = dict(_dims(b))

        def clash(c: Binding) -> bool:
            return any(dims.get(d, key) != key for d, key in _dims(c))

        for k in range(len(bs) - 1, max(-1, len(bs) - 1 - _MERGE_LOOKBACK), -1):
            c = bs[k]
            if (c.mac, c.hostname, c.user, c.source) != facts:
                if clash(c):
                    return None  # another value came in between: keep them apart
                continue
            if b.end_ns is None and c.end_ns is None:
                if self.open_ttl_ns is not None and b.start_ns - tl.restarts[k] > self.open_ttl_ns:
                    return None
            elif not (b.end_ns is not None and c.end_ns is not None
                      and b.start_ns <= c.end_ns):
                return None
            if b.mac is not None and any(ts >= c.start_ns for ts, m in tl.releases
                                         if m == b.mac):
                return None
            j = k - 1
            while j >= 0 and bs[j].start_ns == c.start_ns:
                if clash(bs[j]):
                    return None  # started with c: b's later start would end it
                j -= 1
            return k
        return None

    def add_all(self, bindings: Iterable[Binding]) -> int:
        n = 0
        for b in bindings:
            self.add(b)
            n += 1
        return n

    def release(self, ip: str, mac: str, ts_ns: int) -> None:
        """The client ``mac`` gave ``ip`` back at ``ts_ns`` (DHCP RELEASE)."""
        tl = self._ips.get(ip)
        if tl is not None:
            tl.releases.append((ts_ns, mac))
            del tl.releases[:-64]
            tl.dirty = True

    def add_from_dhcp(self, msg: DhcpMessage, ts_ns: int) -> Binding | None:
        """Learn from one DHCPv4 message; returns the binding an ACK created.

        Client messages only teach the host name of their MAC (servers often
        do not echo option 12 in the ACK); an ACK binds ``assigned_ip`` to the
        MAC for the lease time; a RELEASE (ciaddr) or DECLINE (option 50) ends
        the client's lease of that address.
        """
        mac = msg.client_mac if msg.htype == 1 and msg.client_mac and len(
            msg.client_mac) == 17 else None
        if msg.from_client:
            name = msg.device_name
            if mac and name:
                self._remember(self._dhcp_names, mac, name)
            if msg.msg_type == RELEASE and mac and msg.ciaddr != "0.0.0.0":
                self.release(msg.ciaddr, mac, ts_ns)
            elif msg.msg_type == DECLINE and mac and msg.requested_ip:
                self.release(msg.requested_ip, mac, ts_ns)  # the client will not use it
            return None
        ip = msg.assigned_ip
        if ip is None or msg.msg_type != ACK:
            return None
        name = msg.device_name or (self._dhcp_names.get(mac) if mac else None)
        if mac is None and name is None:
            return None
        lease = msg.lease_time_s
        end = ts_ns + lease * NS if lease and lease != _INFINITE_LEASE else None
        inform = lease is None and msg.yiaddr == "0.0.0.0"  # ACK to an INFORM
        b = Binding(ip, ts_ns, end, mac=mac, hostname=name, source="dhcp",
                    confidence=CONF_DHCP_INFORM if inform else CONF_DHCP_ACK)
        self.add(b)
        return b

    def add_from_dhcpv6(self, msg: Dhcpv6Message, ts_ns: int) -> list[Binding]:
        """Learn from one DHCPv6 message: a REPLY binds its IA addresses to the client."""
        duid = msg.client_duid
        if msg.msg_type != 7:
            if duid and msg.fqdn:
                self._remember(self._v6_names, duid.hex(), msg.fqdn.split(".", 1)[0])
            return []
        name = msg.fqdn.split(".", 1)[0] if msg.fqdn else (
            self._v6_names.get(duid.hex()) if duid else None)
        out = []
        for lease in msg.addresses:
            if lease.valid_s == 0:
                continue  # a zero valid lifetime withdraws the address
            end = None if lease.valid_s == _INFINITE_LEASE else ts_ns + lease.valid_s * NS
            b = Binding(lease.address, ts_ns, end, mac=msg.client_mac, hostname=name,
                        source="dhcpv6", confidence=CONF_DHCP_ACK)
            if b.has_device:
                self.add(b)
                out.append(b)
        return out

    def add_from_kerberos(self, msg: KerberosMessage, client_ip: str,
                          ts_ns: int) -> Binding | None:
        """Bind ``client_ip`` to the Kerberos client of ``msg``.

        ``client_ip`` is the request's source / the reply's destination. Replies
        (the KDC vouches) bind with higher confidence than requests; errors
        bind nothing. Machine accounts (``PC1$``) and ``host/pc1`` principals
        name the device, not a user. The binding is open-ended.
        """
        if msg.msg_type in (AS_REP, TGS_REP):
            conf = CONF_KRB_REPLY
        elif msg.msg_type in (AS_REQ, TGS_REQ):
            conf = CONF_KRB_REQUEST
        else:
            return None
        user, host = principal_identity(msg.cname, msg.client_realm)
        if user is None and host is None:
            return None
        b = Binding(client_ip, ts_ns, None, hostname=host, user=user, source="kerberos",
                    confidence=conf)
        self.add(b)
        return b

    @staticmethod
    def _remember(cache: OrderedDict[str, str], key: str, name: str) -> None:
        cache[key] = name
        cache.move_to_end(key)
        while len(cache) > _NAME_CACHE:
            cache.popitem(last=False)

    # -- asking --------------------------------------------------------------

    def _live(self, ip: str, ts_ns: int) -> tuple[_Timeline | None, tuple[int, ...]]:
        """Indices of the bindings of ``ip`` live at ``ts_ns``, newest first, one per
        (mac, hostname, user, source)."""
        tl = self._ips.get(ip)
        if tl is None:
            return None, ()
        if tl.dirty:
            tl.rebuild(self.open_ttl_ns)
        j = bisect.bisect_right(tl.starts, ts_ns) - 1
        seen: set[tuple[str | None, str | None, str | None, str]] = set()
        out: list[int] = []
        stop = max(-1, j - MAX_SCAN)
        bs, eff, mx = tl.bindings, tl.eff_end, tl.max_end
        while j > stop and mx[j] > ts_ns:
            if eff[j] > ts_ns:
                b = bs[j]
                k = (b.mac, b.hostname, b.user, b.source)
                if k not in seen:
                    seen.add(k)
                    out.append(j)
            j -= 1
        return tl, tuple(out)

    def bindings_at(self, ip: str, ts_ns: int) -> list[Binding]:
        """Every binding live for ``ip`` at ``ts_ns`` (duplicates removed), newest first."""
        tl, idx = self._live(ip, ts_ns)
        return [tl.bindings[i] for i in idx] if tl is not None else []

    def lookup(self, ip: str, ts_ns: int) -> Attribution | None:
        """Who held ``ip`` at ``ts_ns``; None when no binding covers that instant."""
        tl, idx = self._live(ip, ts_ns)
        if tl is None or not idx:
            return None
        hit = tl.cache.get(idx)  # flows of one IP mostly fall in the same live set
        if hit is None:
            if len(tl.cache) >= 64:
                tl.cache.clear()
            hit = tl.cache[idx] = _merge(ip, [tl.bindings[i] for i in idx])
        return hit


def _merge(ip: str, live: list[Binding]) -> Attribution:
    if len(live) == 1:
        b = live[0]
        return Attribution(ip=ip, mac=b.mac, hostname=b.hostname, user=b.user, bindings=(b,),
                           confidences=(b.confidence,))
    conflicts: set[str] = set()
    for f in ("mac", "hostname", "user"):
        vals = {_fkey(f, getattr(b, f)) for b in live if getattr(b, f) is not None}
        if len(vals) > 1:
            conflicts.add(f)
    confs = [b.confidence * (CONFLICT_FACTOR if any(
        getattr(b, f) is not None for f in conflicts) else 1.0) for b in live]
    order = sorted(range(len(live)), key=lambda i: (confs[i], live[i].start_ns), reverse=True)
    ranked = tuple(live[i] for i in order)
    chosen: dict[str, str | None] = {}
    for f in ("mac", "hostname", "user"):
        chosen[f] = next((getattr(b, f) for b in ranked if getattr(b, f) is not None), None)
    return Attribution(ip=ip, mac=chosen["mac"], hostname=chosen["hostname"],
                       user=chosen["user"], bindings=ranked,
                       confidences=tuple(confs[i] for i in order),
                       conflicts=frozenset(conflicts))


def _fkey(f: str, v: str) -> str:
    if f == "user":
        return user_key(v)
    return v.lower()


def principal_identity(cname: tuple[str, ...] | None,
                       realm: str | None) -> tuple[str | None, str | None]:
    """(user, hostname) named by a Kerberos client principal.

    ``PC1$`` (machine account) and ``host/pc1.example.com`` name a device;
    ``WELLKNOWN/ANONYMOUS`` and empty names name nobody; anything else is a
    user, written ``name@REALM``.
    """
    if not cname or not any(cname):
        return None, None
    joined = "/".join(cname)
    if joined.lower() in _NOT_USERS:
        return None, None
    if len(cname) == 1 and cname[0].endswith("$") and len(cname[0]) > 1:
        return None, cname[0][:-1].lower()
    if len(cname) == 2 and cname[0].lower() == "host" and cname[1]:
        return None, cname[1].split(".", 1)[0].lower()
    return (f"{joined}@{realm}" if realm else joined), None


__all__ = ["ASSIGNMENT_SOURCES", "IdentityStore", "principal_identity"]
