"""Fallback live capture through libpcap (the ``pcapy-ng`` package).

For systems without AF_PACKET (or where it is refused). One packet at a time
crosses from C to Python, so it is slower than the ring; packets are gathered
into one buffer per batch so the pipeline sees the same PacketBatch.
"""

from __future__ import annotations

import contextlib
import select
from typing import Any

import numpy as np

from sensor.errors import InputError
from sensor.live.afpacket import CaptureCounters
from sensor.sources.batch import PacketBatch


def _pcapy() -> Any:
    try:
        import pcapy  # type: ignore[import-not-found]
    except ImportError:
        raise InputError("the libpcap capture backend needs the pcapy-ng package "
                         "(pip install pcapy-ng); on Linux use the AF_PACKET backend") from None
    return pcapy


class PcapSet:
    """Several interfaces read with libpcap; the same surface as afpacket.RingSet."""

    def __init__(self, ifaces: list[str], promisc: bool = True, bpf_filter: str | None = None,
                 snaplen: int = 65535, timeout_ms: int = 100) -> None:
        pcapy = _pcapy()
        self.ifaces = ifaces
        self.handles: list[Any] = []
        self.counters = {i: CaptureCounters() for i in ifaces}
        self._linktypes: list[int] = []
        try:
            for iface in ifaces:
                h = pcapy.open_live(iface, snaplen, int(promisc), timeout_ms)
                if bpf_filter:
                    h.setfilter(bpf_filter)
                h.setnonblock(1)
                self.handles.append(h)
                self._linktypes.append(int(h.datalink()))
        except Exception as e:  # pcapy raises its own PcapError for every failure
            raise InputError(f"libpcap capture failed: {e}") from None

    def wait(self, timeout_s: float, extra_fds: tuple[int, ...] = ()) -> set[int]:
        fds = [h.getfd() for h in self.handles] + list(extra_fds)
        r, _, _ = select.select(fds, [], [], timeout_s)
        return {fd for fd in r if fd in extra_fds}

    def batches(self, max_packets: int) -> list[PacketBatch]:
        out = []
        for iface, h, lt in zip(self.ifaces, self.handles, self._linktypes, strict=True):
            datas: list[bytes] = []
            caps: list[int] = []
            origs: list[int] = []
            ts: list[int] = []
            while len(datas) < max_packets:
                hdr, data = h.next()
                if hdr is None:
                    break
                sec, usec = hdr.getts()
                datas.append(data)
                caps.append(len(data))
                origs.append(hdr.getlen())
                ts.append(sec * 1_000_000_000 + usec * 1000)
            if not datas:
                continue
            raw = b"".join(datas) + bytes(64)
            caplens = np.array(caps, dtype=np.int32)
            origlens = np.array(origs, dtype=np.int32)
            self.counters[iface].count(caplens, origlens)
            offsets = np.zeros(len(caps), dtype=np.int64)
            np.cumsum(caplens[:-1], out=offsets[1:])
            out.append(PacketBatch(np.frombuffer(raw, dtype=np.uint8), offsets, caplens,
                                   origlens, np.array(ts, dtype=np.int64),
                                   np.full(len(caps), lt, dtype=np.int32), len(raw) - 64))
        return out

    def stats(self) -> dict[str, CaptureCounters]:
        for iface, h in zip(self.ifaces, self.handles, strict=True):
            recv, drop, ifdrop = h.stats()
            c = self.counters[iface]
            # libpcap's counters are cumulative (not reset by reading, unlike AF_PACKET's)
            c.kernel_packets, c.kernel_drops, c.kernel_freezes = recv, drop + ifdrop, 0
        return self.counters

    def check(self) -> None:
        """libpcap reports a vanished interface as a read error; nothing to poll."""

    def close(self) -> None:
        for h in self.handles:
            with contextlib.suppress(Exception):  # closing twice is harmless
                h.close()
        self.handles = []
