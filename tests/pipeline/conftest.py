"""Fixtures for the pipeline's unit tests: settings, MaxMind test databases, raw clicks."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from app.geodata import fetch_test_databases, test_database_env
from clickpipe.config import load, settings as default_settings

_ids = itertools.count(1)


@pytest.fixture(scope="session")
def maxmind() -> Path:
    """Directory with MaxMind's ``test-data/`` and ``bad-data/`` (downloaded once into the cache)."""
    return fetch_test_databases(default_settings.cache_dir)


@pytest.fixture(scope="session")
def geo_env() -> dict[str, str]:
    """``CLICKPIPE_GEOIP_*`` variables naming the City and ASN test databases."""
    return test_database_env(default_settings.cache_dir)


@pytest.fixture
def make_settings(geo_env):
    """Settings from ``CLICKPIPE_*``-less keyword overrides, geo pointed at the test databases."""

    def make(**env):
        return load({**geo_env, **{f"CLICKPIPE_{k}": str(v) for k, v in env.items()}})

    return make


def _raw_click(**fields) -> dict:
    """A RawClick dict (current schema shape) with realistic defaults, overridden by ``fields``."""
    n = next(_ids)
    record = {
        "server_time": 1_700_000_000_000 + n,
        "client_time": None,
        "source": "tag",
        "party_id": "party-1",
        "session_id": None,
        "page_view_id": f"pv-{n}",
        "event_id": f"ev-{n}",
        "event_type": "pageView",
        "location": "https://shop.example.com/products/42?color=red",
        "referrer": None,
        "user_agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                      "Chrome/120.0.0.0 Safari/537.36",
        "ip": "81.2.69.142",
        "screen_width": 1920,
        "screen_height": 1080,
        "viewport_width": 1200,
        "viewport_height": 800,
        "device_pixel_ratio": 1.0,
        "params": {},
        "new_party": False,
        "corrupted": False,
        "no_js": False,
        "webdriver": None,
        "consent": "unknown",
    }
    record.update(fields)
    return record


def _decoded(**fields) -> dict:
    """A raw click as the decode step returns it (client session id renamed)."""
    record = _raw_click(**fields)
    record["client_session_id"] = record.pop("session_id")
    return record


@pytest.fixture
def raw_click():
    """Factory: ``raw_click(**fields)`` -> a RawClick dict."""
    return _raw_click


@pytest.fixture
def decoded():
    """Factory: ``decoded(**fields)`` -> a record as the decode step returns it."""
    return _decoded
