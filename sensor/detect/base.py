"""The interfaces detectors implement; the pipeline calls them, nothing else does.

A detector may implement either hook or both. Hooks run in capture order;
``findings`` is called at the end of a hunt (and periodically by ``watch``).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from sensor.findings import ServiceRef
from sensor.flows import FlowRecord
from sensor.records import Observation


@runtime_checkable
class ObservationDetector(Protocol):
    """Sees every decoded observation (handshakes, DNS, HTTP messages...)."""

    def on_observation(self, o: Observation) -> None: ...

    def findings(self) -> list[Any]: ...


@runtime_checkable
class FlowDetector(Protocol):
    """Sees every exported flow that the catalog attributed to an AI service."""

    def on_flow(self, rec: FlowRecord, service: ServiceRef, sanctioned: bool) -> None: ...

    def findings(self) -> list[Any]: ...
