"""A private single-node Kafka broker, for tests that stop or kill the broker: stopping it
disturbs nobody else's tests."""

from __future__ import annotations

import tempfile
import time

from clickpipe.config import Settings, load
from tests.support.net import free_port


def start_private_broker(base: Settings):
    """A single-node broker of its own (the stack's jars, free ports, a fresh data directory
    from :func:`tempfile.mkdtemp`), healthy; returns it and its settings."""
    from stack.kafka import Kafka

    settings = load(
        {
            "CLICKPIPE_CACHE_DIR": str(base.cache_dir),
            "CLICKPIPE_STATE_DIR": tempfile.mkdtemp(prefix="private-kafka-"),
            "CLICKPIPE_KAFKA_PORT": str(free_port()),
            "CLICKPIPE_KAFKA_CONTROLLER_PORT": str(free_port()),
            "CLICKPIPE_KAFKA_HEAP": "256m",
        }
    )
    broker = Kafka(settings)
    broker.start()
    wait_healthy(broker)
    return broker, settings


def wait_healthy(broker, timeout: float = 120.0) -> None:
    """Block until ``broker`` (started, or restarted on its data directory) answers as healthy."""
    deadline = time.monotonic() + timeout
    while not broker.healthy():
        if time.monotonic() > deadline:
            raise RuntimeError(f"private broker not healthy:\n{broker.process.log_tail()}")
        time.sleep(0.5)
