"""Failures users meet: Druid not reachable, unknown report names, bad options."""

from __future__ import annotations

import socket

import pytest
from druid_support import run_cli

from clickpipe.config import load
from druid import queries
from druid.client import DruidError
from tests.support.druid import private_env


def _closed_port() -> int:
    """A 127.0.0.1 port where nothing listens (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def druid_down_env() -> dict[str, str]:
    url = f"http://127.0.0.1:{_closed_port()}"
    return private_env(DRUID_ROUTER_URL=url, DRUID_BROKER_URL=url)


@pytest.mark.parametrize("command", [
    ("druid", "apply"), ("druid", "status"), ("druid", "suspend"), ("druid", "reset", "--yes"),
    ("report", "pages"), ("report", "funnel", "--steps", "/", "/cart"),
])
def test_druid_down_gives_a_clear_error_and_non_zero_exit(druid_down_env, command):
    result = run_cli(druid_down_env, *command, timeout=60)
    assert result.returncode == 1
    url = druid_down_env["CLICKPIPE_DRUID_ROUTER_URL"]
    assert f"Druid is not reachable at {url}" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_druid_down_raises_druid_error_from_python(druid_down_env):
    with pytest.raises(DruidError, match="not reachable"):
        queries.Reports(load(druid_down_env)).live()


def test_unknown_report_lists_every_report_name():
    result = run_cli(private_env(), "report", "top-secret")
    assert result.returncode == 2
    assert "unknown report 'top-secret'" in result.stderr
    listed = result.stderr.split("reports:")[1].strip().split(", ")
    assert listed == list(queries.REPORTS)


@pytest.mark.parametrize("args, message", [
    (("traffic", "--since", "yesterday"), "'yesterday' is neither a span"),
    (("traffic", "--granularity", "fortnight"), "unknown granularity 'fortnight'"),
    (("funnel",), "needs --steps"),
    (("pages", "--filter", "password=x"), "unknown filter field 'password'"),
    (("pages", "--filter", "page=/' OR '1'='1"), "has a character no value may hold"),
    (("pages", "--filter", "referrer_source=x; DROP TABLE clicks"), "has a character no value may hold"),
    (("pages", "--since", "2026-13-01"), "neither a span"),
    (("compare", "--since", "1h", "--until", "2h"), "the window is empty"),
    (("paths",), "needs --page"),
    (("paths", "--page", "/a'--"), "has a character no value may hold"),
    (("goals", "--goal-event", "signup", "--goal-property", "plan"), "is not key=value"),
    (("retention", "--weeks", "0"), "weeks must be between 1 and 26"),
])
def test_bad_report_options_are_explained(args, message):
    result = run_cli(private_env(), "report", *args)
    assert result.returncode == 2 and message in result.stderr, result.stderr
