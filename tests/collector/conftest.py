"""Fixtures of the collector tests (helpers live in collector_support.py)."""

from __future__ import annotations

import pytest
from collector_support import make_client


@pytest.fixture
def collector():
    """(client, producer) with default settings plus one allowed CORS origin."""
    client, producer, sink = make_client({"CLICKPIPE_COLLECTOR_CORS_ORIGINS": "https://shop.example"})
    yield client, producer
    sink.close(0)


@pytest.fixture(scope="session")
def stack():
    """Overrides the suite-wide fixture: the collector needs Kafka only, not Druid.

    Uses the running broker when it answers; otherwise starts the stack as the suite does.
    Tests requesting it are still marked ``stack``.
    """
    from clickpipe.config import settings
    from stack.manager import StackManager
    from stack.services import port_open

    if not port_open(settings.kafka_host, settings.kafka_port):
        StackManager(settings).up()
    return settings
