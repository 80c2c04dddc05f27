"""Delivery of a spool to one network transport, in a background thread, with backoff.

At-least-once: records are acknowledged in the spool only after the transport
confirmed them (HTTP/Kafka responses), or, for syslog streams that have no
application-level acknowledgement, after the connection stayed healthy for
``confirm_s`` after the send. A failed delivery rewinds to the first
unacknowledged record, so a receiver that restarts may see duplicates, never gaps.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, replace

from sensor.sinks.spool import Cursor, Spool

log = logging.getLogger("sensor.sinks")


class TransientError(Exception):
    """Delivery failed in a way a retry may fix (receiver down, 429/503, timeout).
    Its message must be safe to log: no tokens, no payloads."""


class PermanentError(Exception):
    """The transport cannot work at all (bad TLS files, missing library)."""


class Transport:
    """One network destination. ``send`` delivers a batch or raises TransientError; it
    returns how many records the receiver rejected for good (they are counted and not
    retried: resending a record the receiver calls invalid would block the queue)."""

    confirm_s: float = 0.0
    batch_records: int = 500
    batch_bytes: int = 1 << 20

    def open(self) -> None:
        """Connect (stream transports); raise TransientError when the peer is down."""

    def send(self, batch: list[bytes]) -> int:
        raise NotImplementedError

    def healthy(self) -> bool:
        return True

    def close(self) -> None:
        """Drop the connection; safe to call twice."""


@dataclass(slots=True)
class SinkStats:
    name: str
    emitted: int = 0
    delivered: int = 0
    rejected: int = 0
    dropped: int = 0
    replayed: int = 0
    retries: int = 0
    pending: int = 0
    skipped: int = 0
    connected: bool = False
    last_error: str | None = None


class SinkWorker:
    def __init__(self, name: str, spool: Spool, transport: Transport,
                 backoff_min_s: float = 0.05, backoff_max_s: float = 10.0) -> None:
        self.name = name
        self.spool = spool
        self.transport = transport
        self.stats = SinkStats(name, replayed=spool.replayed)
        self._backoff_min = backoff_min_s
        self._backoff_max = backoff_max_s
        self._stop = threading.Event()
        self._unconfirmed: deque[tuple[Cursor, float, int, int]] = deque()
        self._thread = threading.Thread(target=self._run, name=f"sink:{name}", daemon=True)
        self._thread.start()

    # -- the loop ----------------------------------------------------------------------
    def _run(self) -> None:
        backoff = self._backoff_min
        connected = False
        dropped = self.spool.dropped
        while not self._stop.is_set():
            if self.spool.dropped != dropped:
                log.warning("sink %s: spool full, dropped %d oldest records (total %d)",
                            self.name, self.spool.dropped - dropped, self.spool.dropped)
                dropped = self.spool.dropped
            try:
                if not connected:
                    self.transport.open()
                    connected = self.stats.connected = True
                self._confirm()
                if not self.transport.healthy():
                    raise TransientError("connection closed by the receiver")
                recs, cur = self.spool.read(self.transport.batch_records,
                                            self.transport.batch_bytes)
                if not recs:
                    self.spool.wait(self.transport.confirm_s / 2 if self._unconfirmed else 0.2)
                    continue
                rejected = self.transport.send(recs)
                now = time.monotonic()
                if self.transport.confirm_s > 0:
                    self._unconfirmed.append((cur, now, len(recs) - rejected, rejected))
                else:
                    self.spool.ack(cur)
                    self.stats.delivered += len(recs) - rejected
                    self.stats.rejected += rejected
                backoff = self._backoff_min
            except TransientError as e:
                self._fail(str(e))
                connected = self.stats.connected = False
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self._backoff_max)
            except PermanentError as e:
                self._fail(str(e))
                connected = self.stats.connected = False
                self._stop.wait(self._backoff_max)
            except Exception as e:  # a bug must not kill delivery for good
                self._fail(f"{type(e).__name__} in sink transport")
                log.debug("sink %s: unexpected error", self.name, exc_info=True)
                connected = self.stats.connected = False
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self._backoff_max)
        self.transport.close()

    def _confirm(self) -> None:
        if not self._unconfirmed:
            return
        now = time.monotonic()
        healthy = self.transport.healthy()
        while self._unconfirmed and healthy \
                and now - self._unconfirmed[0][1] >= self.transport.confirm_s:
            cur, _, ok, bad = self._unconfirmed.popleft()
            self.spool.ack(cur)
            self.stats.delivered += ok
            self.stats.rejected += bad

    def _fail(self, msg: str) -> None:
        self.stats.retries += 1
        if msg != self.stats.last_error:
            log.warning("sink %s: %s (retrying with backoff)", self.name, msg)
        self.stats.last_error = msg
        self._unconfirmed.clear()
        self.spool.rewind()
        self.transport.close()

    # -- control -----------------------------------------------------------------------
    def drain(self, timeout: float) -> bool:
        """Wait until every appended record is acknowledged; False on timeout."""
        end = time.monotonic() + timeout
        while self.spool.pending() > 0:
            if time.monotonic() >= end or not self._thread.is_alive():
                return False
            time.sleep(0.01)
        return True

    def close(self, timeout: float) -> bool:
        done = self.drain(timeout)
        self._stop.set()
        self._thread.join(timeout=max(timeout, 1.0))
        self.spool.close()
        return done

    def snapshot(self) -> SinkStats:
        s = self.stats
        s.pending = self.spool.pending()
        s.dropped = self.spool.dropped
        return replace(s)
