"""The enrich agent: raw clicks in; enriched clicks, sessions and dead letters out.

Wiring only: decoding and every processing step live in :mod:`steps`. Per raw record the
agent loads the party's state from the ``parties`` table, runs the configured steps, stores
the state back, and sends the outputs to the source record's partition number, in the same
transaction as the state writes and the offset (:mod:`app.outbox`). Nothing a record
contains can stop the agent: every failure becomes a dead letter with a reason.

Idle sessions: a timer (which may not write tables) finds parties whose state a sweep would
change and sends a *sweep* message, keyed by the party, into the partition of the raw topic
where that state lives. The agent handles it in stream order like any record, so sessions are
closed and emitted inside stream iteration, exactly once. The sweep message carries the clock
to sweep with: wall-clock time if the partition had no backlog when the timer looked,
otherwise the latest event time processed in that partition, so a backlog (after a restart,
say) never closes a session whose next event is still waiting to be read.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import faust

import schemas
from app.metrics import Metrics
from app.outbox import output_topic
from steps import Context, Drop, Pipeline
from steps.decode import decode
from tables import Tables

log = logging.getLogger(__name__)

CONTROL_HEADER = "clickpipe-control"
SWEEP_PARTY = b"sweep-party"
SWEEP_IP = b"sweep-ip"
TIMING_SAMPLE = 128  # time the steps of one event in this many
YIELD_EVERY = 1000  # table entries the sweep timer scans between yields to the event loop
# Outputs wait in memory until the commit that covers their record publishes them; past this
# many records since the agent last committed, it commits before reading on (backpressure).
MAX_UNCOMMITTED = 2000


class Enricher:
    def __init__(self, app: faust.App, settings, tables: Tables, metrics: Metrics, pipeline: Pipeline):
        self.app = app
        self.settings = settings
        self.tables = tables
        self.metrics = metrics
        self.pipeline = pipeline
        self.bots = dict(pipeline.steps).get("bots")
        on_error = lambda topic, exc: metrics.send_errors.labels(topic).inc()  # noqa: E731
        self.out = {name: output_topic(app, name, settings.topic_raw, settings.partitions, on_error)
                    for name in (settings.topic_enriched, settings.topic_sessions, settings.topic_dead_letters)}
        self.enriched = schemas.current("EnrichedClick")
        self.session = schemas.current("Session")
        self.watermark: dict[int, int] = {}  # partition -> latest server_time processed
        self.position: dict[int, int] = {}  # partition -> offset of the latest record processed
        self.recent_ticks: dict[tuple[bytes, bytes, int], float] = {}
        self._count = 0
        self._uncommitted = 0
        t = settings
        self._in = metrics.records_in.labels(t.topic_raw)
        self._out_enriched = metrics.records_out.labels(t.topic_enriched)
        self._out_sessions = metrics.records_out.labels(t.topic_sessions)
        self._out_dead = metrics.records_out.labels(t.topic_dead_letters)

    # --- stream -------------------------------------------------------------------------

    async def handle(self, event: faust.types.EventT) -> None:
        """Process one raw record without suspending once it has produced anything (see :mod:`app.outbox`)."""
        msg = event.message
        self._in.inc()
        self.position[msg.partition] = msg.offset
        headers = list(msg.headers or ())
        control = next((v for k, v in headers if k == CONTROL_HEADER), None)
        try:
            if control is not None:
                await self._sweep(control, msg)
            else:
                await self._click(msg, headers)
        except Drop as drop:
            await self._dead_letter(msg, headers, drop.reason, drop.detail)
        except Exception as exc:  # a bug in a step must not stop the stream: park the record
            log.exception("record failed", extra={"partition": msg.partition, "offset": msg.offset})
            await self._dead_letter(msg, headers, "error", f"{type(exc).__name__}: {exc}")

    async def _click(self, msg, headers) -> None:
        record = decode(msg.value, headers)
        party_id = record["party_id"]
        parties = self.tables.parties
        state = parties.get(party_id) or {}
        ctx = Context(party=state, ips=self.tables.ips, partition=msg.partition)
        self._count += 1
        timings = self._observe if self._count % TIMING_SAMPLE == 0 else None
        try:
            record = self.pipeline.process(record, ctx, timings)
        except Drop as drop:
            self.metrics.dropped.labels(drop.reason).inc()
            if drop.reason != "duplicate" or self.settings.keep_duplicates:
                await self._dead_letter(msg, headers, drop.reason, drop.detail, counted=True)
            return
        # encode first: a record that does not fit its schema leaves its dead letter, not half its outputs
        value = schemas.encode_framed(self.enriched, record)  # Druid reads this topic
        sessions = self._encode_sessions(ctx.sessions)
        state["_p"] = msg.partition
        parties[party_id] = state
        t = record["server_time"]
        if t > self.watermark.get(msg.partition, 0):
            self.watermark[msg.partition] = t
        key = party_id.encode()
        await self._emit_sessions(sessions, key, msg.partition)
        await self._send(self.settings.topic_enriched, key, value, msg.partition, self.enriched.headers)
        self._out_enriched.inc()
        if record.get("is_bot"):
            self.metrics.bots.labels(record["bot_reason"]).inc()

    async def after(self, event: faust.types.EventT) -> None:
        """Between records: commit when too many records' outputs are waiting in memory."""
        self._uncommitted += 1
        if self._uncommitted >= MAX_UNCOMMITTED:
            self._uncommitted = 0
            event.ack()  # Faust acks it anyway when the next record is read; the commit must cover it
            await self.app.consumer.commit()

    def _observe(self, step: str, seconds: float) -> None:
        self.metrics.step_seconds.labels(step).observe(seconds)

    def _encode_sessions(self, sessions: list[dict[str, Any]]) -> list[tuple[str, bytes]]:
        return [(s["close_reason"], schemas.encode_framed(self.session, s)) for s in sessions]

    async def _emit_sessions(self, sessions: list[tuple[str, bytes]], key: bytes, partition: int) -> None:
        for reason, value in sessions:
            await self._send(self.settings.topic_sessions, key, value, partition, self.session.headers)
            self._out_sessions.inc()
            self.metrics.sessions_closed.labels(reason).inc()

    async def _dead_letter(self, msg, headers, reason: str, detail: str, counted: bool = False) -> None:
        if not counted:
            self.metrics.dropped.labels(reason).inc()
        extra = [("dead-letter-reason", reason.encode()), ("dead-letter-detail", detail[:1000].encode()),
                 ("dead-letter-source", f"{msg.topic}/{msg.partition}/{msg.offset}".encode())]
        await self._send(self.settings.topic_dead_letters, msg.key, msg.value, msg.partition, headers + extra)
        self._out_dead.inc()

    async def _send(self, topic: str, key: bytes | None, value: bytes | None, partition: int, headers) -> None:
        # attached to the current record's offset: published by the commit that covers it
        await self.out[topic].send(key=key, value=value, partition=partition, headers=list(headers))

    async def _sweep(self, kind: bytes, msg) -> None:
        try:
            now = int(json.loads(msg.value)["now"])
            key = msg.key.decode()
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise Drop("bad-control", repr(exc)) from None
        if kind == SWEEP_IP:
            # One IP has an entry in each partition its parties live in. Reading it first
            # points the store's key index at this partition, so the delete below removes
            # this partition's entry, the one its changelog tombstone is written for.
            counter = self.tables.ips.get(key)
            if counter is not None and self.bots is not None and self.bots.ip_due(counter, now):
                del self.tables.ips[key]
            return
        state = self.tables.parties.get(key)
        if state is None:
            return
        ctx = Context(party=state, ips=self.tables.ips, partition=msg.partition)
        empty = self.pipeline.sweep(ctx, now)
        sessions = self._encode_sessions(ctx.sessions)
        if empty:
            del self.tables.parties[key]
        else:
            self.tables.parties[key] = state
        await self._emit_sessions(sessions, msg.key, msg.partition)

    # --- timers -------------------------------------------------------------------------

    def _raw_partitions(self) -> list[int]:
        return sorted(tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic == self.settings.topic_raw)

    def _lag(self, partition: int) -> int | None:
        tp = faust.types.TP(self.settings.topic_raw, partition)
        try:
            highwater = self.app.consumer.highwater(tp)
        except Exception:  # not fetched yet
            return None
        if highwater is None:
            return None
        return max(0, highwater - (self.position.get(partition, -1) + 1))

    def sweep_clocks(self) -> dict[int, int]:
        """Per assigned raw partition: the time a sweep may use now (see the module doc)."""
        now = int(time.time() * 1000)
        clocks = {}
        for p in self._raw_partitions():
            lag = self._lag(p)
            clocks[p] = now if lag == 0 else self.watermark.get(p, 0)
        return clocks

    def update_lag(self) -> None:
        for p in self._raw_partitions():
            lag = self._lag(p)
            if lag is not None:
                self.metrics.consumer_lag.labels(str(p)).set(lag)

    async def schedule_sweeps(self) -> None:
        clocks = self.sweep_clocks()
        if not any(clocks.values()):
            return
        started = time.monotonic()
        horizon = started - 2 * self.settings.session_sweep_interval
        self.recent_ticks = {k: t for k, t in self.recent_ticks.items() if t > horizon}
        sent = 0
        for i, (key, state) in enumerate(self.tables.parties.items()):
            if i % YIELD_EVERY == YIELD_EVERY - 1:
                await asyncio.sleep(0)
            clock = clocks.get(state.get("_p"))
            if clock and self.pipeline.due(state, clock):
                sent += await self._tick(SWEEP_PARTY, key, state["_p"], clock, started)
        if self.bots is not None:
            for i, (key, counter) in enumerate(self.tables.ips.items()):
                if i % YIELD_EVERY == YIELD_EVERY - 1:
                    await asyncio.sleep(0)
                clock = clocks.get(counter[2])
                if clock and self.bots.ip_due(counter, clock):
                    sent += await self._tick(SWEEP_IP, key, counter[2], clock, started)
        if sent:
            log.info("sweep scheduled", extra={"messages": sent, "seconds": round(time.monotonic() - started, 3)})

    async def _tick(self, kind: bytes, key, partition: int, clock: int, started: float) -> int:
        key = key if isinstance(key, bytes) else key.encode()
        if (kind, key, partition) in self.recent_ticks:
            return 0
        self.recent_ticks[(kind, key, partition)] = started
        # outside any record: a plain send (a lost tick is harmless, the next sweep resends it)
        await self.app.producer.send(self.settings.topic_raw, key, json.dumps({"now": clock}).encode(), partition,
                                     None, [(CONTROL_HEADER, kind)])
        self.metrics.sweep_ticks.labels(kind.decode()).inc()
        return 1


def register(app: faust.App, settings, tables: Tables, metrics: Metrics) -> Enricher:
    enricher = Enricher(app, settings, tables, metrics, Pipeline(settings))
    raw = app.topic(settings.topic_raw, key_serializer="raw", value_serializer="raw", partitions=settings.partitions)

    # concurrency=1: table-writing agents with more lose data (faust-streaming issue #606)
    @app.agent(raw, name="enrich", concurrency=1)
    async def enrich(stream):
        async for event in stream.events():
            await enricher.handle(event)
            await enricher.after(event)

    @app.timer(interval=float(settings.session_sweep_interval), name="sweep")
    async def sweep():
        await enricher.schedule_sweeps()

    @app.timer(interval=5.0, name="lag")
    async def lag():
        enricher.update_lag()

    return enricher
