"""Fixtures of the simulation tests: settings pointed at MaxMind's test databases."""

from __future__ import annotations

import pytest

from clickpipe.config import load


@pytest.fixture(scope="session")
def geo_settings(geo_env):
    """Settings whose geo and ASN lookups use MaxMind's test databases."""
    return load(geo_env)
