"""The enrich agent: raw messages in; enriched clicks, sessions and dead letters out.

Wiring only. What to do with a message is decided by the plain functions of
:mod:`agents.messages` (decoding, the steps of :mod:`steps`, dead letters); the sweep timer's
side is :mod:`agents.sweeps`. This module receives, writes the tables, sends and commits:

1. a message of events (one RawClick, or a RawBatch of many of one partition) is processed
   into an :class:`~agents.messages.Outcome`;
2. each touched party and IP is written once, and the sweep index learns its next due time;
3. one message of JSON rows per output topic (enriched clicks, closed sessions, session
   verdicts) and one dead
   letter per bad event go to the source message's partition number, in the same transaction
   as the table writes and the offset (:mod:`app.outbox`).

A control (sweep) message expires the state of the parties or IPs it lists; an erase message
(``clickpipe privacy erase``) deletes a party's state and adds it to the worker's erased list,
which is also read whole from its topic whenever partitions are assigned (:mod:`clickpipe.erased`).
Nothing a message contains can stop the agent: every failure becomes a dead letter with a reason.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import cast

import faust

import schemas
from agents.messages import (
    ERASE_PARTY,
    SWEEP_PARTY,
    DeadLetter,
    EventProcessor,
    Headers,
    Outcome,
    control_kind,
    parse_erasure,
    parse_sweep,
    read_events,
)
from agents.sweeps import Sweeper
from app.metrics import Metrics
from app.outbox import output_topic
from clickpipe import erased
from clickpipe.party import digest, party_key
from steps import Drop, Pipeline
from tables import Tables

log = logging.getLogger(__name__)

# Outputs wait in memory until the commit that covers their message publishes them; past this
# many events since the agent last committed, it commits before reading on (backpressure).
# At 20,000 a worker held ~1 GB and commits took 5-14 s, for no throughput gain (docs/benchmarks.md).
MAX_UNCOMMITTED = 2_000


class Enricher:
    def __init__(self, app: faust.App, settings, tables: Tables, metrics: Metrics, pipeline: Pipeline):
        self.app = app
        self.settings = settings
        self.tables = tables
        self.metrics = metrics
        self.pipeline = pipeline
        self.erased: dict[str, int] = {}  # party digest -> erasure time (clickpipe.erased)
        self.processor = EventProcessor(pipeline, settings.keep_duplicates,
                                        party_key=functools.partial(party_key, salt=settings.privacy_party_salt),
                                        erased=self.erased)
        self.sweeper = Sweeper(app, settings, tables, metrics, pipeline)
        on_error = lambda topic, exc: metrics.send_errors.labels(topic).inc()  # noqa: E731
        self.out = {name: output_topic(app, name, settings.topic_raw, settings.partitions, on_error)
                    for name in (settings.topic_enriched, settings.topic_sessions, settings.topic_verdicts,
                                 settings.topic_dead_letters)}
        self.enriched = schemas.current("EnrichedClick")
        self.session = schemas.current("Session")
        self.verdict = schemas.current("BotVerdict")
        self._uncommitted = 0
        self._in = metrics.records_in.labels(settings.topic_raw)

    async def handle(self, event: faust.types.EventT) -> int:
        """Process one raw message without suspending once it has produced anything (see :mod:`app.outbox`).

        Returns how many events (or control messages) it held.
        """
        msg = event.message
        headers = cast(Headers, list(msg.headers or ()))  # Kafka gives (str, bytes) pairs; Faust types them loosely
        kind = control_kind(headers)
        if kind == ERASE_PARTY:
            try:
                erasure = parse_erasure(msg.value)
            except Drop as drop:
                outcome = Outcome()
                outcome.set_aside(DeadLetter(msg.key, msg.value, headers, drop.reason, drop.detail))
            else:
                self.remember_erased({digest(erasure.party_id): erasure.erased_at})
                outcome = self.processor.erase(erasure)
            count = 1
        elif kind is not None:
            try:
                sweep = parse_sweep(msg.key, msg.value)
            except Drop as drop:
                outcome = Outcome()
                outcome.set_aside(DeadLetter(msg.key, msg.value, headers, drop.reason, drop.detail))
            else:
                self.sweeper.returned(sweep)
                tables = self.tables
                outcome = (self.processor.sweep_parties(sweep.keys, sweep.now, tables.parties, tables.ips)
                           if kind == SWEEP_PARTY else self.processor.sweep_ips(sweep.keys, sweep.now, tables.ips))
            count = 1
        else:
            events = read_events(msg.key, msg.value, headers)
            if isinstance(events, DeadLetter):  # a batch envelope that cannot be read: the message is the unit
                outcome = Outcome()
                outcome.set_aside(events)
                count = 1
            else:
                outcome = self.processor.process(events, self.tables.parties, self.tables.ips, msg.key, self._observe)
                count = len(events)
        self._in.inc(count)
        self.sweeper.seen(msg.partition, msg.offset, outcome.latest_time)
        await self._carry_out(outcome, msg)
        return count

    async def _carry_out(self, out: Outcome, msg) -> None:
        partition = msg.partition
        parties, ips = self.tables.parties, self.tables.ips
        for key, state in out.parties.items():
            if state is None:
                del parties[key]
            else:
                parties[key] = state
            self.sweeper.parties.set(partition, key, None if state is None else self.pipeline.due_at(state))
        for key in out.parties_gone:
            self.sweeper.parties.set(partition, key, None)
        for key, value in out.ips.items():
            if value is None:
                # One IP has an entry in each partition its parties live in. Reading it right
                # before points the store's key index at this partition, so the delete removes
                # this partition's entry, the one its changelog tombstone is written for.
                ips.get(key)
                del ips[key]
            else:
                ips[key] = value
            self.sweeper.ips.set(partition, key, None if value is None else self.pipeline.ip_due_at(value))
        for key, due in out.ips_unchanged.items():
            self.sweeper.ips.set(partition, key, due)

        if out.enriched:
            await self._send(self.settings.topic_enriched, None, b"\n".join(out.enriched), partition,
                             self.enriched.row_headers)
        if out.sessions:
            await self._send(self.settings.topic_sessions, None, b"\n".join(out.sessions), partition,
                             self.session.row_headers)
        if out.verdicts:
            await self._send(self.settings.topic_verdicts, None, b"\n".join(out.verdicts), partition,
                             self.verdict.row_headers)
        source = f"{msg.topic}/{partition}/{msg.offset}"
        for letter in out.dead:
            await self._send(self.settings.topic_dead_letters, letter.key, letter.value, partition,
                             letter.headers_with_reason(source))

        m, t = self.metrics, self.settings
        m.records_out.labels(t.topic_enriched).inc(len(out.enriched))
        m.records_out.labels(t.topic_sessions).inc(len(out.sessions))
        m.records_out.labels(t.topic_verdicts).inc(len(out.verdicts))
        m.records_out.labels(t.topic_dead_letters).inc(len(out.dead))
        for counter, counts in ((m.dropped, out.dropped), (m.bots, out.bots), (m.sessions_closed, out.sessions_closed)):
            for label, n in counts.items():
                counter.labels(label).inc(n)

    async def _send(self, topic: str, key: bytes | None, value: bytes | None, partition: int, headers) -> None:
        # attached to the current message's offset: published by the commit that covers it
        await self.out[topic].send(key=key, value=value, partition=partition, headers=list(headers))

    def remember_erased(self, entries: dict[str, int]) -> None:
        """Add erased-list entries; a party erased twice keeps the later time."""
        for key, at in entries.items():
            if at > self.erased.get(key, -1):
                self.erased[key] = at

    async def reload_erased(self) -> None:
        """Read the erased list topic whole (in a thread), before the stream resumes after a rebalance."""
        s = self.settings
        loaded = await asyncio.get_running_loop().run_in_executor(
            None, functools.partial(erased.load, s.kafka_bootstrap, s.topic_erased))
        self.remember_erased(loaded)
        log.info("erased list loaded", extra={"parties": len(self.erased)})

    def _observe(self, step: str, seconds: float) -> None:
        self.metrics.step_seconds.labels(step).observe(seconds)

    async def after(self, event: faust.types.EventT, events: int) -> None:
        """Between messages: commit when too many events' outputs are waiting in memory."""
        self._uncommitted += events
        if self._uncommitted >= MAX_UNCOMMITTED:
            self._uncommitted = 0
            event.ack()  # Faust acks it anyway when the next message is read; the commit must cover it
            await self.app.consumer.commit()


def register(app: faust.App, settings, tables: Tables, metrics: Metrics) -> Enricher:
    enricher = Enricher(app, settings, tables, metrics, Pipeline(settings))
    sweeper = enricher.sweeper
    raw = app.topic(settings.topic_raw, key_serializer="raw", value_serializer="raw", partitions=settings.partitions)

    # concurrency=1: table-writing agents with more lose data (faust-streaming issue #606)
    @app.agent(raw, name="enrich", concurrency=1)
    async def enrich(stream):
        async for event in stream.events():
            await enricher.after(event, await enricher.handle(event))

    @app.timer(interval=float(settings.session_sweep_seconds), name="sweep")
    async def sweep():
        await sweeper.schedule()

    @app.timer(interval=5.0, name="lag")
    async def lag():
        sweeper.update_lag()

    @app.on_worker_init.connect  # type: ignore[arg-type]  # mode's signal handler type rejects any plain handler
    def declare_erased_list(sender, **kwargs):
        erased.ensure_topic(settings.kafka_bootstrap, settings.topic_erased, settings.partitions,
                            replication=settings.kafka_replication,
                            min_insync_replicas=settings.kafka_min_insync_replicas)

    rebuilding: list[asyncio.Task] = []

    @tables.parties.on_recover
    async def reindex():
        # Awaited: recovery resumes the stream only after this, so no event of a party erased
        # while another worker held its partition gets through.
        await enricher.reload_erased()
        # In the background: the agent resumes at once, and the index catches up with the table.
        for task in rebuilding:
            task.cancel()
        rebuilding[:] = [asyncio.ensure_future(sweeper.rebuild())]

    return enricher
