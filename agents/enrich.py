"""The enrich agent: raw messages in; enriched clicks, sessions and dead letters out.

Wiring only: decoding and every processing step live in :mod:`steps`. A raw message holds
one event (older producers, re-produced dead letters) or a RawBatch of many events of one
partition (the collector). Per message the agent

1. reads each event's bytes (:func:`schemas.raw_events`) and decodes it alone, so a bad
   event becomes its own dead letter (its own bytes, the event schema's headers, a reason)
   while the rest of the message goes on;
2. runs the configured steps on each event in message order, reading each party's state
   from the ``parties`` table once (and each IP counter once) and keeping it in memory for
   the message's later events;
3. writes each touched party and IP once, and sends one message of JSON rows per output
   topic (enriched clicks, closed sessions), to the source message's partition number, in
   the same transaction as the table writes and the offset (:mod:`app.outbox`).

Nothing a message contains can stop the agent: every failure becomes a dead letter with a
reason.

Idle state: the worker indexes parties and IP counters by the time a sweep next has work for
them (:class:`tables.expiry.ExpiryIndex`). A timer (which may not write tables) takes the due
keys of each partition from the index and sends one *sweep* message per partition into the
raw topic's partition where that state lives, listing the keys. The agent handles it in
stream order like any message, so sessions are closed and emitted inside stream iteration,
exactly once. The message carries the clock to sweep with: wall-clock time if the partition
had no backlog when the timer looked, otherwise the latest event time processed in that
partition, so a backlog (after a restart, say) never closes a session whose next event is
still waiting to be read.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import uuid
from typing import Any, Iterable, MutableMapping

import faust
import orjson

import schemas
from app import faust_internals
from app.metrics import Metrics
from app.outbox import output_topic
from steps import Context, Drop, Pipeline
from steps.decode import decode
from tables import Tables
from tables.expiry import ExpiryIndex

log = logging.getLogger(__name__)

CONTROL_HEADER = "clickpipe-control"
SWEEP_PARTY = b"sweep-party"
SWEEP_IP = b"sweep-ip"
TIMING_SAMPLE = 128  # time the steps of one event in this many
SWEEP_KEYS_PER_MESSAGE = 1000  # keys one sweep message lists
YIELD_EVERY = 1000  # table entries the index rebuild reads between yields to the event loop
# Outputs wait in memory until the commit that covers their message publishes them; past this
# many events since the agent last committed, it commits before reading on (backpressure).
MAX_UNCOMMITTED = 20_000


class CachedCounters(MutableMapping):
    """The ``ips`` table as the steps see it while one message is handled: each IP read once, written once.

    Reads go to the table the first time and to memory after; writes stay in memory until
    :meth:`written`, which the agent stores once per IP at the end of the message.
    """

    def __init__(self, table: MutableMapping):
        self.table = table
        self.cache: dict[str, Any] = {}
        self.dirty: set[str] = set()

    def __getitem__(self, key):
        if key not in self.cache:
            self.cache[key] = self.table.get(key)
        value = self.cache[key]
        if value is None:
            raise KeyError(key)
        return value

    def get(self, key, default=None):
        try:
            return self[key]
        except KeyError:
            return default

    def __setitem__(self, key, value) -> None:
        self.cache[key] = value
        self.dirty.add(key)

    def __delitem__(self, key) -> None:
        raise NotImplementedError("steps never delete IP counters; the sweep does")

    def __iter__(self):
        return iter(k for k, v in self.cache.items() if v is not None)

    def __len__(self) -> int:
        return sum(1 for v in self.cache.values() if v is not None)

    def written(self) -> list[tuple[str, Any]]:
        return [(key, self.cache[key]) for key in self.dirty]


class Enricher:
    def __init__(self, app: faust.App, settings, tables: Tables, metrics: Metrics, pipeline: Pipeline):
        self.app = app
        self.settings = settings
        self.tables = tables
        self.metrics = metrics
        self.pipeline = pipeline
        on_error = lambda topic, exc: metrics.send_errors.labels(topic).inc()  # noqa: E731
        self.out = {name: output_topic(app, name, settings.topic_raw, settings.partitions, on_error)
                    for name in (settings.topic_enriched, settings.topic_sessions, settings.topic_dead_letters)}
        self.enriched = schemas.current("EnrichedClick")
        self.session = schemas.current("Session")
        self.parties_due = ExpiryIndex()
        self.ips_due = ExpiryIndex()
        self.watermark: dict[int, int] = {}  # partition -> latest server_time processed
        self.position: dict[int, int] = {}  # partition -> offset of the latest message processed
        # sweep messages sent and not yet seen back: id -> (sent at, kind, partition, keys)
        self.in_flight: dict[str, tuple[float, bytes, int, list]] = {}
        self._sweep_ids = itertools.count()
        self._incarnation = uuid.uuid4().hex[:8]
        self._count = 0
        self._uncommitted = 0
        t = settings
        self._in = metrics.records_in.labels(t.topic_raw)
        self._out_enriched = metrics.records_out.labels(t.topic_enriched)
        self._out_sessions = metrics.records_out.labels(t.topic_sessions)
        self._out_dead = metrics.records_out.labels(t.topic_dead_letters)

    # --- stream -------------------------------------------------------------------------

    async def handle(self, event: faust.types.EventT) -> int:
        """Process one raw message without suspending once it has produced anything (see :mod:`app.outbox`).

        Returns how many events (or control messages) it held.
        """
        msg = event.message
        self.position[msg.partition] = msg.offset
        headers = list(msg.headers or ())
        control = next((v for k, v in headers if k == CONTROL_HEADER), None)
        try:
            if control is not None:
                self._in.inc()
                await self._sweep(control, msg)
                return 1
            events = schemas.raw_events(msg.value, headers)
        except Drop as drop:
            await self._dead_letter(msg, msg.key, msg.value, headers, drop.reason, drop.detail)
            return 1
        except schemas.SchemaError as exc:  # a RawBatch envelope that cannot be read: the message is the unit
            self._in.inc()
            await self._dead_letter(msg, msg.key, msg.value, headers, "undecodable", str(exc))
            return 1
        self._in.inc(len(events))
        await self._events(msg, events)
        return len(events)

    async def _events(self, msg, events: list[schemas.RawEvent]) -> None:
        parties = self.tables.parties
        states: dict[str, dict[str, Any]] = {}
        ips = CachedCounters(self.tables.ips)
        rows: list[bytes] = []
        sessions: list[bytes] = []
        dead: list[tuple[bytes | None, bytes | None, list, str, str]] = []
        for value, headers in events:
            party_id = None
            try:
                record = decode(value, headers)
                party_id = record["party_id"]
                state = states.get(party_id)
                if state is None:
                    state = states[party_id] = parties.get(party_id) or {}
                ctx = Context(party=state, ips=ips)
                self._count += 1
                timings = self._observe if self._count % TIMING_SAMPLE == 0 else None
                record = self.pipeline.process(record, ctx, timings)
                # encode first: a record that does not fit its schema leaves its dead letter, not half its outputs
                row = schemas.encode_rows(self.enriched, [record])
                closed = [schemas.encode_rows(self.session, [s]) for s in ctx.sessions]
            except Drop as drop:
                self.metrics.dropped.labels(drop.reason).inc()
                if drop.reason != "duplicate" or self.settings.keep_duplicates:
                    key = party_id.encode() if party_id else msg.key
                    dead.append((key, value, headers, drop.reason, drop.detail))
                continue
            except Exception as exc:  # a bug in a step must not stop the stream: park the event
                log.exception("event failed", extra={"partition": msg.partition, "offset": msg.offset})
                self.metrics.dropped.labels("error").inc()
                key = party_id.encode() if party_id else msg.key
                dead.append((key, value, headers, "error", f"{type(exc).__name__}: {exc}"))
                continue
            rows.append(row)
            sessions += closed
            for s in ctx.sessions:
                self.metrics.sessions_closed.labels(s["close_reason"]).inc()
            t = record["server_time"]
            if t > self.watermark.get(msg.partition, 0):
                self.watermark[msg.partition] = t
            if record.get("is_bot"):
                self.metrics.bots.labels(record["bot_reason"]).inc()

        for party_id, state in states.items():
            parties[party_id] = state
            self.parties_due.set(msg.partition, party_id, self.pipeline.due_at(state))
        for ip, value in ips.written():
            self.tables.ips[ip] = value
            self.ips_due.set(msg.partition, ip, self.pipeline.ip_due_at(value))
        await self._send_rows(self.settings.topic_enriched, rows, msg.partition, self.enriched)
        self._out_enriched.inc(len(rows))
        await self._send_rows(self.settings.topic_sessions, sessions, msg.partition, self.session)
        self._out_sessions.inc(len(sessions))
        for key, value, headers, reason, detail in dead:
            await self._dead_letter(msg, key, value, headers, reason, detail, counted=True)

    async def after(self, event: faust.types.EventT, events: int) -> None:
        """Between messages: commit when too many events' outputs are waiting in memory."""
        self._uncommitted += events
        if self._uncommitted >= MAX_UNCOMMITTED:
            self._uncommitted = 0
            event.ack()  # Faust acks it anyway when the next message is read; the commit must cover it
            await self.app.consumer.commit()

    def _observe(self, step: str, seconds: float) -> None:
        self.metrics.step_seconds.labels(step).observe(seconds)

    async def _send_rows(self, topic: str, rows: list[bytes], partition: int, schema: schemas.Schema) -> None:
        if rows:
            await self._send(topic, None, b"\n".join(rows), partition, schema.row_headers)

    async def _dead_letter(self, msg, key: bytes | None, value: bytes | None, headers, reason: str, detail: str,
                           counted: bool = False) -> None:
        if not counted:
            self.metrics.dropped.labels(reason).inc()
        extra = [("dead-letter-reason", reason.encode()), ("dead-letter-detail", detail[:1000].encode()),
                 ("dead-letter-source", f"{msg.topic}/{msg.partition}/{msg.offset}".encode())]
        await self._send(self.settings.topic_dead_letters, key, value, msg.partition, list(headers) + extra)
        self._out_dead.inc()

    async def _send(self, topic: str, key: bytes | None, value: bytes | None, partition: int, headers) -> None:
        # attached to the current message's offset: published by the commit that covers it
        await self.out[topic].send(key=key, value=value, partition=partition, headers=list(headers))

    async def _sweep(self, kind: bytes, msg) -> None:
        try:
            body = orjson.loads(msg.value)
            now = int(body["now"])
            keys = [str(k) for k in body["keys"]] if "keys" in body else [msg.key.decode()]  # one key: older workers
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise Drop("bad-control", repr(exc)) from None
        self.in_flight.pop(str(body.get("id")), None)
        if kind == SWEEP_IP:
            self._sweep_ips(keys, now, msg.partition)
            return
        sessions: list[bytes] = []
        for key in keys:
            state = self.tables.parties.get(key)
            if state is None:
                self.parties_due.set(msg.partition, key, None)
                continue
            ctx = Context(party=state, ips=self.tables.ips)
            empty = self.pipeline.sweep(ctx, now)
            sessions += [schemas.encode_rows(self.session, [s]) for s in ctx.sessions]
            for s in ctx.sessions:
                self.metrics.sessions_closed.labels(s["close_reason"]).inc()
            if empty:
                del self.tables.parties[key]
                self.parties_due.set(msg.partition, key, None)
            else:
                self.tables.parties[key] = state
                self.parties_due.set(msg.partition, key, self.pipeline.due_at(state))
        await self._send_rows(self.settings.topic_sessions, sessions, msg.partition, self.session)
        self._out_sessions.inc(len(sessions))

    def _sweep_ips(self, keys: list[str], now: int, partition: int) -> None:
        for key in keys:
            # One IP has an entry in each partition its parties live in. Reading it first
            # points the store's key index at this partition, so the delete below removes
            # this partition's entry, the one its changelog tombstone is written for.
            value = self.tables.ips.get(key)
            due = None if value is None else self.pipeline.ip_due_at(value)
            if value is not None and due is not None and due <= now:
                del self.tables.ips[key]
                due = None
            self.ips_due.set(partition, key, due)

    # --- timers -------------------------------------------------------------------------

    def _raw_partitions(self) -> list[int]:
        return faust_internals.assigned_partitions(self.app, self.settings.topic_raw)

    def _lag(self, partition: int) -> int | None:
        highwater = faust_internals.highwater(self.app, self.settings.topic_raw, partition)
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
        """Send a sweep message per partition for the keys the indexes say are due (none when none are)."""
        started = time.monotonic()
        self._retry_lost_sweeps(started)
        clocks = self.sweep_clocks()
        sent = 0
        for partition, clock in clocks.items():
            if not clock:
                continue
            for kind, index in ((SWEEP_PARTY, self.parties_due), (SWEEP_IP, self.ips_due)):
                while keys := index.pop_due(partition, clock, SWEEP_KEYS_PER_MESSAGE):
                    sweep_id = f"{self._incarnation}-{next(self._sweep_ids)}"
                    self.in_flight[sweep_id] = (started, kind, partition, keys)
                    await self._send_sweep(kind, partition, {"now": clock, "keys": keys, "id": sweep_id})
                    sent += 1
        if sent:
            log.info("sweep scheduled", extra={"messages": sent, "seconds": round(time.monotonic() - started, 3)})

    def _retry_lost_sweeps(self, now: float) -> None:
        # A sweep message not seen back within two intervals was lost (outside any transaction,
        # a send may fail): its keys go back into the index for this round.
        horizon = now - 2 * self.settings.session_sweep_interval
        for sweep_id, (sent_at, kind, partition, keys) in list(self.in_flight.items()):
            if sent_at < horizon:
                del self.in_flight[sweep_id]
                index = self.parties_due if kind == SWEEP_PARTY else self.ips_due
                index.retry(partition, keys)

    async def _send_sweep(self, kind: bytes, partition: int, body: dict) -> None:
        # outside any message: a plain send (a lost sweep is retried, see _retry_lost_sweeps)
        await faust_internals.send(self.app, self.settings.topic_raw, None, orjson.dumps(body), partition,
                                   [(CONTROL_HEADER, kind)])
        self.metrics.sweep_ticks.labels(kind.decode()).inc(len(body["keys"]))

    async def rebuild_indexes(self) -> None:
        """Index every party and IP counter of the assigned partitions (after a rebalance's recovery).

        Reads the whole tables once, yielding to the event loop as it goes; the agent keeps
        running meanwhile and what it writes wins over what the scan read (:class:`ExpiryIndex`).
        """
        started = time.monotonic()
        assigned = self._raw_partitions()
        count = 0
        for index, table, due_at in ((self.parties_due, self.tables.parties, self.pipeline.due_at),
                                     (self.ips_due, self.tables.ips, self.pipeline.ip_due_at)):
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


def register(app: faust.App, settings, tables: Tables, metrics: Metrics) -> Enricher:
    enricher = Enricher(app, settings, tables, metrics, Pipeline(settings))
    raw = app.topic(settings.topic_raw, key_serializer="raw", value_serializer="raw", partitions=settings.partitions)

    # concurrency=1: table-writing agents with more lose data (faust-streaming issue #606)
    @app.agent(raw, name="enrich", concurrency=1)
    async def enrich(stream):
        async for event in stream.events():
            await enricher.after(event, await enricher.handle(event))

    @app.timer(interval=float(settings.session_sweep_interval), name="sweep")
    async def sweep():
        await enricher.schedule_sweeps()

    @app.timer(interval=5.0, name="lag")
    async def lag():
        enricher.update_lag()

    rebuilding: list[asyncio.Task] = []

    @tables.parties.on_recover
    async def reindex():
        # In the background: the agent resumes at once, and the index catches up with the table.
        for task in rebuilding:
            task.cancel()
        rebuilding[:] = [asyncio.ensure_future(enricher.rebuild_indexes())]

    return enricher
