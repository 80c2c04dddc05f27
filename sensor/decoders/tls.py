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
"""

from __future__ import annotations

import ipaddress
import struct

from sensor.errors import DecodeError, NeedMoreData
from sensor.records import TlsClientHello

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

_U16 = struct.Struct(">H")
_U16x2 = struct.Struct(">HH")


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


def _u16_list(buf: bytes, off: int, nbytes: int) -> tuple[int, ...]:
    """``nbytes`` (rounded down to even) of big-endian u16 values at ``off``."""
    count = nbytes >> 1
    if count <= 0:
        return ()
    return struct.unpack_from(f">{count}H", buf, off)


def _vec16_u16(buf: bytes, off: int, end: int) -> tuple[int, ...]:
    """A u16-length-prefixed list of u16 inside [off, end), clipped to what fits."""
    if end - off < 2:
        return ()
    (n,) = _U16.unpack_from(buf, off)
    return _u16_list(buf, off + 2, min(n, end - off - 2))


def _parse_sni(buf: bytes, off: int, end: int) -> str | None:
    if end - off < 2:
        return None
    (list_len,) = _U16.unpack_from(buf, off)
    p = off + 2
    stop = min(end, p + list_len)
    while p + 3 <= stop:
        name_type = buf[p]
        (n,) = _U16.unpack_from(buf, p + 1)
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
    (list_len,) = _U16.unpack_from(buf, off)
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


def _vec8_u16(buf: bytes, off: int, end: int) -> tuple[int, ...]:
    if end - off < 1:
        return ()
    return _u16_list(buf, off + 1, min(buf[off], end - off - 1))


def _vec8_u8(buf: bytes, off: int, end: int) -> tuple[int, ...]:
    if end - off < 1:
        return ()
    n = min(buf[off], end - off - 1)
    return tuple(buf[off + 1 : off + 1 + n])


def parse_client_hello(msg: bytes) -> TlsClientHello:
    """Decode one handshake message that must be a ClientHello.

    Raises :class:`NeedMoreData` when ``msg`` is shorter than its declared
    length, :class:`DecodeError` when it is not a ClientHello or malformed.
    Bytes after the declared length are ignored.
    """
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
    # Fixed part: version(2) random(32) session_id(1+n).
    if body_len < 2 + 32 + 1:
        raise DecodeError("ClientHello too short")
    (legacy_version,) = _U16.unpack_from(msg, 4)
    p = 4 + 2 + 32
    sid_len = msg[p]
    if sid_len > 32:
        raise DecodeError(f"session_id length {sid_len} > 32")
    p += 1 + sid_len
    if p + 2 > end:
        raise DecodeError("cipher_suites missing")
    (cs_len,) = _U16.unpack_from(msg, p)
    p += 2
    if cs_len & 1 or p + cs_len > end:
        raise DecodeError("cipher_suites length invalid")
    cipher_suites = _u16_list(msg, p, cs_len)
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
    sni: str | None = None
    alpn: tuple[bytes, ...] = ()
    versions: tuple[int, ...] = ()
    sig_algs: tuple[int, ...] = ()
    groups: tuple[int, ...] = ()
    point_formats: tuple[int, ...] = ()
    seen: set[int] = set()
    malformed = False
    if p < end:  # extensions are optional (pre-TLS-1.2 clients may omit them)
        if p + 2 > end:
            raise DecodeError("extensions length truncated")
        (ext_total,) = _U16.unpack_from(msg, p)
        p += 2
        ext_end = p + ext_total
        if ext_end > end:
            raise DecodeError("extensions block overruns the ClientHello")
        while p < ext_end:
            if p + 4 > ext_end:
                malformed = True  # keep what was decoded before the damage
                break
            etype, elen = _U16x2.unpack_from(msg, p)
            p += 4
            dend = p + elen
            if dend > ext_end:
                # a broken extension must not hide the SNI decoded before it (an evasion
                # trick; tshark and nDPI keep it too): stop here and flag the record
                malformed = True
                break
            ext_types.append(etype)
            if etype not in seen:  # the first occurrence of a duplicate wins
                seen.add(etype)
                if etype == _EXT_SNI:
                    sni = _parse_sni(msg, p, dend)
                elif etype == _EXT_ALPN:
                    alpn = _parse_alpn(msg, p, dend)
                elif etype == _EXT_SUPPORTED_VERSIONS:
                    versions = _vec8_u16(msg, p, dend)
                elif etype == _EXT_SIGNATURE_ALGORITHMS:
                    sig_algs = _vec16_u16(msg, p, dend)
                elif etype == _EXT_SUPPORTED_GROUPS:
                    groups = _vec16_u16(msg, p, dend)
                elif etype == _EXT_EC_POINT_FORMATS:
                    point_formats = _vec8_u8(msg, p, dend)
            p = dend

    return TlsClientHello(
        legacy_version=legacy_version,
        cipher_suites=cipher_suites,
        compression_methods=compression,
        extensions=tuple(ext_types),
        sni=sni,
        alpn=alpn,
        supported_versions=versions,
        signature_algorithms=sig_algs,
        supported_groups=groups,
        ec_point_formats=point_formats,
        has_ech=_EXT_ECH in seen,
        session_id_len=sid_len,
        malformed=malformed,
    )


def client_hello_from_stream(data: bytes) -> TlsClientHello:
    """Decode the ClientHello at the start of a client->server TCP stream.

    ``data`` may be a prefix; :class:`NeedMoreData` means "valid so far, call
    again with more bytes". At most :data:`MAX_STREAM_BYTES` are looked at: a
    ClientHello not complete by then raises :class:`DecodeError`.
    """
    if not data:
        raise NeedMoreData("empty stream")
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
        _check_record_header(data, 0)
        (rec_len,) = _U16.unpack_from(data, 3)
        if rec_len >= 4:  # else the handshake header itself spans records
            if data[5] != _HS_CLIENT_HELLO:
                raise DecodeError(f"handshake type {data[5]} is not ClientHello")
            need = 4 + int.from_bytes(data[6:9], "big")
            _check_need(need)
            if need <= rec_len and 5 + need <= n:
                return parse_client_hello(data[5 : 5 + need])

    hs = bytearray()
    need = -1  # handshake bytes needed, known once the 4-byte header is in
    p = 0
    while p < n:
        if p + 5 > n:
            _check_record_header(data, p)
            break
        _check_record_header(data, p)
        (rec_len,) = _U16.unpack_from(data, p + 3)
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
        (rec_len,) = _U16.unpack_from(data, p + 3)
        if rec_len == 0 or rec_len > _MAX_RECORD_LEN:
            raise DecodeError(f"record length {rec_len} invalid")


__all__ = [
    "MAX_STREAM_BYTES",
    "TlsClientHello",
    "client_hello_from_stream",
    "looks_like_tls_client_hello",
    "parse_client_hello",
]
