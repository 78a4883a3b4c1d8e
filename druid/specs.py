"""Kafka supervisor specs for Druid, derived from the Avro schemas and ``datasources.toml``.

The declaration says, per datasource, which schema fields are dimensions, which feed
metrics, which map keys are promoted and which fields are excluded (with a reason).
:func:`problems` checks the declaration against *every* known version of the schema;
:func:`build` refuses to produce a spec while any problem remains, so a field added to a
schema cannot silently miss Druid.

Topic values are newline-delimited JSON rows (:func:`schemas.encode_rows`): one row per line,
the fields named as in the schema version that wrote them. Specs read them with Druid's
``kafka`` input format wrapping the core ``json`` format with ``assumeNewlineDelimited``, so
a line Druid cannot parse is counted as unparseable (and saved, see :data:`TUNING`) while the
other lines of its message are ingested: no record fails a task. A field a row's schema
version lacks is null; a field the declaration does not name is not ingested.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, cast

import schemas
from clickpipe.config import Settings

DECLARATION = Path(__file__).with_name("datasources.toml")
SPEC_HASH_KEY = "clickpipe.specHash"

# Avro primitive types each declared dimension type accepts.
_DIMENSION_AVRO = {
    "string": {"string", "enum"},
    "long": {"int", "long"},
    "double": {"float", "double", "int", "long"},
    "float": {"float", "double", "int", "long"},
    "boolean": {"boolean"},
    "url": {"string"},
    "json": {"map", "record", "array"},
}
_NUMERIC = {"int", "long", "float", "double"}
# Metric type -> Avro primitive types its field may have (None: takes no field).
_METRIC_AVRO: dict[str, set[str] | None] = {
    "count": None,
    "longSum": {"int", "long"},
    "doubleSum": _NUMERIC,
    "quantilesDoublesSketch": _NUMERIC,
    "thetaSketch": {"string", "enum", "int", "long"},
    "countWhere": {"string", "enum", "boolean", "int", "long"},
}
# `equals` of a countWhere metric on a boolean field -> the long Druid 33 gives expressions for
# a JSON boolean (see _flag_expression).
_BOOLEAN_LITERALS = {"true": "1", "false": "0"}
# Parse exceptions are counted and never fail a task (the default limit, stated); the latest
# are saved for `clickpipe druid status` and logged by the task.
TUNING = {"type": "kafka", "maxParseExceptions": 2**31 - 1, "maxSavedParseExceptions": 50,
          "logParseExceptions": True}


class DeclarationError(ValueError):
    """The declaration does not match the schema; the message lists every problem."""


@dataclass(frozen=True)
class Metric:
    name: str
    type: str
    field: str | None = None
    equals: str | None = None


@dataclass(frozen=True)
class Datasource:
    """One datasource of the declaration (see the comments at the top of datasources.toml)."""

    key: str
    schema: str
    topic_setting: str
    datasource_setting: str
    retention_setting: str
    timestamp: str
    segment_granularity: str
    query_granularity: str
    rollup: bool
    dimensions: Mapping[str, str]
    metrics: tuple[Metric, ...]
    maps: Mapping[str, tuple[str, ...]]
    excluded: Mapping[str, str]

    def name(self, settings: Settings) -> str:
        """Datasource name, also the supervisor id."""
        return getattr(settings, self.datasource_setting)

    def topic(self, settings: Settings) -> str:
        return getattr(settings, self.topic_setting)

    def retention_days(self, settings: Settings) -> int:
        """Days of data Druid keeps serving (0: all of it)."""
        return getattr(settings, self.retention_setting)

    def map_dimension(self, field: str, key: str) -> str:
        return f"{field}_{key}"


def load_declaration(path: Path = DECLARATION) -> dict[str, Datasource]:
    """Every datasource declared in ``path``, by key (``clicks``, ``sessions``)."""
    raw = tomllib.loads(path.read_text())
    return {key: _datasource(key, body) for key, body in raw.items()}


def _datasource(key: str, body: Mapping[str, Any]) -> Datasource:
    try:
        return Datasource(
            key=key,
            schema=body["schema"],
            topic_setting=body["topic"],
            datasource_setting=body["datasource"],
            retention_setting=body["retention"],
            timestamp=body["timestamp"],
            segment_granularity=body["segment_granularity"],
            query_granularity=body["query_granularity"],
            rollup=bool(body.get("rollup", True)),
            dimensions=dict(body.get("dimensions", {})),
            metrics=tuple(Metric(**m) for m in body.get("metrics", [])),
            maps={f: tuple(keys) for f, keys in body.get("maps", {}).items()},
            excluded=dict(body.get("excluded", {})),
        )
    except (KeyError, TypeError) as exc:
        raise DeclarationError(f"[{key}] malformed declaration: {exc}") from None


def _avro_types(field_type: Any) -> set[str]:
    """Non-null Avro type names of a field (a union contributes each branch)."""
    branches = field_type if isinstance(field_type, list) else [field_type]
    names = set()
    for branch in branches:
        name = branch["type"] if isinstance(branch, dict) else branch
        if name != "null":
            names.add(name)
    return names


def _fields(versions: list[schemas.Schema]) -> dict[str, set[str]]:
    """Field name -> Avro type names, over every version of a schema."""
    found: dict[str, set[str]] = {}
    for version in versions:
        for field in version.source["fields"]:
            found.setdefault(field["name"], set()).update(_avro_types(field["type"]))
    return found


def problems(ds: Datasource, versions: list[schemas.Schema] | None = None) -> list[str]:
    """Everything wrong with ``ds`` against the schema versions (default: every known one).

    Each field must be mapped (timestamp, dimension, metric field, map) or excluded, not
    both; every name the declaration uses must exist with a compatible type; output
    column names must be unique.
    """
    versions = versions if versions is not None else schemas.versions(ds.schema)
    fields = _fields(versions)
    found: list[str] = []

    def check(field: str, allowed: set[str], role: str) -> None:
        if field not in fields:
            found.append(f"{role} {field!r} is not a field of {ds.schema}")
        elif not fields[field] <= allowed:
            found.append(f"{role} {field!r} has Avro type {sorted(fields[field])}, expected one of {sorted(allowed)}")

    check(ds.timestamp, {"long"}, "timestamp")
    if any(f["name"] == ds.timestamp and f["type"] != "long" for v in versions for f in v.source["fields"]):
        found.append(f"timestamp {ds.timestamp!r} must be a non-null long in every version")
    for name, kind in ds.dimensions.items():
        if kind not in _DIMENSION_AVRO:
            found.append(f"dimension {name!r} has unknown type {kind!r}")
        else:
            check(name, _DIMENSION_AVRO[kind], f"{kind} dimension")
    for metric in ds.metrics:
        if metric.type not in _METRIC_AVRO:
            found.append(f"metric {metric.name!r} has unknown type {metric.type!r}")
            continue
        allowed = _METRIC_AVRO[metric.type]
        if allowed is None:
            if metric.field is not None:
                found.append(f"metric {metric.name!r} ({metric.type}) takes no field")
        elif metric.field is None:
            found.append(f"metric {metric.name!r} ({metric.type}) needs a field")
        else:
            check(metric.field, allowed, f"{metric.type} metric field")
        if (metric.type == "countWhere") != (metric.equals is not None):
            found.append(f"metric {metric.name!r}: `equals` goes with type countWhere only")
        elif (metric.type == "countWhere" and metric.field is not None
              and "boolean" in fields.get(metric.field, set())):
            if fields[metric.field] != {"boolean"} or metric.equals not in _BOOLEAN_LITERALS:
                found.append(f"metric {metric.name!r}: boolean field {metric.field!r} compares with "
                             f"`equals` \"true\" or \"false\" only")
    for field in ds.maps:
        check(field, {"map"}, "map")
    for field in ds.excluded:
        if field not in fields:
            found.append(f"excluded {field!r} is not a field of {ds.schema}")

    mapped = ({ds.timestamp} | set(ds.dimensions) | set(ds.maps)
              | {m.field for m in ds.metrics if m.field is not None})
    for field in sorted(fields):
        if field not in mapped and field not in ds.excluded:
            found.append(f"field {field!r} of {ds.schema} is neither mapped nor excluded "
                         f"(declare it in druid/datasources.toml [{ds.key}])")
        elif field in mapped and field in ds.excluded:
            found.append(f"field {field!r} of {ds.schema} is both mapped and excluded")

    columns = (list(ds.dimensions) + [m.name for m in ds.metrics]
               + [ds.map_dimension(f, k) for f, keys in ds.maps.items() for k in keys])
    for column in sorted({c for c in columns if columns.count(c) > 1}):
        found.append(f"column {column!r} is declared more than once")
    return found


def _flag(metric: Metric) -> str:
    """Name of the 0/1 column a countWhere metric sums."""
    return f"_{metric.name}_flag"


def _druid_literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _flag_expression(metric: Metric, field_types: set[str]) -> str:
    """The 0/1 ingest-time expression of a countWhere metric.

    Druid 33 hands a JSON boolean to expressions as the long 1 or 0 (a string dimension stores
    it as "true" / "false"), so a boolean field compares with 1 / 0; null matches neither.
    """
    equals = cast(str, metric.equals)  # a countWhere metric has `equals` (validate)
    if field_types == {"boolean"}:
        return f'if("{metric.field}" == {_BOOLEAN_LITERALS[equals]}, 1, 0)'
    return f'if("{metric.field}" == {_druid_literal(equals)}, 1, 0)'


def _metric_spec(metric: Metric) -> dict[str, Any]:
    if metric.type == "count":
        return {"type": "count", "name": metric.name}
    if metric.type == "countWhere":
        return {"type": "longSum", "name": metric.name, "fieldName": _flag(metric)}
    return {"type": metric.type, "name": metric.name, "fieldName": metric.field}


def build(ds: Datasource, settings: Settings, versions: list[schemas.Schema] | None = None) -> dict[str, Any]:
    """The Kafka supervisor spec of ``ds``; :class:`DeclarationError` if the declaration has problems.

    The spec's ``context`` carries a hash of the rest (:func:`spec_hash`), so a later apply
    can tell whether the running supervisor already has this spec.
    """
    versions = versions if versions is not None else schemas.versions(ds.schema)
    found = problems(ds, versions)
    if found:
        raise DeclarationError(f"[{ds.key}] " + "; ".join(found))

    fields = _fields(versions)
    dimensions: list[Any] = []
    for name, kind in ds.dimensions.items():
        dimensions.append(name if kind in ("string", "boolean", "url") else {"type": kind, "name": name})
    flatten = [{"type": "path", "name": ds.map_dimension(f, k), "expr": f"$.{f}.{k}"}
               for f, keys in ds.maps.items() for k in keys]
    dimensions += [f["name"] for f in flatten]

    # One row per line: a line that is not a JSON object is dropped alone, not with the
    # rest of its message.
    rows: dict[str, Any] = {"type": "json", "assumeNewlineDelimited": True}
    if flatten:
        rows["flattenSpec"] = {"useFieldDiscovery": True, "fields": flatten}
    # a countWhere metric has a field (validate)
    transforms = [{"type": "expression", "name": _flag(m),
                   "expression": _flag_expression(m, fields[cast(str, m.field)])}
                  for m in ds.metrics if m.type == "countWhere"]
    # A transform named like its input replaces it: URLs keep scheme, host and path only.
    transforms += [{"type": "expression", "name": name, "expression": f"regexp_extract(\"{name}\", '^[^?#]*')"}
                   for name, kind in ds.dimensions.items() if kind == "url"]
    spec: dict[str, Any] = {
        "type": "kafka",
        "spec": {
            "dataSchema": {
                "dataSource": ds.name(settings),
                "timestampSpec": {"column": ds.timestamp, "format": "millis"},
                "dimensionsSpec": {"dimensions": dimensions},
                "transformSpec": {"transforms": transforms},
                "metricsSpec": [_metric_spec(m) for m in ds.metrics],
                "granularitySpec": {
                    "segmentGranularity": ds.segment_granularity,
                    "queryGranularity": ds.query_granularity,
                    "rollup": ds.rollup,
                },
            },
            "ioConfig": {
                "topic": ds.topic(settings),
                # The kafka format reads the value with `valueFormat`; with no key or header
                # format it adds only kafka.timestamp and kafka.topic, which are not dimensions.
                "inputFormat": {"type": "kafka", "valueFormat": rows},
                # read_committed: records of aborted pipeline transactions never reach Druid.
                "consumerProperties": {"bootstrap.servers": settings.kafka_bootstrap,
                                       "isolation.level": "read_committed"},
                "useEarliestOffset": True,
                "taskCount": settings.druid_task_count,
                "replicas": settings.druid_replicas,
                "taskDuration": settings.druid_task_duration,
                "startDelay": settings.druid_start_delay,
                "period": settings.druid_supervisor_period,
            },
            "tuningConfig": dict(TUNING),
        },
    }
    spec["context"] = {SPEC_HASH_KEY: spec_hash(spec)}
    return spec


def spec_hash(spec: Mapping[str, Any]) -> str:
    """SHA-256 of a spec's canonical JSON, ignoring its ``context``."""
    body = {k: v for k, v in spec.items() if k != "context"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def build_all(settings: Settings, declaration: Mapping[str, Datasource] | None = None) -> dict[str, dict[str, Any]]:
    """Every declared datasource's spec, by supervisor id; raises on the first bad declaration."""
    declaration = declaration if declaration is not None else load_declaration()
    return {ds.name(settings): build(ds, settings) for ds in declaration.values()}
