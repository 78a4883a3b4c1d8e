"""Fixtures for the pipeline's unit tests: settings, MaxMind test databases, raw clicks."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.geodata import fetch_test_databases
from clickpipe.config import load
from clickpipe.config import settings as default_settings
from tests.support import records


@pytest.fixture(scope="session")
def maxmind() -> Path:
    """Directory with MaxMind's ``test-data/`` and ``bad-data/`` (downloaded once into the cache)."""
    return fetch_test_databases(default_settings.cache_dir)


@pytest.fixture
def make_settings(geo_env):
    """Settings from ``CLICKPIPE_*``-less keyword overrides, geo pointed at the test databases."""

    def make(**env):
        return load({**geo_env, **{f"CLICKPIPE_{k}": str(v) for k, v in env.items()}})

    return make


@pytest.fixture
def raw_click():
    """Factory: ``raw_click(**fields)`` -> a RawClick dict (:func:`tests.support.records.raw_click`)."""
    return records.raw_click


@pytest.fixture
def decoded():
    """Factory: ``decoded(**fields)`` -> a record as the decode step returns it
    (:func:`tests.support.records.decoded`)."""
    return records.decoded
