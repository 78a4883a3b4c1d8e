"""Helpers for the collector tests.

Unit tests run the app over an in-memory producer, which stands in for Kafka only there;
the Kafka boundary itself is proven by the tests that run a real collector process
(:class:`tests.support.collector.CollectorProcess`) against the real broker (:class:`Topic`).
"""

from __future__ import annotations

import threading
import time
import uuid
from types import SimpleNamespace
from typing import Any, NamedTuple

import falcon.testing
import requests
from confluent_kafka import Consumer

import schemas
from clickpipe.config import load
from clickpipe.topics import delete_topics, ensure_topics
from collector.app import create_app
from collector.sink import Sink


class Produced(NamedTuple):
    topic: str
    partition: int
    key: bytes | None
    value: bytes
    headers: list


class MemoryProducer:
    """Records produce() calls; ``capacity`` limits how many messages it holds (then BufferError).

    poll() and flush() report each message's delivery to its ``on_delivery`` callback, as
    librdkafka does, as :meth:`verdict` decides: successful, failed with ``error`` if set, or
    not yet if ``deliver`` is false. Its metadata shows the topic with ``partitions``
    partitions (0: the topic does not exist).
    """

    HOLD = object()  # a verdict: keep the report back for a later poll

    def __init__(self, conf: dict, capacity: int | None = None, deliver: bool = True, error: str | None = None,
                 partitions: int = 4):
        self.conf = conf
        self.messages: list[Produced] = []
        self.capacity = capacity
        self.deliver, self.error = deliver, error
        self.partitions = partitions
        self._reports: list[tuple[Produced, Any]] = []
        self._lock = threading.Lock()

    def produce(self, topic, value=None, key=None, partition=-1, on_delivery=None, headers=None):
        with self._lock:
            if self.capacity is not None and len(self.messages) >= self.capacity:
                raise BufferError("Local: Queue full")
            message = Produced(topic, partition, key, value, headers)
            self.messages.append(message)
            self._reports.append((message, on_delivery))

    def verdict(self, message: Produced):
        """The delivery error of ``message`` (None: delivered), or :attr:`HOLD`."""
        return self.error if self.deliver else self.HOLD

    def poll(self, timeout):
        time.sleep(timeout)
        return self._report()

    def flush(self, timeout=None):
        self._report()
        return len(self)

    def _report(self) -> int:
        with self._lock:
            reports, self._reports = self._reports, []
        held = []
        for message, report in reports:
            verdict = self.verdict(message)
            if verdict is self.HOLD:
                held.append((message, report))
            else:
                report(verdict, message)
        with self._lock:
            self._reports[:0] = held
        return len(reports) - len(held)

    def __len__(self):
        return len(self._reports)

    def list_topics(self, topic=None, timeout=-1):
        """Metadata shaped like confluent-kafka's."""
        if not self.partitions:
            return SimpleNamespace(topics={})
        partitions = dict.fromkeys(range(self.partitions))
        return SimpleNamespace(topics={topic: SimpleNamespace(error=None, partitions=partitions)})

    def events(self) -> list[tuple[int, dict]]:
        """(partition, record) of every event produced, in order, decoded as a consumer would."""
        return [(m.partition, record) for m in self.messages for record in decode_events(m.value, m.headers)]

    def records(self) -> list[dict]:
        """The records of :meth:`events`."""
        return [record for _, record in self.events()]


def make_client(env: dict | None = None, **producer_options):
    """A Falcon test client over a :class:`Sink` on a :class:`MemoryProducer`: (client, producer, sink).

    Batches do not linger unless ``env`` says so: each request's events are produced before
    it is answered, so a test reads them from the producer at once.
    """
    settings = load({"CLICKPIPE_COLLECTOR_BATCH_LINGER_MS": "0", **(env or {})})
    sink = Sink(settings, lambda conf: MemoryProducer(conf, **producer_options))
    return falcon.testing.TestClient(create_app(settings, sink)), sink._producer, sink


# --- helpers for tests against a real collector process and the real broker ------------

class Sender(threading.Thread):
    """Posts batches of ``events_per_request`` like the tag does, retrying after 503; records
    every outcome. Stops after ``max_requests`` or when ``stop_at`` (monotonic) has passed."""

    def __init__(self, url: str, events_per_request: int = 5, max_requests: int = 4000):
        super().__init__(daemon=True)
        self.url = url
        self.events_per_request = events_per_request
        self.max_requests = max_requests
        self.stop_at = time.monotonic() + 120
        self.outcomes: list[tuple[int, list[str]]] = []  # (status or -1 for no response, event ids)
        self.run_id = uuid.uuid4().hex[:8]

    def run(self) -> None:
        session = requests.Session()
        for n in range(self.max_requests):
            if time.monotonic() > self.stop_at:
                break
            ids = [f"{self.run_id}-{n:05d}-{i}" for i in range(self.events_per_request)]
            batch = [{"party_id": f"fault-party-{n % 7}", "event_id": e} for e in ids]
            try:
                status = session.post(self.url + "/events", json=batch, timeout=15).status_code
            except requests.RequestException:
                status = -1
            self.outcomes.append((status, ids))
            time.sleep(0.5 if status == 503 else 0.01)

    def accepted(self) -> set[str]:
        """Ids of the events of every request answered 200."""
        return {e for status, ids in self.outcomes if status == 200 for e in ids}


class Topic:
    """A fresh topic on a real broker, deleted afterwards, so tests never see others' data."""

    def __init__(self, bootstrap: str, partitions: int = 4, name: str | None = None):
        self.bootstrap = bootstrap
        self.name = name or self.new_name()
        ensure_topics(bootstrap, [self.name], partitions)

    @staticmethod
    def new_name() -> str:
        return f"collector-test-{uuid.uuid4().hex[:12]}"

    def consume(self, expected: int, timeout: float = 60.0) -> list[tuple[Any, dict]]:
        """Read from the beginning until ``expected`` events (or ``timeout``); returns (message, record)
        for every event, in each partition's order, decoded as the worker would (:func:`decode_events`)."""
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"collector-test-{uuid.uuid4().hex}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
            }
        )
        consumer.subscribe([self.name])
        events: list[tuple[Any, dict]] = []

        def read(poll_timeout: float) -> None:
            msg = consumer.poll(poll_timeout)
            if msg is not None and msg.error() is None:
                events.extend((msg, record) for record in decode_events(msg.value(), msg.headers()))

        deadline = time.monotonic() + timeout
        try:
            while len(events) < expected and time.monotonic() < deadline:
                read(0.5)
            # anything beyond the expected count would be a bug too: drain briefly
            end = time.monotonic() + 1.0
            while time.monotonic() < end:
                read(0.2)
        finally:
            consumer.close()
        return events

    def records(self, expected: int, timeout: float = 60.0) -> list[dict]:
        """The records of :meth:`consume`."""
        return [record for _, record in self.consume(expected, timeout)]

    def delete(self) -> None:
        delete_topics(self.bootstrap, [self.name])


def decode_events(value: bytes | None, headers) -> list[dict]:
    """The records of a raw-topic message (a batch or a single event), via the schemas its headers name."""
    records = []
    for event, h in schemas.raw_events(value, headers):
        assert event is not None, "a raw-topic event without a value"
        records.append(schemas.decode(event, schemas.writer_from_headers(h)))
    return records


def divolte_signed(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Append the checksum ``x`` that Divolte's tag computes (murmur3 of the canonical string)."""
    from collector.divolte import canonical, murmur3_32

    value = murmur3_32(canonical(pairs).encode())
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    n, out = abs(value), ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if not n:
            break
    return pairs + [("x", ("-" if value < 0 else "") + out)]
