"""schemas.encoder: the compiled encoders write exactly fastavro's bytes, for every current schema
and for field types written by fastavro itself (nested records, arrays, enums, wide unions)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import schemas
from schemas.encoder import compile_record

PRIMITIVES: dict[str, st.SearchStrategy[Any]] = {
    "null": st.none(),
    "boolean": st.booleans(),
    "int": st.integers(-(2**31), 2**31 - 1),
    "long": st.integers(-(2**63), 2**63 - 1),
    "float": st.floats(width=32, allow_nan=False),
    "double": st.floats(allow_nan=False),
    "string": st.text(max_size=40),
    "bytes": st.binary(max_size=40),
}


def values(avro_type: Any, named: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values of ``avro_type`` (as written in an .avsc), for fastavro to write."""
    if isinstance(avro_type, list):
        return st.one_of(*(values(t, named) for t in avro_type))
    if isinstance(avro_type, str):
        return PRIMITIVES[avro_type] if avro_type in PRIMITIVES else values(named[avro_type], named)
    kind = avro_type["type"]
    if kind == "record":
        named[avro_type["name"]] = avro_type
        return st.fixed_dictionaries({f["name"]: values(f["type"], named) for f in avro_type["fields"]})
    if kind == "map":
        return st.dictionaries(st.text(max_size=10), values(avro_type["values"], named), max_size=4)
    if kind == "array":
        return st.lists(values(avro_type["items"], named), max_size=4)
    if kind == "enum":
        return st.sampled_from(avro_type["symbols"])
    return values(kind, named)


OTHER_TYPES = {
    "type": "record", "name": "Other", "namespace": "test",
    "fields": [
        {"name": "interaction", "type": ["null", {"type": "record", "name": "Interaction", "fields": [
            {"name": "pointer", "type": "int"}, {"name": "ever_visible", "type": "boolean"}]}], "default": None},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["a", "b"]}},
        {"name": "wide", "type": ["null", "string", "long"], "default": None},
        {"name": "counts", "type": {"type": "map", "values": "long"}},
        {"name": "name", "type": {"type": "string"}},
        {"name": "first", "type": ["string", "null"]},
        {"name": "ratio", "type": ["null", "float"], "default": None},
    ],
}

SOURCES = [s.source for s in schemas.all_current()] + [OTHER_TYPES]


@pytest.mark.parametrize("source", SOURCES, ids=[s["name"] for s in SOURCES])
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_compiled_encoder_writes_fastavros_bytes(source, data):
    record = data.draw(values(dict(source), {}))
    expected = schemas.encode(schemas._make(source), record)
    assert compile_record(source)(record) == expected


def test_absent_fields_take_their_defaults_like_fastavro():
    raw = schemas.current("RawClick")
    record = dict(server_time=1_700_000_000_000, source="tag", party_id="p1", event_id="e1", event_type="pageView")
    assert schemas.encoder(raw)(record) == schemas.encode(raw, record)


@pytest.mark.parametrize("field, value", [("server_time", "1"), ("server_time", 2**63), ("party_id", 7),
                                          ("params", {"a": 1}), ("duplicate", 1), ("screen_width", "9")])
def test_a_value_that_does_not_fit_is_a_schema_error(field, value):
    raw = schemas.current("RawClick")
    record = dict(server_time=1, source="tag", party_id="p1", event_id="e1", event_type="pageView")
    with pytest.raises(schemas.SchemaError, match="does not fit clickpipe.RawClick"):
        schemas.encoder(raw)({**record, field: value})
