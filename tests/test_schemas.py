"""The schema registry's codecs: plain Avro named by headers, and framed Avro as earlier pipeline
versions wrote the Druid-facing topics (still read by ``decode_message``)."""

from __future__ import annotations

import pytest

import schemas

RAW = dict(server_time=1_700_000_000_000, source="tag", party_id="p1", event_id="e1", event_type="pageView")


def test_plain_roundtrip_through_headers():
    s = schemas.current("RawClick")
    data = schemas.encode(s, RAW)
    decoded = schemas.decode(data, schemas.writer_from_headers(s.headers))
    assert {k: decoded[k] for k in RAW} == RAW
    assert decoded["params"] == {} and decoded["consent"] == "unknown"


def _framed(schema: schemas.Schema, record: dict) -> bytes:
    """A framed value as earlier pipeline versions wrote it: version 1, the writer's 4-byte id, raw Avro."""
    return bytes([1]) + schema.druid_id.to_bytes(4, "big") + schemas.encode(schema, record)


def test_older_writer_version_resolves_to_current_reader(monkeypatch):
    monkeypatch.setattr(schemas, "_by_fingerprint", dict(schemas._by_fingerprint))  # keep the registry clean
    current = schemas.current("RawClick")
    older_source = dict(current.source, fields=[f for f in current.source["fields"] if f["name"] != "consent"])
    older = schemas.register(older_source)
    assert older in schemas.versions("RawClick") and schemas.current("RawClick") is current
    decoded = schemas.decode_message(_framed(older, RAW), older.headers)
    assert decoded["consent"] == "unknown"  # filled from the current schema's default


@pytest.mark.parametrize("bad", [b"", b"\x01\x00", b"\x02" + b"\x00" * 10, b"\x01\x00\x00\x00\x07abc"])
def test_undecodable_values_are_clear_errors(bad):
    s = schemas.current("RawClick")
    with pytest.raises(schemas.SchemaError):
        schemas.decode_message(bad, s.headers)
    with pytest.raises(schemas.SchemaError):
        schemas.decode_message(s.frame_prefix + bad, s.headers)


def test_truncated_and_trailing_bytes_are_errors():
    s = schemas.current("RawClick")
    data = schemas.encode(s, RAW)
    with pytest.raises(schemas.SchemaError):
        schemas.decode(data[:-3], s)
    with pytest.raises(schemas.SchemaError, match="trailing"):
        schemas.decode(data + b"\x00", s)


def test_record_that_does_not_fit_is_a_schema_error():
    with pytest.raises(schemas.SchemaError):
        schemas.encode(schemas.current("RawClick"), {"party_id": "p"})


def test_decode_message_reads_framed_and_plain_values_by_their_headers():
    s = schemas.current("RawClick")
    assert _framed(s, RAW)[:5] == s.frame_prefix and s.druid_id < 2**31
    assert schemas.decode_message(_framed(s, RAW), s.headers)["event_id"] == "e1"
    assert schemas.decode_message(schemas.encode(s, RAW), s.headers)["event_id"] == "e1"
    with pytest.raises(schemas.SchemaError):
        schemas.decode_message(schemas.encode(s, RAW), [])


def test_json_rows_carry_exactly_the_schema_fields_as_druid_reads_them():
    s = schemas.current("Session")
    record = {"session_id": "s1", "party_id": "p1", "start_time": 1, "end_time": 2, "duration_ms": 1,
              "page_views": 1, "events": 1, "bounce": True, "is_bot": False, "bot_reason": None,
              "close_reason": "gap", "not_in_schema": "x"}
    value = schemas.encode_rows(s, [record, {**record, "session_id": "s2", "bounce": False}])
    lines = value.split(b"\n")
    assert len(lines) == 2 and b'"bounce":true' in lines[0] and b'"bounce":false' in lines[1]
    assert b'"bot_reason":null' in lines[0] and b"not_in_schema" not in value
    assert (schemas.HEADER_CONTENT_TYPE, b"application/x-ndjson") in s.row_headers
    rows = schemas.decode_rows(value, s.row_headers)
    assert [r["session_id"] for r in rows] == ["s1", "s2"]
    assert set(rows[0]) == {f["name"] for f in s.source["fields"]}
