"""Fixtures of the simulation tests: settings pointed at MaxMind's test databases."""

from __future__ import annotations

import pytest

from app.geodata import test_database_env
from clickpipe.config import load, settings as default_settings


@pytest.fixture(scope="session")
def geo_env() -> dict[str, str]:
    """CLICKPIPE_GEOIP_* variables naming MaxMind's City and ASN test databases (fetched once)."""
    return test_database_env(default_settings.cache_dir)


@pytest.fixture(scope="session")
def geo_settings(geo_env):
    return load(geo_env)
