"""Log records (Zeek, Suricata EVE) into the pipeline: the same stages as packets."""

from __future__ import annotations

from collections.abc import Iterable

from sensor.flows import FlowRecord
from sensor.identity.model import Binding
from sensor.identity.store import CONF_DHCP_ACK, CONF_KRB_REQUEST, principal_identity
from sensor.pipeline import Pipeline
from sensor.records import Observation
from sensor.sources.logs import IdentityEvent, flow_record

# what a logged fact is worth: as much as the wire's DHCP ACK and Kerberos request
_CONFIDENCE = {"dhcp": CONF_DHCP_ACK, "kerberos": CONF_KRB_REQUEST}
_MAX_OPEN = 200_000  # connections seen in app logs whose conn record has not come yet


class LogFeeder:
    """Feeds records one at a time (``watch`` follows logs); ``close`` ends the input."""

    def __init__(self, pipe: Pipeline) -> None:
        self.pipe = pipe
        self._no_flow: dict[int, Observation] = {}

    def feed(self, r: Observation | FlowRecord | IdentityEvent) -> None:
        pipe = self.pipe
        if isinstance(r, Observation):
            if r.kind != "dns" and len(self._no_flow) < _MAX_OPEN:
                self._no_flow.setdefault(r.flow_id, r)
            pipe.feed_observation(r)
        elif isinstance(r, FlowRecord):
            self._no_flow.pop(r.key, None)
            pipe.feed_flow(r)
        elif r.ip and pipe.identity_wire:
            user, hostname = r.user, r.hostname
            if r.kind == "kerberos":  # a machine account or host/ principal names a device
                user, host = principal_identity(tuple(r.user.split("/")) if r.user else None,
                                                r.realm)
                hostname = hostname or host
            if r.mac or hostname or user:
                pipe.identity.add(Binding(r.ip, r.ts_ns, None, r.mac, hostname, user,
                                          f"log-{r.kind}", _CONFIDENCE.get(r.kind, 0.5)))

    def close(self) -> None:
        """A connection whose conn.log/flow event never came (only ssl.log or http.log
        given) still counts: a flow with its first observation's addresses, no bytes."""
        for o in self._no_flow.values():
            self.pipe.feed_flow(flow_record(o.flow_id, 6 if o.transport == "tcp" else 17,
                                            o.src_ip, o.src_port, o.dst_ip, o.dst_port,
                                            o.ts_ns, 0, 0, 0, 0, 0))
        self._no_flow.clear()


def feed_log_records(pipe: Pipeline, records: Iterable[Observation | FlowRecord | IdentityEvent]
                     ) -> None:
    feeder = LogFeeder(pipe)
    for r in records:
        feeder.feed(r)
    feeder.close()
