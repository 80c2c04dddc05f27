"""JA4 TLS *client* fingerprint (FoxIO spec, BSD-3-Clause).

Only JA4 is implemented here: the other JA4+ methods (JA4S, JA4H, JA4X...)
are under the FoxIO licence and are deliberately absent.

Spec: FoxIO-LLC/ja4 technical_details/JA4.md. ``ja4``/``ja4_r`` sort ciphers
and extensions (SNI and ALPN dropped from the sorted extension list);
``ja4_o``/``ja4_ro`` keep wire order and keep SNI/ALPN. GREASE is ignored
everywhere, including in signature algorithms and supported_versions.
"""

from __future__ import annotations

import hashlib
import struct
from itertools import filterfalse

from sensor.records import TlsClientHello

_EMPTY_HASH = "000000000000"
_EXT_SNI = 0x0000
_EXT_ALPN = 0x0010

_VERSIONS = {
    0x0304: "13",
    0x0303: "12",
    0x0302: "11",
    0x0301: "10",
    0x0300: "s3",
    0x0002: "s2",
    0xFEFF: "d1",
    0xFEFD: "d2",
    0xFEFC: "d3",
}
_TRANSPORTS = frozenset({"t", "q", "d"})
_ALNUM = frozenset(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


def is_grease(v: int) -> bool:
    """RFC 8701 GREASE value: 0x?a?a with both bytes equal."""
    return (v & 0x0F0F) == 0x0A0A and (v >> 8) == (v & 0xFF)


GREASE = frozenset(range(0x0A0A, 0x10000, 0x1010))  # the 16 values is_grease takes
_NOT_SORTED = GREASE | {0x0000, 0x0010}  # also SNI and ALPN, left out of the sorted list


def _hex_list(values: list[int]) -> str:
    """``0a0a,1301,...``: four hex digits per value, comma-separated (in C, not per value)."""
    return struct.pack(f">{len(values)}H", *values).hex(",", 2)


def _version(ch: TlsClientHello) -> str:
    offered = list(filterfalse(GREASE.__contains__, ch.supported_versions))
    v = max(offered) if offered else ch.legacy_version
    return _VERSIONS.get(v, "00")


def _alpn_chars(ch: TlsClientHello) -> str:
    if not ch.alpn or not ch.alpn[0]:
        return "00"
    first = ch.alpn[0]
    a, b = first[0], first[-1]
    if a in _ALNUM and b in _ALNUM:
        return chr(a) + chr(b)
    if all(x in _ALNUM or x >= 0x80 for x in (a, b)):
        # FoxIO's reference tools (the fingerprints deployed in the field) read the
        # value as text and print '9' for a non-ASCII edge character; JA4.md's hex
        # rule would give other values. We match the tools: tls-non-ascii-alpn -> "99".
        return ("9" if a >= 0x80 else chr(a)) + ("9" if b >= 0x80 else chr(b))
    # ASCII but not alphanumeric: JA4.md's rule, first and last hex digit of the value.
    h = first.hex()
    return h[0] + h[-1]


def _parts(ch: TlsClientHello, transport: str, original: bool) -> tuple[str, str, str]:
    if transport not in _TRANSPORTS:
        raise ValueError(f"transport must be one of t/q/d, not {transport!r}")
    grease = GREASE.__contains__  # filterfalse: the filtering loop runs in C
    ciphers = list(filterfalse(grease, ch.cipher_suites))
    exts = list(filterfalse(grease, ch.extensions))
    sigs = list(filterfalse(grease, ch.signature_algorithms))
    sni = "d" if _EXT_SNI in exts else "i"
    head = (
        f"{transport}{_version(ch)}{sni}{min(len(ciphers), 99):02d}"
        f"{min(len(exts), 99):02d}{_alpn_chars(ch)}"
    )
    if not original:
        ciphers.sort()
        exts = sorted(filterfalse(_NOT_SORTED.__contains__, exts))
    cipher_str = _hex_list(ciphers)
    ext_str = _hex_list(exts)
    if sigs:
        ext_str += "_" + _hex_list(sigs)
    return head, cipher_str, ext_str


def _hash12(s: str, empty: bool) -> str:
    if empty:
        return _EMPTY_HASH
    return hashlib.sha256(s.encode("ascii")).hexdigest()[:12]


def _hashed_parts(head: str, ciphers: str, exts: str) -> str:
    # Empty *lists* (not empty hash input) give the all-zero marker.
    no_exts = exts == "" or exts.startswith("_")
    return f"{head}_{_hash12(ciphers, ciphers == '')}_{_hash12(exts, no_exts)}"


_CACHE_MAX = 4096
_cache: dict[tuple[object, ...], tuple[str, str]] = {}  # key -> (ja4, ja4_r)


def _key(ch: TlsClientHello, transport: str) -> tuple[object, ...]:
    # Exactly what the sorted forms depend on: GREASE left out (clients draw it afresh for
    # every hello) and the extension *set* (browsers shuffle the order).
    g = GREASE.__contains__
    return (transport, ch.legacy_version, tuple(filterfalse(g, ch.supported_versions)),
            tuple(sorted(filterfalse(g, ch.cipher_suites))),
            tuple(sorted(filterfalse(g, ch.extensions))),
            tuple(filterfalse(g, ch.signature_algorithms)), ch.alpn[0] if ch.alpn else None)


def ja4_pair(ch: TlsClientHello, transport: str = "t") -> tuple[str, str]:
    """``(ja4, ja4_r)`` from one pass over the ClientHello (what a finding records)."""
    k = _key(ch, transport)
    v = _cache.get(k)
    if v is None:  # a network's clients share a few fingerprints: compute each once
        if len(_cache) >= _CACHE_MAX:
            _cache.clear()
        parts = _parts(ch, transport, original=False)
        v = _cache[k] = (_hashed_parts(*parts), "_".join(parts))
    return v


def ja4(ch: TlsClientHello, transport: str = "t") -> str:
    """JA4 fingerprint; ``transport`` is "t" (TCP), "q" (QUIC) or "d" (DTLS)."""
    return ja4_pair(ch, transport)[0]


def ja4_r(ch: TlsClientHello, transport: str = "t") -> str:
    """JA4 raw form (sorted lists, not hashed)."""
    return ja4_pair(ch, transport)[1]


def ja4_o(ch: TlsClientHello, transport: str = "t") -> str:
    """JA4 over the original (wire) order, SNI/ALPN kept."""
    return _hashed_parts(*_parts(ch, transport, original=True))


def ja4_ro(ch: TlsClientHello, transport: str = "t") -> str:
    """JA4 raw form in original order."""
    return "_".join(_parts(ch, transport, original=True))
