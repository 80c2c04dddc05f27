"""DNS decoder: records, compression, hostile names/counts, partial answers, TCP framing."""

from __future__ import annotations

import contextlib
import ipaddress
import struct
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.dns import DNS, DNSQR, DNSRR

from sensor.decoders.dns import (
    MAX_ANSWERS,
    address_answers,
    parse_dns,
    parse_dns_tcp,
    read_name,
)
from sensor.errors import DecodeError
from sensor.records import DnsAnswer, DnsMessage, DnsQuestion


def name(*labels: bytes) -> bytes:
    return b"".join(bytes([len(x)]) + x for x in labels) + b"\x00"


def header(txid: int = 0x1234, flags: int = 0x8180, qd: int = 1, an: int = 0) -> bytes:
    return struct.pack(">HHHHHH", txid, flags, qd, an, 0, 0)


def rr(owner: bytes, rtype: int, rdata: bytes, ttl: int = 300) -> bytes:
    return owner + struct.pack(">HHIH", rtype, 1, ttl, len(rdata)) + rdata


Q_OPENAI = name(b"API", b"openai", b"com") + struct.pack(">HH", 1, 1)
PTR_Q = b"\xc0\x0c"  # pointer to the question name at offset 12


def test_scapy_response_a_aaaa_cname() -> None:
    pkt = DNS(
        id=7,
        qr=1,
        rd=1,
        ra=1,
        qd=DNSQR(qname="chat.OpenAI.com."),
        an=[
            DNSRR(
                rrname="chat.openai.com.", type="CNAME", rdata="chat.openai.com.cdn.cloudflare.net."
            ),
            DNSRR(rrname="chat.openai.com.cdn.cloudflare.net.", type="A", rdata="104.18.33.45"),
            DNSRR(
                rrname="chat.openai.com.cdn.cloudflare.net.",
                type="AAAA",
                rdata="2606:4700::6812:212d",
            ),
        ],
    )
    for raw in (bytes(pkt), bytes(pkt.compress())):
        msg = parse_dns(raw)
        assert msg.txid == 7 and msg.is_response and msg.opcode == 0 and msg.rcode == 0
        assert msg.questions == (DnsQuestion("chat.openai.com", 1, 1),)
        assert [(a.name, a.rtype, a.value) for a in msg.answers] == [
            ("chat.openai.com", 5, "chat.openai.com.cdn.cloudflare.net"),
            ("chat.openai.com.cdn.cloudflare.net", 1, "104.18.33.45"),
            ("chat.openai.com.cdn.cloudflare.net", 28, "2606:4700::6812:212d"),
        ]


def test_address_answers_are_a_aaaa_and_svcb_hints() -> None:
    msg = DnsMessage(1, True, 0, 0, (DnsQuestion("chatgpt.com", 65, 1),), (
        DnsAnswer("chatgpt.com", 5, 60, "chatgpt.com.cdn.cloudflare.net", ()),
        DnsAnswer("chatgpt.com.cdn.cloudflare.net", 1, 30, "104.18.32.47", ()),
        DnsAnswer("chatgpt.com.cdn.cloudflare.net", 28, 30, "2606:4700::6812:2120", ()),
        DnsAnswer("chatgpt.com", 65, 300, "chatgpt.com", ("104.18.33.45", "2606:4700::1")),
        DnsAnswer("chatgpt.com", 16, 300, "", ()),
    ))
    assert list(address_answers(msg)) == [("104.18.32.47", 30), ("2606:4700::6812:2120", 30),
                                          ("104.18.33.45", 300), ("2606:4700::1", 300)]


def test_query_flags_and_rcode() -> None:
    msg = parse_dns(header(flags=0x2803, qd=1) + Q_OPENAI)  # opcode 5 (UPDATE), rcode 3
    assert not msg.is_response and msg.opcode == 5 and msg.rcode == 3
    assert msg.questions[0].name == "api.openai.com" and msg.answers == ()


def _svcb_rdata(prio: int, target: bytes, params: list[tuple[int, bytes]]) -> bytes:
    return (
        struct.pack(">H", prio)
        + target
        + b"".join(struct.pack(">HH", k, len(v)) + v for k, v in params)
    )


def test_https_record_hints_and_dot_target() -> None:
    rdata = _svcb_rdata(
        1,
        b"\x00",  # TargetName "." -> the owner name
        [
            (1, b"\x02h3\x02h2"),  # alpn
            (4, bytes([104, 18, 32, 47, 104, 18, 33, 45])),  # ipv4hint
            (6, bytes.fromhex("26064700000000000000000068122120")),  # ipv6hint
        ],
    )
    svcb = _svcb_rdata(0, name(b"svc", b"example", b"net"), [])
    raw = (
        header(an=3)
        + name(b"chatgpt", b"com")
        + struct.pack(">HH", 65, 1)
        + rr(PTR_Q, 65, rdata)
        + rr(PTR_Q, 64, svcb)
        + rr(PTR_Q, 16, b"\x05hello")  # TXT: kept, value ""
    )
    msg = parse_dns(raw)
    hints = ("104.18.32.47", "104.18.33.45", "2606:4700::6812:2120")
    assert msg.answers == (
        DnsAnswer("chatgpt.com", 65, 300, "chatgpt.com", hints),
        DnsAnswer("chatgpt.com", 64, 300, "svc.example.net", ()),
        DnsAnswer("chatgpt.com", 16, 300, "", ()),
    )


def test_root_name_and_odd_bytes_in_labels() -> None:
    raw = header(qd=2) + b"\x00" + struct.pack(">HH", 2, 1)
    raw += name(b"A\x04b.c\\", b"x y") + struct.pack(">HH", 1, 1)
    msg = parse_dns(raw)
    assert msg.questions[0].name == ""
    # tshark-style \DDD for non-printables; '.' and '\' inside a label escaped.
    assert msg.questions[1].name == "a\\004b\\.c\\\\.x y"


def test_compression_pointer_rules() -> None:
    # Self-pointer, forward pointer: DecodeError (question section -> whole message).
    with pytest.raises(DecodeError):
        parse_dns(header() + b"\xc0\x0c" + struct.pack(">HH", 1, 1))
    with pytest.raises(DecodeError):
        parse_dns(header() + b"\xc0\x20" + struct.pack(">HH", 1, 1) + bytes(40))
    # Two names pointing at each other (classic loop).
    loop = header(qd=1) + b"\x01a\xc0\x0e" + b"\x01b\xc0\x0c" + struct.pack(">HH", 1, 1)
    with pytest.raises(DecodeError):
        parse_dns(loop)


def _pointer_chain(jumps: int, prefix: bytes = header(qd=0)) -> tuple[bytes, int]:
    """``prefix`` + a name at the returned offset that follows ``jumps`` pointers back."""
    body = bytearray(prefix) + name(b"end")
    prev = len(prefix)
    for _ in range(jumps - 1):
        here = len(body)
        body += struct.pack(">H", 0xC000 | prev)
        prev = here
    start = len(body)
    body += struct.pack(">H", 0xC000 | prev)
    return bytes(body), start


def test_pointer_chain_limit() -> None:
    msg, off = _pointer_chain(128)
    assert read_name(msg, off) == ("end", off + 2)
    msg, off = _pointer_chain(129)
    with pytest.raises(DecodeError):
        read_name(msg, off)


def test_name_length_limit() -> None:
    ok = name(*[b"a" * 63] * 3, b"b" * 61)  # 255 wire bytes
    assert len(ok) == 255
    assert len(read_name(header() + ok, 12)[0]) == 253
    too_long = name(*[b"a" * 63] * 3, b"b" * 62)
    with pytest.raises(DecodeError):
        read_name(header() + too_long, 12)
    # A compressed name can also exceed 255 by repeating a suffix.
    base = header() + name(*[b"c" * 63] * 3)
    with pytest.raises(DecodeError):
        read_name(base + b"\x3f" + b"d" * 63 + b"\xc0\x0c", len(base))
    with pytest.raises(DecodeError):
        read_name(header() + b"\x45abc", 12)  # 0x40 label type


def test_hostile_counts_are_cheap() -> None:
    t0 = time.perf_counter()
    with pytest.raises(DecodeError):
        parse_dns(header(qd=65535) + Q_OPENAI)
    msg = parse_dns(header(qd=1, an=65535) + Q_OPENAI)
    assert msg.answers == ()
    # Many answers, each reusing one 128-jump pointer chain: bounded by MAX_ANSWERS.
    # The chain sits in the RDATA of a first TXT answer (owner = root, RDATA at offset 23).
    chain, off = _pointer_chain(127, prefix=bytes(23))  # +1 jump from each owner
    rdata = chain[23:]
    raw = header(qd=0, an=65535) + b"\x00" + struct.pack(">HHIH", 16, 1, 1, len(rdata)) + rdata
    rec = struct.pack(">H", 0xC000 | off) + struct.pack(">HHIH", 1, 1, 1, 4) + bytes(4)
    assert read_name(raw, off) == ("end", off + 2)
    msg = parse_dns(raw + rec * 2000)
    assert len(msg.answers) == MAX_ANSWERS
    assert time.perf_counter() - t0 < 2.0


def _response_with_answers() -> bytes:
    return (
        header(an=3)
        + Q_OPENAI
        + rr(PTR_Q, 5, name(b"cdn", b"example", b"net"))
        + rr(b"\xc0\x2c", 1, bytes([1, 2, 3, 4]))
        + rr(b"\xc0\x2c", 28, bytes(15) + b"\x01")
    )


def test_full_response_then_every_truncation() -> None:
    raw = _response_with_answers()
    full = parse_dns(raw)
    assert [a.value for a in full.answers] == ["cdn.example.net", "1.2.3.4", "::1"]
    q_end = 12 + len(Q_OPENAI)
    prev = 0
    for cut in range(len(raw)):
        if cut < q_end:
            with pytest.raises(DecodeError):
                parse_dns(raw[:cut])
            continue
        msg = parse_dns(raw[:cut])
        assert msg.questions == full.questions
        assert msg.answers == full.answers[: len(msg.answers)]
        assert len(msg.answers) >= prev
        prev = len(msg.answers)
    assert prev == 2


def test_bad_rdata_name_keeps_record_with_empty_value() -> None:
    raw = header(an=2) + Q_OPENAI + rr(PTR_Q, 5, b"\xc0\xff") + rr(PTR_Q, 1, bytes(4))
    msg = parse_dns(raw)
    assert [(a.rtype, a.value) for a in msg.answers] == [(5, ""), (1, "0.0.0.0")]


def test_tcp_framing() -> None:
    m1 = header(txid=1) + Q_OPENAI
    m2 = _response_with_answers()
    framed = b"".join(struct.pack(">H", len(m)) + m for m in (m1, m2))
    msgs, used = parse_dns_tcp(framed + b"\x00\x40\x12")
    assert [m.txid for m in msgs] == [1, 0x1234] and used == len(framed)
    assert parse_dns_tcp(framed[:5]) == ([], 0)
    assert parse_dns_tcp(b"") == ([], 0)
    # A bad message after good ones: the good ones come back, the bad one is left.
    bad = struct.pack(">H", 5) + b"\x00" * 5
    msgs, used = parse_dns_tcp(framed + bad)
    assert len(msgs) == 2 and used == len(framed)
    with pytest.raises(DecodeError):
        parse_dns_tcp((framed + bad)[used:])


def _check(raw: bytes) -> None:
    with contextlib.suppress(DecodeError):
        assert isinstance(parse_dns(raw), DnsMessage)


@given(st.binary(max_size=300))
def test_random_bytes(raw: bytes) -> None:
    _check(raw)
    try:
        msgs, used = parse_dns_tcp(raw)
        assert 0 <= used <= len(raw)
        assert all(isinstance(m, DnsMessage) for m in msgs)
    except DecodeError:
        pass


_VALID = _response_with_answers()


@settings(max_examples=300)
@given(st.integers(0, len(_VALID) - 1), st.integers(0, 255), st.integers(0, len(_VALID)))
def test_mutated_truncated(pos: int, byte: int, cut: int) -> None:
    raw = bytearray(_VALID)
    raw[pos] = byte
    _check(bytes(raw[:cut]))


@given(st.lists(st.binary(min_size=1, max_size=20), max_size=8))
def test_label_roundtrip(labels: list[bytes]) -> None:
    wire = header(qd=1) + name(*labels) + struct.pack(">HH", 1, 1)
    msg = parse_dns(wire)
    text = msg.questions[0].name
    assert text.isascii()
    simple = all(all(0x21 <= c < 0x7F and c not in b".\\" for c in lab) for lab in labels)
    if simple:
        assert text == ".".join(lab.decode().lower() for lab in labels)


@given(st.binary(min_size=16, max_size=16), st.binary(min_size=4, max_size=4))
def test_address_text_is_ipaddress_text(v6: bytes, v4: bytes) -> None:
    raw = header(an=2) + Q_OPENAI + rr(PTR_Q, 28, v6) + rr(PTR_Q, 1, v4)
    a6, a4 = parse_dns(raw).answers
    assert a6.value == str(ipaddress.IPv6Address(v6))
    assert a4.value == str(ipaddress.IPv4Address(v4))


def test_caps_hold_when_a_decoded_name_is_reused() -> None:
    # parse_dns reuses names it decoded (per message, and across messages for
    # uncompressed ones): a pointer to one must still count its jumps and bytes.
    long_q = name(*[b"q" * 63] * 3, b"r" * 56) + struct.pack(">HH", 1, 1)  # 250 wire bytes
    raw = header(an=2) + long_q
    raw += rr(b"\x03abc" + PTR_Q, 1, bytes(4))  # 254 bytes: fits
    raw += rr(b"\x05abcde" + PTR_Q, 1, bytes(4))  # 256 bytes: ends the answers
    msg = parse_dns(raw)
    assert [a.name[:4] for a in msg.answers] == ["abc."]
    assert msg.answers[0].name == read_name(raw, 12 + len(long_q))[0]
    for jumps, n_answers in ((127, 3), (128, 2)):
        # TXT RDATA holds a pointer chain; a CNAME's RDATA is one more jump onto it
        # (a name of `jumps` jumps, decoded and kept); an A owner points at that RDATA.
        chain, off = _pointer_chain(jumps - 1, prefix=bytes(23))
        rdata = chain[23:]
        raw = header(qd=0, an=3) + b"\x00" + struct.pack(">HHIH", 16, 1, 1, len(rdata)) + rdata
        cname_rdata = len(raw) + 11
        raw += rr(b"\x00", 5, struct.pack(">H", 0xC000 | off))
        raw += rr(struct.pack(">H", 0xC000 | cname_rdata), 1, bytes(4))
        msg = parse_dns(raw)
        assert len(msg.answers) == n_answers, jumps
        assert msg.answers[1].value == "end"
        assert read_name(raw, cname_rdata) == ("end", cname_rdata + 2)
        if n_answers == 2:
            with pytest.raises(DecodeError):
                read_name(raw, cname_rdata + 2)  # the A owner: 129 jumps
        else:
            assert msg.answers[2].name == "end"


@settings(max_examples=150)
@given(
    st.lists(
        st.lists(st.binary(min_size=1, max_size=6), min_size=1, max_size=4),
        min_size=1,
        max_size=6,
    ),
    st.lists(st.sampled_from([b"\x00", b"\x01", b"\x03", b"\xc0"]), max_size=3),
)
def test_results_do_not_depend_on_earlier_messages(
    names: list[list[bytes]], junk: list[bytes]
) -> None:
    # Look-alike names (zero bytes inside labels, shared prefixes) in queries and
    # CNAME responses decode the same whatever was decoded before, and as read_name.
    msgs = []
    for labels in names:
        wire = name(*labels)
        msgs.append(header(qd=1) + wire + struct.pack(">HH", 1, 1) + b"".join(junk))
        resp = header(an=2) + wire + struct.pack(">HH", 1, 1) + rr(PTR_Q, 5, wire)
        msgs.append(resp + rr(struct.pack(">H", 0xC000 | (len(resp) - len(wire))), 1, bytes(4)))
    forward = [parse_dns(m) for m in msgs]
    backward = [parse_dns(m) for m in reversed(msgs)][::-1]
    assert forward == backward
    for m, got in zip(msgs, forward, strict=True):
        assert got.questions[0].name == read_name(m, 12)[0]
        for a in got.answers:
            assert a.name == got.questions[0].name


def test_records_are_built_by_the_fast_constructors() -> None:
    # parse_dns sets the record slots directly (sensor.records.slot_builder: a frozen
    # __init__ costs more than the decoding); the records are still equal and hashable.
    from sensor.decoders import dns

    assert dns._question is not DnsQuestion
    assert dns._answer is not DnsAnswer
    assert dns._message is not DnsMessage
    got = parse_dns(_response_with_answers())
    assert got.questions[0] == DnsQuestion("api.openai.com", 1, 1)
    assert hash(got.answers[1]) == hash(DnsAnswer("cdn.example.net", 1, 300, "1.2.3.4", ()))
