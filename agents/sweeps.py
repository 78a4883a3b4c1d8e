"""The sweep timer's side: which keys are due, and the sweep messages that carry them to the agent.

Faust timers may not write tables, so expiring idle state takes a round trip through the raw
topic. The worker indexes parties and IP state by the time a sweep next has work for them
(:class:`tables.expiry.ExpiryIndex`; the agent updates the index on every write). Every
``SESSION_SWEEP_SECONDS`` :meth:`Sweeper.schedule` takes the due keys of each partition from the
index and sends one *sweep* message per partition and kind (up to
:data:`KEYS_PER_MESSAGE` keys each) into the raw topic's partition where that state lives;
the agent handles it in stream order, so sessions are closed and emitted inside stream
iteration, exactly once. The message carries the clock to sweep with
(:func:`agents.messages.sweep_clock`). A sweep message not seen back within two intervals
was lost (it is sent outside any transaction) and its keys go back into the index.

After every rebalance the index is rebuilt from the tables (:meth:`Sweeper.rebuild`): the
entries of newly assigned partitions were restored from changelogs, not written here.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import uuid

import faust

from agents.messages import CONTROL_HEADER, SWEEP_IP, SWEEP_PARTY, Sweep, sweep_clock
from app import faust_internals
from app.metrics import Metrics
from steps import Pipeline
from tables import Tables
from tables.expiry import ExpiryIndex

log = logging.getLogger(__name__)

KEYS_PER_MESSAGE = 1000  # keys one sweep message lists
YIELD_EVERY = 1000  # table entries the rebuild reads between yields to the event loop


class Sweeper:
    """The sweep indexes of one worker, and the timer work around them."""

    def __init__(self, app: faust.App, settings, tables: Tables, metrics: Metrics, pipeline: Pipeline):
        self.app = app
        self.settings = settings
        self.tables = tables
        self.metrics = metrics
        self.pipeline = pipeline
        self.parties: ExpiryIndex[str] = ExpiryIndex()
        self.ips: ExpiryIndex[str] = ExpiryIndex()
        self.watermark: dict[int, int] = {}  # partition -> latest server_time processed
        self.position: dict[int, int] = {}  # partition -> offset of the latest message processed
        # sweep messages sent and not yet seen back: id -> (sent at, kind, partition, keys)
        self.in_flight: dict[str, tuple[float, bytes, int, list]] = {}
        self._ids = itertools.count()
        self._incarnation = uuid.uuid4().hex[:8]

    def index(self, kind: bytes) -> ExpiryIndex:
        return self.parties if kind == SWEEP_PARTY else self.ips

    def seen(self, partition: int, offset: int, latest_time: int) -> None:
        """The agent handled the message at ``offset`` of ``partition``, events up to ``latest_time``."""
        self.position[partition] = offset
        if latest_time > self.watermark.get(partition, 0):
            self.watermark[partition] = latest_time

    def returned(self, sweep: Sweep) -> None:
        """A sweep message came back through the stream: no need to resend its keys."""
        if sweep.id is not None:  # older workers sent sweeps without an id: none is in flight
            self.in_flight.pop(sweep.id, None)

    def _partitions(self) -> list[int]:
        return faust_internals.assigned_partitions(self.app, self.settings.topic_raw)

    def lag(self, partition: int) -> int | None:
        highwater = faust_internals.highwater(self.app, self.settings.topic_raw, partition)
        if highwater is None:
            return None
        return max(0, highwater - (self.position.get(partition, -1) + 1))

    def update_lag(self) -> None:
        for p in self._partitions():
            lag = self.lag(p)
            if lag is not None:
                self.metrics.consumer_lag.labels(str(p)).set(lag)

    async def schedule(self) -> None:
        """Send a sweep message per partition and kind for the keys the indexes say are due."""
        started = time.monotonic()
        self._retry_lost(started)
        now = int(time.time() * 1000)
        sent = 0
        for partition in self._partitions():
            clock = sweep_clock(now, self.lag(partition), self.watermark.get(partition, 0))
            if not clock:
                continue
            for kind in (SWEEP_PARTY, SWEEP_IP):
                while keys := self.index(kind).pop_due(partition, clock, KEYS_PER_MESSAGE):
                    sweep_id = f"{self._incarnation}-{next(self._ids)}"
                    sweep = Sweep(clock, keys, sweep_id)
                    self.in_flight[sweep_id] = (started, kind, partition, keys)
                    # outside any message: a plain send (a lost one is retried, see _retry_lost)
                    await faust_internals.send(self.app, self.settings.topic_raw, None, sweep.encode(), partition,
                                               [(CONTROL_HEADER, kind)])
                    self.metrics.sweep_ticks.labels(kind.decode()).inc(len(keys))
                    sent += 1
        if sent:
            log.info("sweep scheduled", extra={"messages": sent, "seconds": round(time.monotonic() - started, 3)})

    def _retry_lost(self, now: float) -> None:
        horizon = now - 2 * self.settings.session_sweep_seconds
        for sweep_id, (sent_at, kind, partition, keys) in list(self.in_flight.items()):
            if sent_at < horizon:
                del self.in_flight[sweep_id]
                self.index(kind).retry(partition, keys)

    async def rebuild(self) -> None:
        """Index every party and IP state of the assigned partitions (after a rebalance's recovery).

        Reads the whole tables once, yielding to the event loop as it goes; the agent keeps
        running meanwhile and what it writes wins over what the scan read (:class:`ExpiryIndex`).
        """
        started = time.monotonic()
        assigned = self._partitions()
        count = 0
        for index, table, due_at in ((self.parties, self.tables.parties, self.pipeline.due_at),
                                     (self.ips, self.tables.ips, self.pipeline.ip_due_at)):
            index.drop_partitions(assigned)
            index.begin_rebuild()
            try:
                for i, (partition, key, value) in enumerate(faust_internals.partition_items(table)):
                    if i % YIELD_EVERY == YIELD_EVERY - 1:
                        await asyncio.sleep(0)
                    index.scanned(partition, key, due_at(value))
                    count += 1
            finally:
                index.end_rebuild()
        log.info("sweep index rebuilt", extra={"entries": count, "seconds": round(time.monotonic() - started, 3)})
