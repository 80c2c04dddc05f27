"""Tests for sensor.decoders.quic: RFC known answers, corpus oracles, hostile input."""

from __future__ import annotations

import csv
import ipaddress
import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dpkt
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sensor.decoders import ja4 as ja4_mod
from sensor.decoders import quic
from sensor.decoders.quic import (
    CryptoReassembler,
    QuicInitialPacket,
    client_initial_keys,
    looks_like_quic_initial,
    parse_initial_packets,
)
from sensor.decoders.tls import parse_client_hello
from sensor.errors import DecodeError
from sensor.records import TlsClientHello
from tests.helpers.quic import RFC_CRYPTO_FRAME, RFC_DCID, crypto_frame, protect_initial, varint

CORPUS = Path(__file__).resolve().parents[3] / ".." / "shared" / "corpus"

# --- RFC 9001 Appendix A / RFC 9369 Appendix A -------------------------------------------------

RFC9001_PACKET = bytes.fromhex(
    "c000000001088394c8f03e5157080000449e7b9aec34d1b1c98dd7689fb8ec11"
    "d242b123dc9bd8bab936b47d92ec356c0bab7df5976d27cd449f63300099f399"
    "1c260ec4c60d17b31f8429157bb35a1282a643a8d2262cad67500cadb8e7378c"
    "8eb7539ec4d4905fed1bee1fc8aafba17c750e2c7ace01e6005f80fcb7df6212"
    "30c83711b39343fa028cea7f7fb5ff89eac2308249a02252155e2347b63d58c5"
    "457afd84d05dfffdb20392844ae812154682e9cf012f9021a6f0be17ddd0c208"
    "4dce25ff9b06cde535d0f920a2db1bf362c23e596d11a4f5a6cf3948838a3aec"
    "4e15daf8500a6ef69ec4e3feb6b1d98e610ac8b7ec3faf6ad760b7bad1db4ba3"
    "485e8a94dc250ae3fdb41ed15fb6a8e5eba0fc3dd60bc8e30c5c4287e53805db"
    "059ae0648db2f64264ed5e39be2e20d82df566da8dd5998ccabdae053060ae6c"
    "7b4378e846d29f37ed7b4ea9ec5d82e7961b7f25a9323851f681d582363aa5f8"
    "9937f5a67258bf63ad6f1a0b1d96dbd4faddfcefc5266ba6611722395c906556"
    "be52afe3f565636ad1b17d508b73d8743eeb524be22b3dcbc2c7468d54119c74"
    "68449a13d8e3b95811a198f3491de3e7fe942b330407abf82a4ed7c1b311663a"
    "c69890f4157015853d91e923037c227a33cdd5ec281ca3f79c44546b9d90ca00"
    "f064c99e3dd97911d39fe9c5d0b23a229a234cb36186c4819e8b9c5927726632"
    "291d6a418211cc2962e20fe47feb3edf330f2c603a9d48c0fcb5699dbfe58964"
    "25c5bac4aee82e57a85aaf4e2513e4f05796b07ba2ee47d80506f8d2c25e50fd"
    "14de71e6c418559302f939b0e1abd576f279c4b2e0feb85c1f28ff18f58891ff"
    "ef132eef2fa09346aee33c28eb130ff28f5b766953334113211996d20011a198"
    "e3fc433f9f2541010ae17c1bf202580f6047472fb36857fe843b19f5984009dd"
    "c324044e847a4f4a0ab34f719595de37252d6235365e9b84392b061085349d73"
    "203a4a13e96f5432ec0fd4a1ee65accdd5e3904df54c1da510b0ff20dcc0c77f"
    "cb2c0e0eb605cb0504db87632cf3d8b4dae6e705769d1de354270123cb11450e"
    "fc60ac47683d7b8d0f811365565fd98c4c8eb936bcab8d069fc33bd801b03ade"
    "a2e1fbc5aa463d08ca19896d2bf59a071b851e6c239052172f296bfb5e724047"
    "90a2181014f3b94a4e97d117b438130368cc39dbb2d198065ae3986547926cd2"
    "162f40a29f0c3c8745c0f50fba3852e566d44575c29d39a03f0cda721984b6f4"
    "40591f355e12d439ff150aab7613499dbd49adabc8676eef023b15b65bfc5ca0"
    "6948109f23f350db82123535eb8a7433bdabcb909271a6ecbcb58b936a88cd4e"
    "8f2e6ff5800175f113253d8fa9ca8885c2f552e657dc603f252e1a8e308f76f0"
    "be79e2fb8f5d5fbbe2e30ecadd220723c8c0aea8078cdfcb3868263ff8f09400"
    "54da48781893a7e49ad5aff4af300cd804a6b6279ab3ff3afb64491c85194aab"
    "760d58a606654f9f4400e8b38591356fbf6425aca26dc85244259ff2b19c41b9"
    "f96f3ca9ec1dde434da7d2d392b905ddf3d1f9af93d1af5950bd493f5aa731b4"
    "056df31bd267b6b90a079831aaf579be0a39013137aac6d404f518cfd4684064"
    "7e78bfe706ca4cf5e9c5453e9f7cfd2b8b4c8d169a44e55c88d4a9a7f9474241"
    "e221af44860018ab0856972e194cd934"
)
RFC9369_PACKET = bytes.fromhex(
    "d76b3343cf088394c8f03e5157080000449ea0c95e82ffe67b6abcdb4298b485"
    "dd04de806071bf03dceebfa162e75d6c96058bdbfb127cdfcbf903388e99ad04"
    "9f9a3dd4425ae4d0992cfff18ecf0fdb5a842d09747052f17ac2053d21f57c5d"
    "250f2c4f0e0202b70785b7946e992e58a59ac52dea6774d4f03b55545243cf1a"
    "12834e3f249a78d395e0d18f4d766004f1a2674802a747eaa901c3f10cda5500"
    "cb9122faa9f1df66c392079a1b40f0de1c6054196a11cbea40afb6ef5253cd68"
    "18f6625efce3b6def6ba7e4b37a40f7732e093daa7d52190935b8da58976ff33"
    "12ae50b187c1433c0f028edcc4c2838b6a9bfc226ca4b4530e7a4ccee1bfa2a3"
    "d396ae5a3fb512384b2fdd851f784a65e03f2c4fbe11a53c7777c023462239dd"
    "6f7521a3f6c7d5dd3ec9b3f233773d4b46d23cc375eb198c63301c21801f6520"
    "bcfb7966fc49b393f0061d974a2706df8c4a9449f11d7f3d2dcbb90c6b877045"
    "636e7c0c0fe4eb0f697545460c806910d2c355f1d253bc9d2452aaa549e27a1f"
    "ac7cf4ed77f322e8fa894b6a83810a34b361901751a6f5eb65a0326e07de7c12"
    "16ccce2d0193f958bb3850a833f7ae432b65bc5a53975c155aa4bcb4f7b2c4e5"
    "4df16efaf6ddea94e2c50b4cd1dfe06017e0e9d02900cffe1935e0491d77ffb4"
    "fdf85290fdd893d577b1131a610ef6a5c32b2ee0293617a37cbb08b847741c3b"
    "8017c25ca9052ca1079d8b78aebd47876d330a30f6a8c6d61dd1ab5589329de7"
    "14d19d61370f8149748c72f132f0fc99f34d766c6938597040d8f9e2bb522ff9"
    "9c63a344d6a2ae8aa8e51b7b90a4a806105fcbca31506c446151adfeceb51b91"
    "abfe43960977c87471cf9ad4074d30e10d6a7f03c63bd5d4317f68ff325ba3bd"
    "80bf4dc8b52a0ba031758022eb025cdd770b44d6d6cf0670f4e990b22347a7db"
    "848265e3e5eb72dfe8299ad7481a408322cac55786e52f633b2fb6b614eaed18"
    "d703dd84045a274ae8bfa73379661388d6991fe39b0d93debb41700b41f90a15"
    "c4d526250235ddcd6776fc77bc97e7a417ebcb31600d01e57f32162a8560cacc"
    "7e27a096d37a1a86952ec71bd89a3e9a30a2a26162984d7740f81193e8238e61"
    "f6b5b984d4d3dfa033c1bb7e4f0037febf406d91c0dccf32acf423cfa1e70710"
    "10d3f270121b493ce85054ef58bada42310138fe081adb04e2bd901f2f13458b"
    "3d6758158197107c14ebb193230cd1157380aa79cae1374a7c1e5bbcb80ee23e"
    "06ebfde206bfb0fcbc0edc4ebec309661bdd908d532eb0c6adc38b7ca7331dce"
    "8dfce39ab71e7c32d318d136b6100671a1ae6a6600e3899f31f0eed19e3417d1"
    "34b90c9058f8632c798d4490da4987307cba922d61c39805d072b589bd52fdf1"
    "e86215c2d54e6670e07383a27bbffb5addf47d66aa85a0c6f9f32e59d85a44dd"
    "5d3b22dc2be80919b490437ae4f36a0ae55edf1d0b5cb4e9a3ecabee93dfc6e3"
    "8d209d0fa6536d27a5d6fbb17641cde27525d61093f1b28072d111b2b4ae5f89"
    "d5974ee12e5cf7d5da4d6a31123041f33e61407e76cffcdcfd7e19ba58cf4b53"
    "6f4c4938ae79324dc402894b44faf8afbab35282ab659d13c93f70412e85cb19"
    "9a37ddec600545473cfb5a05e08d0b209973b2172b4d21fb69745a262ccde96b"
    "a18b2faa745b6fe189cf772a9f84cbfc"
)
RFC_CLIENT_HELLO = RFC_CRYPTO_FRAME[4:]  # after type 0x06, offset 0x00, length 0x40f1


@pytest.mark.parametrize(
    ("version", "key", "iv", "hp"),
    [
        (  # RFC 9001 A.1
            quic.QUIC_V1,
            "1f369613dd76d5467730efcbe3b1a22d",
            "fa044b2f42a3fd3b46fb255c",
            "9f50449e04a0e810283a1e9933adedd2",
        ),
        (  # RFC 9369 A.1
            quic.QUIC_V2,
            "8b1a0bc121284290a29e0971b5cd045d",
            "91f73e2351d8fa91660e909f",
            "45b95e15235d6f45a6b19cbcb0294ba9",
        ),
        (  # draft-ietf-quic-tls-29 A.1
            0xFF00001D,
            "175257a31eb09dea9366d8bb79ad80ba",
            "6b26114b9cba2b63a9e8dd4f",
            "9ddd12c994c0698b89374a9c077a3077",
        ),
    ],
)
def test_initial_key_derivation_known_answers(version: int, key: str, iv: str, hp: str) -> None:
    assert client_initial_keys(version, RFC_DCID) == (
        bytes.fromhex(key),
        bytes.fromhex(iv),
        bytes.fromhex(hp),
    )


def test_unknown_version_has_no_keys() -> None:
    with pytest.raises(DecodeError):
        client_initial_keys(0x51303530, RFC_DCID)  # gQUIC Q050


@pytest.mark.parametrize(
    ("packet", "version"),
    [(RFC9001_PACKET, quic.QUIC_V1), (RFC9369_PACKET, quic.QUIC_V2)],
    ids=["rfc9001", "rfc9369"],
)
def test_rfc_client_initial_decrypts(packet: bytes, version: int) -> None:
    assert looks_like_quic_initial(packet)
    (pkt,) = parse_initial_packets(packet)
    assert pkt == QuicInitialPacket(
        version=version,
        dcid=RFC_DCID,
        scid=b"",
        packet_number=2,
        crypto=((0, RFC_CLIENT_HELLO),),
        key_dcid=RFC_DCID,
    )
    ch = parse_client_hello(pkt.crypto[0][1])
    assert ch.sni == "example.com"
    assert ch.cipher_suites == (0x1301, 0x1302)


def test_rfc_packet_with_wrong_dcid_hint_falls_back_to_own_dcid() -> None:
    (pkt,) = parse_initial_packets(RFC9001_PACKET, dcid_hint=b"\x01\x02\x03\x04")
    assert pkt.key_dcid == RFC_DCID


# --- a client-side Initial encoder for synthetic cases ------------------------------------------


def _protect(
    payload: bytes,
    *,
    dcid: bytes = RFC_DCID,
    key_dcid: bytes | None = None,
    scid: bytes = b"\xaa\xbb",
    version: int = quic.QUIC_V1,
    pn: int = 0,
    pn_len: int = 2,
    token: bytes = b"",
) -> bytes:
    """A protected client Initial, its keys derived by the sensor (checked above against
    the RFCs' known answers)."""
    keys = client_initial_keys(version, key_dcid if key_dcid is not None else dcid)
    return protect_initial(payload, keys, dcid=dcid, scid=scid, version=version, pn=pn,
                           pn_len=pn_len, token=token)


def _handshake_packet(body_len: int = 40) -> bytes:
    """A (fake, undecryptable) coalesced Handshake packet: skipped by its Length field."""
    return (
        b"\xe0"
        + (1).to_bytes(4, "big")
        + b"\x08"
        + RFC_DCID
        + b"\x00"
        + (body_len | 0x4000).to_bytes(2, "big")
        + bytes(range(body_len))
    )


def test_roundtrip_with_all_initial_frame_types() -> None:
    ch = RFC_CLIENT_HELLO
    payload = (
        b"\x01"  # PING
        + b"\x02\x05\x00\x01\x00\x02\x01"  # ACK: largest 5, delay 0, 1 extra range
        + b"\x03\x05\x00\x00\x00\x01\x02\x03"  # ACK_ECN with three ECN counts
        + crypto_frame(100, ch[100:])
        + b"\x00" * 20  # PADDING
        + crypto_frame(0, ch[:100])
        + b"\x1c\x00\x06\x03abc"  # CONNECTION_CLOSE (transport)
        + b"\x1d\x00\x00"  # CONNECTION_CLOSE (application)
        + crypto_frame(len(ch), b"")
    )
    (pkt,) = parse_initial_packets(_protect(payload, pn=7, pn_len=1))
    assert pkt.packet_number == 7
    assert pkt.crypto == ((100, ch[100:]), (0, ch[:100]), (len(ch), b""))


def test_crypto_data_ending_in_zero_bytes_before_padding() -> None:
    payload = b"\x01" + crypto_frame(0, b"ab\x00\x00\x00") + bytes(300)
    (pkt,) = parse_initial_packets(_protect(payload))
    assert pkt.crypto == ((0, b"ab\x00\x00\x00"),)


def test_unexpected_frame_stops_parse_but_keeps_earlier_frames() -> None:
    payload = crypto_frame(0, b"abc") + b"\x08" + crypto_frame(3, b"def")  # 0x08 = STREAM
    (pkt,) = parse_initial_packets(_protect(payload))
    assert pkt.crypto == ((0, b"abc"),)


def test_truncated_frame_inside_valid_packet() -> None:
    payload = crypto_frame(0, b"abc") + b"\x06\x00\x40\xff" + b"xy"  # length beyond payload
    (pkt,) = parse_initial_packets(_protect(payload))
    assert pkt.crypto == ((0, b"abc"),)


def test_huge_ack_range_count_is_bounded() -> None:
    payload = crypto_frame(0, b"abc") + b"\x02\x00\x00" + varint(2**40) + b"\x00" + bytes(30)
    (pkt,) = parse_initial_packets(_protect(payload))
    assert pkt.crypto == ((0, b"abc"),)


def test_coalesced_initials_handshake_and_padding() -> None:
    ch = RFC_CLIENT_HELLO
    first = _protect(crypto_frame(0, ch[:120]), pn=0, token=b"tok")
    second = _protect(crypto_frame(120, ch[120:]), pn=1)
    datagram = first + second + _handshake_packet() + bytes(200)
    pkts = parse_initial_packets(datagram)
    assert [p.packet_number for p in pkts] == [0, 1]
    assert [p.crypto for p in pkts] == [((0, ch[:120]),), ((120, ch[120:]),)]
    # a 1-RTT (short header) packet after the Initial ends the walk quietly
    assert len(parse_initial_packets(first + b"\x40" + bytes(50))) == 1


def test_undecryptable_initial_does_not_hide_a_later_coalesced_one() -> None:
    bad = _protect(crypto_frame(0, b"x"), dcid=b"\x01" * 8, key_dcid=b"\x02" * 8)
    good = _protect(crypto_frame(0, b"hello"), pn=1)
    (pkt,) = parse_initial_packets(bad + good)
    assert pkt.crypto == ((0, b"hello"),)


def test_v2_and_draft_versions_roundtrip() -> None:
    for version in (quic.QUIC_V2, 0xFF00001D, 0xFF000017, 0xFF000022):
        packet = _protect(crypto_frame(0, b"hello"), version=version)
        assert looks_like_quic_initial(packet), hex(version)
        (pkt,) = parse_initial_packets(packet)
        assert (pkt.version, pkt.crypto) == (version, ((0, b"hello"),))


def test_v2_type_bits_differ_from_v1() -> None:
    v2 = _protect(crypto_frame(0, b"x"), version=quic.QUIC_V2)
    relabelled = bytes((v2[0] & 0xCF,)) + v2[1:]  # v1 Initial type bits = v2 Retry
    assert not looks_like_quic_initial(relabelled)
    with pytest.raises(DecodeError):
        parse_initial_packets(relabelled)


def test_dcid_hint_decrypts_later_initial_with_server_chosen_dcid() -> None:
    server_cid = bytes.fromhex("0011223344")
    later = _protect(crypto_frame(50, b"tail"), dcid=server_cid, key_dcid=RFC_DCID, pn=3)
    with pytest.raises(DecodeError, match="AEAD"):
        parse_initial_packets(later)
    (pkt,) = parse_initial_packets(later, dcid_hint=RFC_DCID)
    assert (pkt.dcid, pkt.key_dcid, pkt.crypto) == (server_cid, RFC_DCID, ((50, b"tail"),))


@pytest.mark.parametrize(
    "datagram",
    [
        b"",
        b"\x40" + bytes(60),  # short header
        b"\x00" * 1200,  # zeros
        b"\xc0\x51\x30\x35\x30\x08" + bytes(100),  # gQUIC Q050
        b"\xc0\x00\x00\x00\x00" + bytes(100),  # version negotiation
        b"\xc0\x00\x00\x00\x01\x15" + bytes(100),  # DCID length 21
        b"\xc0\x00\x00\x00\x01\x08",  # truncated
        RFC9001_PACKET[:-1],  # length field beyond the datagram
        RFC9001_PACKET[:-1] + b"\x00",  # AEAD failure (tag)
        b"\xf0\x00\x00\x00\x01\x00\x00" + bytes(40),  # Retry
        _handshake_packet(),  # only a Handshake packet
    ],
)
def test_no_decryptable_initial_raises_decode_error(datagram: bytes) -> None:
    with pytest.raises(DecodeError):
        parse_initial_packets(datagram)


def test_looks_like_quic_initial() -> None:
    assert looks_like_quic_initial(RFC9001_PACKET[:6])
    assert looks_like_quic_initial(RFC9369_PACKET[:6])
    assert not looks_like_quic_initial(RFC9001_PACKET[:5])
    assert not looks_like_quic_initial(b"\x80" + RFC9001_PACKET[1:6])  # fixed bit clear
    assert not looks_like_quic_initial(b"\xe0" + RFC9001_PACKET[1:6])  # Handshake type
    assert not looks_like_quic_initial(b"\xc0\x51\x30\x34\x36\x08")  # gQUIC
    assert not looks_like_quic_initial(b"\xc0\x00\x00\x00\x01\x15")  # DCID > 20
    assert not looks_like_quic_initial(b"\x16\x03\x01\x02\x00\x01")  # TLS record
    assert looks_like_quic_initial(b"\xc0\x1a\x2a\x3a\x4a\x08")  # reserved (forcing VN)
    assert looks_like_quic_initial(b"\xc0\xfa\xce\xb0\x02\x08")  # mvfst


# --- hostile input -------------------------------------------------------------------------------


def _parse_or_decode_error(data: bytes, hint: bytes | None = None) -> None:
    try:
        result = parse_initial_packets(data, hint)
    except DecodeError:
        return
    assert isinstance(result, list) and result
    assert all(isinstance(p, QuicInitialPacket) for p in result)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=1500), st.one_of(st.none(), st.binary(max_size=20)))
def test_random_bytes_never_raise_other_errors(data: bytes, hint: bytes | None) -> None:
    _parse_or_decode_error(data, hint)
    looks_like_quic_initial(data)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from([RFC9001_PACKET, RFC9369_PACKET]),
    st.integers(min_value=0, max_value=1200),
    st.lists(st.integers(min_value=0, max_value=1200 * 8 - 1), max_size=4),
)
def test_truncations_and_bit_flips(packet: bytes, cut: int, flips: list[int]) -> None:
    mutated = bytearray(packet[:cut] if cut else packet)
    for bit in flips:
        if bit // 8 < len(mutated):
            mutated[bit // 8] ^= 1 << (bit % 8)
    _parse_or_decode_error(bytes(mutated))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(min_size=1, max_size=600))
def test_random_decrypted_payloads_only_yield_packets(payload: bytes) -> None:
    # Valid protection around garbage plaintext exercises the frame parser.
    (pkt,) = parse_initial_packets(_protect(payload))
    for offset, data in pkt.crypto:
        assert offset >= 0 and isinstance(data, bytes)


# --- CRYPTO reassembly ---------------------------------------------------------------------------


def test_reassembler_in_order_and_out_of_order() -> None:
    ch = RFC_CLIENT_HELLO
    r = CryptoReassembler()
    r.add(100, ch[100:])
    assert r.client_hello() is None  # gap at the start
    r.add(0, ch[:50])
    assert r.client_hello() is None
    r.add(40, ch[40:110])  # overlaps both neighbours
    hello = r.client_hello()
    assert hello is not None and hello.sni == "example.com"
    assert r.contiguous == len(ch)
    assert r.client_hello() is hello  # cached


def test_reassembler_waits_for_declared_length() -> None:
    ch = RFC_CLIENT_HELLO
    r = CryptoReassembler()
    r.add(0, ch[:-1])
    assert r.client_hello() is None
    r.add(len(ch) - 1, ch[-1:])
    hello = r.client_hello()
    assert isinstance(hello, TlsClientHello)


def test_reassembler_rejects_non_client_hello_and_oversize() -> None:
    r = CryptoReassembler()
    r.add(0, b"\x02\x00\x00\x10" + bytes(16))  # ServerHello
    with pytest.raises(DecodeError):
        r.client_hello()
    r = CryptoReassembler(limit=1024)
    r.add(0, b"\x01\x00\x10\x00")  # declares 4 KiB
    with pytest.raises(DecodeError):
        r.client_hello()
    with pytest.raises(DecodeError):
        CryptoReassembler().add(-1, b"x")


def test_reassembler_is_bounded() -> None:
    r = CryptoReassembler(limit=4096)
    r.add(2**61, b"far away")  # beyond the bound: ignored
    for off in range(10, 100_000, 97):  # out-of-order flood
        r.add(off, bytes(50))
    assert r.contiguous == 0
    assert sum(len(v) for v in r._pending.values()) <= 4096
    r.add(0, b"\x01" + bytes(5000))
    assert r.contiguous == 4096


@settings(max_examples=100, deadline=None)
@given(st.randoms(use_true_random=False), st.integers(min_value=1, max_value=8))
def test_reassembler_any_chunking_and_order(rnd: random.Random, pieces: int) -> None:
    ch = RFC_CLIENT_HELLO
    cuts = sorted(rnd.sample(range(1, len(ch)), pieces - 1)) if pieces > 1 else []
    bounds = [0, *cuts, len(ch)]
    pairs = list(itertools.pairwise(bounds))
    chunks = [(a, ch[a:b]) for a, b in pairs]
    chunks += [(a, ch[a : b + 3]) for a, b in rnd.sample(pairs, 1)]  # one overlapping resend
    rnd.shuffle(chunks)
    r = CryptoReassembler()
    for off, data in chunks:
        r.add(off, data)
    hello = r.client_hello()
    assert hello == parse_client_hello(ch)


def test_client_hello_split_over_two_initials() -> None:
    ch = RFC_CLIENT_HELLO
    second = _protect(crypto_frame(150, ch[150:]), pn=1)
    first = _protect(crypto_frame(0, ch[:150]), pn=0)
    r = CryptoReassembler()
    for datagram in (second, first):  # arrives out of order
        for pkt in parse_initial_packets(datagram):
            for off, data in pkt.crypto:
                r.add(off, data)
    hello = r.client_hello()
    assert hello is not None and hello.sni == "example.com"


# --- corpus --------------------------------------------------------------------------------------


def _corpus(rel: str) -> Path:
    path = CORPUS / rel
    if not path.exists():
        pytest.skip(f"corpus file {rel} absent")
    return path


def _ip_layer(linktype: int, buf: bytes) -> dpkt.Packet | None:
    if linktype == dpkt.pcap.DLT_EN10MB:
        eth = dpkt.ethernet.Ethernet(buf)
        return eth.data
    if linktype in (101, 12, 14, 228, 229):  # raw IP variants
        return dpkt.ip.IP(buf) if buf[0] >> 4 == 4 else dpkt.ip6.IP6(buf)
    if linktype == dpkt.pcap.DLT_PPP:
        b = buf[2:] if buf[:2] == b"\xff\x03" else buf
        proto, b = (b[0], b[1:]) if b[0] & 1 else (int.from_bytes(b[:2], "big"), b[2:])
        return dpkt.ip.IP(b) if proto == 0x21 else dpkt.ip6.IP6(b) if proto == 0x57 else None
    if linktype == dpkt.pcap.DLT_LINUX_SLL:
        return dpkt.sll.SLL(buf).data
    if linktype == dpkt.pcap.DLT_NULL:
        return dpkt.loopback.Loopback(buf).data
    raise AssertionError(f"linktype {linktype} not handled by the test reader")


Flow = tuple[bytes, int, bytes, int]


def _udp_payloads(path: Path) -> Iterator[tuple[Flow, bytes]]:
    with path.open("rb") as fh:
        magic = fh.read(4)
        fh.seek(0)
        reader = dpkt.pcapng.Reader(fh) if magic == b"\x0a\x0d\x0d\x0a" else dpkt.pcap.Reader(fh)
        linktype = reader.datalink()
        for _ts, buf in reader:
            try:
                ip = _ip_layer(linktype, buf)
            except (dpkt.UnpackError, IndexError):
                continue
            if isinstance(ip, dpkt.ip.IP | dpkt.ip6.IP6) and isinstance(ip.data, dpkt.udp.UDP):
                udp = ip.data
                yield (ip.src, udp.sport, ip.dst, udp.dport), bytes(udp.data)


@dataclass
class TraceResult:
    hellos: dict[tuple[Flow, bytes], TlsClientHello] = field(default_factory=dict)
    decrypted: int = 0  # Initial packets
    undecryptable: int = 0  # long-header datagrams without a decryptable client Initial
    split: int = 0  # ClientHellos that needed more than one Initial packet

    @property
    def snis(self) -> set[str]:
        return {h.sni for h in self.hellos.values() if h.sni is not None}


def _run_trace(path: Path) -> TraceResult:
    """What the pipeline does per flow: decrypt, reassemble per (flow, original DCID)."""
    res = TraceResult()
    last_key_dcid: dict[Flow, bytes] = {}
    streams: dict[tuple[Flow, bytes], tuple[CryptoReassembler, list[int]]] = {}
    for flow, payload in _udp_payloads(path):
        if not payload or not payload[0] & 0x80:
            continue
        try:
            pkts = parse_initial_packets(payload, last_key_dcid.get(flow))
        except DecodeError:
            res.undecryptable += 1
            continue
        res.decrypted += len(pkts)
        for pkt in pkts:
            last_key_dcid[flow] = pkt.key_dcid
            key = (flow, pkt.key_dcid)
            reasm, seen = streams.setdefault(key, (CryptoReassembler(), [0]))
            seen[0] += 1
            for off, data in pkt.crypto:
                reasm.add(off, data)
            if key not in res.hellos:
                hello = reasm.client_hello()
                if hello is not None:
                    res.hellos[key] = hello
                    res.split += seen[0] > 1
    return res


def _zeek_server_names(baseline: Path) -> set[str]:
    names: set[str] = set()
    for log in sorted(baseline.glob("*.log*")):
        if not log.name.startswith(("ssl.log", "quic.log")):
            continue
        fields: list[str] | None = None
        for line in log.read_text().splitlines():
            if line.startswith("#fields\t"):
                fields = line.split("\t")[1:]
            elif line.startswith("ts\t"):  # zeek-cut header
                fields = line.split("\t")
            elif fields and line and not line.startswith("#"):
                value = dict(zip(fields, line.split("\t"), strict=False)).get("server_name")
                if value not in (None, "-", "(empty)"):
                    names.add(value)
    return names


# (btest baseline, trace, ClientHellos we must decode at least)
ZEEK_QUIC = [
    ("chromium", "chromium-115.0.5790.110-api-cirrus-com.pcap", 1),
    ("fragmented-crypto", "chromium-115.0.5790.110-google-de-fragmented.pcap", 1),
    ("dpd-custom-port", "chromium-dpd-custom-port-4433.pcap", 1),
    ("curl-http3", "curl-8.1.2-dev-http3-www-google-de.pcap", 1),
    ("firefox", "firefox-102.13.0esr-blog-cloudflare-com.pcap", 1),
    ("interop.quic-go_quic-go.handshake", "interop/quic-go_quic-go/handshake.pcap", 1),
    ("interop.quic-go_quic-go.retry", "interop/quic-go_quic-go/retry.pcap", 1),
    ("interop.quic-go_quic-go.zerortt", "interop/quic-go_quic-go/zerortt.pcap", 2),
    ("merlinc2", "merlinc2_Zeek_example.pcapng", 1),
    ("39264-rand", "quic-39264-rand.pcap", 1),
    ("multiple-initial-fragmented-crypto", "quic-multiple-initial-fragmented-crypto.pcap", 1),
    (
        "multiple-initial-fragmented-crypto-only-initial",
        "quic-multiple-initial-fragmented-crypto-only-initial.pcap",
        1,
    ),
    ("run-pcap", "quic_win11_firefox_google.pcap", 1),
    ("quicdoq", "quicdoq.pcap", 1),
    ("quicv2-echo-443", "quicv2-echo-443.pcap", 1),
    ("dpd-v2-custom-port", "quicv2-echo-dpd-custom-port-4433.pcap", 1),
    ("quicv2-http3-443", "quicv2-http3-443.pcap", 1),
    ("decrypt-fail-google-de-51833", "quic-decrypt-fail-google-de-51833.pcap", 1),
    ("vector-max-size-crash", "vector-max-size-crash.pcap", 0),
]


@pytest.mark.corpus
@pytest.mark.parametrize(("btest", "trace", "min_hellos"), ZEEK_QUIC, ids=[z[0] for z in ZEEK_QUIC])
def test_zeek_quic_server_names(btest: str, trace: str, min_hellos: int) -> None:
    path = _corpus(f"zeek/Traces/quic/{trace}")
    baseline = _corpus(f"zeek/Baseline/scripts.base.protocols.quic.{btest}")
    res = _run_trace(path)
    assert len(res.hellos) >= min_hellos
    assert res.snis == _zeek_server_names(baseline)


@pytest.mark.corpus
@pytest.mark.parametrize(
    "rel",
    [
        "zeek/Traces/quic/quic-multiple-initial-fragmented-crypto.pcap",
        "zeek/Traces/quic/quic-multiple-initial-fragmented-crypto-only-initial.pcap",
        "ndpi/pcap/quic_frags_ch_in_multiple_packets.pcapng",
        "suricata-verify/tests/quic-frag/input.pcap",
        "suricata-verify/tests/quic-frag-unordered/input.pcap",
    ],
)
def test_client_hello_split_over_several_initials_in_corpus(rel: str) -> None:
    res = _run_trace(_corpus(rel))
    assert res.split >= 1
    assert res.hellos


@pytest.mark.corpus
def test_chromium_out_of_order_crypto_frames_in_one_packet() -> None:
    path = _corpus("zeek/Traces/quic/chromium-115.0.5790.110-google-de-fragmented.pcap")
    first = next(p for _f, p in _udp_payloads(path) if looks_like_quic_initial(p))
    (pkt,) = parse_initial_packets(first)
    offsets = [off for off, _ in pkt.crypto]
    assert len(offsets) > 5 and offsets != sorted(offsets)
    r = CryptoReassembler()
    for off, data in pkt.crypto:
        r.add(off, data)
    hello = r.client_hello()
    assert hello is not None and hello.sni == "www.google.de"


@pytest.mark.corpus
def test_zeek_decrypt_fail_trace_counts_undecryptable() -> None:
    res = _run_trace(_corpus("zeek/Traces/quic/quic-decrypt-fail-google-de-51833.pcap"))
    assert res.undecryptable > 0
    assert res.snis == {"www.google.de"}


@pytest.mark.corpus
def test_unknown_version_trace_is_undecryptable() -> None:
    res = _run_trace(_corpus("zeek/Traces/quic/vector-max-size-crash.pcap"))
    assert (res.decrypted, res.undecryptable) == (0, 1)


def _ja4_quic_entries(snap: Path) -> list[dict[str, object]]:
    text = snap.read_text()
    docs = [d for d in yaml.safe_load_all(text) if isinstance(d, list)]
    entries = docs[0] if docs else []
    return [e for e in entries if str(e.get("ja4", "")).startswith("q")]


JA4_PCAPS = [
    "chrome-cloudflare-quic-with-secrets.pcapng",
    "quic-tls-handshake.pcapng",
    "quic-with-several-tls-frames.pcapng",
    "https3-301-get.pcap",
    "tls-handshake.pcapng",
    "tls-sni.pcapng",
    "tls3.pcapng",
]


@pytest.mark.corpus
@pytest.mark.parametrize("name", JA4_PCAPS)
def test_ja4_rust_snapshot_quic_sni_and_ja4(name: str) -> None:
    path = _corpus(f"ja4/pcap/{name}")
    entries = _ja4_quic_entries(_corpus(f"ja4/expected/rust/ja4__insta@{name}.snap"))
    res = _run_trace(path)
    by_flow: dict[tuple[str, int, str, int], list[TlsClientHello]] = {}
    for (flow, _dcid), hello in res.hellos.items():
        src, sport, dst, dport = flow
        key = (_addr(src), sport, _addr(dst), dport)
        by_flow.setdefault(key, []).append(hello)
    assert len(res.hellos) >= len(entries)
    for e in entries:
        key = (str(e["src"]), int(str(e["src_port"])), str(e["dst"]), int(str(e["dst_port"])))
        hellos = by_flow.get(key)
        assert hellos, f"no ClientHello for {key}"
        assert hellos[0].sni == e.get("tls_server_name"), key
        assert ja4_mod.ja4(hellos[0], "q") == e["ja4"], key


def _addr(raw: bytes) -> str:
    return str(ipaddress.ip_address(raw))


def _tshark_quic_snis(tsv: Path) -> set[str]:
    with tsv.open(newline="") as fh:
        rows = csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        return {
            r["tls.handshake.extensions_server_name"]
            for r in rows
            if ":quic" in r["frame.protocols"] and r["tls.handshake.extensions_server_name"]
        }


# Draft / v2 / odd-version / fragmented captures from nDPI, Suricata and Arkime, with
# tshark 4.0's Initial decryption as the oracle.
TSHARK_QUIC = [
    "ndpi/pcap/quic-23.pcap",
    "ndpi/pcap/quic-27.pcap",
    "ndpi/pcap/quic-29.pcap",
    "ndpi/pcap/quic-33.pcapng",
    "ndpi/pcap/quic-34.pcap",
    "ndpi/pcap/quic_0RTT.pcap",
    "ndpi/pcap/quic-v2.pcapng",
    "ndpi/pcap/quic-mvfst-27.pcapng",  # 0xfaceb002
    "ndpi/pcap/quic_t51.pcap",  # Google T051: CRYPTO frame type 0x08
    "ndpi/pcap/quic_interop_V.pcapng",  # 0x0a0a0a0a forcing version negotiation
    "ndpi/pcap/quic_frags_ch_in_multiple_packets.pcapng",
    "ndpi/pcap/quic_frags_different_dcid.pcapng",
    "ndpi/pcap/quic_crypto_aes_auth_size.pcap",
    "suricata-verify/tests/quic-v2/input.pcap",
    "suricata-verify/tests/ja4-quic/input.pcap",
    "suricata-verify/tests/quic-ack3/input.pcap",
    "suricata-verify/tests/quic-frag/input.pcap",
    "suricata-verify/tests/quic-frag-middle-gap/input.pcap",
    "suricata-verify/tests/quic-frag-unordered/input.pcap",
    "suricata-verify/tests/quic-frag-wait/input.pcap",
    "suricata-verify/tests/quic-initial-not-first/input.pcap",
    "suricata-verify/tests/quic-retry/input.pcap",
    "suricata-verify/tests/quic-retry-multiple/input.pcap",
    "arkime/pcap/quicietf.pcap",
    "arkime/pcap/quicietfooo.pcap",
]


@pytest.mark.corpus
@pytest.mark.parametrize("rel", TSHARK_QUIC)
def test_tshark_quic_snis(rel: str) -> None:
    path = _corpus(rel)
    expected = _tshark_quic_snis(_corpus(f"_generated/tshark-4.0.17/{rel}.tsv"))
    res = _run_trace(path)
    assert res.hellos
    assert res.snis == expected
