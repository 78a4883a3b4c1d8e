"""Shared fixtures.

Tests that request ``stack`` (directly or through another fixture) run against the real
local Kafka + Druid stack; the first such test starts it (or reuses one already up) and it
is left running for the rest of the session. A test that starts services of its own (say, a
private broker) marks itself ``stack`` instead. Every other test is a unit test. The markers
``stack`` and ``unit`` are set automatically, so ``pytest -m unit`` runs without services.
"""

from __future__ import annotations

import pytest

from app.geodata import test_database_env
from clickpipe.config import Settings, settings


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "stack" in item.fixturenames:
            item.add_marker(pytest.mark.stack)
        elif item.get_closest_marker("stack") is None:  # marked stack explicitly: not a unit test
            item.add_marker(pytest.mark.unit)


@pytest.fixture(scope="session")
def stack() -> Settings:
    """Ensure Kafka and Druid are up and the pipeline topics exist; return the settings."""
    from stack.manager import StackManager

    manager = StackManager(settings)
    manager.up()
    manager.create_topics()
    return settings


@pytest.fixture(scope="session")
def geo_env() -> dict[str, str]:
    """``CLICKPIPE_GEOIP_*`` variables naming MaxMind's City and ASN test databases (fetched once
    into the cache)."""
    return test_database_env(settings.cache_dir)


@pytest.fixture
def private_stack(stack, tmp_path):
    """A second stack (see tests/private_stack.py): its settings, a ``clickpipe stack`` caller and
    its environment. Not started here; always brought down at the end."""
    from private_stack import stack_cli, stack_env

    from clickpipe.config import load

    env = stack_env(tmp_path / "state", stack.cache_dir)

    def cli(*args: str):
        return stack_cli(env, *args)

    yield load(env), cli, env
    cli("down")
