"""What the detectors of servers seen in clear (self-hosted model servers, MCP servers)
keep per server: one bounded table keyed by (address, port), and the part of each
server's state every such detector updates once per HTTP exchange."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from sensor.decoders.http_stream import HttpExchange
from sensor.findings import count_bounded
from sensor.records import HttpRequest, Observation

MAX_SERVERS = 10_000  # servers tracked per detector (bounded memory)
MAX_VALUES = 32  # distinct models, clients, paths... kept per server


def exchange_request(o: Observation) -> tuple[HttpExchange, HttpRequest] | None:
    """The exchange and its request head, when ``o`` is an HTTP exchange with one."""
    ex = o.payload
    if o.kind != "http.exchange" or not isinstance(ex, HttpExchange):
        return None
    head = ex.request.head
    return (ex, head) if isinstance(head, HttpRequest) else None


@dataclass(slots=True)
class ServerState:
    ip: str
    port: int
    first_ns: int
    last_ns: int
    host: str | None = None
    clients: dict[str, int] = field(default_factory=dict)
    paths: dict[str, int] = field(default_factory=dict)
    exchanges: int = 0
    with_credentials: int = 0
    without_credentials: int = 0

    def add_exchange(self, o: Observation, head: HttpRequest, path_key: str,
                     creds: bool) -> None:
        """Times, host, client, path and how the request was authenticated."""
        self.first_ns = min(self.first_ns, o.ts_ns)
        self.last_ns = max(self.last_ns, o.ts_ns)
        if self.host is None and head.host:
            self.host = head.host
        self.exchanges += 1
        count_bounded(self.clients, o.src_ip, MAX_VALUES)
        count_bounded(self.paths, path_key, MAX_VALUES)
        if creds:
            self.with_credentials += 1
        else:
            self.without_credentials += 1


S = TypeVar("S", bound=ServerState)


class ServerTable(Generic[S]):
    """The servers a detector follows, by the exchange's server address and port."""

    def __init__(self, make: Callable[[str, int, int, int], S],
                 max_servers: int = MAX_SERVERS) -> None:
        self._make = make
        self._max = max_servers
        self._servers: dict[tuple[str, int], S] = {}
        self.dropped = 0  # servers not followed because the table was full

    def get(self, o: Observation) -> S | None:
        return self._servers.get((o.dst_ip, o.dst_port))

    def add(self, o: Observation) -> S | None:
        """A new entry for the exchange's server; None (counted) when the table is full."""
        if len(self._servers) >= self._max:
            self.dropped += 1
            return None
        srv = self._servers[(o.dst_ip, o.dst_port)] = self._make(o.dst_ip, o.dst_port,
                                                                  o.ts_ns, o.ts_ns)
        return srv

    def __iter__(self) -> Iterator[S]:
        return iter(self._servers.values())
