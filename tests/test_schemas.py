"""The schema registry's codecs: plain (headers) and framed (Druid-facing topics)."""

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


def test_framed_layout_is_druids_multiple_schemas_inline():
    s = schemas.current("RawClick")
    framed = schemas.encode_framed(s, RAW)
    assert framed[0] == 1
    assert int.from_bytes(framed[1:5], "big") == s.druid_id < 2**31
    assert framed[5:] == schemas.encode(s, RAW)
    assert schemas.decode_framed(framed)["event_id"] == "e1"


def test_older_writer_version_resolves_to_current_reader(monkeypatch):
    monkeypatch.setattr(schemas, "_by_fingerprint", dict(schemas._by_fingerprint))  # keep the registry clean
    current = schemas.current("RawClick")
    older_source = dict(current.source, fields=[f for f in current.source["fields"] if f["name"] != "consent"])
    older = schemas.register(older_source)
    assert older in schemas.versions("RawClick") and schemas.current("RawClick") is current
    decoded = schemas.decode_framed(schemas.encode_framed(older, RAW))
    assert decoded["consent"] == "unknown"  # filled from the current schema's default


@pytest.mark.parametrize("bad", [b"", b"\x01\x00", b"\x02" + b"\x00" * 10, b"\x01\x00\x00\x00\x07abc"])
def test_bad_frames_are_clear_errors(bad):
    with pytest.raises(schemas.SchemaError):
        schemas.decode_framed(bad)


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
    assert schemas.decode_message(schemas.encode_framed(s, RAW), s.headers)["event_id"] == "e1"
    assert schemas.decode_message(schemas.encode(s, RAW), s.headers)["event_id"] == "e1"
    with pytest.raises(schemas.SchemaError):
        schemas.decode_message(schemas.encode(s, RAW), [])
