"""Crafted traffic for tests (scapy is GPL: tests and tools only)."""

from __future__ import annotations

import struct
from pathlib import Path

from scapy.all import DNS, DNSQR, DNSRR, IP, TCP, UDP, Ether, wrpcap


def client_hello_record(sni: str | None, alpn: tuple[bytes, ...] = (b"h2", b"http/1.1"),
                        pad_to: int = 0, ech: bool = False) -> bytes:
    """A TLS 1.3-style ClientHello in one TLS record; ``pad_to`` grows it (PQ key shares)."""
    exts = b""
    if sni is not None:
        name = sni.encode()
        entry = b"\x00" + struct.pack("!H", len(name)) + name
        exts += struct.pack("!HH", 0, len(entry) + 2) + struct.pack("!H", len(entry)) + entry
    if alpn:
        lst = b"".join(bytes([len(a)]) + a for a in alpn)
        exts += struct.pack("!HHH", 16, len(lst) + 2, len(lst)) + lst
    exts += struct.pack("!HHB", 43, 5, 4) + b"\x03\x04\x03\x03"  # supported_versions
    exts += struct.pack("!HHH", 13, 4, 2) + b"\x04\x03"  # signature_algorithms
    exts += struct.pack("!HHH", 10, 4, 2) + b"\x00\x1d"  # supported_groups
    if ech:  # encrypted_client_hello (outer): type, kdf/aead, config id, enc, payload
        payload = b"\x00" + struct.pack("!HH", 1, 1) + b"\x2a" + struct.pack("!H", 32) + \
            b"\x33" * 32 + struct.pack("!H", 16) + b"\x44" * 16
        exts += struct.pack("!HH", 0xFE0D, len(payload)) + payload
    body = b"\x03\x03" + b"\x11" * 32 + b"\x20" + b"\x22" * 32
    body += struct.pack("!H", 4) + b"\x13\x01\x13\x02" + b"\x01\x00"
    if pad_to:
        need = max(pad_to - len(body) - len(exts) - 2 - 4 - 4, 0)
        exts += struct.pack("!HH", 21, need) + b"\x00" * need  # padding extension
    body += struct.pack("!H", len(exts)) + exts
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + struct.pack("!H", len(hs)) + hs


class Lab:
    """Builds a capture of TCP/UDP conversations with consistent seq numbers and times."""

    def __init__(self, t0: float = 1_700_000_000.0) -> None:
        self.t = t0
        self.pkts: list = []
        self._mac = {}

    def _eth(self, ip: str) -> Ether:
        n = len(self._mac)
        mac = self._mac.setdefault(ip, f"02:00:00:00:{n // 256:02x}:{n % 256:02x}")
        return Ether(src=mac, dst="02:ff:ff:ff:ff:ff")

    def _add(self, p, dt: float = 0.001) -> None:
        self.t += dt
        p.time = self.t
        self.pkts.append(p)

    def dns(self, client: str, name: str, answers: list[str], server: str = "10.0.0.53",
            qtype: str = "A", respond: bool = True, txid: int = 0x1234) -> None:
        q = DNS(id=txid, rd=1, qd=DNSQR(qname=name, qtype=qtype))
        self._add(self._eth(client) / IP(src=client, dst=server) / UDP(sport=40000, dport=53) / q)
        if respond:
            an = None
            for a in answers:
                rr = DNSRR(rrname=name, type=qtype, ttl=300, rdata=a)
                an = rr if an is None else an / rr
            r = DNS(id=txid, qr=1, rd=1, ra=1, qd=DNSQR(qname=name, qtype=qtype), an=an)
            self._add(self._eth(server) / IP(src=server, dst=client) / UDP(sport=53, dport=40000)
                      / r)

    def tcp(self, client: str, cport: int, server: str, sport: int,
            client_segments: list[bytes], server_segments: list[bytes] = (),
            handshake: bool = True, close: bool = True) -> None:
        cs, ss = 1000, 5000
        ce, se = self._eth(client), self._eth(server)
        C = IP(src=client, dst=server)
        S = IP(src=server, dst=client)
        if handshake:
            self._add(ce / C / TCP(sport=cport, dport=sport, flags="S", seq=cs - 1))
            self._add(se / S / TCP(sport=sport, dport=cport, flags="SA", seq=ss - 1, ack=cs))
            self._add(ce / C / TCP(sport=cport, dport=sport, flags="A", seq=cs, ack=ss))
        for seg in client_segments:
            self._add(ce / C / TCP(sport=cport, dport=sport, flags="PA", seq=cs, ack=ss) / seg)
            cs += len(seg)
        for seg in server_segments:
            self._add(se / S / TCP(sport=sport, dport=cport, flags="PA", seq=ss, ack=cs) / seg)
            ss += len(seg)
        if close:
            self._add(ce / C / TCP(sport=cport, dport=sport, flags="FA", seq=cs, ack=ss))
            self._add(se / S / TCP(sport=sport, dport=cport, flags="FA", seq=ss, ack=cs + 1))
            self._add(ce / C / TCP(sport=cport, dport=sport, flags="A", seq=cs + 1, ack=ss + 1))

    def wait(self, seconds: float) -> None:
        self.t += seconds

    def write(self, path: Path) -> Path:
        wrpcap(str(path), self.pkts)
        return path
