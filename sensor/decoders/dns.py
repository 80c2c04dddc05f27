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
* Speed (this is on the hunt hot path): names are memoised by offset within a
  message, and uncompressed names and questions across messages by their wire
  bytes (bounded caches, emptied when full); a memoised name reached through a
  pointer still counts its jumps and bytes. Results depend on the message bytes
  only, never on earlier messages. Records are built by setting their slots.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Callable, Iterator

from sensor.errors import DecodeError
from sensor.records import DnsAnswer, DnsMessage, DnsQuestion, slot_builder

_HEADER = struct.Struct(">HHHHHH")
_QTAIL = struct.Struct(">HH")
_RRTAIL = struct.Struct(">HHIH")
_U16 = struct.Struct(">H")
# Bound methods: one attribute lookup less per call on the hot path.
_unpack_header = _HEADER.unpack_from
_unpack_qtail = _QTAIL.unpack_from
_unpack_rrtail = _RRTAIL.unpack_from
_inet_ntoa = socket.inet_ntoa

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

# Per-message memo of names decoded from their first byte: start offset ->
# (text, pointer jumps, wire bytes of the labels without the root byte).
_NameMemo = dict[int, tuple[str, int, int]]


# the records are built without the frozen dataclass __init__ (see slot_builder)
_question: Callable[[str, int, int], DnsQuestion] = slot_builder(DnsQuestion)
_answer: Callable[[str, int, int, str, tuple[str, ...]], DnsAnswer] = slot_builder(DnsAnswer)
_message: Callable[
    [int, bool, int, int, tuple[DnsQuestion, ...], tuple[DnsAnswer, ...]], DnsMessage
] = slot_builder(DnsMessage)


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


# Uncompressed wire names already decoded -> their memo entry. Real traffic asks
# for few names again and again (the question of every response, CNAME targets);
# a name found here skips the label walk. Bounded: emptied when full.
_WIRE_NAMES: dict[bytes, tuple[str, int, int]] = {}
_WIRE_NAMES_MAX = 4096


# Questions with an uncompressed name, as wire bytes (name, type, class) -> the
# (immutable) record and the name's memo entry; bounded like _WIRE_NAMES.
_WIRE_QUESTIONS: dict[bytes, tuple[DnsQuestion, tuple[str, int, int]]] = {}


def _read_name_cached(msg: bytes, off: int, memo: _NameMemo) -> tuple[str, int]:
    """:func:`_read_name` for a name that is most likely uncompressed and known.

    Any bytes equal to a name that once decoded without pointers decode the same
    way wherever they sit, so the first zero byte after ``off`` (the root label,
    unless a label holds a zero byte) only picks which known name to compare with.
    """
    z = msg.find(0, off)
    if z >= 0:
        hit = _WIRE_NAMES.get(msg[off : z + 1])
        if hit is not None:
            memo[off] = hit
            return hit[0], z + 1
    return _read_name(msg, off, memo)


def read_name(msg: bytes, off: int) -> tuple[str, int]:
    """Decode the (possibly compressed) name at ``off``.

    Returns the name and the offset just after it in the original position.
    """
    return _read_name(msg, off, None)


def _read_name(msg: bytes, off: int, memo: _NameMemo | None) -> tuple[str, int]:
    """:func:`read_name`, reusing and filling ``memo`` (one per message).

    A pointer to an offset in ``memo`` ends the walk: what follows a jump is
    exactly a fresh read from the target (same bytes, and the target becomes
    the new run start), so only the counters have to be added up.
    """
    n = len(msg)
    labels: list[bytes] = []
    done = 0  # wire bytes of the label runs left by a jump
    jumps = 0
    run_start = off  # start of the label run holding the current position
    end_after: int = -1  # where the caller continues, fixed at the first jump
    # A label may end at lim at most: past n it is cut, past run_start + 254 - done
    # the name is over 255 wire bytes (one check per label for both).
    lim = min(n, off + MAX_NAME_WIRE - 1)
    tail: str | None = None  # text of a memoised suffix reached by a pointer
    p = off
    try:
        while True:
            length = msg[p]  # IndexError when the name runs past the message
            if length < 0x40:
                if length == 0:
                    break
                stop = p + 1 + length
                if stop > lim:
                    if 1 + done + stop - run_start > MAX_NAME_WIRE:
                        raise DecodeError("name longer than 255 bytes")
                    raise DecodeError("label runs past the message")
                labels.append(msg[p + 1 : stop])
                p = stop
                continue
            if length < 0xC0:
                raise DecodeError(f"unsupported label type {length:#04x}")
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
            done += p - run_start
            if memo is not None:
                hit = memo.get(target)
                if hit is not None:
                    tail, more_jumps, more_wire = hit
                    jumps += more_jumps
                    done += more_wire
                    if jumps > MAX_POINTERS:
                        raise DecodeError("too many compression pointers")
                    if 1 + done > MAX_NAME_WIRE:
                        raise DecodeError("name longer than 255 bytes")
                    break
            p = run_start = target
            lim = min(n, target + MAX_NAME_WIRE - 1 - done)
    except IndexError:
        raise DecodeError("name runs past the message") from None
    if tail is None:
        done += p - run_start
        p += 1
        text = _name_text(labels) if labels else ""
    elif labels:
        text = _name_text(labels) + "." + tail if tail else _name_text(labels)
    else:
        text = tail
    if memo is not None:
        entry = memo[off] = (text, jumps, done)
        if end_after < 0:  # no pointer: these bytes decode the same anywhere
            if len(_WIRE_NAMES) >= _WIRE_NAMES_MAX:
                _WIRE_NAMES.clear()
            _WIRE_NAMES[msg[off:p]] = entry
    return text, (end_after if end_after >= 0 else p)


def _ipv6(raw: bytes) -> str:
    text = socket.inet_ntop(socket.AF_INET6, raw)
    # inet_ntop writes embedded-IPv4 forms (::ffff:1.2.3.4) that ipaddress does not
    # on every Python version: use ipaddress there so the text is stable.
    return str(ipaddress.IPv6Address(raw)) if "." in text else text


def _svcb(
    msg: bytes, off: int, end: int, owner: str, memo: _NameMemo
) -> tuple[str, tuple[str, ...]]:
    if end - off < 3:
        return "", ()
    target, p = _read_name(msg, off + 2, memo)
    if p > end:
        return "", ()
    value = target if target else owner  # "." = the owner name (RFC 9460 2.5)
    hints: list[str] = []
    while p + 4 <= end:
        key, vlen = _unpack_qtail(msg, p)
        p += 4
        if p + vlen > end:
            break
        if key == _SVC_IPV4HINT:
            hints.extend(_inet_ntoa(msg[q : q + 4]) for q in range(p, p + vlen - 3, 4))
        elif key == _SVC_IPV6HINT:
            hints.extend(_ipv6(msg[q : q + 16]) for q in range(p, p + vlen - 15, 16))
        p += vlen
    return value, tuple(hints)


def parse_dns(msg: bytes) -> DnsMessage:
    """Decode one DNS message (a UDP payload, or one TCP-framed message body)."""
    if msg.__class__ is not bytes:  # the name cache needs hashable, searchable bytes
        msg = bytes(msg)
    n = len(msg)
    if n < 12:
        raise DecodeError("DNS header needs 12 bytes")
    txid, flags, qdcount, ancount, _ns, _ar = _unpack_header(msg, 0)
    p = 12
    if qdcount > MAX_QUESTIONS:
        raise DecodeError(f"qdcount {qdcount} over the {MAX_QUESTIONS} cap")
    memo: _NameMemo = {}
    questions: list[DnsQuestion] = []
    for _ in range(qdcount):  # each question eats >= 5 bytes, so this is bounded by n
        # A known question (see _WIRE_QUESTIONS) costs one dict lookup.
        z = msg.find(0, p)
        known = _WIRE_QUESTIONS.get(msg[p : z + 5]) if z >= 0 else None
        if known is not None:
            question, memo[p] = known
            questions.append(question)
            p = z + 5
            continue
        start = p
        name, p = _read_name_cached(msg, p, memo)
        if p + 4 > n:
            raise DecodeError("question truncated")
        qtype, qclass = _unpack_qtail(msg, p)
        p += 4
        question = _question(name, qtype, qclass)
        questions.append(question)
        entry = memo[start]
        if not entry[1]:  # no pointer: the same bytes are the same question anywhere
            if len(_WIRE_QUESTIONS) >= _WIRE_NAMES_MAX:
                _WIRE_QUESTIONS.clear()
            _WIRE_QUESTIONS[msg[start:p]] = (question, entry)
    if not ancount:  # every query, and empty answers
        return _message(
            txid, bool(flags & 0x8000), (flags >> 11) & 0xF, flags & 0xF, tuple(questions), ()
        )

    answers: list[DnsAnswer] = []
    try:
        for _ in range(min(ancount, MAX_ANSWERS)):
            # Fast path: the owner is one pointer to a name decoded before (the
            # question's, or a CNAME target), with the checks of _read_name.
            hit = None
            if p + 1 < n and msg[p] >= 0xC0:
                target = ((msg[p] & 0x3F) << 8) | msg[p + 1]
                if target < p:
                    hit = memo.get(target)
            if hit is not None and hit[1] < MAX_POINTERS:
                owner = hit[0]
                p += 2
            else:
                owner, p = _read_name(msg, p, memo)
            if p + 10 > n:
                break
            rtype, _rclass, ttl, rdlen = _unpack_rrtail(msg, p)
            p += 10
            end = p + rdlen
            if end > n:
                break
            hints: tuple[str, ...] = ()
            if rtype == T_A:
                value = _inet_ntoa(msg[p:end]) if rdlen == 4 else ""
            elif rtype == T_AAAA:
                value = _ipv6(msg[p:end]) if rdlen == 16 else ""
            elif rtype in _NAME_TYPES:
                try:
                    value, q = _read_name_cached(msg, p, memo)
                    if q > end:
                        value = ""
                except DecodeError:
                    value = ""  # a bad name inside RDATA costs only the value
            elif rtype in (T_SVCB, T_HTTPS):
                try:
                    value, hints = _svcb(msg, p, end, owner, memo)
                except DecodeError:
                    value = ""
            else:
                value = ""
            answers.append(_answer(owner, rtype, ttl, value, hints))
            p = end
    except DecodeError:
        pass  # a malformed owner name ends the answer section; keep what parsed

    return _message(
        txid,
        bool(flags & 0x8000),
        (flags >> 11) & 0xF,
        flags & 0xF,
        tuple(questions),
        tuple(answers),
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


def address_answers(m: DnsMessage) -> Iterator[tuple[str, int]]:
    """(address, TTL in s) for every address the message's answers bind a name to:
    A and AAAA records, and the ipv4hint/ipv6hint of HTTPS/SVCB records."""
    for a in m.answers:
        if a.rtype == T_A or a.rtype == T_AAAA:
            yield a.value, a.ttl_s
        for ip in a.hint_ips:
            yield ip, a.ttl_s


__all__ = ["DnsAnswer", "DnsMessage", "DnsQuestion", "address_answers", "parse_dns",
           "parse_dns_tcp", "read_name"]
