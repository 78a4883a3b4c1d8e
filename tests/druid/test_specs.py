"""The declaration against the schemas, and the shape of generated specs (no services)."""

from __future__ import annotations

import copy
import dataclasses

import pytest

import schemas
from clickpipe.config import settings
from druid import specs

DECLARATION = specs.load_declaration()


@pytest.mark.parametrize("key", sorted(DECLARATION))
def test_every_field_of_every_schema_version_is_mapped_or_excluded(key):
    ds = DECLARATION[key]
    assert specs.problems(ds) == []
    fields = {f["name"] for v in schemas.versions(ds.schema) for f in v.source["fields"]}
    mapped = ({ds.timestamp} | set(ds.dimensions) | set(ds.maps) | set(ds.excluded)
              | {m.field for m in ds.metrics if m.field})
    assert fields <= mapped


def test_both_pipeline_topics_have_a_datasource():
    assert {ds.schema for ds in DECLARATION.values()} == {"EnrichedClick", "Session"}
    assert {ds.topic(settings) for ds in DECLARATION.values()} == {settings.topic_enriched, settings.topic_sessions}


def _version_with(schema_name: str, *extra_fields: dict) -> schemas.Schema:
    """A new schema version (not registered) made of the current fields plus ``extra_fields``."""
    source = copy.deepcopy(dict(schemas.current(schema_name).source))
    source["fields"] = source["fields"] + list(extra_fields)
    return schemas.Schema(name=f"clickpipe.{schema_name}", fingerprint="0", parsed=None, source=source)


def test_a_field_added_to_a_schema_blocks_the_spec_until_declared():
    ds = DECLARATION["clicks"]
    versions = schemas.versions("EnrichedClick") + [
        _version_with("EnrichedClick", {"name": "experiment", "type": ["null", "string"], "default": None})]
    found = specs.problems(ds, versions)
    assert len(found) == 1 and "'experiment'" in found[0] and "neither mapped nor excluded" in found[0]
    with pytest.raises(specs.DeclarationError, match="experiment"):
        specs.build(ds, settings, versions)

    as_dimension = dataclasses.replace(ds, dimensions={**ds.dimensions, "experiment": "string"})
    assert specs.problems(as_dimension, versions) == []
    excluded = dataclasses.replace(ds, excluded={**ds.excluded, "experiment": "not analysed yet"})
    assert specs.problems(excluded, versions) == []


@pytest.mark.parametrize("change, message", [
    (lambda ds: {"dimensions": {**ds.dimensions, "no_such_field": "string"}}, "'no_such_field' is not a field"),
    (lambda ds: {"dimensions": {**ds.dimensions, "url_path": "long"}}, "'url_path' has Avro type"),
    (lambda ds: {"dimensions": {**ds.dimensions, "is_bot": "flag"}}, "unknown type 'flag'"),
    (lambda ds: {"excluded": {**ds.excluded, "is_bot": "oops"}}, "'is_bot' of EnrichedClick is both"),
    (lambda ds: {"metrics": ds.metrics + (specs.Metric("source", "count"),)}, "'source' is declared more than once"),
    (lambda ds: {"metrics": ds.metrics + (specs.Metric("x", "longSum", "url_path"),)}, "'url_path' has Avro type"),
    (lambda ds: {"metrics": ds.metrics + (specs.Metric("x", "countWhere", "is_bot"),)}, "`equals`"),
    (lambda ds: {"maps": {"url_path": ("a",)}}, "map 'url_path'"),
    (lambda ds: {"timestamp": "client_time"}, "timestamp 'client_time'"),
])
def test_declaration_mistakes_are_reported(change, message):
    ds = DECLARATION["clicks"]
    found = specs.problems(dataclasses.replace(ds, **change(ds)))
    assert any(message in p for p in found), found


def test_spec_decodes_every_schema_version_inline_and_hashes_its_content():
    ds = DECLARATION["clicks"]
    versions = schemas.versions("EnrichedClick")
    spec = specs.build(ds, settings)
    decoder = spec["spec"]["dataSchema"]["parser"]["avroBytesDecoder"]
    assert decoder == {"type": "multiple_schemas_inline",
                       "schemas": {str(v.druid_id): v.source for v in versions}}
    assert spec["spec"]["ioConfig"]["topic"] == settings.topic_enriched
    assert spec["spec"]["dataSchema"]["dataSource"] == settings.druid_clicks_datasource
    assert spec["context"][specs.SPEC_HASH_KEY] == specs.spec_hash(spec)
    assert specs.build(ds, settings) == spec

    coarser = dataclasses.replace(ds, segment_granularity="day")
    assert specs.build(coarser, settings)["context"] != spec["context"]


def test_map_keys_become_flattened_dimensions():
    ds = dataclasses.replace(DECLARATION["clicks"], maps={"params": ("plan", "ab_test")})
    parse_spec = specs.build(ds, settings)["spec"]["dataSchema"]["parser"]["parseSpec"]
    assert parse_spec["flattenSpec"]["fields"] == [
        {"type": "path", "name": "params_plan", "expr": "$.params.plan"},
        {"type": "path", "name": "params_ab_test", "expr": "$.params.ab_test"},
    ]
    assert parse_spec["dimensionsSpec"]["dimensions"][-2:] == ["params_plan", "params_ab_test"]
