import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

import schemas
from steps import Drop
from steps.decode import decode

RAW = schemas.current("RawClick")


def test_valid_record_round_trips_and_renames_client_session(raw_click):
    record = raw_click(session_id="client-s1", ip="2001:218::1")
    out = decode(schemas.encode(RAW, record), RAW.headers)
    assert out["party_id"] == record["party_id"]
    assert out["ip"] == "2001:218::1"
    assert out["client_session_id"] == "client-s1"
    assert "session_id" not in out


def test_headers_as_mapping_are_accepted(raw_click):
    out = decode(schemas.encode(RAW, raw_click()), dict(RAW.headers))
    assert out["event_type"] == "pageView"


@pytest.mark.parametrize(
    "value, headers, reason",
    [
        (None, RAW.headers, "empty"),
        (b"", RAW.headers, "empty"),
        (b"\x02abc", None, "unknown-schema"),
        (b"\x02abc", [("schema", b"clickpipe.RawClick")], "unknown-schema"),
        (b"\x02abc", [("schema-fingerprint", b"deadbeef")], "unknown-schema"),
        (b"\x02abc", [("schema-fingerprint", b"\xff\xfe")], "unknown-schema"),
        (b"\x02abc", schemas.current("Session").headers, "wrong-schema"),
        (b"\xff\xff\xff", RAW.headers, "undecodable"),
    ],
)
def test_bad_inputs_are_dropped_with_a_reason(value, headers, reason):
    with pytest.raises(Drop) as err:
        decode(value, headers)
    assert err.value.reason == reason


def test_truncated_and_trailing_bytes_are_undecodable(raw_click):
    data = schemas.encode(RAW, raw_click())
    for bad in (data[:-3], data + b"\x00\x00"):
        with pytest.raises(Drop) as err:
            decode(bad, RAW.headers)
        assert err.value.reason == "undecodable"


@pytest.mark.parametrize(
    "fields",
    [{"party_id": ""}, {"event_id": ""}, {"event_type": ""}, {"party_id": "p" * 257}, {"server_time": 0},
     {"server_time": -5}],
)
def test_invalid_fields_are_dropped(raw_click, fields):
    with pytest.raises(Drop) as err:
        decode(schemas.encode(RAW, raw_click(**fields)), RAW.headers)
    assert err.value.reason == "invalid"


@hsettings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_escape_as_another_exception(data):
    try:
        record = decode(data, RAW.headers)
    except Drop as drop:
        assert drop.reason in {"empty", "undecodable", "invalid"}
    else:
        assert record["party_id"] and record["event_id"]
