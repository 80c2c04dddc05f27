"""Which name did this client resolve to this server address, before the flow?

Only answers to names the catalog knows are kept (bounded), so a flow with no
SNI and no Host (ECH, resumed sessions, QUIC without a readable Initial) can
still be attributed from the DNS traffic of the same client.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from sensor.decoders.link import ip_halves
from sensor.flows import Expired, pair_keys
from sensor.npsets import member


@dataclass(frozen=True, slots=True)
class Resolution:
    name: str  # the name the client asked for
    ts_ns: int  # when the answer was seen
    ttl_s: int


class DnsCorrelator:
    def __init__(self, max_age_s: float, max_bindings: int) -> None:
        self.max_age_ns = int(max_age_s * 1e9)
        self.max_bindings = max_bindings
        self._bind: OrderedDict[tuple[str, str], list[Resolution]] = OrderedDict()
        self._pairs: dict[int, int] = {}  # pair key -> number of bindings using it
        self._arr: npt.NDArray[np.uint64] = np.zeros(0, dtype=np.uint64)
        self._dirty = False

    def add(self, client_ip: str, server_ip: str, name: str, ts_ns: int, ttl_s: int) -> None:
        k = (client_ip, server_ip)
        lst = self._bind.get(k)
        if lst is None:
            lst = self._bind[k] = []
            pk = _pair(client_ip, server_ip)
            self._pairs[pk] = self._pairs.get(pk, 0) + 1
            self._dirty = True
            if len(self._bind) > self.max_bindings:
                (oc, os_), _ = self._bind.popitem(last=False)
                opk = _pair(oc, os_)
                self._pairs[opk] -= 1
                if not self._pairs[opk]:
                    del self._pairs[opk]
        else:
            self._bind.move_to_end(k)
        if lst and lst[-1].name == name:
            lst[-1] = Resolution(name, ts_ns, ttl_s)
        else:
            lst.append(Resolution(name, ts_ns, ttl_s))
            del lst[:-8]  # a few names per address are plenty (shared CDN addresses)

    def candidates(self, exp: Expired) -> npt.NDArray[np.intp]:
        """Rows of ``exp`` whose (client, server) pair has a binding (vectorised)."""
        if not self._pairs:
            return np.zeros(0, dtype=np.intp)
        if self._dirty:
            self._arr = np.fromiter(self._pairs.keys(), dtype=np.uint64, count=len(self._pairs))
            self._dirty = False
        pk = pair_keys(exp.client_hi, exp.client_lo, exp.server_hi, exp.server_lo)
        return np.flatnonzero(member(pk, self._arr))

    def lookup(self, client_ip: str, server_ip: str, flow_start_ns: int) -> Resolution | None:
        """The latest resolution seen before the flow started, within the age limit."""
        lst = self._bind.get((client_ip, server_ip))
        if not lst:
            return None
        best = None
        for r in lst:
            if r.ts_ns <= flow_start_ns and flow_start_ns - r.ts_ns <= self.max_age_ns and (
                    best is None or r.ts_ns > best.ts_ns):
                best = r
        return best


_MASK = 0xFFFFFFFFFFFFFFFF
_M1, _M2, _M3 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB


def _mix_int(h: int, v: int) -> int:
    """Scalar twin of ``sensor.flows._mix`` (numpy uint64 wraps; here we mask)."""
    x = ((h ^ v) * _M1) & _MASK
    x = ((x ^ (x >> 30)) * _M2) & _MASK
    x = ((x ^ (x >> 27)) * _M3) & _MASK
    return x ^ (x >> 31)


def _pair(client_ip: str, server_ip: str) -> int:
    """Scalar twin of :func:`sensor.flows.pair_keys` for one address pair."""
    a_hi, a_lo = ip_halves(client_ip)
    b_hi, b_lo = ip_halves(server_ip)
    return _mix_int(_mix_int(_mix_int(_mix_int(a_hi, _M3), a_lo), b_hi), b_lo)
