"""Sans-IO Kerberos 5 decoder (RFC 4120): who asks the KDC for tickets.

Decodes AS-REQ / TGS-REQ (client principal ``cname`` and ``realm`` of the
request body, service ``sname``), AS-REP / TGS-REP (``crealm``/``cname`` the
KDC vouches for, ticket ``sname`` and etypes) and KRB-ERROR (error code,
optional ``crealm``/``cname``, ``sname``). Everything else (AP-REQ inside
GSS-API, encrypted parts) is out of scope.

Contract:

* Input is one message: a UDP payload, or one TCP record body.
  :func:`parse_kerberos_tcp` handles the RFC 4120 7.2.2 TCP framing (4-byte
  big-endian length; the high bit is reserved and must be 0).
* ASN.1 is read by hand as DER, definite lengths only (BER indefinite
  lengths raise :class:`DecodeError`). Lengths are checked against the
  enclosing element, the nesting depth is fixed by the schema, and lists
  (name components, etypes) are capped, so hostile input costs O(len(data)).
* Only :class:`DecodeError` (or :class:`NeedMoreData`) is ever raised.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sensor.errors import DecodeError, NeedMoreData

AS_REQ, AS_REP, TGS_REQ, TGS_REP, KRB_ERROR = 10, 11, 12, 13, 30
MSG_NAMES = {AS_REQ: "AS-REQ", AS_REP: "AS-REP", TGS_REQ: "TGS-REQ", TGS_REP: "TGS-REP",
             KRB_ERROR: "KRB-ERROR"}
MAX_TCP_RECORD = 1 << 20  # MS PACs make tickets tens of KiB; more is not Kerberos
MAX_NAME_PARTS = 16  # components of one PrincipalName decoded; more raise DecodeError
MAX_ETYPES = 64

# ASN.1 universal tags we read
_INTEGER, _BIT_STRING, _OCTET_STRING, _SEQUENCE = 0x02, 0x03, 0x04, 0x30
_STRING_TAGS = frozenset({0x1B, 0x0C, 0x16, 0x13, 0x04})  # GeneralString, UTF8, IA5, Printable


@dataclass(frozen=True, slots=True)
class KerberosMessage:
    """The identity-bearing fields of one KDC exchange message.

    ``cname``/``sname`` are the name-string components (``("host", "pc1")``);
    ``principal``/``service`` join them with ``/`` as Zeek and Suricata print
    them. ``realm`` is the request body realm (requests), the ticket realm
    (replies) or the error's service realm; ``crealm`` is the client realm of a
    reply or error (``None`` for requests, whose client realm is ``realm``).
    """

    msg_type: int
    cname: tuple[str, ...] | None
    cname_type: int | None
    realm: str | None
    crealm: str | None
    sname: tuple[str, ...] | None
    error_code: int | None = None
    error_text: str | None = None
    etypes: tuple[int, ...] = ()  # requests: etype list, client preference order
    ticket_etype: int | None = None  # replies: the ticket's enc-part etype
    enc_etype: int | None = None  # replies: the reply's enc-part etype
    kdc_options: int | None = None  # requests: the 32 KDCOptions bits, bit 0 = MSB

    @property
    def msg_type_name(self) -> str:
        return MSG_NAMES.get(self.msg_type, str(self.msg_type))

    @property
    def is_request(self) -> bool:
        return self.msg_type in (AS_REQ, TGS_REQ)

    @property
    def principal(self) -> str | None:
        """The client name as ``a/b`` (no realm); ``None`` when absent."""
        return "/".join(self.cname) if self.cname is not None else None

    @property
    def client_realm(self) -> str | None:
        """The realm of the client: ``realm`` for requests, ``crealm`` otherwise."""
        return self.realm if self.is_request else self.crealm

    @property
    def service(self) -> str | None:
        return "/".join(self.sname) if self.sname is not None else None

    def to_dict(self) -> dict[str, Any]:
        """The observation fields (``kind: "kerberos"``)."""
        return {"msg_type": self.msg_type_name, "client": self.principal,
                "client_realm": self.client_realm, "service": self.service,
                "error_code": self.error_code}


# -- DER reading -------------------------------------------------------------


def _header(buf: bytes, p: int, end: int) -> tuple[int, int, int]:
    """Read one TLV header at ``p``: returns (tag, content start, content end).

    Tags are returned as the first identifier octet, or for the high-tag form
    (number >= 31) as ``(class_and_constructed << 24) | number``.
    """
    if p + 2 > end:
        raise DecodeError("ASN.1 header truncated")
    tag = buf[p]
    p += 1
    if tag & 0x1F == 0x1F:  # high-tag-number form: base-128 number
        num = 0
        for _ in range(4):
            if p >= end:
                raise DecodeError("ASN.1 tag truncated")
            b = buf[p]
            p += 1
            num = (num << 7) | (b & 0x7F)
            if not b & 0x80:
                break
        else:
            raise DecodeError("ASN.1 tag number too long")
        tag = ((tag & 0xE0) << 24) | num
    if p >= end:
        raise DecodeError("ASN.1 length truncated")
    first = buf[p]
    p += 1
    if first < 0x80:
        length = first
    elif first == 0x80:
        raise DecodeError("ASN.1 indefinite length (BER) not allowed")
    else:
        nbytes = first & 0x7F
        if nbytes > 4:
            raise DecodeError("ASN.1 length field too long")
        if p + nbytes > end:
            raise DecodeError("ASN.1 length truncated")
        length = int.from_bytes(buf[p : p + nbytes], "big")
        p += nbytes
    if p + length > end:
        raise DecodeError("ASN.1 element runs past its container")
    return tag, p, p + length


def _expect(buf: bytes, p: int, end: int, tag: int, what: str) -> tuple[int, int]:
    t, s, e = _header(buf, p, end)
    if t != tag:
        raise DecodeError(f"{what}: expected tag {tag:#x}, got {t:#x}")
    return s, e


def _fields(buf: bytes, start: int, end: int) -> dict[int, tuple[int, int]]:
    """The context-tagged [n] fields of a SEQUENCE body: n -> (start, end) of the inner TLV."""
    out: dict[int, tuple[int, int]] = {}
    p = start
    while p < end:
        t, s, e = _header(buf, p, end)
        if 0xA0 <= t <= 0xBE:  # [0]..[30] constructed, context-specific
            out.setdefault(t - 0xA0, (s, e))
        p = e
    return out


def _integer(buf: bytes, span: tuple[int, int]) -> int:
    s, e = _expect(buf, span[0], span[1], _INTEGER, "INTEGER")
    if not 0 < e - s <= 8:
        raise DecodeError("INTEGER of bad size")
    return int.from_bytes(buf[s:e], "big", signed=True)


def _string(buf: bytes, span: tuple[int, int]) -> str:
    t, s, e = _header(buf, span[0], span[1])
    if t not in _STRING_TAGS:
        raise DecodeError(f"string expected, got tag {t:#x}")
    return _text(buf[s:e])


def _text(raw: bytes) -> str:
    """Decode a KerberosString; bytes that are not valid UTF-8 become ``\\xNN``."""
    return raw.decode("utf-8", "backslashreplace")


def _principal(buf: bytes, span: tuple[int, int]) -> tuple[int, tuple[str, ...]]:
    s, e = _expect(buf, span[0], span[1], _SEQUENCE, "PrincipalName")
    f = _fields(buf, s, e)
    if 0 not in f or 1 not in f:
        raise DecodeError("PrincipalName lacks name-type or name-string")
    name_type = _integer(buf, f[0])
    ss, se = _expect(buf, f[1][0], f[1][1], _SEQUENCE, "name-string")
    parts: list[str] = []
    p = ss
    while p < se:
        if len(parts) >= MAX_NAME_PARTS:
            raise DecodeError("PrincipalName has too many components")
        t, cs, ce = _header(buf, p, se)
        if t not in _STRING_TAGS:
            raise DecodeError(f"name component: unexpected tag {t:#x}")
        parts.append(_text(buf[cs:ce]))
        p = ce
    return name_type, tuple(parts)


def _etype_of(buf: bytes, span: tuple[int, int]) -> int | None:
    """The etype [0] of an EncryptedData."""
    s, e = _expect(buf, span[0], span[1], _SEQUENCE, "EncryptedData")
    f = _fields(buf, s, e)
    return _integer(buf, f[0]) if 0 in f else None


def _opt_principal(buf: bytes, f: dict[int, tuple[int, int]],
                   n: int) -> tuple[int | None, tuple[str, ...] | None]:
    return _principal(buf, f[n]) if n in f else (None, None)


def _kdc_req(buf: bytes, s: int, e: int, app: int) -> KerberosMessage:
    s, e = _expect(buf, s, e, _SEQUENCE, "KDC-REQ")
    f = _fields(buf, s, e)
    if 2 in f and _integer(buf, f[2]) != app:
        raise DecodeError("KDC-REQ msg-type does not match its application tag")
    if 4 not in f:
        raise DecodeError("KDC-REQ without req-body")
    bs, be = _expect(buf, f[4][0], f[4][1], _SEQUENCE, "KDC-REQ-BODY")
    body = _fields(buf, bs, be)
    if 2 not in body:
        raise DecodeError("KDC-REQ-BODY without realm")
    ctype, cname = _opt_principal(buf, body, 1)
    _stype, sname = _opt_principal(buf, body, 3)
    opts: int | None = None
    if 0 in body:
        os_, oe = _expect(buf, body[0][0], body[0][1], _BIT_STRING, "KDCOptions")
        if oe - os_ >= 5:  # unused-bits octet + 32 bits
            opts = int.from_bytes(buf[os_ + 1 : os_ + 5], "big")
    etypes: list[int] = []
    if 8 in body:
        es, ee = _expect(buf, body[8][0], body[8][1], _SEQUENCE, "etype list")
        p = es
        while p < ee and len(etypes) < MAX_ETYPES:
            t, vs, ve = _header(buf, p, ee)
            if t != _INTEGER or not 0 < ve - vs <= 4:
                raise DecodeError("etype is not a small INTEGER")
            etypes.append(int.from_bytes(buf[vs:ve], "big", signed=True))
            p = ve
    return KerberosMessage(
        msg_type=app, cname=cname, cname_type=ctype, realm=_string(buf, body[2]),
        crealm=None, sname=sname, etypes=tuple(etypes), kdc_options=opts)


def _kdc_rep(buf: bytes, s: int, e: int, app: int) -> KerberosMessage:
    s, e = _expect(buf, s, e, _SEQUENCE, "KDC-REP")
    f = _fields(buf, s, e)
    if 1 in f and _integer(buf, f[1]) != app:
        raise DecodeError("KDC-REP msg-type does not match its application tag")
    if 3 not in f or 4 not in f:
        raise DecodeError("KDC-REP without crealm/cname")
    ctype, cname = _principal(buf, f[4])
    realm: str | None = None
    sname: tuple[str, ...] | None = None
    ticket_etype: int | None = None
    if 5 in f:  # Ticket ::= [APPLICATION 1] SEQUENCE
        ts, te = _expect(buf, f[5][0], f[5][1], 0x61, "Ticket")
        ts, te = _expect(buf, ts, te, _SEQUENCE, "Ticket body")
        tf = _fields(buf, ts, te)
        realm = _string(buf, tf[1]) if 1 in tf else None
        _st, sname = _opt_principal(buf, tf, 2)
        ticket_etype = _etype_of(buf, tf[3]) if 3 in tf else None
    return KerberosMessage(
        msg_type=app, cname=cname, cname_type=ctype, realm=realm,
        crealm=_string(buf, f[3]), sname=sname, ticket_etype=ticket_etype,
        enc_etype=_etype_of(buf, f[6]) if 6 in f else None)


def _krb_error(buf: bytes, s: int, e: int) -> KerberosMessage:
    s, e = _expect(buf, s, e, _SEQUENCE, "KRB-ERROR")
    f = _fields(buf, s, e)
    if 6 not in f:
        raise DecodeError("KRB-ERROR without error-code")
    ctype, cname = _opt_principal(buf, f, 8)
    _st, sname = _opt_principal(buf, f, 10)
    return KerberosMessage(
        msg_type=KRB_ERROR, cname=cname, cname_type=ctype,
        realm=_string(buf, f[9]) if 9 in f else None,
        crealm=_string(buf, f[7]) if 7 in f else None, sname=sname,
        error_code=_integer(buf, f[6]),
        error_text=_string(buf, f[11]) if 11 in f else None)


def parse_kerberos(data: bytes) -> KerberosMessage:
    """Decode one Kerberos message (a UDP payload or one TCP record body)."""
    try:
        tag, s, e = _header(data, 0, len(data))
        if tag in (0x6A, 0x6C):  # [APPLICATION 10] AS-REQ, [APPLICATION 12] TGS-REQ
            return _kdc_req(data, s, e, tag - 0x60)
        if tag in (0x6B, 0x6D):
            return _kdc_rep(data, s, e, tag - 0x60)
        if tag == 0x7E:
            return _krb_error(data, s, e)
    except (IndexError, ValueError) as exc:  # DecodeError is a ValueError: re-raised as is
        if isinstance(exc, DecodeError):
            raise
        raise DecodeError(f"malformed Kerberos message: {exc}") from None
    raise DecodeError(f"not a KDC message (first tag {data[:1].hex() or 'none'})")


def parse_kerberos_tcp(data: bytes) -> tuple[list[KerberosMessage], int]:
    """Decode the complete length-prefixed records at the start of ``data``.

    Returns the messages and the bytes they used (the caller keeps
    ``data[consumed:]``). Raises :class:`NeedMoreData` when not even the first
    record is complete, and :class:`DecodeError` when the first record is bad;
    a bad record after good ones ends the list (reported on the next call).
    """
    out: list[KerberosMessage] = []
    p = 0
    n = len(data)
    while p + 4 <= n:
        length = int.from_bytes(data[p : p + 4], "big")
        if length & 0x80000000 or length > MAX_TCP_RECORD or length == 0:
            if out:
                break
            raise DecodeError(f"bad Kerberos TCP record length {length:#x}")
        if p + 4 + length > n:
            break
        try:
            out.append(parse_kerberos(data[p + 4 : p + 4 + length]))
        except DecodeError:
            if out:
                break
            raise
        p += 4 + length
    if not out:
        raise NeedMoreData("Kerberos TCP record incomplete")
    return out, p


__all__ = [
    "AS_REP", "AS_REQ", "KRB_ERROR", "TGS_REP", "TGS_REQ",
    "KerberosMessage", "parse_kerberos", "parse_kerberos_tcp",
]
