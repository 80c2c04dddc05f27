#!/usr/bin/env python3
"""Build a large, realistic office-uplink pcap for benchmarking, fast.

    python bench/gen_capture.py OUT.pcap --packets 2000000 [--seed N]

Writes a classic pcap (Ethernet, microsecond timestamps) and a sidecar
``OUT.pcap.truth.json`` with ground-truth counts (ClientHellos, SNIs, DNS
query names, HTTP hosts, flows, packets).  Everything is deterministic from
the seed.  Headers are packed with struct, checksums are computed with the
"big integer mod 0xFFFF" trick (the ones-complement sum is congruent to the
data mod 2**16-1), and the bulk payload segments are sliced once from a
shared stream of valid TLS records, so 2 M packets take seconds, not
minutes.  Nothing here ever sends a packet.

Traffic mix (per packet, roughly): TLS-over-TCP bulk ~85 %, QUIC ~6 %, HTTP
~4 %, DNS ~2 %, the rest DHCP/ARP/ICMP/NTP.  About 20 % of TLS ClientHellos
carry an X25519MLKEM768 key share (~1.9 KB) and so span two TCP segments.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import random
import struct
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives import hashes, hmac

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.helpers.quic import crypto_frame, protect_initial, varint

TS_BASE_US = 1_732_600_000 * 1_000_000  # 2024-11-26, an ordinary Tuesday
DURATION_S = 300.0
MSS = 1448  # 1460 - 12 bytes of TCP timestamps option
REC_FULL = 16384 + 17 + 5  # TLS 1.3 full application-data record on the wire

# TCP flags
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10

AI_HOSTS = [
    "api.openai.com",
    "chatgpt.com",
    "claude.ai",
    "api.anthropic.com",
    "gemini.google.com",
    "api.mistral.ai",
    "chat.deepseek.com",
    "huggingface.co",
    "copilot.microsoft.com",
]
AI_WEIGHTS = [10, 9, 5, 5, 4, 2, 2, 3, 4]
OTHER_HOSTS = [
    "www.google.com",
    "outlook.office365.com",
    "cdn.jsdelivr.net",
    "github.com",
    "s3.amazonaws.com",
    "teams.microsoft.com",
    "login.microsoftonline.com",
    "www.youtube.com",
    "i.ytimg.com",
    "fonts.gstatic.com",
    "www.gstatic.com",
    "slack.com",
    "wss-primary.slack.com",
    "zoom.us",
    "www.linkedin.com",
    "api.github.com",
    "update.googleapis.com",
    "clients4.google.com",
    "www.bing.com",
    "en.wikipedia.org",
    "pypi.org",
    "files.pythonhosted.org",
    "registry.npmjs.org",
    "graph.microsoft.com",
    "contoso.sharepoint.com",
    "cdnjs.cloudflare.com",
    "ajax.googleapis.com",
    "accounts.google.com",
    "mail.google.com",
    "drive.google.com",
    "www.dropbox.com",
    "api.atlassian.com",
    "contoso.atlassian.net",
    "www.salesforce.com",
    "objects.githubusercontent.com",
    "static.zdassets.com",
    "www.notion.so",
    "d1.awsstatic.com",
    "www.nytimes.com",
    "docs.python.org",
]
HTTP_HOSTS = [
    "connectivitycheck.gstatic.com",
    "ocsp.digicert.com",
    "ctldl.windowsupdate.com",
    "detectportal.firefox.com",
    "deb.debian.org",
    "archive.ubuntu.com",
    "crl.pki.goog",
    "www.msftconnecttest.com",
    "ocsp.pki.goog",
    "download.windowsupdate.com",
]
QUIC_HOSTS = [
    "www.google.com",
    "www.youtube.com",
    "chatgpt.com",
    "gemini.google.com",
    "i.ytimg.com",
    "fonts.gstatic.com",
    "claude.ai",
    "mail.google.com",
]
API_HOSTS = {"api.openai.com", "api.anthropic.com", "api.mistral.ai"}

# Plausible public prefixes per provider (bytes in a file; nothing is sent).
PROVIDER_V4 = {
    "cloudflare": ["104.16.0.0/13", "172.64.0.0/13", "162.159.0.0/16"],
    "google": ["142.250.0.0/15", "172.217.0.0/16", "216.58.192.0/19"],
    "microsoft": ["13.107.0.0/16", "20.190.128.0/18", "52.96.0.0/14"],
    "aws": ["52.216.0.0/15", "54.230.0.0/16", "3.160.0.0/14"],
    "github": ["140.82.112.0/20", "185.199.108.0/22"],
    "other": ["151.101.0.0/16", "199.232.0.0/16", "34.96.0.0/12"],
}
PROVIDER_V6 = {
    "cloudflare": "2606:4700::",
    "google": "2a00:1450:4001::",
    "microsoft": "2603:1026::",
    "aws": "2600:9000::",
    "github": "",
    "other": "2a04:4e42::",
}
USER_AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Safari/605.1.15",
    "Microsoft-CryptoAPI/10.0",
    "Debian APT-HTTP/1.3 (2.6.1)",
    "Microsoft NCSI",
    "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
]
OLLAMA_UA = "ollama-python/0.4.4 (x86_64 linux) Python/3.12.7"
GREASE = [0x0A0A + 0x1010 * i for i in range(16)]


def provider_of(host: str) -> str:
    if any(k in host for k in ("google", "gstatic", "youtube", "ytimg", "gemini")):
        return "google"
    if any(k in host for k in ("microsoft", "office", "bing", "sharepoint", "windows", "msft")):
        return "microsoft"
    if any(k in host for k in ("amazonaws", "awsstatic", "huggingface")):
        return "aws"
    if "github" in host:
        return "github"
    if any(
        k in host
        for k in (
            "openai",
            "chatgpt",
            "claude",
            "anthropic",
            "mistral",
            "deepseek",
            "jsdelivr",
            "cloudflare",
            "npmjs",
            "notion",
        )
    ):
        return "cloudflare"
    return "other"


# --------------------------------------------------------------------------- checksums


def osum(b: bytes) -> int:
    """Ones-complement 16-bit sum of b, as a residue mod 0xFFFF."""
    if len(b) & 1:
        b += b"\0"
    return int.from_bytes(b, "big") % 0xFFFF


# --------------------------------------------------------------------------- packet store


class Store:
    """All packets (bytes) plus their timestamps; sorted by time at the end."""

    def __init__(self) -> None:
        self.pkts: list[bytes] = []
        self.ts: list[int] = []
        self.flows: set[tuple[object, ...]] = set()
        self.kind_pkts: Counter[str] = Counter()

    def add(self, t: float, frame: bytes) -> None:
        self.ts.append(TS_BASE_US + int(t * 1e6))
        self.pkts.append(frame)


def mac(s: str) -> bytes:
    return bytes.fromhex(s.replace(":", ""))


GW_MAC = mac("00:1a:1e:04:5c:10")
RESOLVER_MAC = mac("52:54:00:12:00:53")
OLLAMA_MAC = mac("a8:a1:59:3c:7e:21")
BCAST = b"\xff" * 6


def ip4(s: str) -> bytes:
    return ipaddress.IPv4Address(s).packed


class L3:
    """Per-direction precomputed Ethernet/IP header pieces and pseudo-header sums."""

    __slots__ = ("dst", "eth", "flow6", "ip_const", "ipid", "proto", "pseudo", "src", "ttl", "v6")

    def __init__(
        self,
        src_mac: bytes,
        dst_mac: bytes,
        src: bytes,
        dst: bytes,
        proto: int,
        ttl: int,
        ipid: int,
        flow6: int = 0,
    ) -> None:
        self.v6 = len(src) == 16
        self.eth = dst_mac + src_mac + (b"\x86\xdd" if self.v6 else b"\x08\x00")
        self.src, self.dst, self.proto, self.ttl, self.ipid = src, dst, proto, ttl, ipid
        self.flow6 = flow6
        # IPv4 header words that never change: 0x4500, flags/frag 0x4000, ttl|proto, addrs
        self.ip_const = (0x4500 + 0x4000 + (ttl << 8 | proto) + osum(src + dst)) % 0xFFFF
        self.pseudo = (osum(src + dst) + proto) % 0xFFFF

    def ip_header(self, l4len: int) -> bytes:
        if self.v6:
            return (
                struct.pack("!IHBB", 0x60000000 | self.flow6, l4len, self.proto, self.ttl)
                + self.src
                + self.dst
            )
        tot = 20 + l4len
        ipid = self.ipid = (self.ipid + 1) & 0xFFFF
        ck = 0xFFFF - (self.ip_const + tot + ipid) % 0xFFFF
        return (
            struct.pack("!HHHHBBH", 0x4500, tot, ipid, 0x4000, self.ttl, self.proto, ck)
            + self.src
            + self.dst
        )

    def udp(self, sport: int, dport: int, payload: bytes) -> bytes:
        ulen = 8 + len(payload)
        s = (self.pseudo + ulen + sport + dport + ulen + osum(payload)) % 0xFFFF
        ck = 0xFFFF - s  # never 0 (0xFFFF - s with s < 0xFFFF), as UDP requires
        return (
            self.eth + self.ip_header(ulen) + struct.pack("!HHHH", sport, dport, ulen, ck) + payload
        )

    def raw(self, l4: bytes) -> bytes:
        return self.eth + self.ip_header(len(l4)) + l4


class Tcp:
    """One TCP connection; send() builds a full frame with valid checksums."""

    __slots__ = (
        "c",
        "cport",
        "cseq",
        "cts",
        "cwin",
        "s",
        "sport",
        "sseq",
        "st",
        "sts",
        "swin",
        "t0",
    )

    def __init__(self, st: Store, c: L3, s: L3, cport: int, sport: int, rng: random.Random) -> None:
        self.st, self.c, self.s, self.cport, self.sport = st, c, s, cport, sport
        self.cseq = rng.getrandbits(32)
        self.sseq = rng.getrandbits(32)
        self.cts = rng.getrandbits(31)
        self.sts = rng.getrandbits(31)
        self.cwin = rng.choice((502, 2058, 501, 1024))
        self.swin = rng.choice((285, 1040, 83, 501))
        st.flows.add(("tcp", c.src, cport, s.src, sport))

    def send(
        self,
        t: float,
        c2s: bool,
        flags: int,
        payload: bytes = b"",
        psum: int = -1,
        opts: bytes | None = None,
    ) -> None:
        ms = int(t * 1000)
        if c2s:
            l3, sp, dp, seq, ack, win = (
                self.c,
                self.cport,
                self.sport,
                self.cseq,
                self.sseq,
                self.cwin,
            )
            tsval, tsecr = self.cts + ms, self.sts + ms
        else:
            l3, sp, dp, seq, ack, win = (
                self.s,
                self.sport,
                self.cport,
                self.sseq,
                self.cseq,
                self.swin,
            )
            tsval, tsecr = self.sts + ms, self.cts + ms
        if not flags & ACK:
            ack = 0
        if opts is None:
            opts = struct.pack("!HHII", 0x0101, 0x080A, tsval & 0xFFFFFFFF, tsecr & 0xFFFFFFFF)
        hl = 20 + len(opts)
        hdr = struct.pack("!HHIIBBH", sp, dp, seq, ack, hl << 2, flags, win)
        if psum < 0:
            psum = osum(payload)
        tl = hl + len(payload)
        s = (
            l3.pseudo + tl + int.from_bytes(hdr, "big") + int.from_bytes(opts, "big") + psum
        ) % 0xFFFF
        frame = l3.eth + l3.ip_header(tl) + hdr + struct.pack("!HH", 0xFFFF - s, 0) + opts + payload
        self.st.add(t, frame)
        n = len(payload) + (1 if flags & (SYN | FIN) else 0)
        if c2s:
            self.cseq = (self.cseq + n) & 0xFFFFFFFF
        else:
            self.sseq = (self.sseq + n) & 0xFFFFFFFF

    def handshake(self, t: float, rtt: float) -> float:
        """SYN, SYN-ACK one rtt later, ACK; returns the time of the ACK."""
        ms = int(t * 1000)
        self.send(t, True, SYN, opts=syn_opts(1460, self.cts + ms, 0, 7))
        t += rtt
        self.send(t, False, SYN | ACK, opts=syn_opts(1400, self.sts + int(t * 1000),
                                                     self.cts + ms, 13))
        t += 0.00005
        self.send(t, True, ACK)
        return t

    def close(self, t: float, rtt: float, client_first: bool = True) -> None:
        """FIN from one side, the other's FIN one rtt later, the last ACK."""
        self.send(t, client_first, FIN | ACK)
        t += rtt
        self.send(t, not client_first, FIN | ACK)
        t += 0.00004
        self.send(t, client_first, ACK)


def syn_opts(mss: int, tsval: int, tsecr: int, wscale: int) -> bytes:
    # MSS, SACK permitted, timestamps, NOP, window scale: the Linux layout (20 bytes)
    return struct.pack(
        "!BBHBBBBIIBBBB", 2, 4, mss, 4, 2, 8, 10, tsval & 0xFFFFFFFF, tsecr & 0xFFFFFFFF,
        1, 3, 3, wscale,
    )


# --------------------------------------------------------------------------- TLS


def ext(t: int, body: bytes) -> bytes:
    return struct.pack("!HH", t, len(body)) + body


def vec16(items: list[int]) -> bytes:
    return struct.pack(f"!H{len(items)}H", 2 * len(items), *items)


def alpn(names: list[bytes]) -> bytes:
    body = b"".join(bytes([len(n)]) + n for n in names)
    return struct.pack("!H", len(body)) + body


def sni_ext(host: str) -> bytes:
    h = host.encode()
    return ext(0, struct.pack("!HBH", len(h) + 3, 0, len(h)) + h)


CHROME_CIPHERS = [
    0x1301,
    0x1302,
    0x1303,
    0xC02B,
    0xC02F,
    0xC02C,
    0xC030,
    0xCCA9,
    0xCCA8,
    0xC013,
    0xC014,
    0x009C,
    0x009D,
    0x002F,
    0x0035,
]
FIREFOX_CIPHERS = [
    0x1301,
    0x1303,
    0x1302,
    0xC02B,
    0xC02F,
    0xCCA9,
    0xCCA8,
    0xC02C,
    0xC030,
    0xC00A,
    0xC009,
    0xC013,
    0xC014,
    0x009C,
    0x009D,
    0x002F,
    0x0035,
]
OPENSSL_CIPHERS = [
    0x1302,
    0x1303,
    0x1301,
    0xC02C,
    0xC030,
    0x009F,
    0xCCA9,
    0xCCA8,
    0xCCAA,
    0xC02B,
    0xC02F,
    0x009E,
    0xC024,
    0xC028,
    0x006B,
    0xC023,
    0xC027,
    0x0067,
    0xC00A,
    0xC014,
    0x0039,
    0xC009,
    0xC013,
    0x0033,
    0x009D,
    0x009C,
    0x003D,
    0x003C,
    0x0035,
    0x002F,
    0x00FF,
]
SIGALGS = [0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601]


def client_hello_msg(
    rng: random.Random, host: str, profile: str, large: bool, quic_tp: bytes | None = None
) -> bytes:
    """A handshake-layer ClientHello message (type 1 + 3-byte length + body)."""
    rb = rng.randbytes
    if profile == "chrome":
        g1, g2, g3, g4 = (rng.choice(GREASE) for _ in range(4))
        ech = rng.choice((144, 176, 208, 240))
        groups = ([g2, 0x11EC] if large else [g2]) + [0x001D, 0x0017, 0x0018]
        ks = struct.pack("!HH", g2, 1) + b"\0"
        if large:
            ks += struct.pack("!HH", 0x11EC, 1216) + rb(1216)
        ks += struct.pack("!HH", 0x001D, 32) + rb(32)
        exts = [
            sni_ext(host),
            ext(0x17, b""),
            ext(0xFF01, b"\0"),
            ext(0x0A, vec16(groups)),
            ext(0x0B, b"\x01\x00"),
            ext(0x23, b""),
            ext(0x10, alpn([b"h3"] if quic_tp is not None else [b"h2", b"http/1.1"])),
            ext(0x05, b"\x01\x00\x00\x00\x00"),
            ext(0x0D, vec16(SIGALGS)),
            ext(0x12, b""),
            ext(0x33, struct.pack("!H", len(ks)) + ks),
            ext(0x2D, b"\x01\x01"),
            ext(0x2B, b"\x06" + struct.pack("!HHH", g3, 0x0304, 0x0303)),
            ext(0x1B, b"\x02\x00\x02"),
            ext(0x44CD, b"\x00\x03\x02h2"),
            ext(
                0xFE0D,
                b"\x00\x00\x01\x00\x01"
                + bytes([rng.randrange(256)])
                + b"\x00\x20"
                + rb(32)
                + struct.pack("!H", ech)
                + rb(ech),
            ),
        ]
        if quic_tp is not None:
            exts.append(ext(0x39, quic_tp))
        rng.shuffle(exts)  # Chrome permutes extension order
        exts = [ext(g1, b""), *exts, ext(g4, b"\x00")]
        if quic_tp is None and rng.random() < 0.4:  # resumption: pre_shared_key goes last
            ident = rb(rng.choice((144, 176, 192)))
            ids = struct.pack("!H", len(ident)) + ident + rb(4)
            binders = b"\x20" + rb(32)
            exts.append(
                ext(
                    0x29,
                    struct.pack("!H", len(ids)) + ids + struct.pack("!H", len(binders)) + binders,
                )
            )
        ciphers = [rng.choice(GREASE), *CHROME_CIPHERS]
    elif profile == "firefox":
        ks = (
            struct.pack("!HH", 0x001D, 32)
            + rb(32)
            + struct.pack("!HH", 0x0017, 65)
            + b"\x04"
            + rb(64)
        )
        exts = [
            sni_ext(host),
            ext(0x17, b""),
            ext(0xFF01, b"\0"),
            ext(0x0A, vec16([0x001D, 0x0017, 0x0018, 0x0019, 0x0100, 0x0101])),
            ext(0x0B, b"\x01\x00"),
            ext(0x10, alpn([b"h2", b"http/1.1"])),
            ext(0x05, b"\x01\x00\x00\x00\x00"),
            ext(0x22, vec16([0x0403, 0x0503, 0x0603, 0x0203])),
            ext(0x33, struct.pack("!H", len(ks)) + ks),
            ext(0x2B, b"\x04" + struct.pack("!HH", 0x0304, 0x0303)),
            ext(0x0D, vec16([*SIGALGS, 515, 513])),
            ext(0x1C, b"\x40\x01"),
            ext(0x1B, b"\x06\x00\x01\x00\x02\x00\x03"),
        ]
        ciphers = FIREFOX_CIPHERS
    else:  # python/openssl API client
        ks = struct.pack("!HH", 0x001D, 32) + rb(32)
        exts = [
            sni_ext(host),
            ext(0x0B, b"\x03\x00\x01\x02"),
            ext(0x0A, vec16([0x001D, 0x0017, 0x001E, 0x0019, 0x0018])),
            ext(0x23, b""),
            ext(0x10, alpn([b"http/1.1"])),
            ext(0x16, b""),
            ext(0x17, b""),
            ext(0x0D, vec16([*SIGALGS, 771, 769, 770, 1026, 1282, 1538])),
            ext(0x2B, b"\x04" + struct.pack("!HH", 0x0304, 0x0303)),
            ext(0x2D, b"\x01\x01"),
            ext(0x33, struct.pack("!H", len(ks)) + ks),
        ]
        ciphers = OPENSSL_CIPHERS
    ext_blob = b"".join(exts)
    sid = b"" if quic_tp is not None else rb(32)
    body = (
        b"\x03\x03"
        + rb(32)
        + bytes([len(sid)])
        + sid
        + vec16(ciphers)
        + b"\x01\x00"
        + struct.pack("!H", len(ext_blob))
        + ext_blob
    )
    return b"\x01" + len(body).to_bytes(3, "big") + body


def record(ctype: int, body: bytes) -> bytes:
    return struct.pack("!BHH", ctype, 0x0303, len(body)) + body


def server_hello_msg(rng: random.Random) -> bytes:
    exts = ext(0x2B, b"\x03\x04") + ext(0x33, struct.pack("!HH", 0x001D, 32) + rng.randbytes(32))
    body = (
        b"\x03\x03"
        + rng.randbytes(32)
        + b"\x20"
        + rng.randbytes(32)
        + b"\x13\x01\x00"
        + struct.pack("!H", len(exts))
        + exts
    )
    return b"\x02" + len(body).to_bytes(3, "big") + body


# --------------------------------------------------------------------------- QUIC (RFC 9001)

QUIC_V1_SALT = bytes.fromhex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a")


def _hmac(key: bytes, data: bytes) -> bytes:
    h = hmac.HMAC(key, hashes.SHA256())
    h.update(data)
    return h.finalize()


def _expand_label(secret: bytes, label: bytes, n: int) -> bytes:
    full = b"tls13 " + label
    info = struct.pack("!HB", n, len(full)) + full + b"\x00"
    return _hmac(secret, info + b"\x01")[:n]  # one HKDF-Expand block suffices (n <= 32)


def quic_keys(dcid: bytes, server: bool) -> tuple[bytes, bytes, bytes]:
    sec = _expand_label(_hmac(QUIC_V1_SALT, dcid), b"server in" if server else b"client in", 32)
    return (
        _expand_label(sec, b"quic key", 16),
        _expand_label(sec, b"quic iv", 12),
        _expand_label(sec, b"quic hp", 16),
    )


def quic_initial(
    odcid: bytes, dcid: bytes, scid: bytes, server: bool, pn: int, frames: bytes, min_len: int = 0
) -> bytes:
    pn_len = 2
    head_len = 1 + 4 + 1 + len(dcid) + 1 + len(scid) + 1 + 2 + pn_len
    if min_len:
        frames += b"\0" * max(0, min_len - (head_len + len(frames) + 16))  # PADDING frames
    return protect_initial(frames, quic_keys(odcid, server), dcid=dcid, scid=scid, pn=pn,
                           pn_len=pn_len)


def quic_transport_params(rng: random.Random) -> bytes:
    def tp(i: int, v: bytes) -> bytes:
        return varint(i) + varint(len(v)) + v

    return (
        tp(0x01, varint(30000))
        + tp(0x04, varint(15728640))
        + tp(0x05, varint(6291456))
        + tp(0x06, varint(6291456))
        + tp(0x07, varint(6291456))
        + tp(0x08, varint(100))
        + tp(0x09, varint(103))
        + tp(0x0F, b"")
        + tp(0x20, varint(65536))
        + tp(27 + 31 * rng.randrange(1, 64), rng.randbytes(rng.randrange(1, 16)))
    )


# --------------------------------------------------------------------------- DNS


EDNS_OPT = b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00"  # EDNS0 OPT, 1232-byte UDP


def dns_name(name: str) -> bytes:
    return b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"


def dns_query(txid: int, name: str, qtype: int) -> bytes:
    return (
        struct.pack("!HHHHHH", txid, 0x0100, 1, 0, 0, 1)
        + dns_name(name)
        + struct.pack("!HH", qtype, 1)
        + EDNS_OPT
    )


def dns_response(
    txid: int, name: str, qtype: int, cnames: list[str], addrs: list[bytes], ttl: int
) -> bytes:
    q = dns_name(name)
    msg = bytearray(struct.pack("!HHHHHH", txid, 0x8180, 1, len(cnames) + len(addrs), 0, 1))
    msg += q + struct.pack("!HH", qtype, 1)
    owner = 12  # compression pointer to the current owner name
    for cn in cnames:
        rdata = dns_name(cn)
        msg += struct.pack("!HHHIH", 0xC000 | owner, 5, 1, ttl, len(rdata))
        owner = len(msg)
        msg += rdata
    for a in addrs:
        msg += struct.pack("!HHHIH", 0xC000 | owner, qtype, 1, ttl, len(a)) + a
    msg += EDNS_OPT
    return bytes(msg)


# --------------------------------------------------------------------------- the office


@dataclass
class Client:
    ip: bytes
    mac: bytes
    ip6: bytes | None
    next_port: int
    profile: str
    dns_until: dict[str, float] = field(default_factory=dict)

    def port(self) -> int:
        p = self.next_port
        self.next_port = 32768 + (self.next_port - 32768 + 1) % 28000
        return p


@dataclass
class Server:
    host: str
    v4: list[bytes]
    v6: list[bytes]
    cnames: list[str]
    rtt: float
    ttl: int


class Gen:
    def __init__(self, seed: int, target: int) -> None:
        self.rng = random.Random(seed)
        self.np_rng = np.random.default_rng(seed)
        self.st = Store()
        self.target = target
        self.truth: dict[str, Counter[str]] = {
            k: Counter()
            for k in (
                "tls_sni",
                "quic_sni",
                "dns_query_names",
                "http_hosts",
                "http_host_headers",
                "dns_flow_names",
                "http_flow_hosts",
            )
        }
        self.n = Counter[str]()
        rng = self.rng
        self.clients: list[Client] = []
        n_clients = 120
        ouis = ["3c:22:fb", "f8:ff:c2", "dc:a6:32", "00:50:56", "a4:83:e7", "8c:85:90", "d8:bb:c1"]
        for i in range(n_clients):
            ip = ip4(f"10.0.{1 + i // 200}.{10 + i % 200}")
            m = mac(rng.choice(ouis) + f":{i >> 8:02x}:{i & 0xFF:02x}:{rng.randrange(256):02x}")
            ip6 = (
                ipaddress.IPv6Address(f"2001:db8:10:1::{0x100 + i:x}").packed
                if rng.random() < 0.3
                else None
            )
            prof = rng.choices(["chrome", "firefox", "openssl"], [0.65, 0.2, 0.15])[0]
            self.clients.append(Client(ip, m, ip6, rng.randrange(32768, 60000), prof))
        self.servers: dict[str, Server] = {}
        for h in AI_HOSTS + OTHER_HOSTS + HTTP_HOSTS:
            self.servers[h] = self._mk_server(h)
        # Bulk payload: one long stream of valid TLS 1.3 application-data records,
        # cut once into MSS segments with precomputed checksum sums.
        self.max_segs = 20000
        rec_body = self.np_rng.integers(0, 256, REC_FULL - 5, dtype=np.uint8).tobytes()
        rec = struct.pack("!BHH", 23, 0x0303, REC_FULL - 5) + rec_body
        n_rec = self.max_segs * MSS // REC_FULL + 2
        self.stream = rec * n_rec
        self.segs = [self.stream[i * MSS : (i + 1) * MSS] for i in range(self.max_segs)]
        self.seg_sums = [osum(s) for s in self.segs]
        self.rand_pool = self.np_rng.integers(0, 256, 1 << 20, dtype=np.uint8).tobytes()

    def _mk_server(self, h: str) -> Server:
        rng = self.rng
        prov = provider_of(h)
        v4 = []
        for _ in range(rng.randint(1, 4)):
            net = ipaddress.IPv4Network(rng.choice(PROVIDER_V4[prov]))
            v4.append((net.network_address + rng.randrange(1, net.num_addresses - 1)).packed)
        v6 = []
        if PROVIDER_V6[prov] and rng.random() < 0.8:
            v6.append((ipaddress.IPv6Address(PROVIDER_V6[prov]) + rng.getrandbits(40)).packed)
        cnames = []
        if rng.random() < 0.35:
            cdn = {
                "cloudflare": "cdn.cloudflare.net",
                "google": "l.google.com",
                "microsoft": "trafficmanager.net",
                "aws": "cloudfront.net",
            }.get(prov, "edgekey.net")
            cnames.append(h.split(".")[0] + "-" + f"{rng.getrandbits(16):04x}" + "." + cdn)
        return Server(h, v4, v6, cnames, rng.uniform(0.004, 0.09), rng.choice((60, 120, 300, 3600)))

    def rand(self, n: int) -> bytes:
        off = self.rng.randrange(0, len(self.rand_pool) - n)
        return self.rand_pool[off : off + n]

    # ----------------------------------------------------------------- DNS
    def dns(self, t: float, cl: Client, name: str, v6: bool) -> float:
        """Resolve name (A, plus AAAA from the same socket like glibc); returns answer time."""
        srv = self.servers[name]
        if cl.dns_until.get(name, -1.0) > t:
            return t
        cl.dns_until[name] = t + srv.ttl
        rng = self.rng
        c = L3(cl.mac, RESOLVER_MAC, cl.ip, ip4("10.0.0.53"), 17, 64, rng.getrandbits(16))
        s = L3(RESOLVER_MAC, cl.mac, ip4("10.0.0.53"), cl.ip, 17, 64, rng.getrandbits(16))
        sport = cl.port()
        self.st.flows.add(("udp", cl.ip, sport, ip4("10.0.0.53"), 53))
        qtypes = [1, 28] if (cl.ip6 is not None or rng.random() < 0.5) else [1]
        tq = t
        for qt in qtypes:
            txid = rng.getrandbits(16)
            self.st.add(tq, c.udp(sport, 53, dns_query(txid, name, qt)))
            tq += 0.00003
            self.truth["dns_query_names"][name] += 1
            self.n["dns_queries"] += 1
        tr = t + rng.uniform(0.0004, 0.03)
        for i, qt in enumerate(qtypes):
            addrs = srv.v4 if qt == 1 else srv.v6
            self.st.add(
                tr + i * 0.00005,
                s.udp(
                    53,
                    sport,
                    dns_response(rng.getrandbits(16), name, qt, srv.cnames, addrs, srv.ttl),
                ),
            )
        self.n["dns_flows"] += 1
        self.truth["dns_flow_names"][name] += 1
        self.st.kind_pkts["dns"] += 2 * len(qtypes)
        return tr + 0.0002

    # ----------------------------------------------------------------- TLS over TCP
    def tls_flow(self, t: float, cl: Client, host: str) -> None:
        rng, st = self.rng, self.st
        srv = self.servers[host]
        use6 = cl.ip6 is not None and bool(srv.v6) and rng.random() < 0.6
        t = self.dns(t, cl, host, use6)
        n_before = len(st.pkts)
        if use6:
            sip, cip = rng.choice(srv.v6), cl.ip6
            assert cip is not None
            fl = rng.getrandbits(20)
            c = L3(cl.mac, GW_MAC, cip, sip, 6, 64, 0, fl)
            s = L3(GW_MAC, cl.mac, sip, cip, 6, 57, 0, rng.getrandbits(20))
            self.n["tls_flows_ipv6"] += 1
        else:
            sip = rng.choice(srv.v4)
            c = L3(cl.mac, GW_MAC, cl.ip, sip, 6, 64, rng.getrandbits(16))
            s = L3(
                GW_MAC, cl.mac, sip, cl.ip, 6, rng.choice((52, 55, 57, 118)), rng.getrandbits(16)
            )
        conn = Tcp(st, c, s, cl.port(), 443, rng)
        rtt = srv.rtt * rng.uniform(0.9, 1.3)
        t = conn.handshake(t, rtt)
        large = rng.random() < 0.2
        prof = "chrome" if large else cl.profile
        if host in API_HOSTS and not large and rng.random() < 0.6:
            prof = "openssl"
        ch = record(22, client_hello_msg(rng, host, prof, large))
        self.truth["tls_sni"][host] += 1
        self.n["tls_client_hellos"] += 1
        t += 0.0002
        if len(ch) > MSS:
            self.n["tls_split_client_hellos"] += 1
            conn.send(t, True, ACK, ch[:MSS])
            conn.send(t + 0.00001, True, ACK | PSH, ch[MSS:])
        else:
            conn.send(t, True, ACK | PSH, ch)
        # Server flight: ServerHello, CCS, encrypted EE/Certificate/CV/Finished
        t += rtt
        flight = (
            record(22, server_hello_msg(rng))
            + record(20, b"\x01")
            + record(23, self.rand(rng.randint(2400, 4800)))
        )
        self._send_bytes(conn, t, False, flight, 0.00004)
        t += 0.0001 + 0.00004 * (len(flight) // MSS)
        conn.send(t, True, ACK)
        self.st.kind_pkts["tls_handshake"] += len(st.pkts) - n_before + 1  # + client Finished
        # Client CCS + Finished, then the request (bigger for API calls / uploads)
        t += 0.002
        req_len = rng.randint(90, 1300) if host not in API_HOSTS else rng.randint(600, 9000)
        if rng.random() < 0.05:
            req_len = rng.randint(20000, 400000)  # an upload
        up = record(20, b"\x01") + record(23, self.rand(53))
        while req_len > 0:
            n = min(req_len, 16384)
            up += record(23, self.rand(n + 17))
            req_len -= n
        up_dt = rng.uniform(0.00012, 0.0015)
        t = self._send_bytes(conn, t, True, up, up_dt, ack_every=2)
        # Server: two NewSessionTicket records (small), then the bulk response
        t += rtt
        conn.send(
            t,
            False,
            ACK | PSH,
            record(23, self.rand(rng.randint(220, 280)))
            + record(23, self.rand(rng.randint(220, 280))),
        )
        t += 0.00005
        nseg = min(self.max_segs, int(8 * rng.paretovariate(0.95)))
        dt = rng.uniform(0.00012, 0.0025)
        t = self._bulk(conn, t, nseg, dt)
        # Close (client first, mostly)
        t += rng.uniform(0.05, 8.0)
        conn.close(t, rtt, client_first=rng.random() < 0.8)
        self.n["tls_flows"] += 1
        self.st.kind_pkts["tls"] += len(st.pkts) - n_before

    def _send_bytes(
        self, conn: Tcp, t: float, c2s: bool, data: bytes, dt: float, ack_every: int = 0
    ) -> float:
        segs = [data[i : i + MSS] for i in range(0, len(data), MSS)]
        for k, seg in enumerate(segs):
            conn.send(t, c2s, ACK | (PSH if k == len(segs) - 1 else 0), seg)
            if ack_every and k % ack_every == ack_every - 1:
                conn.send(t + 0.00003, not c2s, ACK)
            t += dt
        return t

    def _bulk(self, conn: Tcp, t: float, nseg: int, dt: float) -> float:
        """nseg server segments of valid TLS records ending on a record boundary."""
        total = nseg * MSS - self.rng.randint(0, MSS - 40)
        full = total // REC_FULL * REC_FULL
        tail_body = total - full - 5
        if tail_body < 17:
            full, tail_body = max(0, full - REC_FULL), tail_body + (REC_FULL if full else 0)
            tail_body = max(17, tail_body)
        k_full = full // MSS
        send, segs, sums = conn.send, self.segs, self.seg_sums
        for k in range(k_full):
            send(t, False, ACK, segs[k], sums[k])
            if k & 1:
                send(t + 0.00003, True, ACK)
            t += dt
        rest = self.stream[k_full * MSS : full] + record(23, self.rand(tail_body))
        return self._send_bytes(conn, t, False, rest, dt, ack_every=2) + 0.00003

    # ----------------------------------------------------------------- HTTP
    def http_flow(self, t: float, cl: Client, host: str, ollama: bool = False) -> None:
        rng, st = self.rng, self.st
        n_before = len(st.pkts)
        if ollama:
            sip, smac, port = ip4("10.0.5.20"), OLLAMA_MAC, 11434
            host_hdr = rng.choice(["10.0.5.20:11434", "ollama.lan:11434"])
            rtt = rng.uniform(0.0002, 0.001)
        else:
            t = self.dns(t, cl, host, False)
            srv = self.servers[host]
            sip, smac, port, host_hdr, rtt = rng.choice(srv.v4), GW_MAC, 80, host, srv.rtt
        c = L3(cl.mac, smac, cl.ip, sip, 6, 64, rng.getrandbits(16))
        s = L3(smac, cl.mac, sip, cl.ip, 6, 64 if ollama else 56, rng.getrandbits(16))
        conn = Tcp(st, c, s, cl.port(), port, rng)
        t = conn.handshake(t, rtt)
        for _ in range(rng.choice((1, 1, 1, 2, 3))):
            t += 0.0003
            if ollama:
                if rng.random() < 0.4:
                    req = (
                        f"GET /api/tags HTTP/1.1\r\nHost: {host_hdr}\r\n"
                        f"User-Agent: {OLLAMA_UA}\r\nAccept: application/json\r\n\r\n"
                    ).encode()
                    body = (
                        b'{"models":[{"name":"llama3.1:8b","model":"llama3.1:8b",'
                        b'"size":4920753328}]}'
                    )
                else:
                    msg = (
                        b'{"model":"llama3.1:8b","messages":[{"role":"user",'
                        b'"content":"Summarise the attached quarterly report in three '
                        b'bullet points."}],"stream":false}'
                    )
                    req = (
                        f"POST /api/chat HTTP/1.1\r\nHost: {host_hdr}\r\n"
                        f"User-Agent: {OLLAMA_UA}\r\nContent-Type: application/json\r\n"
                        f"Accept: application/json\r\nContent-Length: {len(msg)}\r\n\r\n"
                    ).encode() + msg
                    body = (
                        b'{"model":"llama3.1:8b","created_at":"2024-11-26T05:46:40Z","message":{"role":'
                        b'"assistant","content":"'
                        + b"x" * rng.randint(200, 2400)
                        + b'"},"done":true}'
                    )
                ctype = "application/json; charset=utf-8"
            else:
                path = rng.choice(
                    [
                        "/generate_204",
                        "/",
                        "/MFEwTzBNMEswSTAJBgUrDgMCGgUABBQ",
                        "/msdownload/update/v3/static/trustedr/en/authrootstl.cab",
                        "/debian/dists/bookworm/InRelease",
                        "/success.txt",
                        "/connecttest.txt",
                    ]
                )
                req = (
                    f"GET {path} HTTP/1.1\r\nHost: {host_hdr}\r\n"
                    f"User-Agent: {rng.choice(USER_AGENTS)}\r\n"
                    "Accept: */*\r\nConnection: keep-alive\r\n\r\n"
                ).encode()
                blen = (
                    rng.randint(0, 900)
                    if rng.random() < 0.85
                    else min(3_000_000, int(4000 * rng.paretovariate(0.9)))
                )
                body = self.stream[:blen]
                ctype = "application/octet-stream"
            self.truth["http_hosts"][host_hdr.split(":")[0].lower()] += 1
            self.truth["http_host_headers"][host_hdr] += 1
            self.n["http_requests"] += 1
            conn.send(t, True, ACK | PSH, req)
            t += rtt
            resp = (
                f"HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                "Date: Tue, 26 Nov 2024 05:46:40 GMT\r\n\r\n"
            ).encode() + body
            t = self._send_bytes(conn, t, False, resp, rng.uniform(0.00012, 0.001), ack_every=2)
            conn.send(t, True, ACK)
        t += rng.uniform(0.01, 2.0)
        conn.close(t, rtt)
        self.n["http_flows"] += 1
        self.truth["http_flow_hosts"][host_hdr.split(":")[0].lower()] += 1
        st.kind_pkts["http"] += len(st.pkts) - n_before

    # ----------------------------------------------------------------- QUIC
    def quic_flow(self, t: float, cl: Client, host: str) -> None:
        rng, st = self.rng, self.st
        n_before = len(st.pkts)
        t = self.dns(t, cl, host, False)
        srv = self.servers[host]
        sip = rng.choice(srv.v4)
        c = L3(cl.mac, GW_MAC, cl.ip, sip, 17, 64, rng.getrandbits(16))
        s = L3(GW_MAC, cl.mac, sip, cl.ip, 17, 57, rng.getrandbits(16))
        cport = cl.port()
        st.flows.add(("udp", cl.ip, cport, sip, 443))
        odcid, scid_s = rng.randbytes(8), rng.randbytes(8)
        ch = client_hello_msg(rng, host, "chrome", False, quic_tp=quic_transport_params(rng))
        frames = crypto_frame(0, ch)
        st.add(
            t, c.udp(cport, 443, quic_initial(odcid, odcid, b"", False, 1, frames, min_len=1250))
        )
        self.truth["quic_sni"][host] += 1
        self.n["quic_client_hellos"] += 1
        t += srv.rtt
        sh = server_hello_msg(rng)
        sframes = b"\x02\x01\x00\x00\x00" + crypto_frame(0, sh)  # ACK, then CRYPTO
        sinit = quic_initial(odcid, b"", scid_s, True, 0, sframes)
        hs = self._handshake_packet(b"", scid_s, 1200 - len(sinit) - 16)
        st.add(t, s.udp(443, cport, sinit + hs))
        st.add(t + 0.0001, s.udp(443, cport, self._handshake_packet(b"", scid_s, 1000)))
        t += 0.003
        st.add(t, c.udp(cport, 443, self._handshake_packet(scid_s, b"", 80)))
        st.add(
            t + 0.00002,
            c.udp(
                cport,
                443,
                bytes([0x40 | rng.getrandbits(5)]) + scid_s + self.rand(rng.randint(40, 900)),
            ),
        )
        t += srv.rtt
        n = min(5000, int(6 * rng.paretovariate(0.95)))
        dt = rng.uniform(0.00012, 0.002)
        for k in range(n):
            st.add(t, s.udp(443, cport, bytes([0x40 | rng.getrandbits(5)]) + self.rand(1251)))
            if k % 3 == 2:
                st.add(
                    t + 0.00003,
                    c.udp(
                        cport,
                        443,
                        bytes([0x40 | rng.getrandbits(5)])
                        + scid_s
                        + self.rand(rng.randint(24, 40)),
                    ),
                )
            t += dt
        self.n["quic_flows"] += 1
        st.kind_pkts["quic"] += len(st.pkts) - n_before

    def _handshake_packet(self, dcid: bytes, scid: bytes, n: int) -> bytes:
        """A QUIC v1 Handshake packet (long header type 2) with ``n`` opaque payload bytes."""
        return (
            bytes((0xE1, 0, 0, 0, 1, len(dcid))) + dcid + bytes((len(scid),)) + scid
            + struct.pack("!H", 0x4000 | n) + self.rand(n)
        )

    # ----------------------------------------------------------------- background
    def dhcp(self, t: float, cl: Client, hostname: str) -> None:
        rng = self.rng
        xid = rng.getrandbits(32)
        srv_ip, yi = ip4("10.0.0.1"), cl.ip
        c = L3(cl.mac, BCAST, b"\0\0\0\0", b"\xff\xff\xff\xff", 17, 64, 0)
        s = L3(GW_MAC, cl.mac, srv_ip, yi, 17, 64, rng.getrandbits(16))
        self.st.flows.add(("udp", b"\0\0\0\0", 68, b"\xff\xff\xff\xff", 67))
        self.st.flows.add(("udp", srv_ip, 67, yi, 68))

        def bootp(op: int, yiaddr: bytes, opts: bytes) -> bytes:
            return (
                struct.pack("!BBBBIHH", op, 1, 6, 0, xid, 0, 0x8000)
                + b"\0" * 4
                + yiaddr
                + b"\0" * 8
                + cl.mac
                + b"\0" * 10
                + b"\0" * 192
                + b"\x63\x82\x53\x63"
                + opts
                + b"\xff"
            )

        hn = bytes([12, len(hostname)]) + hostname.encode()
        prl = b"\x37\x07\x01\x03\x06\x0f\x1f\x21\x79"
        lease = (
            b"\x36\x04"
            + srv_ip
            + b"\x33\x04\x00\x01\x51\x80\x01\x04\xff\xff\x00\x00\x03\x04"
            + srv_ip
            + b"\x06\x04"
            + ip4("10.0.0.53")
        )
        self.st.add(t, c.udp(68, 67, bootp(1, b"\0" * 4, b"\x35\x01\x01" + hn + prl)))
        self.st.add(t + 0.002, s.udp(67, 68, bootp(2, yi, b"\x35\x01\x02" + lease)))
        self.st.add(
            t + 0.004, c.udp(68, 67, bootp(1, b"\0" * 4, b"\x35\x01\x03\x32\x04" + yi + hn + prl))
        )
        self.st.add(t + 0.006, s.udp(67, 68, bootp(2, yi, b"\x35\x01\x05" + lease)))
        self.st.kind_pkts["dhcp"] += 4

    def noise(self, t: float, cl: Client) -> None:
        rng, st = self.rng, self.st
        r = rng.random()
        if r < 0.4:  # ARP who-has from the gateway, and the reply
            arp = (
                struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1)
                + GW_MAC
                + ip4("10.0.0.1")
                + b"\0" * 6
                + cl.ip
            )
            st.add(t, BCAST + GW_MAC + b"\x08\x06" + arp + b"\0" * 18)
            rep = (
                struct.pack("!HHBBH", 1, 0x0800, 6, 4, 2)
                + cl.mac
                + cl.ip
                + GW_MAC
                + ip4("10.0.0.1")
            )
            st.add(t + 0.0003, GW_MAC + cl.mac + b"\x08\x06" + rep + b"\0" * 18)
            st.kind_pkts["arp"] += 2
        elif r < 0.7:  # ping
            dst = ip4(rng.choice(["8.8.8.8", "1.1.1.1", "9.9.9.9"]))
            c = L3(cl.mac, GW_MAC, cl.ip, dst, 1, 64, rng.getrandbits(16))
            s = L3(GW_MAC, cl.mac, dst, cl.ip, 1, 117, rng.getrandbits(16))
            ident = rng.getrandbits(16)
            st.flows.add(("icmp", cl.ip, ident, dst, 0))
            for seq in range(1, rng.randint(2, 5)):
                data = self.rand(48)
                for l3, typ, dt in ((c, 8, 0.0), (s, 0, 0.012)):
                    ck = 0xFFFF - ((typ << 8) + ident + seq + osum(data)) % 0xFFFF
                    st.add(t + dt, l3.raw(struct.pack("!BBHHH", typ, 0, ck, ident, seq) + data))
                    st.kind_pkts["icmp"] += 1
                t += 1.0
        else:  # NTP
            dst = ip4(rng.choice(["162.159.200.1", "162.159.200.123", "129.6.15.28"]))
            c = L3(cl.mac, GW_MAC, cl.ip, dst, 17, 64, rng.getrandbits(16))
            s = L3(GW_MAC, cl.mac, dst, cl.ip, 17, 57, rng.getrandbits(16))
            st.flows.add(("udp", cl.ip, 123, dst, 123))
            st.add(t, c.udp(123, 123, b"\x23" + b"\0" * 39 + self.rand(8)))
            st.add(t + 0.02, s.udp(123, 123, b"\x24\x03\x00\xe7" + self.rand(44)))
            st.kind_pkts["ntp"] += 2

    # ----------------------------------------------------------------- driver
    def run(self) -> None:
        rng = self.rng
        names = [
            "LAPTOP-7F3K2QD",
            "MacBook-Pro-de-Ana",
            "raspberrypi",
            "DESKTOP-J8H2L0P",
            "iPhone",
            "gpu-box-01",
            "LAPTOP-ELIAS",
            "meeting-room-3",
        ]
        for i, hn in enumerate(names):
            self.dhcp(rng.uniform(0, DURATION_S), self.clients[i * 7], hn)
        hosts_ai = AI_HOSTS
        other_w = [1.0 / (i + 1) ** 0.8 for i in range(len(OTHER_HOSTS))]
        while len(self.st.pkts) < self.target:
            t = rng.uniform(0, DURATION_S)
            cl = rng.choice(self.clients)
            r = rng.random()
            if r < 0.62:
                host = (
                    rng.choices(hosts_ai, AI_WEIGHTS)[0]
                    if rng.random() < 0.18
                    else rng.choices(OTHER_HOSTS, other_w)[0]
                )
                self.tls_flow(t, cl, host)
            elif r < 0.72:
                self.http_flow(t, cl, rng.choice(HTTP_HOSTS))
            elif r < 0.74:
                self.http_flow(t, rng.choice(self.clients[:6]), "", ollama=True)
            elif r < 0.79:
                h = rng.choice(QUIC_HOSTS)
                if h not in self.servers:
                    self.servers[h] = self._mk_server(h)
                self.quic_flow(t, cl, h)
            elif r < 0.87:
                self.dns(t, cl, rng.choice(list(self.servers)), False)  # lookups without a flow
            else:
                self.noise(t, cl)

    def write(self, path: str) -> dict[str, object]:
        st = self.st
        ts = np.asarray(st.ts, dtype=np.int64)
        order = np.argsort(ts, kind="stable")
        wire = 0
        pack = struct.Struct("<IIII").pack
        pkts = st.pkts
        with open(path, "wb", buffering=1 << 24) as f:
            f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
            chunk: list[bytes] = []
            for i, tv in zip(order.tolist(), ts[order].tolist(), strict=False):
                p = pkts[i]
                n = len(p)
                wire += n
                chunk.append(pack(tv // 1_000_000, tv % 1_000_000, n, n))
                chunk.append(p)
                if len(chunk) >= 8192:
                    f.write(b"".join(chunk))
                    chunk.clear()
            f.write(b"".join(chunk))
        first, last = int(ts.min()), int(ts.max())
        hs = st.kind_pkts["tls_handshake"]
        truth: dict[str, object] = {
            "generator": "bench/gen_capture.py",
            "packets": len(pkts),
            "wire_bytes": wire,
            "file_bytes": os.path.getsize(path),
            "duration_s": round((last - first) / 1e6, 3),
            "tls_client_hellos": self.n["tls_client_hellos"],
            "tls_split_client_hellos": self.n["tls_split_client_hellos"],
            "tls_sni_count": sum(self.truth["tls_sni"].values()),
            "quic_client_hellos": self.n["quic_client_hellos"],
            "dns_queries": self.n["dns_queries"],
            "dns_responses": self.n["dns_queries"],
            "http_requests": self.n["http_requests"],
            "flows": {
                "total": len(st.flows),
                "tcp": sum(1 for f in st.flows if f[0] == "tcp"),
                "udp": sum(1 for f in st.flows if f[0] == "udp"),
                "icmp": sum(1 for f in st.flows if f[0] == "icmp"),
                "tls": self.n["tls_flows"],
                "tls_ipv6": self.n["tls_flows_ipv6"],
                "quic": self.n["quic_flows"],
                "http": self.n["http_flows"],
                "dns": self.n["dns_flows"],
            },
            "packets_by_kind": dict(st.kind_pkts),
            "tls_handshake_packet_share": round(hs / len(pkts), 4),
            "tls_sni": dict(self.truth["tls_sni"].most_common()),
            "quic_sni": dict(self.truth["quic_sni"].most_common()),
            "dns_query_names": dict(self.truth["dns_query_names"].most_common()),
            "http_hosts": dict(self.truth["http_hosts"].most_common()),
            "http_host_headers": dict(self.truth["http_host_headers"].most_common()),
            # per-flow views (one name per flow), for flow exporters such as nfstream
            "dns_flow_names": dict(self.truth["dns_flow_names"].most_common()),
            "http_flow_hosts": dict(self.truth["http_flow_hosts"].most_common()),
        }
        return truth


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="output .pcap path")
    ap.add_argument("--packets", type=int, default=2_000_000, help="minimum number of packets")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    g = Gen(a.seed, a.packets)
    g.run()
    t1 = time.perf_counter()
    truth = g.write(a.out)
    truth["seed"] = a.seed
    t2 = time.perf_counter()
    with open(a.out + ".truth.json", "w") as f:
        json.dump(truth, f, indent=1)
    print(
        f"{a.out}: {truth['packets']} packets, {os.path.getsize(a.out) / 1e6:.1f} MB, "
        f"{truth['tls_client_hellos']} ClientHellos ({truth['tls_split_client_hellos']} split), "
        f"{truth['quic_client_hellos']} QUIC Initials, {truth['dns_queries']} DNS queries, "
        f"{truth['http_requests']} HTTP requests; build {t1 - t0:.1f}s write {t2 - t1:.1f}s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
