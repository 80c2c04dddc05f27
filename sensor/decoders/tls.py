"""Sans-IO TLS ClientHello decoder (TCP record layer, and bare handshake messages).

``parse_client_hello`` takes one handshake message (type byte, 3-byte length,
body) -- the same bytes QUIC carries in CRYPTO frames. ``client_hello_from_stream``
takes the client->server TCP stream prefix, strips the record layer and
reassembles a ClientHello spread over several records/segments.

Leniency: the outer framing (record, handshake, extensions block) must be
consistent or :class:`DecodeError` is raised; the *inside* of a known
extension is read as far as it is consistent and the rest of that extension is
ignored, so one odd extension does not cost the whole fingerprint.

SSLv2-compatible ClientHellos (first byte with the high bit set, e.g. 0x80)
raise :class:`DecodeError`: they carry no extensions (no SNI/ALPN) and are
obsolete, so they are not worth a second record shape.

Speed (this is on the hunt hot path): a hello that sits in the first record is
decoded in place; decoded extensions are memoised by their bytes (bounded,
emptied when full), so a value depends on those bytes only; the record is
built by setting its slots.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable
from typing import Any

from sensor.errors import DecodeError, NeedMoreData
from sensor.records import TlsClientHello, slot_builder

MAX_STREAM_BYTES = 64 * 1024  # never buffer more than this per stream
_MAX_RECORD_LEN = 2**14 + 2048  # RFC 8446 5.2 TLSCiphertext bound; plaintext is smaller
_CONTENT_HANDSHAKE = 22
_HS_CLIENT_HELLO = 1

_EXT_SNI = 0x0000
_EXT_SUPPORTED_GROUPS = 0x000A
_EXT_EC_POINT_FORMATS = 0x000B
_EXT_SIGNATURE_ALGORITHMS = 0x000D
_EXT_ALPN = 0x0010
_EXT_SUPPORTED_VERSIONS = 0x002B
_EXT_ECH = 0xFE0D
# Extensions whose content is decoded; the others cost one set test.
_DECODED = frozenset(
    {
        _EXT_SNI,
        _EXT_SUPPORTED_GROUPS,
        _EXT_EC_POINT_FORMATS,
        _EXT_SIGNATURE_ALGORITHMS,
        _EXT_ALPN,
        _EXT_SUPPORTED_VERSIONS,
    }
)

_unpack_u16 = struct.Struct(">H").unpack_from
_unpack_u16x2 = struct.Struct(">HH").unpack_from
# Compiled ">{count}H" unpackers for the list lengths seen (bounded by the cap).
_U16_VECS: dict[int, Callable[[bytes, int], tuple[int, ...]]] = {}
_U16_VECS_MAX_COUNT = 512
# Decoded extensions by their bytes (type, length, data): clients send the same
# ALPN, groups, signature algorithms, versions and SNI again and again, and the
# value depends on those bytes only. Small extensions only; emptied when full.
_EXT_VALUES: dict[bytes, Any] = {}
_EXT_VALUES_MAX = 4096
_EXT_VALUES_MAX_LEN = 260
_MISS = object()


_hello: Callable[..., TlsClientHello] = slot_builder(TlsClientHello)  # no frozen __init__


def looks_like_tls_client_hello(prefix: bytes) -> bool:
    """Cheap test of the first bytes: handshake record, SSL3/TLS version, ClientHello."""
    n = len(prefix)
    if n == 0 or prefix[0] != _CONTENT_HANDSHAKE:
        return False
    if n >= 2 and prefix[1] != 3:
        return False
    if n >= 3 and prefix[2] > 4:
        return False
    return not (n >= 6 and prefix[5] != _HS_CLIENT_HELLO)


def _u16_vec(count: int) -> Callable[[bytes, int], tuple[int, ...]]:
    """The unpacker of ``count`` >= 0 big-endian u16 values.

    Used inline as ``(_U16_VECS.get(count) or _u16_vec(count))(buf, off)``: one
    call less than a helper function, and no format string built per list.
    """
    unpack = _U16_VECS.get(count)
    if unpack is None:
        unpack = struct.Struct(f">{count}H").unpack_from
        if count <= _U16_VECS_MAX_COUNT:
            _U16_VECS[count] = unpack
    return unpack


def _parse_sni(buf: bytes, off: int, end: int) -> str | None:
    if end - off < 2:
        return None
    (list_len,) = _unpack_u16(buf, off)
    p = off + 2
    stop = min(end, p + list_len)
    while p + 3 <= stop:
        name_type = buf[p]
        (n,) = _unpack_u16(buf, p + 1)
        p += 3
        if p + n > stop:
            return None
        if name_type == 0:  # host_name
            return _sni_text(buf[p : p + n])
        p += n
    return None


def _sni_text(raw: bytes) -> str:
    # Non-ASCII bytes are not valid in a host_name: keep them visible as \xNN.
    text = raw.decode("ascii", "backslashreplace")
    if ":" in text:  # an IPv6 literal is kept as given (invalid per RFC 6066, but seen)
        try:
            ipaddress.IPv6Address(text)
            return text
        except ValueError:
            pass
    return text.lower()


def _parse_alpn(buf: bytes, off: int, end: int) -> tuple[bytes, ...]:
    if end - off < 2:
        return ()
    (list_len,) = _unpack_u16(buf, off)
    p = off + 2
    stop = min(end, p + list_len)
    out: list[bytes] = []
    while p < stop:
        n = buf[p]
        p += 1
        if p + n > stop:
            break
        out.append(bytes(buf[p : p + n]))
        p += n
    return tuple(out)


def parse_client_hello(msg: bytes) -> TlsClientHello:
    """Decode one handshake message that must be a ClientHello.

    Raises :class:`NeedMoreData` when ``msg`` is shorter than its declared
    length, :class:`DecodeError` when it is not a ClientHello or malformed.
    Bytes after the declared length are ignored.
    """
    if msg.__class__ is not bytes:  # the extension cache needs hashable slices
        msg = bytes(msg)
    n = len(msg)
    if n and msg[0] != _HS_CLIENT_HELLO:
        raise DecodeError(f"handshake type {msg[0]} is not ClientHello")
    if n < 4:
        raise NeedMoreData("handshake header incomplete")
    body_len = int.from_bytes(msg[1:4], "big")
    if body_len > MAX_STREAM_BYTES:
        raise DecodeError(f"ClientHello length {body_len} over the {MAX_STREAM_BYTES} cap")
    end = 4 + body_len
    if n < end:
        raise NeedMoreData(f"ClientHello needs {end} bytes, have {n}")
    return _hello_body(msg, 0, end)


def _hello_body(msg: bytes, h: int, end: int) -> TlsClientHello:
    """The ClientHello whose handshake header is at ``h`` and that ends at ``end``.

    Reads nothing at or past ``end`` (the caller checked ``len(msg) >= end``), so
    a hello inside a record is decoded in place, without a copy.
    """
    # Fixed part: version(2) random(32) session_id(1+n).
    if end - h < 4 + 2 + 32 + 1:
        raise DecodeError("ClientHello too short")
    (legacy_version,) = _unpack_u16(msg, h + 4)
    sid_len = msg[h + 38]
    if sid_len > 32:
        raise DecodeError(f"session_id length {sid_len} > 32")
    p = h + 39 + sid_len
    if p + 2 > end:
        raise DecodeError("cipher_suites missing")
    (cs_len,) = _unpack_u16(msg, p)
    p += 2
    if cs_len & 1 or p + cs_len > end:
        raise DecodeError("cipher_suites length invalid")
    cipher_suites = (_U16_VECS.get(cs_len >> 1) or _u16_vec(cs_len >> 1))(msg, p)
    p += cs_len
    if p + 1 > end:
        raise DecodeError("compression_methods missing")
    cm_len = msg[p]
    p += 1
    if p + cm_len > end:
        raise DecodeError("compression_methods length invalid")
    compression = tuple(msg[p : p + cm_len])
    p += cm_len

    ext_types: list[int] = []
    found: dict[int, Any] = {}  # decoded extension type -> value; the first duplicate wins
    malformed = False
    if p < end:  # extensions are optional (pre-TLS-1.2 clients may omit them)
        if p + 2 > end:
            raise DecodeError("extensions length truncated")
        (ext_total,) = _unpack_u16(msg, p)
        p += 2
        ext_end = p + ext_total
        if ext_end > end:
            raise DecodeError("extensions block overruns the ClientHello")
        append = ext_types.append
        try:
            while p < ext_end:
                etype, elen = _unpack_u16x2(msg, p)  # struct.error past the buffer
                q = p + 4  # extension data start
                p = q + elen  # extension data end
                if p > ext_end:
                    # a header or body cut by the block end (a broken extension must
                    # not hide the SNI decoded before it, an evasion trick; tshark and
                    # nDPI keep it too): stop here and flag the record
                    malformed = True
                    break
                append(etype)
                if etype in _DECODED and etype not in found:
                    if elen > _EXT_VALUES_MAX_LEN:
                        found[etype] = _ext_value(etype, msg, q, p)
                        continue
                    key = msg[q - 4 : p]
                    value = _EXT_VALUES.get(key, _MISS)
                    if value is _MISS:
                        value = _ext_value(etype, msg, q, p)
                        if len(_EXT_VALUES) >= _EXT_VALUES_MAX:
                            _EXT_VALUES.clear()
                        _EXT_VALUES[key] = value
                    found[etype] = value
        except struct.error:  # an extension header cut by the end of the buffer
            malformed = True

    return _hello(
        legacy_version,
        cipher_suites,
        compression,
        tuple(ext_types),
        found.get(_EXT_SNI),
        found.get(_EXT_ALPN, ()),
        found.get(_EXT_SUPPORTED_VERSIONS, ()),
        found.get(_EXT_SIGNATURE_ALGORITHMS, ()),
        found.get(_EXT_SUPPORTED_GROUPS, ()),
        found.get(_EXT_EC_POINT_FORMATS, ()),
        _EXT_ECH in ext_types,
        sid_len,
        malformed,
    )


def _ext_value(etype: int, msg: bytes, q: int, p: int) -> Any:
    """The decoded content of the extension ``etype`` (one of _DECODED) in [q, p)."""
    elen = p - q
    if etype == _EXT_SNI:
        return _parse_sni(msg, q, p)
    if etype == _EXT_ALPN:
        return _parse_alpn(msg, q, p)
    if etype in (_EXT_SUPPORTED_GROUPS, _EXT_SIGNATURE_ALGORITHMS):
        if elen < 2:
            return ()
        k = min(_unpack_u16(msg, q)[0], elen - 2) >> 1
        return (_U16_VECS.get(k) or _u16_vec(k))(msg, q + 2)
    if elen < 1:
        return ()
    if etype == _EXT_SUPPORTED_VERSIONS:
        k = min(msg[q], elen - 1) >> 1
        return (_U16_VECS.get(k) or _u16_vec(k))(msg, q + 1)
    return tuple(msg[q + 1 : q + 1 + min(msg[q], elen - 1)])  # ec_point_formats


def client_hello_from_stream(data: bytes) -> TlsClientHello:
    """Decode the ClientHello at the start of a client->server TCP stream.

    ``data`` may be a prefix; :class:`NeedMoreData` means "valid so far, call
    again with more bytes". At most :data:`MAX_STREAM_BYTES` are looked at: a
    ClientHello not complete by then raises :class:`DecodeError`.
    """
    if not data:
        raise NeedMoreData("empty stream")
    if data.__class__ is not bytes:  # the hello is decoded in place (hashable slices)
        data = bytes(data)
    if data[0] & 0x80:
        raise DecodeError("SSLv2-compatible ClientHello is not decoded")
    if data[0] != _CONTENT_HANDSHAKE:
        raise DecodeError(f"record content type {data[0]} is not handshake")
    capped = len(data) >= MAX_STREAM_BYTES
    if capped:
        data = data[:MAX_STREAM_BYTES]
    n = len(data)

    # Fast path: the whole ClientHello sits in the first record.
    if n >= 9:
        if data[1] != 3 or data[2] > 4:
            _check_record_header(data, 0)  # raises
        (rec_len,) = _unpack_u16(data, 3)
        if rec_len == 0 or rec_len > _MAX_RECORD_LEN:
            raise DecodeError(f"record length {rec_len} invalid")
        if rec_len >= 4:  # else the handshake header itself spans records
            if data[5] != _HS_CLIENT_HELLO:
                raise DecodeError(f"handshake type {data[5]} is not ClientHello")
            need = 4 + int.from_bytes(data[6:9], "big")
            if need > MAX_STREAM_BYTES:
                _check_need(need)  # raises
            if need <= rec_len:
                if 5 + need <= n:  # same as parse_client_hello(data[5 : 5 + need])
                    return _hello_body(data, 5, 5 + need)
                # Cut inside this record: the loop below would only gather it and wait.
                if capped:
                    raise DecodeError(
                        f"no complete ClientHello in the first {MAX_STREAM_BYTES} bytes"
                    )
                raise NeedMoreData("ClientHello continues in later segments")

    hs = bytearray()
    need = -1  # handshake bytes needed, known once the 4-byte header is in
    p = 0
    while p < n:
        if p + 5 > n:
            _check_record_header(data, p)
            break
        _check_record_header(data, p)
        (rec_len,) = _unpack_u16(data, p + 3)
        p += 5
        hs += data[p : min(n, p + rec_len)]  # a cut-off record still contributes
        p += rec_len
        if need < 0 and len(hs) >= 4:
            if hs[0] != _HS_CLIENT_HELLO:
                raise DecodeError(f"handshake type {hs[0]} is not ClientHello")
            need = 4 + int.from_bytes(hs[1:4], "big")
            _check_need(need)
        if need >= 0 and len(hs) >= need:
            return parse_client_hello(bytes(hs[:need]))
    if hs and hs[0] != _HS_CLIENT_HELLO:
        raise DecodeError(f"handshake type {hs[0]} is not ClientHello")
    if capped:
        raise DecodeError(f"no complete ClientHello in the first {MAX_STREAM_BYTES} bytes")
    raise NeedMoreData("ClientHello continues in later segments")


def _check_need(need: int) -> None:
    # A hello that cannot fit in the capped stream will never complete: say so now.
    if need > MAX_STREAM_BYTES:
        raise DecodeError(f"ClientHello of {need} bytes over the {MAX_STREAM_BYTES} cap")


def _check_record_header(data: bytes, p: int) -> None:
    """Validate as much of the 5-byte record header at ``p`` as is present."""
    n = len(data)
    if data[p] != _CONTENT_HANDSHAKE:
        raise DecodeError(f"record content type {data[p]} interrupts the ClientHello")
    if p + 1 < n and data[p + 1] != 3:
        raise DecodeError("record version major is not 3")
    if p + 2 < n and data[p + 2] > 4:
        raise DecodeError("record version minor > 4")
    if p + 4 < n:
        (rec_len,) = _unpack_u16(data, p + 3)
        if rec_len == 0 or rec_len > _MAX_RECORD_LEN:
            raise DecodeError(f"record length {rec_len} invalid")


__all__ = [
    "MAX_STREAM_BYTES",
    "TlsClientHello",
    "client_hello_from_stream",
    "looks_like_tls_client_hello",
    "parse_client_hello",
]
