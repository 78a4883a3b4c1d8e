"""The Kafka side: Avro-encode RawClick records and produce them, with backpressure.

By default accepted means "in the producer's local queue": the idempotent producer
(acks=all) then retries until the broker acknowledges or ``message.timeout.ms``
(librdkafka's default, 5 minutes) expires, so a broker outage shorter than that loses
nothing; a final failure is counted in ``clickpipe_collector_delivery_failures``. What is
still queued when the process is killed (-9, OOM) is lost. With ``COLLECTOR_ACK_WAIT_MS``
set, accepted means "acknowledged by Kafka": :meth:`Sink.send` waits for the delivery
report of every message it queued and raises :class:`NotDelivered` if one fails or the wait
times out. When the local queue is full the caller gets :class:`QueueFull`. Both are
:class:`Unavailable`: the caller answers 503, never a silent drop.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

from confluent_kafka import KafkaException, Producer

import schemas
from clickpipe.config import Settings
from collector import metrics

log = logging.getLogger(__name__)


class Unavailable(Exception):
    """The events were not accepted; retry later. ``reason`` names why, for the response and metrics."""

    reason = "unavailable"


class QueueFull(Unavailable):
    """The local queue has no room for the whole batch."""

    reason = "queue_full"


class NotDelivered(Unavailable):
    """Kafka did not acknowledge every queued event in time (they may still arrive: retries can repeat them)."""

    reason = "not_delivered"


class _Acks:
    """Delivery reports of one request's messages: :meth:`wait` returns once all arrived, all successful."""

    def __init__(self, expected: int, report: Callable[[Any, Any], None]):
        self._left = expected
        self._failed = 0
        self._report = report
        self._lock = threading.Lock()
        self._done = threading.Event()

    def __call__(self, err, msg) -> None:  # librdkafka's delivery callback, on the poll thread
        self._report(err, msg)
        self._settle(1, failed=err is not None)

    def not_queued(self, count: int) -> None:
        self._settle(count, failed=False)

    def _settle(self, count: int, failed: bool) -> None:
        with self._lock:
            self._failed += count if failed else 0
            self._left -= count
            if self._left <= 0:
                self._done.set()

    def wait(self, timeout: float) -> None:
        if not self._done.wait(timeout):
            raise NotDelivered(f"Kafka did not acknowledge within {timeout:g} s")
        if self._failed:
            raise NotDelivered(f"Kafka refused {self._failed} event(s)")


class Sink:
    """Produces RawClick records to the raw topic, keyed by party id.

    ``headroom`` is extra librdkafka queue space beyond ``collector_queue_max``, so the
    admission check in :meth:`send` (not a ``BufferError`` half-way through a batch) is
    what normally refuses work.
    """

    READY_CACHE_SECONDS = 2.0

    def __init__(self, settings: Settings, producer_factory: Callable[[dict], Any] = Producer):
        self.topic = settings.topic_raw
        self.schema = schemas.current("RawClick")
        self.queue_max = settings.collector_queue_max
        self.ack_wait = settings.collector_ack_wait_ms / 1000
        headroom = settings.collector_max_events * settings.collector_threads * 2
        self._producer = producer_factory(
            {
                "bootstrap.servers": settings.kafka_bootstrap,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                "compression.type": "lz4",
                "queue.buffering.max.messages": self.queue_max + headroom,
                "on_delivery": self._delivered,
            }
        )
        self._headers = self.schema.headers
        self._stop = threading.Event()
        self._ready_at = 0.0
        self._ready: tuple[bool, str] = (False, "not checked")
        self._poller = threading.Thread(target=self._poll, name="kafka-poll", daemon=True)
        self._poller.start()

    def _delivered(self, err, msg) -> None:
        if err is not None:
            metrics.DELIVERY_FAILURES.inc()
            log.error("delivery failed for a %s record: %s", self.schema.name, err)
        else:
            metrics.PRODUCE_LATENCY.observe(msg.latency() or 0.0)

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.1)
            metrics.QUEUE_DEPTH.set(len(self._producer))

    def depth(self) -> int:
        return len(self._producer)

    def send(self, records: list[dict]) -> int:
        """Queue ``records``; returns how many were queued (all, unless the queue filled mid-way).

        With an acknowledgement wait configured, returns only once Kafka acknowledged all of
        those (else raises :class:`NotDelivered`). Raises :class:`QueueFull` if none could be
        queued, and :class:`schemas.SchemaError` if a record does not fit the schema (a bug upstream).
        """
        if len(self._producer) + len(records) > self.queue_max:
            raise QueueFull()
        encoded = [(r["party_id"].encode(), schemas.encode(self.schema, r)) for r in records]
        acks = _Acks(len(encoded), self._delivered) if self.ack_wait else None
        callback = {"on_delivery": acks} if acks else {}
        queued = len(encoded)
        for i, (key, value) in enumerate(encoded):
            try:
                self._producer.produce(self.topic, value, key, headers=self._headers, **callback)
            except BufferError:
                queued = i
                break
        if acks:
            acks.not_queued(len(encoded) - queued)
        if queued == 0:
            raise QueueFull()
        if acks:
            acks.wait(self.ack_wait)
        return queued

    def ready(self) -> tuple[bool, str]:
        """(ready, why): Kafka answers metadata for the raw topic and the queue has room."""
        if len(self._producer) >= self.queue_max:
            return False, "producer queue full"
        now = time.monotonic()
        if now - self._ready_at > self.READY_CACHE_SECONDS:
            try:
                meta = self._producer.list_topics(self.topic, timeout=1.0)
                topic = meta.topics.get(self.topic)
                if topic is None or topic.error is not None or not topic.partitions:
                    self._ready = (False, f"topic {self.topic} unavailable")
                else:
                    self._ready = (True, "ok")
            except KafkaException as exc:
                self._ready = (False, f"kafka unreachable: {exc}")
            self._ready_at = now
        return self._ready

    def close(self, timeout: float = 30.0) -> int:
        """Flush what is queued (up to ``timeout`` s) and stop polling; returns messages left."""
        left = self._producer.flush(timeout)
        self._stop.set()
        if left:
            log.error("%d messages still queued at shutdown", left)
        return left
