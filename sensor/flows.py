"""The flow table: bidirectional flows aggregated per batch with numpy.

Flows live in column arrays indexed by slot; a sorted key array maps flow keys
to slots, so a whole batch is looked up with one ``searchsorted`` and updated
with ``reduceat`` sums. Python code runs per *exported* flow only when a
caller asks for it, never per packet.

Direction: a flow's client is the sender of a pure SYN, else the receiver of a
SYN-ACK, else (capture started mid-flow, UDP) the side with the higher port
when the other is a well-known port, else the first sender seen.
"""

from __future__ import annotations

import binascii
import functools
import hashlib
import socket
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from sensor.decoders.link import PROTO_TCP, PROTO_UDP, Columns, ip_text

I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]
B = npt.NDArray[np.bool_]

_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xBF58476D1CE4E5B9)
_M3 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)

TCP_FIN, TCP_SYN, TCP_RST, TCP_ACK = 0x01, 0x02, 0x04, 0x10


def _mix(h: U64, v: U64 | np.uint64) -> U64:
    """splitmix64-style combine; uint64 arithmetic wraps."""
    x = (h ^ v) * _M1
    x = (x ^ (x >> _S30)) * _M2
    x = (x ^ (x >> _S27)) * _M3
    return x ^ (x >> _S31)


def flow_keys(c: Columns) -> tuple[U64, B]:
    """A direction-independent 64-bit key per packet, and whether the packet
    goes from the canonical lower endpoint to the upper one."""
    s_lt = (c.src_hi < c.dst_hi) | (
        (c.src_hi == c.dst_hi)
        & ((c.src_lo < c.dst_lo) | ((c.src_lo == c.dst_lo) & (c.sport <= c.dport)))
    )
    a_hi = np.where(s_lt, c.src_hi, c.dst_hi)
    a_lo = np.where(s_lt, c.src_lo, c.dst_lo)
    b_hi = np.where(s_lt, c.dst_hi, c.src_hi)
    b_lo = np.where(s_lt, c.dst_lo, c.src_lo)
    pa = np.where(s_lt, c.sport, c.dport).astype(np.uint64)
    pb = np.where(s_lt, c.dport, c.sport).astype(np.uint64)
    misc = (pa << np.uint64(32)) | (pb << np.uint64(16)) | c.proto.astype(np.uint64) \
        | (c.vlan.astype(np.uint64) << np.uint64(48))
    h = _mix(a_hi, _M2)
    h = _mix(h, a_lo)
    h = _mix(h, b_hi)
    h = _mix(h, b_lo)
    h = _mix(h, misc)
    return h, s_lt


def pair_keys(a_hi: U64, a_lo: U64, b_hi: U64, b_lo: U64) -> U64:
    """An ordered 64-bit key for a (client address, server address) pair."""
    return _mix(_mix(_mix(_mix(a_hi, _M3), a_lo), b_hi), b_lo)


@functools.lru_cache(maxsize=65536)  # clients and servers repeat
def _packed(ip: str) -> bytes:
    # inet_pton is C: 20x faster than ipaddress for the per-observation hash
    return socket.inet_pton(socket.AF_INET6 if ":" in ip else socket.AF_INET, ip)


_CID_PORTS = struct.Struct("!BBHH")
_CID_NOPORTS = struct.Struct("!BB")


def community_id(src_ip: str, src_port: int, dst_ip: str, dst_port: int, proto: int,
                 seed: int = 0) -> str:
    """Community ID v1 (https://github.com/corelight/community-id-spec)."""
    sa = _packed(src_ip)
    da = _packed(dst_ip)
    if (sa, src_port) > (da, dst_port):
        sa, da, src_port, dst_port = da, sa, dst_port, src_port
    tail = (_CID_PORTS.pack(proto, 0, src_port, dst_port) if proto in (PROTO_TCP, PROTO_UDP, 132)
            else _CID_NOPORTS.pack(proto, 0))
    digest = hashlib.sha1(seed.to_bytes(2, "big") + sa + da + tail).digest()
    return "1:" + binascii.b2a_base64(digest, newline=False).decode()


def mac_text(v: int) -> str | None:
    if v == 0:
        return None
    return ":".join(f"{(v >> s) & 0xFF:02x}" for s in range(40, -8, -8))


@dataclass(slots=True)
class FlowRecord:
    """One exported flow. Counts are client->server / server->client."""

    key: int
    proto: int
    client_ip: str
    client_port: int
    server_ip: str
    server_port: int
    vlan: int
    client_mac: str | None
    first_ns: int
    last_ns: int
    packets_client_to_server: int
    packets_server_to_client: int
    bytes_client_to_server: int  # IP-layer bytes (header + payload), as Zeek's *_ip_bytes
    bytes_server_to_client: int
    end_reason: str  # "idle" | "active" | "evicted" | "closed" | "end"


@dataclass(slots=True)
class Expired:
    """Flows leaving the table in one step, as columns (slot order irrelevant)."""

    key: U64
    client_hi: U64
    client_lo: U64
    server_hi: U64
    server_lo: U64
    client_port: I64
    server_port: I64
    proto: I64
    vlan: I64
    client_mac: U64
    first_ns: I64
    last_ns: I64
    pkts_c2s: I64
    pkts_s2c: I64
    bytes_c2s: I64
    bytes_s2c: I64
    reason: str

    def __len__(self) -> int:
        return int(self.key.shape[0])

    def record(self, i: int) -> FlowRecord:
        return FlowRecord(
            key=int(self.key[i]),
            proto=int(self.proto[i]),
            client_ip=ip_text(int(self.client_hi[i]), int(self.client_lo[i])),
            client_port=int(self.client_port[i]),
            server_ip=ip_text(int(self.server_hi[i]), int(self.server_lo[i])),
            server_port=int(self.server_port[i]),
            vlan=int(self.vlan[i]),
            client_mac=mac_text(int(self.client_mac[i])),
            first_ns=int(self.first_ns[i]),
            last_ns=int(self.last_ns[i]),
            packets_client_to_server=int(self.pkts_c2s[i]),
            packets_server_to_client=int(self.pkts_s2c[i]),
            bytes_client_to_server=int(self.bytes_c2s[i]),
            bytes_server_to_client=int(self.bytes_s2c[i]),
            end_reason=self.reason,
        )


@dataclass(frozen=True, slots=True)
class FlowTimeouts:
    tcp_idle_s: float = 300.0  # Zeek's tcp_inactivity_timeout
    udp_idle_s: float = 60.0  # Zeek's udp_inactivity_timeout
    other_idle_s: float = 60.0
    closed_linger_s: float = 15.0  # after FIN from both sides or RST
    active_s: float = 1800.0  # long flows are exported every 30 min and go on


_COLS = {**dict.fromkeys(("key", "low_hi", "low_lo", "up_hi", "up_lo", "mac_low", "mac_up"),
                         np.uint64),
         **dict.fromkeys(("low_port", "up_port", "proto", "vlan", "first_ns", "last_ns",
                          "pk_lu", "pk_ul", "by_lu", "by_ul", "fl_lu", "fl_ul"), np.int64)}


@dataclass(slots=True)
class FlowStats:
    flows_created: int = 0
    flows_evicted: int = 0  # pushed out by the memory bound (LRU)


class FlowTable:
    """Bounded bidirectional flow table updated one batch at a time."""

    def __init__(self, max_flows: int = 500_000, timeouts: FlowTimeouts | None = None) -> None:
        self.max_flows = max_flows
        self.timeouts = timeouts or FlowTimeouts()
        self.stats = FlowStats()
        self._cap = 0
        self._cols: dict[str, npt.NDArray[Any]] = {}  # dtypes as in _COLS
        self._client_low: B = np.zeros(0, dtype=bool)
        self._free: I64 = np.zeros(0, dtype=np.int64)  # a stack of free slots, top at _nfree
        self._nfree = 0
        self._skeys: U64 = np.zeros(0, dtype=np.uint64)  # sorted keys
        self._sslots: I64 = np.zeros(0, dtype=np.int64)  # their slots
        self._grow(1024)
        self._last_sweep_ns = -(1 << 62)

    def __len__(self) -> int:
        return int(self._skeys.shape[0])

    def _grow(self, cap: int) -> None:
        old = self._cap
        for name, dtype in _COLS.items():
            a = np.zeros(cap, dtype=dtype)
            if old:
                a[:old] = self._cols[name]
            self._cols[name] = a
        cl = np.zeros(cap, dtype=bool)
        cl[:old] = self._client_low
        self._client_low = cl
        free = np.empty(cap, dtype=np.int64)  # never more than cap entries
        free[: self._nfree] = self._free[: self._nfree]
        free[self._nfree : self._nfree + cap - old] = np.arange(cap - 1, old - 1, -1)
        self._free = free
        self._nfree += cap - old
        self._cap = cap

    def _alloc(self, count: int) -> I64:
        if self._nfree < count:
            self._grow(max(self._cap * 2, self._cap + count))
        self._nfree -= count
        return self._free[self._nfree : self._nfree + count][::-1].copy()

    def update(self, c: Columns, ts_ns: I64, keys: U64, low_src: B) -> None:
        """Account every valid packet of a batch (``c.ok``) to its flow."""
        sel = np.flatnonzero(c.ok)
        if sel.size == 0:
            return
        keys = keys[sel]
        order = np.argsort(keys, kind="stable")
        ks = keys[order]
        n = ks.shape[0]
        bnd = np.flatnonzero(np.concatenate(([True], ks[1:] != ks[:-1])))
        uk = ks[bnd]
        pidx = sel[order]  # batch packet indices in key order (time order within a key)
        first = pidx[bnd]
        last = pidx[np.concatenate((bnd[1:], [n])) - 1]
        fwd = low_src[pidx]
        byt = c.ip_bytes[pidx]
        flg = c.tcp_flags[pidx].astype(np.int64)
        mac = c.src_mac[pidx]
        one = fwd.astype(np.int64)
        pk_lu = np.add.reduceat(one, bnd)
        pk_ul = np.add.reduceat(1 - one, bnd)
        by_lu = np.add.reduceat(np.where(fwd, byt, 0), bnd)
        by_ul = np.add.reduceat(np.where(fwd, 0, byt), bnd)
        fl_lu = np.bitwise_or.reduceat(np.where(fwd, flg, 0), bnd)
        fl_ul = np.bitwise_or.reduceat(np.where(fwd, 0, flg), bnd)
        mac_lu = np.maximum.reduceat(np.where(fwd, mac, np.uint64(0)), bnd)
        mac_ul = np.maximum.reduceat(np.where(fwd, np.uint64(0), mac), bnd)
        t_first = ts_ns[first]
        t_last = ts_ns[last]

        pos = np.searchsorted(self._skeys, uk)  # also where new keys go in the sorted index
        if self._skeys.size:
            posc = np.minimum(pos, self._skeys.size - 1)
            found = self._skeys[posc] == uk
            slots = np.where(found, self._sslots[posc], -1)
        else:
            found = np.zeros(uk.shape[0], dtype=bool)
            slots = np.full(uk.shape[0], -1, dtype=np.int64)

        new = np.flatnonzero(~found)
        if new.size:
            ns = self._alloc(int(new.size))
            slots[new] = ns
            f = first[new]
            cols = self._cols
            lowsrc = low_src[f]
            cols["key"][ns] = uk[new]
            cols["low_hi"][ns] = np.where(lowsrc, c.src_hi[f], c.dst_hi[f])
            cols["low_lo"][ns] = np.where(lowsrc, c.src_lo[f], c.dst_lo[f])
            cols["up_hi"][ns] = np.where(lowsrc, c.dst_hi[f], c.src_hi[f])
            cols["up_lo"][ns] = np.where(lowsrc, c.dst_lo[f], c.src_lo[f])
            cols["low_port"][ns] = np.where(lowsrc, c.sport[f], c.dport[f])
            cols["up_port"][ns] = np.where(lowsrc, c.dport[f], c.sport[f])
            cols["proto"][ns] = c.proto[f]
            cols["vlan"][ns] = c.vlan[f]
            cols["first_ns"][ns] = t_first[new]
            for name in ("pk_lu", "pk_ul", "by_lu", "by_ul", "fl_lu", "fl_ul"):
                cols[name][ns] = 0
            cols["mac_low"][ns] = 0
            cols["mac_up"][ns] = 0
            fl = c.tcp_flags[f].astype(np.int64)
            syn = (fl & (TCP_SYN | TCP_ACK)) == TCP_SYN
            synack = (fl & (TCP_SYN | TCP_ACK)) == (TCP_SYN | TCP_ACK)
            sp = c.sport[f].astype(np.int64)
            dp = c.dport[f].astype(np.int64)
            src_is_server = (sp < 1024) & (dp >= 1024)
            src_is_client = np.where(syn, True, np.where(synack, False, ~src_is_server))
            self._client_low[ns] = np.where(src_is_client, lowsrc, ~lowsrc)
            self.stats.flows_created += int(new.size)
            # uk is sorted and the new keys are not in the index: a merge, not a sort
            self._skeys = np.insert(self._skeys, pos[new], uk[new])
            self._sslots = np.insert(self._sslots, pos[new], ns)

        cols = self._cols
        cols["last_ns"][slots] = np.maximum(cols["last_ns"][slots], t_last)
        cols["pk_lu"][slots] += pk_lu
        cols["pk_ul"][slots] += pk_ul
        cols["by_lu"][slots] += by_lu
        cols["by_ul"][slots] += by_ul
        cols["fl_lu"][slots] |= fl_lu
        cols["fl_ul"][slots] |= fl_ul
        cols["mac_low"][slots] = np.where(mac_lu != 0, mac_lu, cols["mac_low"][slots])
        cols["mac_up"][slots] = np.where(mac_ul != 0, mac_ul, cols["mac_up"][slots])

    def expire(self, now_ns: int) -> list[Expired]:
        """Export flows that timed out by capture time ``now_ns``, and the LRU overflow."""
        out: list[Expired] = []
        if not self._skeys.size:
            return out
        if now_ns - self._last_sweep_ns < 1_000_000_000 and self._skeys.shape[0] <= self.max_flows:
            return out  # timeouts are seconds long: one sweep per second of capture time
        self._last_sweep_ns = now_ns
        cols = self._cols
        slots = self._sslots
        t = self.timeouts
        proto = cols["proto"][slots]
        last = cols["last_ns"][slots]
        idle = np.where(proto == PROTO_TCP, t.tcp_idle_s,
                        np.where(proto == PROTO_UDP, t.udp_idle_s, t.other_idle_s))
        fl_lu = cols["fl_lu"][slots]
        fl_ul = cols["fl_ul"][slots]
        closed = (proto == PROTO_TCP) & (
            (((fl_lu | fl_ul) & TCP_RST) != 0)
            | (((fl_lu & TCP_FIN) != 0) & ((fl_ul & TCP_FIN) != 0)))
        gone_idle = (now_ns - last) > (idle * 1e9).astype(np.int64)
        gone_closed = closed & ((now_ns - last) > int(t.closed_linger_s * 1e9))
        gone = gone_closed | gone_idle
        if gone.any():
            for mask, reason in ((gone_closed, "closed"), (gone_idle & ~gone_closed, "idle")):
                if mask.any():
                    out.append(self._export(slots[mask], reason))
            self._drop(np.flatnonzero(gone))
        slots = self._sslots
        if slots.size:
            active = (now_ns - cols["first_ns"][slots]) > int(t.active_s * 1e9)
            if active.any():
                s = slots[active]
                out.append(self._export(s, "active"))
                cols["first_ns"][s] = now_ns
                for name in ("pk_lu", "pk_ul", "by_lu", "by_ul"):
                    cols[name][s] = 0
        over = self._skeys.shape[0] - self.max_flows
        if over > 0:
            lastv = cols["last_ns"][self._sslots]
            idx = np.argpartition(lastv, over - 1)[:over]
            self.stats.flows_evicted += over
            out.append(self._remove(idx, "evicted"))
        return out

    def flush(self) -> list[Expired]:
        """Export every flow (end of input)."""
        if not self._skeys.size:
            return []
        return [self._remove(np.arange(self._skeys.shape[0]), "end")]

    def _remove(self, idx: I64, reason: str) -> Expired:
        exp = self._export(self._sslots[idx], reason)
        self._drop(idx)
        return exp

    def _drop(self, idx: I64) -> None:
        """Free the flows at these positions of the sorted key index."""
        s = self._sslots[idx]
        keep = np.ones(self._skeys.shape[0], dtype=bool)
        keep[idx] = False
        self._skeys = self._skeys[keep]
        self._sslots = self._sslots[keep]
        self._free[self._nfree : self._nfree + s.size] = s
        self._nfree += s.size

    def _export(self, s: I64, reason: str) -> Expired:
        c = self._cols
        cl = self._client_low[s]

        def sides(low: str, up: str) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
            """(client's, server's) value: each column gathered once."""
            a, b = c[low][s], c[up][s]
            return np.where(cl, a, b), np.where(cl, b, a)

        client_hi, server_hi = sides("low_hi", "up_hi")
        client_lo, server_lo = sides("low_lo", "up_lo")
        client_port, server_port = sides("low_port", "up_port")
        pkts_c2s, pkts_s2c = sides("pk_lu", "pk_ul")
        bytes_c2s, bytes_s2c = sides("by_lu", "by_ul")
        return Expired(
            key=c["key"][s], client_hi=client_hi, client_lo=client_lo, server_hi=server_hi,
            server_lo=server_lo, client_port=client_port, server_port=server_port,
            proto=c["proto"][s], vlan=c["vlan"][s],
            client_mac=np.where(cl, c["mac_low"][s], c["mac_up"][s]),
            first_ns=c["first_ns"][s], last_ns=c["last_ns"][s], pkts_c2s=pkts_c2s,
            pkts_s2c=pkts_s2c, bytes_c2s=bytes_c2s, bytes_s2c=bytes_s2c, reason=reason,
        )
