"""The declarative mapping from sender events to RawClick records."""

from __future__ import annotations

import pytest

import schemas
from collector.ids import is_valid_id
from collector.mapping import Context, Rejection, pixel_event, to_record

CTX = Context(server_time=1_700_000_000_000, source="batch", ip="192.0.2.1", user_agent="UA", party_id="party-0001")


def full_event() -> dict:
    return {
        "event_type": "addToCart",
        "event_id": "evt-00000001",
        "session_id": "sess-0000001",
        "page_view_id": "pv-00000001",
        "client_time": 1_699_999_999_000,
        "location": "https://shop.example/p/1",
        "referrer": "https://search.example/?q=x",
        "screen_width": 1920,
        "screen_height": 1080,
        "viewport_width": 1200,
        "viewport_height": 800,
        "device_pixel_ratio": 1.5,
        "webdriver": False,
        "consent": "granted",
        "params": {"sku": "A1", "qty": 2, "gift": True},
    }


def test_full_event_maps_every_field_and_fits_the_schema():
    record = to_record(full_event(), CTX, max_params=50)
    assert not isinstance(record, Rejection)
    assert record["party_id"] == "party-0001" and record["source"] == "batch"
    assert record["params"] == {"sku": "A1", "qty": "2", "gift": "true"}
    assert record["server_time"] == CTX.server_time and record["ip"] == "192.0.2.1"
    schema = schemas.current("RawClick")
    assert schemas.decode(schemas.encode(schema, record), schema) == record


def test_minimal_event_gets_defaults():
    record = to_record({}, CTX, max_params=50)
    assert record["event_type"] == "pageView"
    assert is_valid_id(record["event_id"]) and record["event_id"] != to_record({}, CTX, 50)["event_id"]
    assert record["client_time"] is None and record["params"] == {} and record["consent"] == "unknown"


def test_party_id_in_event_overrides_context_and_is_not_new():
    ctx = Context(server_time=1, source="batch", ip=None, user_agent=None, party_id="issued-001", new_party=True)
    assert to_record({"party_id": "server-party-9"}, ctx, 50)["new_party"] is False
    assert to_record({}, ctx, 50)["new_party"] is True


@pytest.mark.parametrize(
    "field,value",
    [
        ("event_id", "short"),
        ("event_id", "has space in it"),
        ("event_id", 12345678),
        ("party_id", "<script>alert(1)</script>"),
        ("session_id", "x" * 129),
        ("event_type", "a" * 65),
        ("event_type", "bad type"),
        ("client_time", -1),
        ("client_time", 2**60),
        ("client_time", "12e3"),
        ("client_time", True),
        ("screen_width", 100_001),
        ("screen_width", 1.5),
        ("device_pixel_ratio", float("nan")),
        ("device_pixel_ratio", 0),
        ("webdriver", "maybe"),
        ("consent", "yes"),
        ("location", "u" * 4097),
    ],
)
def test_invalid_values_are_rejected_with_the_field_named(field, value):
    assert to_record({field: value}, CTX, 50) == Rejection(f"invalid_{field}")


@pytest.mark.parametrize(
    "params,reason",
    [
        ([1, 2], "params_invalid"),
        ({"a b": "1"}, "params_invalid_key"),
        ({"k": {"nested": 1}}, "params_invalid_value"),
        ({"k": "v" * 1025}, "params_value_too_long"),
        ({f"k{i}": "v" for i in range(3)}, "params_too_many"),
    ],
)
def test_invalid_params_are_rejected(params, reason):
    assert to_record({"params": params}, CTX, max_params=2) == Rejection(reason)


def test_unknown_field_and_non_object_are_rejected():
    assert to_record({"evnt_type": "typo"}, CTX, 50) == Rejection("unknown_field")
    assert to_record(["not", "an", "object"], CTX, 50) == Rejection("not_an_object")


def test_null_means_absent():
    assert to_record({"location": None}, CTX, 50)["location"] is None


def test_missing_party_without_context_party_is_rejected():
    ctx = Context(server_time=1, source="divolte", ip=None, user_agent=None, party_id=None)
    assert to_record({}, ctx, 50) == Rejection("missing_party_id")


def test_pixel_pairs_fold_into_an_event_with_strings_converted():
    pairs = [
        ("event_type", "open"),
        ("event_type", "ignored-second"),
        ("screen_width", "320"),
        ("webdriver", "1"),
        ("params.campaign", "spring"),
        ("_", "cachebuster"),
        ("via", "tag"),
    ]
    event = pixel_event(pairs)
    assert event == {"event_type": "open", "screen_width": "320", "webdriver": "1", "params": {"campaign": "spring"}}
    record = to_record(event, CTX, 50)
    assert record["screen_width"] == 320 and record["webdriver"] is True


def test_user_agent_is_truncated_not_rejected():
    ctx = Context(server_time=1, source="tag", ip=None, user_agent="U" * 5000, party_id="party-0001")
    assert len(to_record({}, ctx, 50)["user_agent"]) == 1024


INTERACTION = {"pointer": 3, "touch": 0, "keys": 12, "scrolls": 5, "visible_ms": 41_000, "focused_ms": 39_500,
               "ever_visible": True}


def test_interaction_evidence_is_kept_and_fits_the_schema():
    record = to_record({**full_event(), "interaction": INTERACTION}, CTX, max_params=50)
    assert not isinstance(record, Rejection) and record["interaction"] == INTERACTION
    schema = schemas.current("RawClick")
    assert schemas.decode(schemas.encode(schema, record), schema)["interaction"] == INTERACTION
    # absent or null: no evidence (null), never zero interaction
    for event in ({}, {"interaction": None}):
        record = to_record(event, CTX, max_params=50)
        assert not isinstance(record, Rejection) and record["interaction"] is None


@pytest.mark.parametrize("value", [
    {**INTERACTION, "pointer": -1},
    {**INTERACTION, "keys": 10_000_001},
    {**INTERACTION, "visible_ms": 1.5},
    {**INTERACTION, "scrolls": True},
    {**INTERACTION, "ever_visible": "maybe"},
    {**INTERACTION, "focused_ms": 41_001},  # focus is only counted while visible
    {k: v for k, v in INTERACTION.items() if k != "touch"},
    {**INTERACTION, "extra": 1},
    [1, 2, 3],
    "x" * 300,
    "{not json",
    7,
])
def test_bad_interaction_is_rejected_by_name(value):
    assert to_record({"interaction": value}, CTX, max_params=50) == Rejection("invalid_interaction")


def test_pixel_carries_interaction_as_json_text():
    import json

    event = pixel_event([("interaction", json.dumps(INTERACTION)), ("event_type", "engagement")])
    record = to_record(event, CTX, max_params=50)
    assert not isinstance(record, Rejection) and record["interaction"] == INTERACTION


def test_client_hints_come_from_the_context():
    ctx = Context(server_time=1, source="tag", ip=None, user_agent="UA", party_id="party-0001",
                  ch_ua='"Chromium";v="131", "Not_A Brand";v="24"', ch_ua_mobile="?0", ch_ua_platform='"Linux"')
    record = to_record({}, ctx, max_params=50)
    assert not isinstance(record, Rejection)
    assert (record["ch_ua"], record["ch_ua_mobile"], record["ch_ua_platform"]) == (ctx.ch_ua, "?0", '"Linux"')
    plain = to_record({}, CTX, max_params=50)
    assert not isinstance(plain, Rejection) and plain["ch_ua"] is None
