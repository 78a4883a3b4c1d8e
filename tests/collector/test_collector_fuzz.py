"""Property-based fuzzing of every endpoint from the OpenAPI description (schemathesis).

Runs in process over the in-memory producer: what is proven here is that no generated
request (valid or not) makes the collector answer 5xx or crash, and that responses
match the description.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import schemathesis
from collector_support import make_client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, status_code_conformance

from collector.intake import GIF, MAX_QUERY_FIELDS, query_pairs

SPEC = Path(__file__).resolve().parents[2] / "collector" / "openapi.yaml"

_client, _producer, _sink = make_client({"CLICKPIPE_COLLECTOR_CORS_ORIGINS": "https://shop.example"})
schema = schemathesis.openapi.from_path(SPEC)
schema.app = _client.app


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_error_and_conformant(case):
    case.call_and_validate(checks=[not_a_server_error, status_code_conformance, content_type_conformance])


# Below the schema: arbitrary bytes and arbitrary query strings.

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
FIELD_NAMES = st.sampled_from(["event_type", "event_id", "party_id", "client_time", "params", "location", "webdriver"])


@given(body=st.binary(max_size=2000))
@settings(max_examples=200, deadline=None)
def test_any_bytes_to_events_is_a_clean_4xx_or_200(body):
    r = _client.simulate_post("/events", body=body, headers={"Content-Type": "application/json"})
    assert r.status_code in (200, 400, 413) and isinstance(r.json, dict)


@given(events=st.lists(st.dictionaries(FIELD_NAMES | st.text(max_size=8), JSON_VALUES, max_size=6), max_size=5))
@settings(max_examples=200, deadline=None)
def test_any_json_events_are_each_accepted_or_rejected(events):
    r = _client.simulate_post("/events", json=events, headers={"Content-Type": "application/json"})
    assert r.status_code in (200, 400)
    if r.status_code == 200 or "rejected" in r.json:
        assert r.json["accepted"] + len(r.json["rejected"]) == len(events)


@given(pairs=st.lists(st.tuples(st.sampled_from("pscvetnflrijwhkux") | st.text(max_size=3), st.text(max_size=30)),
                      max_size=20))
@settings(max_examples=200, deadline=None)
def test_any_query_to_the_image_endpoints_answers_the_gif(pairs):
    query = urlencode(pairs)
    for path in ("/csc-event", "/p.gif"):
        r = _client.simulate_get(path, query_string=query)
        assert r.status_code == 200 and r.content == GIF


QUERY_PIECES = st.sampled_from(["a", "b", "=", "&", "%", "+", "%2", "%41", "%FF", "%e2%82%ac", "%E2%82", "é", " ",
                                ";", "%zz", "params.x"])


@given(st.lists(QUERY_PIECES, max_size=30).map("".join) | st.text(max_size=60))
@settings(max_examples=500, deadline=None)
def test_query_pairs_are_those_of_the_standard_library(query):
    assert query_pairs(query) == parse_qsl(query, keep_blank_values=True)


def test_too_many_query_fields_are_refused_like_the_standard_library():
    query = "&".join(["a=1"] * MAX_QUERY_FIELDS)
    assert query_pairs(query) == parse_qsl(query, max_num_fields=MAX_QUERY_FIELDS)
    assert query_pairs(query + "&b=2") is None
