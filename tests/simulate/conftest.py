"""Fixtures of the simulation tests: settings pointed at MaxMind's test databases."""

from __future__ import annotations

import pytest

from app.geodata import fetch_test_databases
from clickpipe.config import load, settings as default_settings


@pytest.fixture(scope="session")
def geo_env() -> dict[str, str]:
    """CLICKPIPE_GEOIP_* variables naming MaxMind's City and ASN test databases (fetched once)."""
    data = fetch_test_databases(default_settings.cache_dir) / "test-data"
    return {"CLICKPIPE_GEOIP_CITY_DB": str(data / "GeoIP2-City-Test.mmdb"),
            "CLICKPIPE_GEOIP_ASN_DB": str(data / "GeoLite2-ASN-Test.mmdb")}


@pytest.fixture(scope="session")
def geo_settings(geo_env):
    return load(geo_env)
