"""Sans-IO DNS message decoder (UDP payloads, and RFC 1035 4.2.2 TCP framing).

Contract:

* :func:`parse_dns` raises :class:`DecodeError` only when the header or the
  question section is malformed or cut. A cut or malformed *answer* section
  ends the answers: the records decoded before it are returned (like tshark,
  which shows a partial message). Authority/additional sections are skipped.
* Names are lower-case, without the trailing dot; the root is ``""``.
  Label bytes outside printable ASCII are written as RFC 1035 ``\\DDD``
  (decimal, as in zone files; tshark renders the same bytes e.g. ``\\004``),
  and a literal ``.`` or ``\\`` inside a label as ``\\.`` / ``\\\\``.
* Compression pointers must point strictly before the start of the label run
  that holds them (so every jump goes backwards and decoding terminates); at
  most 128 jumps and 255 bytes of wire name, else :class:`DecodeError`.
  At most :data:`MAX_QUESTIONS` questions and :data:`MAX_ANSWERS` answers are
  decoded, which bounds the work on hostile counts.
* :func:`parse_dns_tcp` returns the complete messages before the first one
  that fails, and stops there; a failing message raises only when it is the
  first one in the buffer (so the caller sees it on its next call).
"""

from __future__ import annotations

import ipaddress
import socket
import struct

from sensor.errors import DecodeError
from sensor.records import DnsAnswer, DnsMessage, DnsQuestion

_HEADER = struct.Struct(">HHHHHH")
_QTAIL = struct.Struct(">HH")
_RRTAIL = struct.Struct(">HHIH")
_U16 = struct.Struct(">H")

MAX_NAME_WIRE = 255  # RFC 1035 2.3.4
MAX_POINTERS = 128
# Work caps against hostile counts: names can share one 128-jump pointer chain,
# so the cost is bounded per record, and these bound the records.
MAX_QUESTIONS = 256  # more raises DecodeError (real messages have 1; mDNS a few)
MAX_ANSWERS = 512  # answers after this many are not decoded

T_A, T_NS, T_CNAME, T_PTR, T_AAAA, T_DNAME, T_SVCB, T_HTTPS = 1, 2, 5, 12, 28, 39, 64, 65
_NAME_TYPES = frozenset({T_NS, T_CNAME, T_PTR, T_DNAME})
_SVC_IPV4HINT, _SVC_IPV6HINT = 4, 6

# Bytes that can appear in a label as-is: printable ASCII minus '.' and '\'.
_PLAIN = bytes(c for c in range(0x20, 0x7F) if c not in (0x2E, 0x5C))
_PLAIN_AND_DOT = _PLAIN + b"."


def _label_text(raw: bytes) -> str:
    if not raw.translate(None, _PLAIN):  # common case: nothing to escape
        return raw.decode("ascii").lower()
    out = []
    for c in raw:  # rare: only labels with odd bytes get here
        if c in (0x2E, 0x5C):
            out.append("\\" + chr(c))
        elif 0x20 <= c < 0x7F:
            out.append(chr(c).lower())
        else:
            out.append(f"\\{c:03d}")
    return "".join(out)


def _name_text(raw: list[bytes]) -> str:
    joined = b".".join(raw)
    # Fast path, one C-level check for the whole name: only plain bytes, and every
    # '.' is a separator (none inside a label).
    if not joined.translate(None, _PLAIN_AND_DOT) and joined.count(b".") == len(raw) - 1:
        return joined.decode("ascii").lower()
    return ".".join(_label_text(lab) for lab in raw)


def read_name(msg: bytes, off: int) -> tuple[str, int]:
    """Decode the (possibly compressed) name at ``off``.

    Returns the name and the offset just after it in the original position.
    """
    n = len(msg)
    labels: list[bytes] = []
    wire_len = 1  # the terminating root label
    jumps = 0
    run_start = off  # start of the label run holding the current position
    end_after: int = -1  # where the caller continues, fixed at the first jump
    p = off
    while True:
        if p >= n:
            raise DecodeError("name runs past the message")
        length = msg[p]
        if length == 0:
            p += 1
            break
        kind = length & 0xC0
        if kind == 0xC0:
            if p + 1 >= n:
                raise DecodeError("compression pointer truncated")
            target = ((length & 0x3F) << 8) | msg[p + 1]
            if target >= run_start:
                raise DecodeError("compression pointer does not point backwards")
            jumps += 1
            if jumps > MAX_POINTERS:
                raise DecodeError("too many compression pointers")
            if end_after < 0:
                end_after = p + 2
            p = run_start = target
            continue
        if kind:
            raise DecodeError(f"unsupported label type {length:#04x}")
        wire_len += length + 1
        if wire_len > MAX_NAME_WIRE:
            raise DecodeError("name longer than 255 bytes")
        stop = p + 1 + length
        if stop > n:
            raise DecodeError("label runs past the message")
        labels.append(msg[p + 1 : stop])
        p = stop
    return _name_text(labels), (end_after if end_after >= 0 else p)


def _ipv4(raw: bytes) -> str:
    return socket.inet_ntoa(raw)  # same text as ipaddress, ~6x faster


def _ipv6(raw: bytes) -> str:
    text = socket.inet_ntop(socket.AF_INET6, raw)
    # inet_ntop writes embedded-IPv4 forms (::ffff:1.2.3.4) that ipaddress does not
    # on every Python version: use ipaddress there so the text is stable.
    return str(ipaddress.IPv6Address(raw)) if "." in text else text


def _svcb(msg: bytes, off: int, end: int, owner: str) -> tuple[str, tuple[str, ...]]:
    if end - off < 3:
        return "", ()
    target, p = read_name(msg, off + 2)
    if p > end:
        return "", ()
    value = target if target else owner  # "." = the owner name (RFC 9460 2.5)
    hints: list[str] = []
    while p + 4 <= end:
        key, vlen = _QTAIL.unpack_from(msg, p)
        p += 4
        if p + vlen > end:
            break
        if key == _SVC_IPV4HINT:
            hints.extend(_ipv4(msg[q : q + 4]) for q in range(p, p + vlen - 3, 4))
        elif key == _SVC_IPV6HINT:
            hints.extend(_ipv6(msg[q : q + 16]) for q in range(p, p + vlen - 15, 16))
        p += vlen
    return value, tuple(hints)


def _answer_value(
    msg: bytes, rtype: int, off: int, rdlen: int, owner: str
) -> tuple[str, tuple[str, ...]]:
    end = off + rdlen
    if rtype == T_A:
        return (_ipv4(msg[off:end]), ()) if rdlen == 4 else ("", ())
    if rtype == T_AAAA:
        return (_ipv6(msg[off:end]), ()) if rdlen == 16 else ("", ())
    if rtype in _NAME_TYPES:
        name, p = read_name(msg, off)
        return (name, ()) if p <= end else ("", ())
    if rtype in (T_SVCB, T_HTTPS):
        return _svcb(msg, off, end, owner)
    return "", ()


def parse_dns(msg: bytes) -> DnsMessage:
    """Decode one DNS message (a UDP payload, or one TCP-framed message body)."""
    n = len(msg)
    if n < 12:
        raise DecodeError("DNS header needs 12 bytes")
    txid, flags, qdcount, ancount, _ns, _ar = _HEADER.unpack_from(msg, 0)
    p = 12
    if qdcount > MAX_QUESTIONS:
        raise DecodeError(f"qdcount {qdcount} over the {MAX_QUESTIONS} cap")
    questions: list[DnsQuestion] = []
    for _ in range(qdcount):  # each question eats >= 5 bytes, so this is bounded by n
        name, p = read_name(msg, p)
        if p + 4 > n:
            raise DecodeError("question truncated")
        qtype, qclass = _QTAIL.unpack_from(msg, p)
        p += 4
        questions.append(DnsQuestion(name, qtype, qclass))

    answers: list[DnsAnswer] = []
    try:
        for _ in range(min(ancount, MAX_ANSWERS)):
            owner, p = read_name(msg, p)
            if p + 10 > n:
                break
            rtype, _rclass, ttl, rdlen = _RRTAIL.unpack_from(msg, p)
            p += 10
            if p + rdlen > n:
                break
            try:
                value, hints = _answer_value(msg, rtype, p, rdlen, owner)
            except DecodeError:
                value, hints = "", ()  # a bad name inside RDATA costs only the value
            answers.append(DnsAnswer(owner, rtype, ttl, value, hints))
            p += rdlen
    except DecodeError:
        pass  # a malformed owner name ends the answer section; keep what parsed

    return DnsMessage(
        txid=txid,
        is_response=bool(flags & 0x8000),
        opcode=(flags >> 11) & 0xF,
        rcode=flags & 0xF,
        questions=tuple(questions),
        answers=tuple(answers),
    )


def parse_dns_tcp(stream: bytes) -> tuple[list[DnsMessage], int]:
    """Decode the complete length-prefixed DNS messages at the start of ``stream``.

    Returns the messages and the number of bytes they used; the caller keeps
    ``stream[consumed:]`` for later. Stops before the first message that does
    not decode; raises :class:`DecodeError` if that is the first message.
    """
    out: list[DnsMessage] = []
    p = 0
    n = len(stream)
    while p + 2 <= n:
        (length,) = _U16.unpack_from(stream, p)
        if p + 2 + length > n:
            break
        try:
            if length < 12:
                raise DecodeError(f"TCP DNS message of {length} bytes")
            msg = parse_dns(stream[p + 2 : p + 2 + length])
        except DecodeError:
            if out:
                break
            raise
        out.append(msg)
        p += 2 + length
    return out, p


__all__ = ["DnsAnswer", "DnsMessage", "DnsQuestion", "parse_dns", "parse_dns_tcp", "read_name"]
