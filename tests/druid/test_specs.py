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


def test_every_pipeline_output_topic_has_a_datasource():
    assert {ds.schema for ds in DECLARATION.values()} == {"EnrichedClick", "Session", "BotVerdict"}
    assert {ds.topic(settings) for ds in DECLARATION.values()} == {settings.topic_enriched, settings.topic_sessions,
                                                                  settings.topic_verdicts}


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
    (lambda ds: {"metrics": ds.metrics + (specs.Metric("x", "countWhere", "is_bot", "yes"),)},
     "boolean field 'is_bot' compares with `equals` \"true\" or \"false\" only"),
    (lambda ds: {"maps": {"url_path": ("a",)}}, "map 'url_path'"),
    (lambda ds: {"timestamp": "client_time"}, "timestamp 'client_time'"),
])
def test_declaration_mistakes_are_reported(change, message):
    ds = DECLARATION["clicks"]
    found = specs.problems(dataclasses.replace(ds, **change(ds)))
    assert any(message in p for p in found), found


def test_spec_reads_newline_delimited_json_rows_and_hashes_its_content():
    ds = DECLARATION["clicks"]
    spec = specs.build(ds, settings)
    body = spec["spec"]
    assert "parser" not in body["dataSchema"]
    assert body["ioConfig"]["inputFormat"] == {
        "type": "kafka", "valueFormat": {"type": "json", "assumeNewlineDelimited": True}}
    assert body["dataSchema"]["timestampSpec"] == {"column": "server_time", "format": "millis"}
    assert body["ioConfig"]["topic"] == settings.topic_enriched
    assert body["dataSchema"]["dataSource"] == settings.druid_clicks_datasource
    assert body["tuningConfig"] == {"type": "kafka", "maxParseExceptions": 2**31 - 1,
                                    "maxSavedParseExceptions": 50, "logParseExceptions": True}
    assert spec["context"][specs.SPEC_HASH_KEY] == specs.spec_hash(spec)
    assert specs.build(ds, settings) == spec

    coarser = dataclasses.replace(ds, segment_granularity="day")
    assert specs.build(coarser, settings)["context"] != spec["context"]


def test_count_where_compares_booleans_as_druid_reads_json_booleans():
    ds = dataclasses.replace(DECLARATION["sessions"], metrics=DECLARATION["sessions"].metrics + (
        specs.Metric("engaged", "countWhere", "bounce", "false"),
        specs.Metric("gap_closed", "countWhere", "close_reason", "it's"),
    ))
    transforms = {t["name"]: t["expression"] for t in specs.build(ds, settings)["spec"]["dataSchema"]
                  ["transformSpec"]["transforms"]}
    assert transforms["_bounces_flag"] == 'if("bounce" == 1, 1, 0)'
    assert transforms["_engaged_flag"] == 'if("bounce" == 0, 1, 0)'
    assert transforms["_gap_closed_flag"] == "if(\"close_reason\" == 'it\\'s', 1, 0)"
    assert transforms["landing_page"] == "regexp_extract(\"landing_page\", '^[^?#]*')"


def test_map_keys_become_flattened_dimensions():
    ds = dataclasses.replace(DECLARATION["clicks"], maps={"params": ("plan", "ab_test")})
    body = specs.build(ds, settings)["spec"]
    assert body["ioConfig"]["inputFormat"]["valueFormat"]["flattenSpec"]["fields"] == [
        {"type": "path", "name": "params_plan", "expr": "$.params.plan"},
        {"type": "path", "name": "params_ab_test", "expr": "$.params.ab_test"},
    ]
    assert body["dataSchema"]["dimensionsSpec"]["dimensions"][-2:] == ["params_plan", "params_ab_test"]
