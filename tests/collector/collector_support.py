"""Helpers for the collector's unit tests: the app over an in-memory producer.

The in-memory producer stands in for Kafka only in unit tests of request handling; the
Kafka boundary itself is proven by the integration tests against the real broker.
"""

from __future__ import annotations

import time

import falcon.testing

import schemas
from clickpipe.config import load
from collector.app import create_app
from collector.sink import Sink


class MemoryProducer:
    """Records produce() calls; ``capacity`` limits how many it holds (then BufferError)."""

    def __init__(self, conf: dict, capacity: int | None = None):
        self.conf = conf
        self.messages: list[tuple[str, bytes, bytes, list]] = []
        self.capacity = capacity

    def produce(self, topic, value, key, headers=None):
        if self.capacity is not None and len(self.messages) >= self.capacity:
            raise BufferError("Local: Queue full")
        self.messages.append((topic, key, value, headers))

    def poll(self, timeout):
        time.sleep(timeout)
        return 0

    def flush(self, timeout=None):
        return 0

    def __len__(self):
        return len(self.messages)

    def records(self) -> list[dict]:
        """Decode what was produced, through the schema headers like a consumer would."""
        return [schemas.decode(v, schemas.writer_from_headers(h)) for _, _, v, h in self.messages]


def make_client(env: dict | None = None, capacity: int | None = None):
    settings = load(env or {})
    sink = Sink(settings, lambda conf: MemoryProducer(conf, capacity))
    return falcon.testing.TestClient(create_app(settings, sink)), sink._producer, sink
