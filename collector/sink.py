"""The Kafka side: Avro-encode RawClick records, batch them by partition and produce, with backpressure.

**Messages.** One raw-topic message is a ``RawBatch`` (:func:`schemas.encode_batch`): the
RawClick events, each encoded alone, of one partition, in the order they were accepted.
Kafka's cost is per message, so many events share one.

**Partition.** An event goes to the partition librdkafka's default partitioner
(``consistent_random``) gives its party id as key (:func:`clickpipe.topics.partition_for`:
CRC-32 modulo the partition count, proven against librdkafka in
tests/collector/test_collector_partitions.py), so batches and any single-event producer put
a party's events in the same partition. Messages are produced to that partition explicitly
and without a key: a batch holds many parties, so no one key would be true of it. The
partition count comes from the topic's metadata, fetched at start and refreshed in the
background; while it is unknown (the topic does not exist, Kafka was unreachable at start)
:meth:`Sink.send` raises :class:`TopicUnavailable`. The producer never auto-creates the
topic: the broker would give it its default partition count, not ours.

**Batching.** Events from all of a worker's requests join the open batch of their
partition. A batch is produced once it holds ``COLLECTOR_BATCH_MAX_EVENTS`` events, once the
next event would take it past ``COLLECTOR_BATCH_MAX_BYTES``, or ``COLLECTOR_BATCH_LINGER_MS``
after its first event (a background thread sees to that), whichever comes first. A partition's
batches are produced in the order they were opened, so a party's events keep their order.
With an acknowledgement wait, a batch holding a waiting request's events does not linger: it is
produced at the end of the event loop's current round, once every request that was ready to
run in that round has added its events (under load, a round holds many requests).

**Accepted** means, by default, "waiting in this process": in a batch or in the producer's
queue. The idempotent producer (acks=all) then retries until the broker acknowledges or
``message.timeout.ms`` (librdkafka's default, 5 minutes) expires, so a broker outage shorter
than that loses nothing; a final failure is counted in ``clickpipe_collector_delivery_failures``.
What is still waiting when the process is killed (-9, OOM) is lost. With
``COLLECTOR_ACK_WAIT_MS`` set, accepted means "acknowledged by Kafka": :meth:`Sink.send`
returns only once every message holding one of its events was acknowledged, and raises
:class:`NotDelivered` if one failed or the wait timed out. The wait is an asyncio future,
resolved from librdkafka's delivery report (on the poll thread) through the request's loop.

**Backpressure.** ``COLLECTOR_QUEUE_MAX`` bounds the events waiting (in batches, or in
messages not yet acknowledged). A request gets what room is left, its first events first;
with none left it gets :class:`QueueFull`. All refusals are :class:`Unavailable`: the caller
answers 503, never a silent drop.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections import deque
from functools import partial
from typing import Any, Callable, Iterable

from confluent_kafka import KafkaException, Producer

import schemas
from clickpipe.config import Settings
from clickpipe.topics import partition_for
from collector import metrics

log = logging.getLogger(__name__)

METADATA_TIMEOUT = 1.0
READY_CACHE_SECONDS = 2.0
# Partitions are added rarely and by hand; librdkafka itself re-reads metadata every 5 minutes.
REFRESH_SECONDS = 30.0
REFRESH_UNKNOWN_SECONDS = 1.0
# After the producer's queue refused a batch: it drains at the broker's pace, no use asking sooner.
RETRY_SECONDS = 0.05


class Unavailable(Exception):
    """The events were not accepted; retry later. ``reason`` names why, for the response and metrics."""

    reason = "unavailable"


class QueueFull(Unavailable):
    """No room for any of the events: ``COLLECTOR_QUEUE_MAX`` events are waiting for Kafka."""

    reason = "queue_full"


class NotDelivered(Unavailable):
    """Kafka did not acknowledge every accepted event in time (they may still arrive: retries can repeat them)."""

    reason = "not_delivered"


class TopicUnavailable(Unavailable):
    """The raw topic's partition count is unknown: it does not exist, or Kafka has not answered yet."""

    reason = "topic_unavailable"


class _Acks:
    """The acknowledgement wait of one request: :meth:`wait` returns once all of its events were
    acknowledged, and raises :class:`NotDelivered` if one was refused or time ran out."""

    __slots__ = ("_left", "_failed", "_loop", "_done")

    def __init__(self, expected: int, loop: asyncio.AbstractEventLoop):
        self._left = expected
        self._failed = 0
        self._loop = loop
        self._done: asyncio.Future[None] = loop.create_future()

    def settle(self, count: int, failed: bool) -> None:
        """``count`` of the events were acknowledged, or finally refused if ``failed`` (any thread,
        with the sink's lock held)."""
        self._failed += count if failed else 0
        self._left -= count
        if self._left <= 0:
            try:
                self._loop.call_soon_threadsafe(self._resolve)
            except RuntimeError:  # the loop is closed: nobody waits any more
                pass

    def _resolve(self) -> None:
        if not self._done.done():  # a wait that timed out cancelled it
            self._done.set_result(None)

    async def wait(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._done, timeout)
        except TimeoutError:
            raise NotDelivered(f"Kafka did not acknowledge within {timeout:g} s") from None
        if self._failed:
            raise NotDelivered(f"Kafka refused {self._failed} event(s)")


class _Batch:
    """One raw-topic message in the making: encoded events of one partition, in acceptance order,
    and the acknowledgement waits of the requests that have events in it, with how many each."""

    __slots__ = ("events", "size", "opened", "acks")

    def __init__(self, opened: float):
        self.events: list[bytes] = []
        self.size = 0
        self.opened = opened
        self.acks: dict[_Acks, int] = {}

    def add(self, event: bytes, acks: _Acks | None) -> None:
        self.events.append(event)
        self.size += len(event)
        if acks is not None:
            self.acks[acks] = self.acks.get(acks, 0) + 1


class Sink:
    """Accepts RawClick records from a worker's event loop and produces them to the raw topic in batches.

    Two background threads: one serves librdkafka's delivery reports, one produces batches whose
    linger ran out and refreshes the partition count.
    """

    def __init__(self, settings: Settings, producer_factory: Callable[[dict], Any] = Producer):
        self.topic = settings.topic_raw
        self.schema = schemas.current("RawClick")
        self._encode = schemas.encoder(self.schema)
        self.queue_max = settings.collector_queue_max
        self.ack_wait = settings.collector_ack_wait_ms / 1000
        self.max_events = settings.collector_batch_max_events
        self.max_bytes = settings.collector_batch_max_bytes
        self.linger = settings.collector_batch_linger_ms / 1000
        self._producer = producer_factory(
            {
                "bootstrap.servers": settings.kafka_bootstrap,
                "enable.idempotence": True,
                "acks": "all",
                # The batching is ours; librdkafka only groups what is already queued into one request.
                "linger.ms": 1,
                "compression.type": "lz4",
                # Every message holds at least one of the at most queue_max waiting events.
                "queue.buffering.max.messages": self.queue_max,
                "allow.auto.create.topics": False,
            }
        )
        self._headers = schemas.current("RawBatch").headers
        # Guards the batches and the waiting count; the flusher sleeps on it until a batch is due.
        self._lock = threading.Condition()
        self._batches: dict[int, deque[_Batch]] = {}
        self._waiting = 0  # accepted events not yet acknowledged or refused by Kafka
        self._round_end_due = False  # an end-of-round produce is scheduled on the event loop
        self._partitions: int | None = None
        self._ready: tuple[bool, str] = (False, "not checked")
        self._ready_at = 0.0
        self._refresh()
        if self._partitions is None:
            log.error("no partition count for topic %s (%s): events are refused until it exists",
                      self.topic, self._ready[1])
        self._stop = threading.Event()
        threading.Thread(target=self._poll, name="kafka-poll", daemon=True).start()
        threading.Thread(target=self._flusher, name="batch-flush", daemon=True).start()

    async def send(self, records: list[dict]) -> int:
        """Accept ``records`` (the first ones, as far as there is room); returns how many.

        Called on the worker's event loop. Without an acknowledgement wait it never suspends.
        With one, returns only once Kafka acknowledged all of those (else raises
        :class:`NotDelivered`). Raises :class:`QueueFull` if there is no room at all,
        :class:`TopicUnavailable` while the partition count is unknown, and
        :class:`schemas.SchemaError` if a record does not fit the schema (a bug upstream).
        """
        partitions = self._partitions
        if partitions is None:
            raise TopicUnavailable(self._ready[1])
        if self._waiting >= self.queue_max:  # spare the encoding when full (checked again below)
            raise QueueFull()
        encode = self._encode
        events = [(partition_for(r["party_id"].encode(), partitions), encode(r)) for r in records]
        with self._lock:
            room = self.queue_max - self._waiting
            if room <= 0:
                raise QueueFull()
            events = events[:room]
            acks = None
            if self.ack_wait:
                loop = asyncio.get_running_loop()
                acks = _Acks(len(events), loop)
                if not self._round_end_due:
                    self._round_end_due = True
                    loop.call_soon(self._produce_round)
            now = time.monotonic()
            for partition, event in events:
                self._add(partition, event, acks, now)
            self._waiting += len(events)
            self._produce_due(now, {partition for partition, _ in events})
        if acks is not None:
            await acks.wait(self.ack_wait)
        return len(events)

    def _produce_round(self) -> None:
        """End of an event-loop round in which requests waiting for Kafka added events: those
        requests add nothing more, so their batches are produced without lingering."""
        with self._lock:
            self._round_end_due = False
            wake = self._produce_due(time.monotonic(), list(self._batches), force=True)
            if wake != math.inf:  # the producer's queue refused one: the flusher retries
                self._lock.notify()

    def _add(self, partition: int, event: bytes, acks: _Acks | None, now: float) -> None:
        batches = self._batches.setdefault(partition, deque())
        last = batches[-1] if batches else None
        if last is None or len(last.events) >= self.max_events or last.size + len(event) > self.max_bytes:
            batches.append(_Batch(now))
            self._lock.notify()  # the flusher may be asleep with no deadline to wake for
        batches[-1].add(event, acks)

    def _produce_due(self, now: float, partitions: Iterable[int], force: bool = False) -> float:
        """Produce, oldest first, the batches of ``partitions`` that are due (all with ``force``).

        A batch is due when a newer one follows it, when it is full, or when its linger is
        over. Returns when the next one will be due: ``inf`` if none waits, soon if the
        producer's queue refused one. Called with the lock held.
        """
        wake = math.inf
        for partition in partitions:
            batches = self._batches.get(partition)
            while batches:
                batch = batches[0]
                due_at = batch.opened + self.linger
                full = len(batch.events) >= self.max_events or batch.size >= self.max_bytes
                if not (force or len(batches) > 1 or full or now >= due_at):
                    wake = min(wake, due_at)
                    break
                try:
                    self._produce(partition, batch)
                except BufferError:  # full by bytes (queue.buffering.max.kbytes): keep it, retry soon
                    return now + RETRY_SECONDS
                batches.popleft()
        return wake

    def _produce(self, partition: int, batch: _Batch) -> None:
        value = schemas.encode_batch(batch.events, self.schema)
        try:
            self._producer.produce(self.topic, value, None, partition=partition, headers=self._headers,
                                   on_delivery=partial(self._delivered, batch))
        except KafkaException as exc:  # e.g. the partition is gone (topic recreated smaller): a refusal
            self._delivered(batch, exc.args[0], None)

    def _delivered(self, batch: _Batch, err, msg) -> None:
        """Delivery report of ``batch``'s message (librdkafka's callback, on the poll thread)."""
        with self._lock:
            self._waiting -= len(batch.events)
            for acks, count in batch.acks.items():
                acks.settle(count, failed=err is not None)
        if err is not None:
            metrics.DELIVERY_FAILURES.inc(len(batch.events))
            log.error("delivery failed for a message of %d events: %s", len(batch.events), err)
        else:
            metrics.PRODUCE_LATENCY.observe(time.monotonic() - batch.opened)

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.1)
            metrics.QUEUE_DEPTH.set(self._waiting)

    def _flusher(self) -> None:
        """The flusher thread: produces batches whose linger is over; refreshes the partition count."""
        refresh_at = self._next_refresh()
        while not self._stop.is_set():
            if time.monotonic() >= refresh_at:
                self._refresh()  # outside the lock: it waits for the network
                refresh_at = self._next_refresh()
            with self._lock:
                if self._stop.is_set():
                    return
                wake = self._produce_due(time.monotonic(), list(self._batches))
                self._lock.wait(min(wake, refresh_at) - time.monotonic())

    def _next_refresh(self) -> float:
        # While the count is unknown, ask every second: events are refused until it is known.
        return time.monotonic() + (REFRESH_SECONDS if self._partitions else REFRESH_UNKNOWN_SECONDS)

    def _refresh(self) -> None:
        """Ask Kafka for the raw topic's metadata: the partition count and the readiness follow.

        A failed ask keeps the last known count, so the sink goes on accepting into its queue
        through a broker outage.
        """
        try:
            meta = self._producer.list_topics(self.topic, timeout=METADATA_TIMEOUT)
        except KafkaException as exc:
            self._ready = (False, f"kafka unreachable: {exc}")
        else:
            topic = meta.topics.get(self.topic)
            if topic is None or topic.error is not None or not topic.partitions:
                self._ready = (False, f"topic {self.topic} unavailable")
            else:
                self._partitions = len(topic.partitions)
                self._ready = (True, "ok")
        self._ready_at = time.monotonic()

    def depth(self) -> int:
        """Events waiting for Kafka: in batches, or in messages not yet acknowledged."""
        return self._waiting

    def ready(self) -> tuple[bool, str]:
        """(ready, why): Kafka answers metadata for the raw topic and there is room for events."""
        if self._waiting >= self.queue_max:
            return False, "queue full"
        if time.monotonic() - self._ready_at > READY_CACHE_SECONDS:
            self._refresh()
        return self._ready

    def close(self, timeout: float = 30.0) -> int:
        """Produce every batch, then flush the producer (all within ``timeout`` s) and stop the
        threads; returns how many accepted events Kafka has not acknowledged."""
        deadline = time.monotonic() + timeout
        self._stop.set()
        with self._lock:
            self._lock.notify()
        while True:
            with self._lock:
                pending = self._produce_due(time.monotonic(), list(self._batches), force=True)
            if pending == math.inf or time.monotonic() >= deadline:
                break
            self._producer.poll(RETRY_SECONDS)
        self._producer.flush(max(0.0, deadline - time.monotonic()))
        left = self._waiting
        if left:
            log.error("%d events not acknowledged by Kafka at shutdown", left)
        return left
