"""Sans-IO DHCP decoders: DHCPv4 (RFC 2131/2132) and the cheap part of DHCPv6 (RFC 8415).

What attribution needs: which device (client MAC, host name, FQDN, vendor
class) holds which address (requested / assigned) for how long (lease time).

DHCPv4 contract:

* The fixed BOOTP header (236 bytes) is required; without the magic cookie
  the message is plain BOOTP and has no options. ``op`` must be 1 or 2 and
  ``hlen`` at most 16, else :class:`DecodeError`.
* Options are read from the options field, then, as option 52 (overload)
  says, from ``file`` and then ``sname`` (RFC 2131 4.1). A code that appears
  more than once is concatenated (RFC 3396 long options). A cut option ends
  the area it is in: the options before it are kept.
* ``hostname`` (option 12) is text with trailing NUL bytes removed: some
  clients (Suricata's ``dhcp-eve-extended`` capture: ``"nas1\\x00"``) send the
  C terminator. ``hostname_raw`` keeps the wire bytes. Non-UTF-8 bytes and
  control characters in any text are written ``\\xNN`` (as Zeek logs them).
* Only :class:`DecodeError` is raised; work is linear in the input.
"""

from __future__ import annotations

import re
import socket
import struct
from dataclasses import dataclass
from typing import Any

from sensor.errors import DecodeError

MAGIC = b"\x63\x82\x53\x63"
_BOOTP_LEN = 236

DISCOVER, OFFER, REQUEST, DECLINE, ACK, NAK, RELEASE, INFORM = 1, 2, 3, 4, 5, 6, 7, 8
MSG_NAMES = {1: "DISCOVER", 2: "OFFER", 3: "REQUEST", 4: "DECLINE", 5: "ACK", 6: "NAK",
             7: "RELEASE", 8: "INFORM", 9: "FORCERENEW", 10: "LEASEQUERY",
             11: "LEASEUNASSIGNED", 12: "LEASEUNKNOWN", 13: "LEASEACTIVE"}

# option codes
O_PAD, O_SUBNET, O_ROUTER, O_DNS, O_HOSTNAME, O_DOMAIN = 0, 1, 3, 6, 12, 15
O_REQ_IP, O_LEASE, O_OVERLOAD, O_MSG_TYPE, O_SERVER_ID, O_PARAMS = 50, 51, 52, 53, 54, 55
O_MESSAGE, O_RENEW, O_REBIND, O_VENDOR_CLASS, O_CLIENT_ID, O_FQDN, O_END = (
    56, 58, 59, 60, 61, 81, 255)

_CTRL = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F)}
_HAS_CTRL = re.compile("[\x00-\x1f\x7f]").search


def text(raw: bytes) -> str:
    """Wire bytes as text: UTF-8, with bad bytes and control characters as ``\\xNN``."""
    s = raw.decode("utf-8", "backslashreplace")
    return s.translate(_CTRL) if _HAS_CTRL(s) else s


def _mac_text(raw: bytes) -> str:
    return raw.hex(":")


_ip4 = socket.inet_ntoa


def _ip4_list(raw: bytes) -> tuple[str, ...]:
    return tuple(_ip4(raw[i : i + 4]) for i in range(0, len(raw) - 3, 4))


@dataclass(frozen=True, slots=True)
class DhcpMessage:
    """One DHCPv4 (or BOOTP) message. Addresses are dotted text, ``0.0.0.0`` when unset."""

    op: int  # 1 BOOTREQUEST (client), 2 BOOTREPLY (server)
    xid: int
    msg_type: int | None  # option 53; None for plain BOOTP
    htype: int
    client_mac: str | None  # chaddr as aa:bb:..: (hlen bytes); None when hlen == 0
    ciaddr: str
    yiaddr: str
    siaddr: str
    giaddr: str
    requested_ip: str | None = None  # option 50
    hostname: str | None = None  # option 12, trailing NULs removed
    hostname_raw: bytes | None = None  # option 12 as sent
    client_fqdn: str | None = None  # option 81 domain name (no trailing dot)
    vendor_class: str | None = None  # option 60
    client_id: bytes | None = None  # option 61
    lease_time_s: int | None = None  # option 51
    renewal_time_s: int | None = None  # option 58
    rebinding_time_s: int | None = None  # option 59
    server_id: str | None = None  # option 54
    subnet_mask: str | None = None  # option 1
    routers: tuple[str, ...] = ()  # option 3
    dns_servers: tuple[str, ...] = ()  # option 6
    domain: str | None = None  # option 15
    params: tuple[int, ...] = ()  # option 55, request order
    message: str | None = None  # option 56
    overload: int = 0  # option 52: 1 file, 2 sname, 3 both

    @property
    def msg_type_name(self) -> str:
        if self.msg_type is None:
            return "BOOTP"
        return MSG_NAMES.get(self.msg_type, str(self.msg_type))

    @property
    def from_client(self) -> bool:
        return self.op == 1

    @property
    def assigned_ip(self) -> str | None:
        """The address an ACK gives the client: yiaddr, or ciaddr (INFORM/renewal ACKs)."""
        if self.msg_type != ACK:
            return None
        for a in (self.yiaddr, self.ciaddr):
            if a != "0.0.0.0":
                return a
        return None

    @property
    def device_name(self) -> str | None:
        """The best name of the device: host name, else the FQDN's first label."""
        if self.hostname:
            return self.hostname
        if self.client_fqdn:
            return self.client_fqdn.split(".", 1)[0] or None
        return None

    def to_dict(self) -> dict[str, Any]:
        """The observation fields (``kind: "dhcp"``)."""
        return {"msg_type": self.msg_type_name, "xid": f"{self.xid:08x}",
                "client_mac": self.client_mac, "requested_ip": self.requested_ip,
                "assigned_ip": self.assigned_ip, "hostname": self.hostname,
                "client_fqdn": self.client_fqdn, "vendor_class": self.vendor_class,
                "lease_time_s": self.lease_time_s}


def _walk_options(area: bytes, out: dict[int, bytearray]) -> None:
    p, n = 0, len(area)
    while p < n:
        code = area[p]
        if code == O_PAD:
            p += 1
            continue
        if code == O_END:
            return
        if p + 2 > n:
            return  # cut option: keep what came before
        length = area[p + 1]
        if p + 2 + length > n:
            return
        val = area[p + 2 : p + 2 + length]
        if code in out:
            out[code] += val  # RFC 3396: split long option
        else:
            out[code] = bytearray(val)
        p += 2 + length


def _fqdn(raw: bytes) -> str | None:
    """Option 81: flags, rcode1, rcode2, then the name (wire format when flag E is set)."""
    if len(raw) < 3:
        return None
    flags, name = raw[0], raw[3:]
    if not name:
        return None
    if flags & 0x04:  # E: canonical wire format, no compression
        return _wire_name(name)
    return text(name.rstrip(b"\x00")).rstrip(".") or None


def _wire_name(name: bytes) -> str | None:
    """A DNS name in uncompressed wire format (length-prefixed labels), None if malformed."""
    labels: list[str] = []
    p = 0
    while p < len(name) and name[p] != 0:
        ln = name[p]
        if ln > 63 or p + 1 + ln > len(name):
            return None
        labels.append(text(name[p + 1 : p + 1 + ln]))
        p += 1 + ln
    return ".".join(labels) or None


def _u32(raw: bytearray | None) -> int | None:
    return int.from_bytes(raw, "big") if raw is not None and len(raw) == 4 else None


def _ip_opt(raw: bytearray | None) -> str | None:
    return _ip4(bytes(raw)) if raw is not None and len(raw) == 4 else None


def _text_opt(raw: bytearray | None) -> str | None:
    if raw is None:
        return None
    return text(bytes(raw).rstrip(b"\x00")) or None


def parse_dhcp(data: bytes) -> DhcpMessage:
    """Decode one DHCPv4/BOOTP message (a UDP payload on port 67/68)."""
    if len(data) < _BOOTP_LEN:
        raise DecodeError(f"BOOTP message needs {_BOOTP_LEN} bytes, got {len(data)}")
    op, htype, hlen, _hops, xid = struct.unpack_from(">BBBBI", data, 0)
    if op not in (1, 2):
        raise DecodeError(f"BOOTP op {op} is neither request nor reply")
    if hlen > 16:
        raise DecodeError(f"BOOTP hlen {hlen} over 16")
    ciaddr, yiaddr, siaddr, giaddr = (_ip4(data[o : o + 4]) for o in (12, 16, 20, 24))
    chaddr = data[28 : 28 + hlen]
    opts: dict[int, bytearray] = {}
    overload = 0
    if data[_BOOTP_LEN : _BOOTP_LEN + 4] == MAGIC:
        _walk_options(data[_BOOTP_LEN + 4 :], opts)
        ov = opts.get(O_OVERLOAD)
        overload = ov[0] if ov and ov[0] in (1, 2, 3) else 0
        if overload & 1:
            _walk_options(data[108:236], opts)  # file
        if overload & 2:
            _walk_options(data[44:108], opts)  # sname
    mt = opts.get(O_MSG_TYPE)
    host = opts.get(O_HOSTNAME)
    fq = opts.get(O_FQDN)
    cid = opts.get(O_CLIENT_ID)
    return DhcpMessage(
        op=op, xid=xid, msg_type=mt[0] if mt else None, htype=htype,
        client_mac=_mac_text(chaddr) if hlen else None,
        ciaddr=ciaddr, yiaddr=yiaddr, siaddr=siaddr, giaddr=giaddr,
        requested_ip=_ip_opt(opts.get(O_REQ_IP)),
        hostname=_text_opt(host), hostname_raw=bytes(host) if host is not None else None,
        client_fqdn=_fqdn(bytes(fq)) if fq is not None else None,
        vendor_class=_text_opt(opts.get(O_VENDOR_CLASS)),
        client_id=bytes(cid) if cid is not None else None,
        lease_time_s=_u32(opts.get(O_LEASE)),
        renewal_time_s=_u32(opts.get(O_RENEW)),
        rebinding_time_s=_u32(opts.get(O_REBIND)),
        server_id=_ip_opt(opts.get(O_SERVER_ID)),
        subnet_mask=_ip_opt(opts.get(O_SUBNET)),
        routers=_ip4_list(bytes(opts.get(O_ROUTER, b""))),
        dns_servers=_ip4_list(bytes(opts.get(O_DNS, b""))),
        domain=_text_opt(opts.get(O_DOMAIN)),
        params=tuple(opts.get(O_PARAMS, b"")),
        message=_text_opt(opts.get(O_MESSAGE)),
        overload=overload,
    )


# -- DHCPv6 -------------------------------------------------------------------

V6_SOLICIT, V6_ADVERTISE, V6_REQUEST, V6_CONFIRM, V6_RENEW, V6_REBIND, V6_REPLY = range(1, 8)
V6_RELEASE, V6_DECLINE, V6_RECONFIGURE, V6_INFO_REQUEST = 8, 9, 10, 11
V6_RELAY_FORW, V6_RELAY_REPL = 12, 13
V6_NAMES = {1: "SOLICIT", 2: "ADVERTISE", 3: "REQUEST", 4: "CONFIRM", 5: "RENEW", 6: "REBIND",
            7: "REPLY", 8: "RELEASE", 9: "DECLINE", 10: "RECONFIGURE",
            11: "INFORMATION-REQUEST", 12: "RELAY-FORW", 13: "RELAY-REPL"}
_V6_CLIENTID, _V6_IA_NA, _V6_IA_TA, _V6_IAADDR, _V6_VENDOR_CLASS, _V6_RELAY_MSG = 1, 3, 4, 5, 16, 9
_V6_FQDN = 39
MAX_V6_RELAY_DEPTH = 8  # RFC 8415 HOP_COUNT_LIMIT is 8
MAX_V6_ADDRESSES = 64


@dataclass(frozen=True, slots=True)
class Dhcpv6Lease:
    address: str
    preferred_s: int
    valid_s: int


@dataclass(frozen=True, slots=True)
class Dhcpv6Message:
    """One DHCPv6 client/server message (relay wrappers are removed)."""

    msg_type: int
    transaction_id: int
    client_duid: bytes | None  # option 1
    client_mac: str | None  # link-layer address inside a DUID-LLT/DUID-LL, if any
    fqdn: str | None  # option 39
    vendor_class: str | None  # option 16, first vendor-class-data item
    addresses: tuple[Dhcpv6Lease, ...]  # IA_NA / IA_TA addresses (IAADDR options)

    @property
    def msg_type_name(self) -> str:
        return V6_NAMES.get(self.msg_type, str(self.msg_type))

    def to_dict(self) -> dict[str, Any]:
        """The observation fields (``kind: "dhcpv6"``)."""
        return {"msg_type": self.msg_type_name, "transaction_id": f"{self.transaction_id:06x}",
                "client_mac": self.client_mac, "fqdn": self.fqdn,
                "vendor_class": self.vendor_class,
                "addresses": [{"address": a.address, "valid_s": a.valid_s}
                              for a in self.addresses]}


def _v6_options(data: bytes, start: int) -> list[tuple[int, bytes]]:
    out: list[tuple[int, bytes]] = []
    p, n = start, len(data)
    while p + 4 <= n:
        code, length = struct.unpack_from(">HH", data, p)
        if p + 4 + length > n:
            break  # cut option ends the list
        out.append((code, data[p + 4 : p + 4 + length]))
        p += 4 + length
    return out


def _duid_mac(duid: bytes) -> str | None:
    if len(duid) < 4:
        return None
    dtype, hwtype = struct.unpack_from(">HH", duid, 0)
    if hwtype != 1:  # Ethernet only: a MAC
        return None
    if dtype == 1 and len(duid) == 14:  # DUID-LLT: type, hwtype, time, MAC
        return _mac_text(duid[8:14])
    if dtype == 3 and len(duid) == 10:  # DUID-LL
        return _mac_text(duid[4:10])
    return None


def _v6_fqdn(raw: bytes) -> str | None:
    return _wire_name(raw[1:]) if len(raw) >= 2 else None


def parse_dhcpv6(data: bytes) -> Dhcpv6Message:
    """Decode one DHCPv6 message (UDP 546/547); relay messages are unwrapped."""
    for _ in range(MAX_V6_RELAY_DEPTH + 1):
        if len(data) < 4:
            raise DecodeError("DHCPv6 message needs 4 bytes")
        mt = data[0]
        if mt not in (V6_RELAY_FORW, V6_RELAY_REPL):
            break
        if len(data) < 34:
            raise DecodeError("DHCPv6 relay header truncated")
        inner = [v for c, v in _v6_options(data, 34) if c == _V6_RELAY_MSG]
        if not inner:
            raise DecodeError("DHCPv6 relay message without Relay Message option")
        data = inner[0]
    else:
        raise DecodeError("DHCPv6 relay nesting too deep")
    if not 1 <= mt <= 11:
        raise DecodeError(f"DHCPv6 message type {mt} unknown")
    duid: bytes | None = None
    fqdn: str | None = None
    vclass: str | None = None
    leases: list[Dhcpv6Lease] = []
    for code, val in _v6_options(data, 4):
        if code == _V6_CLIENTID and duid is None:
            duid = val
        elif code == _V6_FQDN and fqdn is None:
            fqdn = _v6_fqdn(val)
        elif code == _V6_VENDOR_CLASS and vclass is None and len(val) >= 6:
            (ln,) = struct.unpack_from(">H", val, 4)
            vclass = text(val[6 : 6 + ln]) or None
        elif code in (_V6_IA_NA, _V6_IA_TA):
            head = 12 if code == _V6_IA_NA else 4
            for sc, sv in _v6_options(val, head):
                if sc == _V6_IAADDR and len(sv) >= 24 and len(leases) < MAX_V6_ADDRESSES:
                    pref, valid = struct.unpack_from(">II", sv, 16)
                    addr = socket.inet_ntop(socket.AF_INET6, sv[:16])
                    leases.append(Dhcpv6Lease(addr, pref, valid))
    return Dhcpv6Message(
        msg_type=mt, transaction_id=int.from_bytes(data[1:4], "big"), client_duid=duid,
        client_mac=_duid_mac(duid) if duid else None, fqdn=fqdn, vendor_class=vclass,
        addresses=tuple(leases))


__all__ = [
    "ACK", "DISCOVER", "INFORM", "RELEASE", "REQUEST",
    "DhcpMessage", "Dhcpv6Lease", "Dhcpv6Message", "parse_dhcp", "parse_dhcpv6", "text",
]
