"""TLS ClientHello decoder: handcrafted hellos, record/segment reassembly, hostile input."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensor.decoders.tls import (
    MAX_STREAM_BYTES,
    client_hello_from_stream,
    looks_like_tls_client_hello,
    parse_client_hello,
)
from sensor.errors import DecodeError, NeedMoreData
from sensor.records import TlsClientHello


def _ext(etype: int, body: bytes) -> bytes:
    return struct.pack(">HH", etype, len(body)) + body


def _u16s(vals: list[int] | tuple[int, ...]) -> bytes:
    return b"".join(struct.pack(">H", v) for v in vals)


def sni_ext(*names: bytes, name_type: int = 0) -> bytes:
    entries = b"".join(bytes([name_type]) + struct.pack(">H", len(n)) + n for n in names)
    return _ext(0, struct.pack(">H", len(entries)) + entries)


def alpn_ext(*protos: bytes) -> bytes:
    entries = b"".join(bytes([len(p)]) + p for p in protos)
    return _ext(16, struct.pack(">H", len(entries)) + entries)


def build_hello(
    extensions: list[bytes] | None,
    ciphers: tuple[int, ...] = (0x1301, 0x1302, 0xC02B),
    version: int = 0x0303,
    session_id: bytes = b"\x11" * 32,
    compression: bytes = b"\x00",
) -> bytes:
    """A ClientHello handshake message (type, 3-byte length, body)."""
    body = (
        struct.pack(">H", version)
        + bytes(range(32))
        + bytes([len(session_id)])
        + session_id
        + struct.pack(">H", 2 * len(ciphers))
        + _u16s(ciphers)
        + bytes([len(compression)])
        + compression
    )
    if extensions is not None:
        exts = b"".join(extensions)
        body += struct.pack(">H", len(exts)) + exts
    return b"\x01" + len(body).to_bytes(3, "big") + body


def records(msg: bytes, size: int = 16384, version: int = 0x0301) -> bytes:
    """Wrap a handshake message in TLS handshake records of at most ``size`` bytes."""
    out = b""
    for i in range(0, len(msg), size):
        frag = msg[i : i + size]
        out += struct.pack(">BHH", 22, version, len(frag)) + frag
    return out


FULL_EXTS = [
    _ext(0xAAAA, b""),  # GREASE: kept in the record, JA4 drops it
    sni_ext(b"API.OpenAI.com"),
    _ext(0x0017, b""),
    _ext(0xFF01, b"\x00"),
    _ext(0x000A, struct.pack(">H", 6) + _u16s([0x1A1A, 0x001D, 0x0017])),
    _ext(0x000B, b"\x02\x00\x01"),
    alpn_ext(b"h2", b"http/1.1"),
    _ext(0x000D, struct.pack(">H", 6) + _u16s([0x0403, 0x0804, 0x0401])),
    _ext(0x002B, b"\x06" + _u16s([0x2A2A, 0x0304, 0x0303])),
    _ext(0xFE0D, b"\x00" * 10),
]


def test_all_fields() -> None:
    ch = parse_client_hello(build_hello(FULL_EXTS))
    assert ch == TlsClientHello(
        legacy_version=0x0303,
        cipher_suites=(0x1301, 0x1302, 0xC02B),
        compression_methods=(0,),
        extensions=(0xAAAA, 0, 0x17, 0xFF01, 0x0A, 0x0B, 0x10, 0x0D, 0x2B, 0xFE0D),
        sni="api.openai.com",
        alpn=(b"h2", b"http/1.1"),
        supported_versions=(0x2A2A, 0x0304, 0x0303),
        signature_algorithms=(0x0403, 0x0804, 0x0401),
        supported_groups=(0x1A1A, 0x001D, 0x0017),
        ec_point_formats=(0, 1),
        has_ech=True,
        session_id_len=32,
    )


def test_no_extensions_block_is_valid() -> None:
    ch = parse_client_hello(build_hello(None, session_id=b""))
    assert ch.extensions == () and ch.sni is None and ch.alpn == () and not ch.has_ech
    assert ch.session_id_len == 0


def test_sni_variants() -> None:
    assert parse_client_hello(build_hello([sni_ext(b"10.0.0.1")])).sni == "10.0.0.1"
    assert parse_client_hello(build_hello([sni_ext(b"FE80::1")])).sni == "FE80::1"
    assert parse_client_hello(build_hello([sni_ext(b"Ex\xffmple.COM")])).sni == "ex\\xffmple.com"
    # Non-host_name entries are skipped; an empty SNI extension gives None but is listed.
    ch = parse_client_hello(build_hello([sni_ext(b"x", name_type=7)]))
    assert ch.sni is None and ch.extensions == (0,)
    ch = parse_client_hello(build_hello([_ext(0, b"")]))
    assert ch.sni is None and ch.extensions == (0,)


def test_duplicate_extension_first_wins_and_both_listed() -> None:
    ch = parse_client_hello(build_hello([alpn_ext(b"h2"), alpn_ext(b"h3")]))
    assert ch.alpn == (b"h2",) and ch.extensions == (16, 16)


def test_inconsistent_extension_inside_is_tolerated() -> None:
    # ALPN list length claims more than the extension holds: entries that fit are kept.
    bad_alpn = _ext(16, struct.pack(">H", 50) + b"\x02h2\x05")
    ch = parse_client_hello(build_hello([bad_alpn, sni_ext(b"a.b")]))
    assert ch.alpn == (b"h2",) and ch.sni == "a.b"


@pytest.mark.parametrize(
    "msg",
    [
        build_hello(FULL_EXTS)[:4] + b"\x03\x03",  # body shorter than fixed part, length says so
        b"\x02\x00\x00\x26" + b"\x03\x03" + bytes(36),  # ServerHello
    ],
)
def test_not_a_client_hello(msg: bytes) -> None:
    fixed = msg if msg[0] == 2 else b"\x01" + (len(msg) - 4).to_bytes(3, "big") + msg[4:]
    with pytest.raises(DecodeError) as ei:
        parse_client_hello(fixed)
    assert not isinstance(ei.value, NeedMoreData)


def test_malformed_framing_raises_decode_error() -> None:
    good = build_hello(FULL_EXTS)
    body = bytearray(good)
    body[4 + 2 + 32] = 33  # session_id length > 32
    with pytest.raises(DecodeError):
        parse_client_hello(bytes(body))
    # Odd cipher_suites length.
    odd = bytearray(build_hello(None, ciphers=(0x1301,)))
    odd[4 + 2 + 32 + 1 + 32 + 1] = 3
    with pytest.raises(DecodeError):
        parse_client_hello(bytes(odd))


def test_a_broken_extension_keeps_what_came_before_it() -> None:
    # fuzzed/evasive hellos (ndpi tls_invalid_reads.pcap): the SNI before the damage stays
    sni = _ext(0x0000, struct.pack(">HBH", 16, 0, 13) + b"e.example.com")
    ch = parse_client_hello(build_hello([sni, b"\x00\x10\x00\x09\x00"]))
    assert ch.sni == "e.example.com" and ch.malformed and ch.extensions == (0,)
    ch = parse_client_hello(build_hello([sni, b"\x00"]))  # truncated extension header
    assert ch.sni == "e.example.com" and ch.malformed
    assert not parse_client_hello(build_hello([sni])).malformed


def test_strict_prefixes_need_more_data() -> None:
    msg = build_hello(FULL_EXTS)
    for cut in range(len(msg)):
        with pytest.raises(NeedMoreData):
            parse_client_hello(msg[:cut])
    assert parse_client_hello(msg + b"trailing") == parse_client_hello(msg)


def _big_hello() -> bytes:
    """~1.9 KB, like a post-quantum (X25519MLKEM768) Chrome hello."""
    key_share = _ext(0x0033, struct.pack(">HHH", 1222, 0x11EC, 1216) + bytes(1216))
    return build_hello([*FULL_EXTS, key_share, _ext(0x0015, bytes(400))])


def test_hello_spanning_records_and_segments() -> None:
    msg = _big_hello()
    assert len(msg) > 1800
    want = parse_client_hello(msg)
    for size in (1, 7, 100, 1000, 1500, 16384):
        stream = records(msg, size)
        assert client_hello_from_stream(stream) == want
        # Any cut before the end of the hello is "need more"; cutting in a record header too.
        for cut in sorted({1, 3, 5, 6, 9, 500, 1448, len(stream) // 2, len(stream) - 1}):
            if cut < len(stream):
                with pytest.raises(NeedMoreData):
                    client_hello_from_stream(stream[:cut])
        # Bytes after the hello (next records) do not matter.
        assert client_hello_from_stream(stream + b"\x14\x03\x03\x00\x01\x01") == want


def test_two_tcp_segments_then_success() -> None:
    stream = records(_big_hello())
    seg1, seg2 = stream[:1448], stream[1448:]
    with pytest.raises(NeedMoreData):
        client_hello_from_stream(seg1)
    assert client_hello_from_stream(seg1 + seg2).sni == "api.openai.com"


def test_stream_rejects_non_tls() -> None:
    msg = build_hello(FULL_EXTS)
    for bad in (
        b"GET / HTTP/1.1\r\n\r\n",
        b"\x17\x03\x03\x00\x10" + bytes(16),  # application data
        b"\x16\x02\x00\x00\x10",  # record version major 2
        b"\x16\x03\x09\x00\x10",  # minor > 4
        b"\x16\x03\x01\x00\x00",  # empty record
        b"\x16\x03\x01\x50\x00",  # record longer than 2^14 + 2048
        records(b"\x02" + msg[1:]),  # ServerHello
        b"\x80\x2e\x01\x03\x01" + bytes(40),  # SSLv2-compatible hello (documented: not decoded)
        records(msg[:100]) + b"\x15\x03\x03\x00\x02\x02\x28",  # alert interrupts the hello
    ):
        with pytest.raises(DecodeError) as ei:
            client_hello_from_stream(bad)
        assert not isinstance(ei.value, NeedMoreData), bad[:8]


def test_stream_cap_64k() -> None:
    # A handshake header announcing 16 MiB: refused at once (over the cap).
    with pytest.raises(DecodeError) as ei:
        client_hello_from_stream(b"\x16\x03\x01\x00\x04\x01\xff\xff\xff")
    assert not isinstance(ei.value, NeedMoreData)
    # A hello announcing 60000 bytes, fed in 1-byte-ish records: past 64 KiB it is an error.
    head = b"\x01" + (60000).to_bytes(3, "big")
    stream = records(head + bytes(60000), size=10)
    assert len(stream) > MAX_STREAM_BYTES
    with pytest.raises(DecodeError) as ei:
        client_hello_from_stream(stream)
    assert not isinstance(ei.value, NeedMoreData)
    with pytest.raises(NeedMoreData):
        client_hello_from_stream(stream[:30000])


def test_looks_like() -> None:
    stream = records(build_hello(FULL_EXTS))
    assert looks_like_tls_client_hello(stream[:6])
    assert all(looks_like_tls_client_hello(stream[:i]) for i in range(1, 7))
    assert not looks_like_tls_client_hello(b"")
    assert not looks_like_tls_client_hello(b"\x16\x03\x03\x00\x10\x02")  # ServerHello
    assert not looks_like_tls_client_hello(b"\x16\x03\x05")
    assert not looks_like_tls_client_hello(b"GET /")


def test_scapy_built_hello() -> None:
    from scapy.layers.tls.extensions import (
        ProtocolName,
        ServerName,
        TLS_Ext_ALPN,
        TLS_Ext_ServerName,
        TLS_Ext_SupportedGroups,
        TLS_Ext_SupportedVersion_CH,
    )
    from scapy.layers.tls.handshake import TLSClientHello

    hello = TLSClientHello(
        ciphers=[0x1301, 0xC02F],
        ext=[
            TLS_Ext_ServerName(servernames=[ServerName(servername=b"claude.ai")]),
            TLS_Ext_ALPN(protocols=[ProtocolName(protocol=b"h2")]),
            TLS_Ext_SupportedGroups(groups=[29, 23]),
            TLS_Ext_SupportedVersion_CH(versions=[0x0304, 0x0303]),
        ],
    )
    ch = parse_client_hello(bytes(hello))
    assert ch.sni == "claude.ai"
    assert ch.alpn == (b"h2",)
    assert ch.cipher_suites == (0x1301, 0xC02F)
    assert ch.supported_groups == (29, 23)
    assert ch.supported_versions == (0x0304, 0x0303)
    assert ch.extensions == (0, 16, 10, 43)


def _decodes_or_decode_error(fn: object, data: bytes) -> None:
    assert callable(fn)
    try:
        out = fn(data)
    except DecodeError:
        return
    assert isinstance(out, TlsClientHello)


@given(st.binary(max_size=600))
def test_random_bytes(data: bytes) -> None:
    _decodes_or_decode_error(parse_client_hello, data)
    _decodes_or_decode_error(client_hello_from_stream, data)
    _decodes_or_decode_error(client_hello_from_stream, b"\x16\x03\x01" + data)
    _decodes_or_decode_error(parse_client_hello, b"\x01" + len(data).to_bytes(3, "big") + data)


_VALID = records(_big_hello(), size=700)


@settings(max_examples=300)
@given(st.integers(0, len(_VALID) - 1), st.integers(0, 255), st.integers(0, len(_VALID)))
def test_mutated_and_truncated_valid_stream(pos: int, byte: int, cut: int) -> None:
    mutated = bytearray(_VALID)
    mutated[pos] = byte
    _decodes_or_decode_error(client_hello_from_stream, bytes(mutated[:cut]))
    with pytest.raises(NeedMoreData):
        client_hello_from_stream(_VALID[: min(cut, len(_VALID) - 1)] or b"\x16")


@given(st.lists(st.binary(max_size=40), max_size=20))
def test_random_extensions(exts: list[bytes]) -> None:
    body = [_ext(0x10 + i % 50, e) for i, e in enumerate(exts)]
    ch = parse_client_hello(build_hello(body))
    assert len(ch.extensions) == len(exts)


def test_hello_decoded_inside_its_record_ignores_what_follows() -> None:
    # The hello is decoded in place from the first record: bytes after it in the
    # same record (another handshake message) or a header cut at its end change nothing.
    sni = _ext(0x0000, struct.pack(">HBH", 16, 0, 13) + b"e.example.com")
    for msg in (
        build_hello(FULL_EXTS),
        build_hello([sni, b"\x00"]),
        build_hello([sni, b"\x00\x10"]),
    ):
        want = parse_client_hello(msg)
        assert client_hello_from_stream(records(msg + b"\x10\x00\x00\x02\xff\xff")) == want
        assert client_hello_from_stream(records(msg)) == want
    assert want.malformed and want.sni == "e.example.com"


def test_records_are_built_by_the_fast_constructor() -> None:
    # The decoder sets the record slots directly (sensor.records.slot_builder: the
    # frozen __init__ is slow); the record is still equal and hashable.
    from sensor.decoders import tls

    assert tls._hello is not TlsClientHello
    ch = parse_client_hello(build_hello([sni_ext(b"a.b")]))
    assert ch == TlsClientHello(
        0x0303, (0x1301, 0x1302, 0xC02B), (0,), (0,), "a.b", (), (), (), (), (), False, 32, False
    )
    assert hash(ch) == hash(TlsClientHello(**{f: getattr(ch, f) for f in ch.__slots__}))
