"""Linux AF_PACKET capture with a TPACKET_V3 memory-mapped ring.

The kernel fills fixed-size blocks with packets; a block handed to user space
(``block_status & TP_STATUS_USER``) is copied once into a numpy buffer, its
packet headers are read with numpy (only the ``tp_next_offset`` chain is walked
in Python), and the block is returned to the kernel at once. Several ready
blocks are joined into one :class:`PacketBatch` for the pipeline.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import mmap
import os
import select
import shutil
import socket
import struct
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from sensor.errors import InputError
from sensor.sources.batch import LINKTYPE_ETHERNET, LINKTYPE_RAW, PacketBatch

SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_RX_RING = 5
PACKET_STATISTICS = 6
PACKET_VERSION = 10
PACKET_FANOUT = 18
TPACKET_V3 = 2
PACKET_MR_PROMISC = 1
PACKET_FANOUT_HASH = 0
PACKET_FANOUT_FLAG_DEFRAG = 0x8000
SO_ATTACH_FILTER = 26
ETH_P_ALL = 0x0003
TP_STATUS_KERNEL = 0
TP_STATUS_USER = 1

# struct tpacket_block_desc / tpacket_hdr_v1 offsets
_BLK_STATUS, _BLK_NUM_PKTS, _BLK_FIRST, _BLK_LEN = 8, 12, 16, 20
# struct tpacket3_hdr offsets (all headers are 16-byte aligned in the block)
_H_NEXT, _H_SEC, _H_NSEC, _H_SNAPLEN, _H_LEN, _H_MAC = 0, 4, 8, 12, 16, 24
_H_STATUS, _H_VLAN_TCI, _H_VLAN_TPID = 20, 32, 36
TP_STATUS_VLAN_VALID = 1 << 4
TP_STATUS_VLAN_TPID_VALID = 1 << 6
_HDR_END = 68  # TPACKET_ALIGN(sizeof(tpacket3_hdr)) + sizeof(sockaddr_ll): free after this
_MAC12 = np.arange(12, dtype=np.int64)

# ARPHRD_* (/sys/class/net/IF/type) -> pcap link type of what AF_PACKET/SOCK_RAW gives
_ARPHRD_LINKTYPE = {1: LINKTYPE_ETHERNET, 772: LINKTYPE_ETHERNET, 65534: LINKTYPE_RAW,
                    776: LINKTYPE_RAW, 778: LINKTYPE_RAW}
_TCPDUMP_LINKTYPE = {LINKTYPE_ETHERNET: "EN10MB", LINKTYPE_RAW: "RAW"}

_U32 = struct.Struct("<I")


@dataclass(frozen=True, slots=True)
class RingSettings:
    block_size: int = 1 << 20  # bytes, a multiple of the page size
    block_count: int = 64  # ring size = block_size * block_count
    block_timeout_ms: int = 100  # the kernel hands over a partly filled block after this
    promisc: bool = True
    bpf_filter: str | None = None
    fanout_group: int | None = None  # same id for every worker on one interface

    def check(self) -> None:
        page = mmap.PAGESIZE
        if self.block_size < page or self.block_size % page:
            raise InputError(f"block size must be a multiple of the page size ({page})")
        if self.block_count < 2:
            raise InputError("the ring needs at least 2 blocks")
        if not 1 <= self.block_timeout_ms <= 60_000:
            raise InputError("block timeout must be 1..60000 ms")


@dataclass(slots=True)
class CaptureCounters:
    packets: int = 0  # packets handed to the pipeline
    bytes: int = 0  # captured bytes handed to the pipeline
    truncated: int = 0  # packets cut by the block size (caplen < len)
    kernel_packets: int = 0  # tpacket_stats_v3.tp_packets (includes drops), accumulated
    kernel_drops: int = 0  # tpacket_stats_v3.tp_drops: ring full
    kernel_freezes: int = 0  # tp_freeze_q_cnt: times the queue froze
    blocks: int = 0
    socket_errors: int = 0  # e.g. ENETDOWN while the link was down

    def as_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in self.__slots__}

    def count(self, caplens: npt.NDArray[np.int32], origlens: npt.NDArray[np.int32]) -> None:
        """Packets handed to the pipeline (any backend)."""
        self.packets += len(caplens)
        self.bytes += int(caplens.sum())
        self.truncated += int(np.count_nonzero(caplens < origlens))


def linktype_of(iface: str) -> int:
    """The pcap link type of an interface from its ARPHRD type."""
    try:
        arphrd = int(Path(f"/sys/class/net/{iface}/type").read_text().strip())
    except (OSError, ValueError):
        raise InputError(f"{iface}: no such network interface") from None
    lt = _ARPHRD_LINKTYPE.get(arphrd)
    if lt is None:
        raise InputError(f"{iface}: unsupported link type (ARPHRD {arphrd})")
    return lt


def compile_bpf(expr: str, linktype: int) -> list[tuple[int, int, int, int]]:
    """Compile a tcpdump filter expression to classic BPF with ``tcpdump -ddd``."""
    exe = shutil.which("tcpdump")
    if exe is None:
        raise InputError("a capture filter needs tcpdump to compile it; install tcpdump "
                         "or run without --filter")
    try:
        r = subprocess.run([exe, "-ddd", "-y", _TCPDUMP_LINKTYPE[linktype], expr],
                           capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise InputError(f"cannot run tcpdump to compile the filter: {e}") from None
    if r.returncode != 0:
        msg = r.stderr.strip().splitlines()[-1] if r.stderr.strip() else "error"
        raise InputError(f"bad capture filter {expr!r}: {msg}")
    return parse_ddd(r.stdout)


def parse_ddd(text: str) -> list[tuple[int, int, int, int]]:
    """``tcpdump -ddd`` output: a count line, then ``code jt jf k`` per instruction."""
    lines = [ln.split() for ln in text.strip().splitlines() if ln.strip()]
    try:
        n = int(lines[0][0])
        prog = [(int(a), int(b), int(c), int(d)) for a, b, c, d in lines[1:]]
    except (IndexError, ValueError):
        raise InputError("tcpdump -ddd gave unreadable output") from None
    if n != len(prog) or not prog:
        raise InputError("tcpdump -ddd gave a truncated program")
    return prog


def attach_bpf(sock: socket.socket, prog: list[tuple[int, int, int, int]]) -> None:
    class SockFilter(ctypes.Structure):
        _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8),
                    ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(SockFilter))]

    arr = (SockFilter * len(prog))(*[SockFilter(*ins) for ins in prog])
    fprog = SockFprog(len(prog), ctypes.cast(arr, ctypes.POINTER(SockFilter)))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, bytes(fprog))  # the kernel copies it


@dataclass(slots=True)
class _Block:
    data: npt.NDArray[np.uint8]
    offsets: npt.NDArray[np.int64]  # header offsets within the block


def parse_block(block: npt.NDArray[np.uint8]) -> tuple[npt.NDArray[np.int64], int]:
    """Header offsets of the packets of one (copied) block, and its used length."""
    mv = memoryview(block)  # type: ignore[arg-type]
    num = _U32.unpack_from(mv, _BLK_NUM_PKTS)[0]
    first = _U32.unpack_from(mv, _BLK_FIRST)[0]
    blen = min(_U32.unpack_from(mv, _BLK_LEN)[0], len(block))
    offs = np.empty(num, dtype=np.int64)
    o = first
    unpack = _U32.unpack_from
    for i in range(num):  # the only per-packet Python: a chain of next offsets
        if o + 48 > blen:
            return offs[:i], blen  # a corrupt chain: keep what is sane
        offs[i] = o
        o += unpack(mv, o)[0]
    return offs, blen


def batch_from_blocks(blocks: list[_Block], linktype: int,
                      counters: CaptureCounters | None = None) -> PacketBatch:
    """Join copied blocks into one PacketBatch (header fields read with numpy)."""
    sizes = [len(b.data) for b in blocks]
    slots = [(n + 15) & ~15 for n in sizes]  # keep every block 16-byte aligned in buf
    buf = np.zeros(sum(slots) + 64, dtype=np.uint8)  # tail pad: decoders may peek past
    u32 = buf.view("<u4")
    u16 = buf.view("<u2")
    pos = 0
    offs_all, cap_all, orig_all, ts_all = [], [], [], []
    for b, size, slot in zip(blocks, sizes, slots, strict=True):
        buf[pos:pos + size] = b.data
        h = pos + b.offsets
        sec = u32[(h + _H_SEC) >> 2].astype(np.int64)
        nsec = u32[(h + _H_NSEC) >> 2].astype(np.int64)
        snap = u32[(h + _H_SNAPLEN) >> 2].astype(np.int64)
        wire = u32[(h + _H_LEN) >> 2].astype(np.int64)
        data_off = h + u16[(h + _H_MAC) >> 1].astype(np.int64)
        if linktype == LINKTYPE_ETHERNET:
            _restore_vlan(buf, u32, u16, h, data_off, snap, wire)
        snap = np.minimum(snap, (pos + size - data_off).clip(0))
        offs_all.append(data_off)
        cap_all.append(snap.astype(np.int32))
        orig_all.append(np.minimum(wire, 2**31 - 1).astype(np.int32))
        ts_all.append(sec * 1_000_000_000 + nsec)
        pos += slot
    offsets = np.concatenate(offs_all) if offs_all else np.zeros(0, np.int64)
    caplens = np.concatenate(cap_all) if cap_all else np.zeros(0, np.int32)
    origlens = np.concatenate(orig_all) if orig_all else np.zeros(0, np.int32)
    ts = np.concatenate(ts_all) if ts_all else np.zeros(0, np.int64)
    if counters is not None:
        counters.count(caplens, origlens)
        counters.blocks += len(blocks)
    return PacketBatch(buf, offsets, caplens, origlens, ts,
                       np.full(len(offsets), linktype, dtype=np.int32), pos)


def _restore_vlan(buf: npt.NDArray[np.uint8], u32: npt.NDArray[np.uint32],
                  u16: npt.NDArray[np.uint16], h: npt.NDArray[np.int64],
                  data_off: npt.NDArray[np.int64], snap: npt.NDArray[np.int64],
                  wire: npt.NDArray[np.int64]) -> None:
    """Put back the 802.1Q tag the kernel took out of the frame (it is in the header),
    as libpcap does, so the pipeline sees the frame as it was on the wire. The 12 MAC
    bytes move 4 bytes down into the gap the kernel leaves before the frame."""
    status = u32[(h + _H_STATUS) >> 2]
    sel = np.flatnonzero((status & TP_STATUS_VLAN_VALID).astype(bool)
                         & (data_off - 4 >= h + _HDR_END) & (snap >= 12))
    if sel.size == 0:
        return
    hs, old = h[sel], data_off[sel]
    new = old - 4
    buf[new[:, None] + _MAC12] = buf[old[:, None] + _MAC12]  # RHS is copied first
    tci = u32[(hs + _H_VLAN_TCI) >> 2].astype(np.uint16)
    tpid_ok = (status[sel] & TP_STATUS_VLAN_TPID_VALID).astype(bool)
    tpid = np.where(tpid_ok, u16[(hs + _H_VLAN_TPID) >> 1], 0x8100).astype(np.uint16)
    tpid = np.where(tpid == 0, np.uint16(0x8100), tpid)
    buf[new + 12], buf[new + 13] = tpid >> 8, tpid & 0xFF
    buf[new + 14], buf[new + 15] = tci >> 8, tci & 0xFF
    data_off[sel] = new
    snap[sel] += 4
    wire[sel] += 4


@dataclass(slots=True)
class AfPacketRing:
    """One interface, one socket, one mmap'ed TPACKET_V3 ring."""

    iface: str
    settings: RingSettings = field(default_factory=RingSettings)
    linktype: int = LINKTYPE_ETHERNET
    counters: CaptureCounters = field(default_factory=CaptureCounters)
    _sock: socket.socket | None = None
    _mm: mmap.mmap | None = None
    _ring: npt.NDArray[np.uint8] | None = None
    _next: int = 0
    ifindex: int = 0

    def open(self) -> AfPacketRing:
        s = self.settings
        s.check()
        self.linktype = linktype_of(self.iface)
        prog = compile_bpf(s.bpf_filter, self.linktype) if s.bpf_filter else None
        try:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        except PermissionError:
            raise InputError(f"{self.iface}: capture needs CAP_NET_RAW (run as root or "
                             "with the systemd unit's capabilities)") from None
        except (OSError, AttributeError) as e:
            raise InputError(f"{self.iface}: AF_PACKET is unavailable: {e}") from None
        try:
            sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
            req = struct.pack("<7I", s.block_size, s.block_count, s.block_size,
                              s.block_count, s.block_timeout_ms, 0, 0)
            sock.setsockopt(SOL_PACKET, PACKET_RX_RING, req)
            self._mm = mmap.mmap(sock.fileno(), s.block_size * s.block_count,
                                 mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
            self._ring = np.frombuffer(self._mm, dtype=np.uint8)
            if prog is not None:
                attach_bpf(sock, prog)
            sock.bind((self.iface, ETH_P_ALL))
            self.ifindex = socket.if_nametoindex(self.iface)
            if s.promisc:
                mreq = struct.pack("<iHH8s", self.ifindex, PACKET_MR_PROMISC, 0, b"")
                sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
            if s.fanout_group is not None:
                val = ((PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_DEFRAG) << 16) | (
                    s.fanout_group & 0xFFFF)
                sock.setsockopt(SOL_PACKET, PACKET_FANOUT, struct.pack("<I", val))
        except OSError as e:
            self._sock = sock
            self.close()
            raise InputError(f"{self.iface}: cannot set up the capture ring: {e}") from None
        self._sock = sock
        return self

    def fileno(self) -> int:
        assert self._sock is not None
        return self._sock.fileno()

    def ready(self) -> bool:
        assert self._ring is not None
        base = self._next * self.settings.block_size
        return bool(_U32.unpack_from(self._mm, base + _BLK_STATUS)[0]  # type: ignore[arg-type]
                    & TP_STATUS_USER)

    def take_blocks(self, max_packets: int) -> list[_Block]:
        """Copy out the ready blocks (up to about ``max_packets``) and release them."""
        assert self._ring is not None and self._mm is not None
        out: list[_Block] = []
        n = 0
        bs = self.settings.block_size
        for _ in range(self.settings.block_count):
            if n >= max_packets or not self.ready():
                break
            base = self._next * bs
            blen = min(_U32.unpack_from(self._mm, base + _BLK_LEN)[0], bs)
            data = self._ring[base:base + max(blen, 64)].copy()
            struct.pack_into("<I", self._mm, base + _BLK_STATUS, TP_STATUS_KERNEL)
            self._next = (self._next + 1) % self.settings.block_count
            offs, _ = parse_block(data)
            if len(offs):
                out.append(_Block(data, offs))
                n += len(offs)
        return out

    def read_stats(self) -> CaptureCounters:
        """Fold the kernel's counters (reset by each read) into ``counters``."""
        if self._sock is not None:
            raw = self._sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 12)
            pk, dr, fz = struct.unpack("<3I", raw)
            self.counters.kernel_packets += pk
            self.counters.kernel_drops += dr
            self.counters.kernel_freezes += fz
        return self.counters

    def close(self) -> None:
        self._ring = None
        if self._mm is not None:
            with contextlib.suppress(BufferError):  # a view still exists: the GC closes it
                self._mm.close()
            self._mm = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class RingSet:
    """Several interfaces polled together; yields batches of about ``max_packets``."""

    def __init__(self, rings: list[AfPacketRing]) -> None:
        self.rings = rings
        self._poll = select.poll()
        for r in rings:
            self._poll.register(r.fileno(), select.POLLIN | select.POLLERR)

    def wait(self, timeout_s: float, extra_fds: tuple[int, ...] = ()) -> set[int]:
        """Block until a ring has a block or an extra fd is readable."""
        if any(r.ready() for r in self.rings):
            return set()
        for fd in extra_fds:
            self._poll.register(fd, select.POLLIN)
        try:
            ev = self._poll.poll(int(timeout_s * 1000))
        finally:
            for fd in extra_fds:
                self._poll.unregister(fd)
        for fd, mask in ev:
            if mask & (select.POLLERR | select.POLLHUP) and fd not in extra_fds:
                self._socket_error(fd)
        return {fd for fd, _ in ev if fd in extra_fds}

    def _socket_error(self, fd: int) -> None:
        """Read (and so clear) a socket error: a vanished interface ends the capture,
        a link going down is only counted (the ring resumes when it comes back)."""
        ring = next(r for r in self.rings if r.fileno() == fd)
        assert ring._sock is not None
        err = ring._sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err == errno.ENODEV:
            raise InputError(f"{ring.iface}: the interface is gone")
        if err:
            ring.counters.socket_errors += 1
            time.sleep(0.05)  # a link flapping must not spin the worker

    def batches(self, max_packets: int) -> list[PacketBatch]:
        out = []
        for r in self.rings:
            blocks = r.take_blocks(max_packets)
            if blocks:
                out.append(batch_from_blocks(blocks, r.linktype, r.counters))
        return out

    def stats(self) -> dict[str, CaptureCounters]:
        return {r.iface: r.read_stats() for r in self.rings}

    def check(self) -> None:
        """InputError if an interface was removed (or replaced: a new index) since
        the socket was bound to it; the socket would never see a packet again."""
        for r in self.rings:
            try:
                idx = socket.if_nametoindex(r.iface)
            except OSError:
                idx = 0
            if idx != r.ifindex:
                raise InputError(f"{r.iface}: the interface is gone")

    def close(self) -> None:
        for r in self.rings:
            r.close()


def fanout_group_ids(n_ifaces: int) -> list[int]:
    """A distinct fanout group per interface, unlikely to clash with other processes."""
    base = (os.getpid() * 8) & 0xFFF8
    return [(base + i) & 0xFFFF for i in range(n_ifaces)]
