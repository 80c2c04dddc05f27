"""TPACKET_V3 block parsing on synthetic blocks, BPF compilation, and (as root) a
real ring on the loopback interface."""

from __future__ import annotations

import os
import shutil
import socket
import struct
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from sensor.errors import InputError
from sensor.live.afpacket import (
    AfPacketRing,
    RingSet,
    RingSettings,
    _Block,
    batch_from_blocks,
    compile_bpf,
    linktype_of,
    parse_block,
    parse_ddd,
)
from sensor.sources.batch import LINKTYPE_ETHERNET

ROOT = Path(__file__).resolve().parents[3]
HDR = 48  # sizeof(struct tpacket3_hdr)
MAC_OFF = 82  # where the kernel puts an Ethernet frame: align16(48 + 20 + 16) - 14


def make_block(frames: list[tuple[bytes, int, int, int]], size: int = 8192) -> np.ndarray:
    """A block as the kernel lays it out: (frame, wire len, sec, nsec) per packet."""
    blk = bytearray(size)
    first = 48  # after the block descriptor
    o = first
    offs = []
    for data, wire, sec, nsec in frames:
        offs.append(o)
        nxt = (MAC_OFF + len(data) + 15) & ~15
        struct.pack_into("<IIIIIIHH", blk, o, nxt, sec, nsec, len(data), wire, 1, MAC_OFF, 0)
        blk[o + MAC_OFF:o + MAC_OFF + len(data)] = data
        o += nxt
    struct.pack_into("<I", blk, offs[-1], 0)  # the last packet's next offset is 0
    struct.pack_into("<IIIIII", blk, 0, 1, 0, 1, len(frames), first, o)
    return np.frombuffer(bytes(blk), dtype=np.uint8).copy()


def test_parse_block_walks_the_chain_and_reads_headers_with_numpy():
    frames = [(bytes([i]) * (60 + 7 * i), 60 + 7 * i + (100 if i == 2 else 0), 1000 + i, 5 * i)
              for i in range(4)]
    blk = make_block(frames)
    offs, blen = parse_block(blk)
    assert len(offs) == 4 and offs[0] == 48 and blen > offs[-1]
    b2 = make_block(frames[:1])
    batch = batch_from_blocks([_Block(blk, offs), _Block(b2, parse_block(b2)[0])],
                              LINKTYPE_ETHERNET)
    assert len(batch) == 5
    for i, (data, wire, sec, nsec) in enumerate(frames + frames[:1]):
        assert batch.packet(i) == data
        assert batch.origlens[i] == wire
        assert batch.ts_ns[i] == sec * 1_000_000_000 + nsec
    assert (batch.linktypes == LINKTYPE_ETHERNET).all()


def test_a_corrupt_chain_stops_inside_the_block():
    blk = make_block([(b"x" * 60, 60, 1, 0), (b"y" * 60, 60, 1, 0)])
    struct.pack_into("<I", blk, 48, 1 << 30)  # first packet points far outside
    offs, _ = parse_block(blk)
    assert offs.tolist() == [48]


def test_counters_count_truncated_packets():
    from sensor.live.afpacket import CaptureCounters
    blk = make_block([(b"a" * 60, 1500, 1, 0), (b"b" * 60, 60, 1, 0)])
    c = CaptureCounters()
    batch_from_blocks([_Block(blk, parse_block(blk)[0])], LINKTYPE_ETHERNET, c)
    assert (c.packets, c.bytes, c.truncated, c.blocks) == (2, 120, 1, 1)


def test_parse_ddd():
    assert parse_ddd("2\n40 0 0 12\n6 0 0 262144\n") == [(40, 0, 0, 12), (6, 0, 0, 262144)]
    with pytest.raises(InputError):
        parse_ddd("3\n40 0 0 12\n")
    with pytest.raises(InputError):
        parse_ddd("garbage")


@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump absent")
def test_compile_bpf_with_tcpdump():
    prog = compile_bpf("udp port 53", LINKTYPE_ETHERNET)
    assert prog[-1][0] == 6  # ends with a return
    with pytest.raises(InputError, match="bad capture filter"):
        compile_bpf("port banana", LINKTYPE_ETHERNET)


def test_without_tcpdump_a_filter_is_refused(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(InputError, match="needs tcpdump"):
        compile_bpf("tcp", LINKTYPE_ETHERNET)


def test_ring_settings_are_checked():
    with pytest.raises(InputError):
        RingSettings(block_size=1000).check()
    with pytest.raises(InputError):
        RingSettings(block_count=1).check()
    RingSettings().check()


def test_linktype_of():
    assert linktype_of("lo") == LINKTYPE_ETHERNET
    with pytest.raises(InputError, match="no such"):
        linktype_of("nonexistent0")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (AF_PACKET)")
def test_ring_on_loopback_with_filter_and_stats():
    port = 40000 + os.getpid() % 20000
    r = AfPacketRing("lo", RingSettings(block_size=1 << 16, block_count=4, block_timeout_ms=10,
                                        promisc=False, bpf_filter=f"udp port {port}")).open()
    rs = RingSet([r])
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for i in range(5):
            s.sendto(b"z" * (10 + i), ("127.0.0.1", port))
        s.sendto(b"other", ("127.0.0.1", port + 1))  # filtered out
        s.close()
        got = []
        end = time.monotonic() + 3
        while len(got) < 10 and time.monotonic() < end:
            rs.wait(0.1)
            for b in rs.batches(1000):
                got += [b.packet(i) for i in range(len(b))]
        # loopback shows each datagram twice (out and in)
        assert len(got) == 10
        assert sorted({len(p) for p in got}) == [14 + 28 + 10 + i for i in range(5)]
        st = rs.stats()["lo"]
        assert st.packets == 10 and st.kernel_packets >= 10 and st.kernel_drops == 0
    finally:
        rs.close()


def test_vlan_tag_is_put_back_into_the_frame():
    """The kernel moves the 802.1Q tag into the header; the batch has it back in place."""
    frame = bytes(range(12)) + b"\x08\x00" + b"\x45" + bytes(45)
    blk = make_block([(frame, len(frame), 1, 0), (frame, len(frame), 1, 0)])
    offs, _ = parse_block(blk)
    # packet 0: VLAN 42 with priority 5, TPID given; packet 1: untagged
    o = int(offs[0])
    status = struct.unpack_from("<I", blk, o + 20)[0] | (1 << 4) | (1 << 6)
    struct.pack_into("<I", blk, o + 20, status)
    struct.pack_into("<IH", blk, o + 32, (5 << 13) | 42, 0x88A8)
    batch = batch_from_blocks([_Block(blk, offs)], LINKTYPE_ETHERNET)
    assert batch.packet(0) == frame[:12] + b"\x88\xa8" + struct.pack(">H", (5 << 13) | 42) \
        + frame[12:]
    assert batch.caplens[0] == batch.origlens[0] == len(frame) + 4
    assert batch.packet(1) == frame


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("tcpreplay") is None,
                    reason="needs root and tcpreplay")
def test_frames_arrive_byte_for_byte_on_a_veth(tmp_path):
    """tcpreplay into a veth: what the ring gives is the capture file's frames,
    VLAN tags included (the kernel strips them on receive)."""
    import subprocess

    from sensor.sources.capture import open_capture
    scapy = pytest.importorskip("scapy.all")
    pkts = [scapy.Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
            / scapy.Dot1Q(vlan=100 + i) / scapy.IP(src="10.1.0.1", dst="10.1.0.2")
            / scapy.UDP(sport=1000 + i, dport=53) / (b"x" * i) for i in range(3)]
    pkts.append(scapy.Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
                / scapy.IP(src="10.1.0.1", dst="10.1.0.2") / scapy.TCP(sport=5, dport=443))
    pcap = tmp_path / "v.pcap"
    scapy.wrpcap(str(pcap), pkts)
    with open_capture(pcap) as r:
        want = [b.packet(i) for b in r.batches(100) for i in range(len(b))]
    ns = f"saiafp{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        for cmd in (["link", "add", "va", "type", "veth", "peer", "name", "vb"],
                    ["link", "set", "va", "up"], ["link", "set", "vb", "up"]):
            subprocess.run(["ip", "-n", ns, *cmd], check=True)
        code = (
            "import sys, time\n"
            "from sensor.live.afpacket import AfPacketRing, RingSet, RingSettings\n"
            "r = AfPacketRing('vb', RingSettings(1 << 16, 4, 10, True, 'udp or tcp')).open()\n"
            "rs = RingSet([r]); print('ready', flush=True)\n"
            "got = []\n"
            "end = time.monotonic() + 10\n"
            "while len(got) < 4 and time.monotonic() < end:\n"
            "    rs.wait(0.1)\n"
            "    got += [b.packet(i).hex() for b in rs.batches(100) for i in range(len(b))]\n"
            "print(' '.join(got), flush=True)\n")
        p = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", code],
                             stdout=subprocess.PIPE, text=True, cwd=ROOT)
        assert p.stdout is not None
        assert p.stdout.readline().strip() == "ready"
        subprocess.run(["ip", "netns", "exec", ns, "tcpreplay", "-q", "-i", "va", str(pcap)],
                       check=True, capture_output=True)
        out = p.stdout.readline().split()
        p.wait(timeout=15)
        assert [bytes.fromhex(x) for x in out] == want
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)

