"""QUIC client Initial decryption, sans-IO.

Initial packets are encrypted with keys anyone can derive from the client's
original Destination Connection ID (RFC 9001 section 5.2), so a passive sensor
can read the TLS ClientHello (SNI, ALPN, JA4 input) carried in CRYPTO frames.

Supported: QUIC v1 (RFC 9000/9001), v2 (RFC 9369: other salt, labels and
long-header type bits), IETF drafts 23-34, Meta mvfst (0xfaceb00{1,2,e}), Google
T050/T051 (TLS over IETF-style Initials) and the reserved 0x?a?a?a?a versions that
clients send to force version negotiation (tried with v1, then draft-29 keys).
gQUIC with QUIC crypto (Q0xx) is not decodable here.

Everything here is a pure function of its input bytes; hostile input only ever
raises :class:`~sensor.errors.DecodeError`.  Derived keys are cached per DCID in a
bounded module-level dict (the cached AES-ECB context is not thread-safe: use one
decoding thread per process, as the pipeline does).
"""

from __future__ import annotations

import functools
import hmac
import itertools
import re
from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sensor.decoders.tls import parse_client_hello
from sensor.errors import DecodeError, NeedMoreData
from sensor.records import TlsClientHello

__all__ = [
    "QUIC_V1",
    "QUIC_V2",
    "CryptoReassembler",
    "QuicInitialPacket",
    "client_initial_keys",
    "looks_like_quic_initial",
    "parse_initial_packets",
]

QUIC_V1: Final = 0x00000001
QUIC_V2: Final = 0x6B3343CF

_MAX_CID_LEN: Final = 20  # RFC 9000 17.2: v1/v2 connection IDs are at most 20 bytes
_MAX_PACKETS_PER_DATAGRAM: Final = 16  # coalescing bound; real datagrams hold <= 3
_KEY_CACHE_SIZE: Final = 4096
_REASSEMBLY_LIMIT: Final = 64 * 1024
_NON_ZERO = re.compile(rb"[^\x00]")  # skips PADDING runs at C speed


@dataclass(frozen=True, slots=True)
class _Version:
    salt: bytes
    label_prefix: bytes  # b"quic " (v1, drafts) or b"quicv2 " (RFC 9369)
    initial_type: int  # long-header packet type bits of Initial
    retry_type: int  # Retry carries no Length field: parsing must stop there
    crypto_frame: int = 0x06  # Google T05x numbers its CRYPTO frame 0x08


_V1_SALT: Final = bytes.fromhex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a")
_V2_SALT: Final = bytes.fromhex("0dede3def700a6db819381be6e269dcbf9bd2ed9")
_D29_SALT: Final = bytes.fromhex("afbfec289993d24c9e9786f19c6111e04390a899")
_D23_SALT: Final = bytes.fromhex("c3eef712c72ebb5a11a7d2432bb46365bef9f502")
_D22_SALT: Final = bytes.fromhex("7fbcdb0e7c66bbe9193a96cd21519ebd7a02644a")
_T050_SALT: Final = bytes.fromhex("7ff579e5acd072915580304c43a2367c60488310")
_T051_SALT: Final = bytes.fromhex("7a4edef4e7ccee5fa4506c19124fc8ccda6e033d")


def _version_table() -> dict[int, _Version]:
    def v1_style(salt: bytes) -> _Version:
        return _Version(salt, b"quic ", 0, 3)

    table = {
        QUIC_V1: v1_style(_V1_SALT),
        QUIC_V2: _Version(_V2_SALT, b"quicv2 ", 1, 0),
        0xFACEB001: v1_style(_D22_SALT),  # mvfst, draft-22 based
        0xFACEB002: v1_style(_D23_SALT),  # mvfst, draft-27 based
        0xFACEB00E: v1_style(_D23_SALT),  # mvfst experimental
        0x54303530: _Version(_T050_SALT, b"quic ", 0, 3, 0x08),  # Google T050
        0x54303531: _Version(_T051_SALT, b"quic ", 0, 3, 0x08),  # Google T051
    }
    for draft in range(23, 35):
        salt = _D23_SALT if draft <= 28 else _D29_SALT if draft <= 32 else _V1_SALT
        table[0xFF000000 | draft] = v1_style(salt)
    return table


_VERSIONS: Final = _version_table()
# RFC 9000 15: 0x?a?a?a?a versions force version negotiation and define no keys; clients
# protect them like the version they really speak (seen: v1, draft-29).
_FORCE_VN: Final = (_VERSIONS[QUIC_V1], _VERSIONS[0xFF00001D])


def _version_specs(version: int) -> tuple[_Version, ...]:
    spec = _VERSIONS.get(version)
    if spec is not None:
        return (spec,)
    return _FORCE_VN if version & 0x0F0F0F0F == 0x0A0A0A0A else ()


@dataclass(frozen=True, slots=True)
class QuicInitialPacket:
    """One decrypted client Initial packet."""

    version: int
    dcid: bytes
    scid: bytes
    packet_number: int  # truncated packet number as sent (Initials start at 0)
    crypto: tuple[tuple[int, bytes], ...]  # (offset, data) per CRYPTO frame, in packet order
    key_dcid: bytes = b""  # the DCID the keys were derived from (differs when a hint was used)


# --- key schedule -----------------------------------------------------------------------------


@functools.cache
def _label_block(label: bytes, length: int) -> bytes:
    # HkdfLabel (RFC 8446 7.1, empty context) + HKDF-Expand block counter 0x01; constant per label.
    full = b"tls13 " + label
    return length.to_bytes(2, "big") + bytes((len(full),)) + full + b"\x00\x01"


def _expand_label(secret: bytes, label: bytes, length: int) -> bytes:
    # HKDF-Expand-Label; length <= 32 (SHA-256 output) needs a single HMAC block.
    return hmac.digest(secret, _label_block(label, length), "sha256")[:length]


def _initial_secrets(spec: _Version, cid: bytes) -> tuple[bytes, bytes, bytes]:
    initial = hmac.digest(spec.salt, cid, "sha256")  # HKDF-Extract
    client = _expand_label(initial, b"client in", 32)
    prefix = spec.label_prefix
    return (
        _expand_label(client, prefix + b"key", 16),
        _expand_label(client, prefix + b"iv", 12),
        _expand_label(client, prefix + b"hp", 16),
    )


@dataclass(frozen=True, slots=True)
class _Keys:
    aead: AESGCM
    iv: int
    hp: CipherContext  # AES-ECB encryptor; ECB keeps no state between update() calls


def _derive(spec: _Version, cid: bytes) -> _Keys:
    key, iv, hp = _initial_secrets(spec, cid)
    hp_ctx = Cipher(algorithms.AES(hp), modes.ECB()).encryptor()  # RFC 9001 5.4.3: one block, no IV
    return _Keys(AESGCM(key), int.from_bytes(iv, "big"), hp_ctx)


# All Initials of a connection share keys: deriving them costs more than decrypting.
_key_cache: dict[tuple[bytes, bytes, bytes], _Keys] = {}


def _keys_for(spec: _Version, cid: bytes) -> _Keys:
    ck = (spec.salt, spec.label_prefix, cid)
    keys = _key_cache.get(ck)
    if keys is None:
        if len(_key_cache) >= _KEY_CACHE_SIZE:
            del _key_cache[next(iter(_key_cache))]  # FIFO eviction keeps memory bounded
        keys = _key_cache[ck] = _derive(spec, cid)
    return keys


def client_initial_keys(version: int, cid: bytes) -> tuple[bytes, bytes, bytes]:
    """(key, iv, hp) for client Initials of ``version`` with original DCID ``cid``.

    Exposed for known-answer tests; raises DecodeError for unknown versions.
    """
    spec = _VERSIONS.get(version)
    if spec is None:
        raise DecodeError(f"unsupported QUIC version {version:#010x}")
    return _initial_secrets(spec, cid)


# --- wire parsing -----------------------------------------------------------------------------


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    if i >= len(buf):
        raise DecodeError("truncated varint")
    first = buf[i]
    size = 1 << (first >> 6)
    if size == 1:
        return first, i + 1
    end = i + size
    if end > len(buf):
        raise DecodeError("truncated varint")
    value = int.from_bytes(buf[i:end], "big") & ((1 << (8 * size - 2)) - 1)
    return value, end


def _parse_frames(plain: bytes, crypto_type: int) -> tuple[tuple[int, bytes], ...]:
    """CRYPTO frames of an Initial payload; stops quietly at anything unexpected."""
    crypto: list[tuple[int, bytes]] = []
    size = len(plain)
    n = len(plain.rstrip(b"\x00"))  # skip trailing PADDING (usually ~900 bytes) in one C call
    i = 0
    try:
        while i < n:  # every branch consumes >= 1 byte, so this terminates
            ftype = plain[i]
            if ftype == 0x00:  # PADDING
                m = _NON_ZERO.search(plain, i, n)
                i = m.start() if m else n
            elif ftype == 0x01:  # PING
                i += 1
            elif ftype == crypto_type:  # CRYPTO
                offset, i = _varint(plain, i + 1)
                length, i = _varint(plain, i)
                if i + length > size:  # size, not n: CRYPTO data may end in zero bytes
                    break
                crypto.append((offset, plain[i : i + length]))
                i += length
            elif ftype in (0x02, 0x03):  # ACK, ACK_ECN
                _, i = _varint(plain, i + 1)  # largest acknowledged
                _, i = _varint(plain, i)  # delay
                count, i = _varint(plain, i)
                _, i = _varint(plain, i)  # first range
                if count > size - i:  # each range takes >= 2 bytes: bounds the loop
                    break
                for _ in range(2 * count + (3 if ftype == 0x03 else 0)):
                    _, i = _varint(plain, i)
            elif ftype in (0x1C, 0x1D):  # CONNECTION_CLOSE (transport / application)
                _, i = _varint(plain, i + 1)  # error code
                if ftype == 0x1C:
                    _, i = _varint(plain, i)  # offending frame type
                reason_len, i = _varint(plain, i)
                i += reason_len
            else:  # not allowed in Initial packets: keep what parsed so far
                break
    except DecodeError:
        pass  # truncated frame: keep what parsed so far
    return tuple(crypto)


def _unprotect(
    data: bytes,
    start: int,
    pn_off: int,
    end: int,
    specs: tuple[_Version, ...],
    cids: tuple[bytes, ...],
) -> tuple[int, bytes, bytes, _Version]:
    """Remove header protection and AEAD; returns (packet number, plaintext, key DCID, spec)."""
    sample_off = pn_off + 4  # RFC 9001 5.4.2: sample assumes a 4-byte packet number
    if sample_off + 16 > end:
        raise DecodeError("Initial too short for a header-protection sample")
    sample = data[sample_off : sample_off + 16]
    for spec, cid in itertools.product(specs, cids):
        keys = _keys_for(spec, cid)
        mask = keys.hp.update(sample)
        first = data[start] ^ (mask[0] & 0x0F)
        pn_len = (first & 0x03) + 1
        pn_end = pn_off + pn_len
        pn = int.from_bytes(data[pn_off:pn_end], "big") ^ int.from_bytes(
            mask[1 : 1 + pn_len], "big"
        )
        pn_bytes = pn.to_bytes(pn_len, "big")
        aad = bytes((first,)) + data[start + 1 : pn_off] + pn_bytes
        nonce = (keys.iv ^ pn).to_bytes(12, "big")
        try:
            return pn, keys.aead.decrypt(nonce, data[pn_end:end], aad), cid, spec
        except InvalidTag:
            continue
    raise DecodeError("Initial AEAD authentication failed (not a client Initial, or wrong DCID)")


def parse_initial_packets(
    datagram: bytes, dcid_hint: bytes | None = None
) -> list[QuicInitialPacket]:
    """Decrypt every client Initial in one UDP datagram.

    Coalesced 0-RTT/Handshake packets are skipped by their Length field; a short-header
    packet, trailing zero padding, a Retry or an unknown version ends the walk.  Keys come
    from ``dcid_hint`` when given (the client's original DCID, needed for Initials sent
    after the server chose a new connection ID) and otherwise, or if that fails, from the
    packet's own DCID.  Raises DecodeError when the datagram holds no decryptable client
    Initial.
    """
    data = bytes(datagram)
    n = len(data)
    out: list[QuicInitialPacket] = []
    reason = "no client Initial in datagram"
    pos = 0
    for _ in range(_MAX_PACKETS_PER_DATAGRAM):
        if pos >= n or not data[pos] & 0x80:
            break  # end, 1-RTT short header, or zero padding after the last packet
        start = pos
        try:
            if n - start < 7:
                raise DecodeError("truncated long header")
            first = data[start]
            version = int.from_bytes(data[start + 1 : start + 5], "big")
            specs = _version_specs(version)
            if not specs:
                raise DecodeError(f"unsupported QUIC version {version:#010x}")
            spec = specs[0]  # long-header layout is the same for all candidates
            dcid_len = data[start + 5]
            if dcid_len > _MAX_CID_LEN:
                raise DecodeError("DCID longer than 20 bytes")
            p = start + 6 + dcid_len
            if p >= n:
                raise DecodeError("truncated long header")
            dcid = data[start + 6 : p]
            scid_len = data[p]
            if scid_len > _MAX_CID_LEN:
                raise DecodeError("SCID longer than 20 bytes")
            scid = data[p + 1 : p + 1 + scid_len]
            p += 1 + scid_len
            ptype = (first >> 4) & 0x03
            if ptype == spec.retry_type:
                raise DecodeError("Retry packet, no client Initial")
            if ptype == spec.initial_type:
                token_len, p = _varint(data, p)
                p += token_len
            length, p = _varint(data, p)
            end = p + length
            if end > n:
                raise DecodeError("long-header packet extends past the datagram")
            pos = end
            if ptype != spec.initial_type:
                continue  # 0-RTT / Handshake: not decryptable here
        except DecodeError as exc:
            reason = str(exc)
            break  # the header walk cannot continue past a damaged header
        cids = (dcid,) if dcid_hint is None or dcid_hint == dcid else (dcid_hint, dcid)
        try:
            pn, plain, key_cid, spec = _unprotect(data, start, p, end, specs, cids)
        except DecodeError as exc:
            reason = str(exc)
            continue  # lengths were sound: a later coalesced Initial may still decrypt
        crypto = _parse_frames(plain, spec.crypto_frame)
        out.append(QuicInitialPacket(version, dcid, scid, pn, crypto, key_cid))
    if not out:
        raise DecodeError(reason)
    return out


def looks_like_quic_initial(prefix: bytes) -> bool:
    """Cheap pre-filter: long header, fixed bit, known version, Initial type, sane DCID length."""
    if len(prefix) < 6:
        return False
    first = prefix[0]
    if first & 0xC0 != 0xC0:
        return False
    specs = _version_specs(int.from_bytes(prefix[1:5], "big"))
    return bool(specs) and (first >> 4) & 0x03 == specs[0].initial_type and prefix[5] <= 20


# --- CRYPTO stream reassembly -----------------------------------------------------------------


class CryptoReassembler:
    """Per-connection Initial CRYPTO stream; yields the ClientHello once its prefix is complete.

    Memory is bounded by ``limit`` bytes of contiguous data plus ``limit`` bytes of
    out-of-order chunks; data beyond ``limit`` is dropped (a ClientHello never needs it).
    """

    __slots__ = ("_buf", "_hello", "_limit", "_pending", "_pending_bytes")

    def __init__(self, limit: int = _REASSEMBLY_LIMIT) -> None:
        self._limit = limit
        self._buf = bytearray()
        self._pending: dict[int, bytes] = {}
        self._pending_bytes = 0
        self._hello: TlsClientHello | None = None

    @property
    def contiguous(self) -> int:
        """Length of the in-order prefix received so far."""
        return len(self._buf)

    def add(self, offset: int, data: bytes) -> None:
        if offset < 0:
            raise DecodeError("negative CRYPTO offset")
        if offset >= self._limit or not data:
            return
        data = bytes(data[: self._limit - offset])
        if offset <= len(self._buf):
            self._append(offset, data)
            self._drain()
            return
        prev = self._pending.get(offset)
        grow = len(data) - (len(prev) if prev is not None else 0)
        if grow > 0 and self._pending_bytes + grow <= self._limit:
            self._pending[offset] = data
            self._pending_bytes += grow

    def _append(self, offset: int, data: bytes) -> None:
        have = len(self._buf)
        if offset + len(data) > have:
            self._buf += data[have - offset :]

    def _drain(self) -> None:
        for off in sorted(self._pending):  # ascending: one pass closes every closable gap
            if off > len(self._buf):
                break
            chunk = self._pending.pop(off)
            self._pending_bytes -= len(chunk)
            self._append(off, chunk)

    def client_hello(self) -> TlsClientHello | None:
        """The parsed ClientHello, or None while its bytes are still incomplete.

        Raises DecodeError when the stream cannot hold a ClientHello (wrong message type,
        longer than the bound, or a malformed message).
        """
        if self._hello is not None:
            return self._hello
        buf = self._buf
        if len(buf) < 4:
            return None
        if buf[0] != 0x01:
            raise DecodeError("Initial CRYPTO stream does not start with a ClientHello")
        need = 4 + int.from_bytes(buf[1:4], "big")
        if need > self._limit:
            raise DecodeError("ClientHello longer than the reassembly bound")
        if len(buf) < need:
            return None
        try:
            self._hello = parse_client_hello(bytes(buf[:need]))
        except NeedMoreData:
            return None
        return self._hello
