"""Bad input to the dashboard's API gets a clear 400 before any query is sent.

The dashboard here points at a Druid address where nothing listens: a request that passed
validation would come back 503 "not reachable", so a 400 proves the query never left.
"""

from __future__ import annotations

import socket

import pytest
import schemathesis
import yaml
from falcon import testing
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import content_type_conformance, status_code_conformance

from clickpipe.config import load
from dashboard.app import create
from druid import queries
from tests.support.druid import private_env


def _app_without_druid():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    return create(load(private_env(DRUID_BROKER_URL=url, DRUID_ROUTER_URL=url)))


APP = _app_without_druid()
schema = schemathesis.openapi.from_dict(yaml.safe_load(testing.TestClient(APP).simulate_get("/api/openapi.yaml").text))
schema.app = APP


@pytest.fixture(scope="module")
def client() -> testing.TestClient:
    return testing.TestClient(APP)


@schema.include(path_regex="^/api/").parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_generated_requests_get_documented_answers(case):
    """Whatever the description allows (and what it does not, in negative cases), the answer is
    a documented status with a documented content type: 400 for bad input, 503 (no Druid here)
    once validation passed (documented: Druid did not answer); never 500."""
    case.call_and_validate(checks=[status_code_conformance, content_type_conformance])


HOSTILE = ["' OR '1'='1", "x'; DROP TABLE clicks; --", "/pricing\" OR 1=1", "a\\'b", "/ -- comment",
           "/*x*/", "line\nbreak", "x" * 201]


@pytest.mark.parametrize("path, query, message", [
    ("/api/reports/pages", "filter[password]=x", "unknown filter field 'password'"),
    ("/api/summary", "filter[is_bot]=true", "unknown filter field 'is_bot'"),
    ("/api/reports/pages", "since=yesterday", "'yesterday' is neither a span"),
    ("/api/summary", "since=", "parameter 'since' is empty"),
    ("/api/summary", "since=2026-02-30T00:00:00Z", "neither a span"),
    ("/api/reports/traffic", "since=1h&until=2h", "the window is empty"),
    ("/api/reports/pages", "limit=0", "'limit' must be between 1 and 1000"),
    ("/api/reports/pages", "limit=ten", "'limit' must be an integer"),
    ("/api/reports/pages", "since=1h&since=2h", "'since' given 2 times"),
    ("/api/reports/pages", "order=1;DROP", "unknown parameter 'order'"),
    ("/api/reports/pages", "traffic=robots", "'traffic' must be one of human, bots, all"),
    ("/api/reports/paths", "since=1h", "needs --page"),
    ("/api/reports/goals", "goal_page=/a&goal_event=b", "exactly one"),
    ("/api/reports/goals", "goal_event=signup&goal_property=$.x=1", "is not key=value"),
    ("/api/reports/retention", "weeks=100", "'weeks' must be between 1 and 26"),
    ("/api/reports/pages", "format=xml", "format must be json or csv"),
    ("/api/reports/sessions", "filter[page]=/", "does not apply to session reports"),
    ("/api/reports/traffic", "granularity=1;select", "unknown granularity"),
    ("/api/reports/traffic", "granularity=PT5D", "unknown granularity"),
    ("/api/reports/traffic", "since=9999999w", "reaches back before year 1"),
])
def test_bad_input_is_a_clear_400(client, path, query, message):
    response = client.simulate_get(path, query_string=query)
    assert response.status_code == 400, response.text
    assert message in response.json["error"]


@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize("path, parameter", [
    ("/api/reports/pages", "filter[referrer_source]"), ("/api/summary", "filter[page]"),
    ("/api/reports/paths", "page"), ("/api/reports/goals", "goal_page"), ("/api/reports/funnel", "steps"),
    ("/api/summary", "goal_event"),
])
def test_values_with_quotes_or_sql_are_refused(client, path, parameter, value):
    response = client.simulate_get(path, params={parameter: value})
    assert response.status_code == 400, response.text
    assert "error" in response.json and "Druid" not in response.json["error"]


def test_valid_input_reaches_druid(client):
    """The control: the same requests with valid values pass validation (and meet no Druid)."""
    for path, query in [("/api/reports/pages", "filter[referrer_source]=Google&since=7d&limit=5"),
                        ("/api/summary", ""),
                        ("/api/summary", "since=today&filter[page]=/pricing&goal_event=signup&goal_property=plan=pro"),
                        ("/api/reports/paths", "page=/blog/a%20b&since=2026-01-01T00:00:00Z&until=1h"),
                        ("/api/reports/retention", "weeks=4&filter[country]=GB")]:
        response = client.simulate_get(path, query_string=query)
        assert response.status_code == 503 and "not reachable" in response.json["error"], (path, response.text)


def test_unknown_report_is_404(client):
    response = client.simulate_get("/api/reports/drop-table")
    assert response.status_code == 404 and "unknown report 'drop-table'" in response.json["error"]


def test_the_where_clause_quotes_what_it_accepts():
    """What passes validation is still quoted: a value with spaces and SQL words stays one literal."""
    reports = queries.Reports(load(private_env()))
    where = reports._where("1h", None, "human", filters={"page": "/a OR 1=1", "referrer_source": "Google"})
    assert "url_path = '/a OR 1=1'" in where
    assert "referrer_source = 'Google'" in where and "first_in_session = 'true'" in where
    with pytest.raises(ValueError, match="unknown filter field"):
        reports._where("1h", None, "human", filters={"url_path) OR (1": "x"})
