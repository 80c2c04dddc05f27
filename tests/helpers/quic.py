"""Building protected QUIC Initial packets (RFC 9001 section 5), the inverse of what the
sensor's QUIC decoder undoes. Shared by the QUIC tests and the bench capture generator
and decryption benchmark; the caller derives the keys, so the generator can use an
implementation independent of the sensor's."""

from __future__ import annotations

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

QUIC_V1 = 0x00000001
QUIC_V2 = 0x6B3343CF  # RFC 9369: its Initial packets have long-header type 1

RFC_DCID = bytes.fromhex("8394c8f03e515708")
# Unprotected payload of RFC 9001 A.2 (and RFC 9369 A.2): a CRYPTO frame with the
# ClientHello for example.com, then PADDING.
RFC_CRYPTO_FRAME = bytes.fromhex(
    "060040f1010000ed0303ebf8fa56f12939b9584a3896472ec40bb863cfd3e868"
    "04fe3a47f06a2b69484c00000413011302010000c000000010000e00000b6578"
    "616d706c652e636f6dff01000100000a00080006001d00170018001000070005"
    "04616c706e000500050100000000003300260024001d00209370b2c9caa47fba"
    "baf4559fedba753de171fa71f50f1ce15d43e994ec74d748002b000302030400"
    "0d0010000e0403050306030203080408050806002d00020101001c0002400100"
    "3900320408ffffffffffffffff05048000ffff07048000ffff08011001048000"
    "75300901100f088394c8f03e51570806048000ffff"
)


def varint(v: int) -> bytes:
    """QUIC variable-length integer, shortest form."""
    if v < 0x40:
        return bytes((v,))
    if v < 0x4000:
        return (v | 0x4000).to_bytes(2, "big")
    if v < 0x40000000:
        return (v | 0x80000000).to_bytes(4, "big")
    return (v | 0xC000000000000000).to_bytes(8, "big")


def crypto_frame(offset: int, data: bytes) -> bytes:
    return b"\x06" + varint(offset) + varint(len(data)) + data


def protect_initial(
    payload: bytes,
    keys: tuple[bytes, bytes, bytes],
    *,
    dcid: bytes,
    scid: bytes = b"",
    version: int = QUIC_V1,
    pn: int = 0,
    pn_len: int = 2,
    token: bytes = b"",
) -> bytes:
    """An Initial packet: long header, ``payload`` sealed with ``keys`` (key, iv, hp), and
    header protection over the first byte and the packet number."""
    key, iv, hp = keys
    itype = 1 if version == QUIC_V2 else 0
    payload = payload + bytes(max(0, 4 - pn_len - len(payload)))  # room for the hp sample
    header = (
        bytes((0xC0 | (itype << 4) | (pn_len - 1),))
        + version.to_bytes(4, "big")
        + bytes((len(dcid),))
        + dcid
        + bytes((len(scid),))
        + scid
        + varint(len(token))
        + token
        + ((pn_len + len(payload) + 16) | 0x4000).to_bytes(2, "big")
    )
    pn_bytes = pn.to_bytes(pn_len, "big")
    nonce = (int.from_bytes(iv, "big") ^ pn).to_bytes(12, "big")
    sealed = AESGCM(key).encrypt(nonce, payload, header + pn_bytes)
    mask = Cipher(algorithms.AES(hp), modes.ECB()).encryptor().update(
        sealed[4 - pn_len : 20 - pn_len])
    masked = bytearray(header + pn_bytes)
    masked[0] ^= mask[0] & 0x0F
    for i in range(pn_len):
        masked[len(header) + i] ^= mask[1 + i]
    return bytes(masked) + sealed
