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
