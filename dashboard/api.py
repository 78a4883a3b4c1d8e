"""The dashboard's export API: every report of :mod:`druid.queries` over HTTP, as JSON or CSV,
and the OpenAPI document that describes it.

``GET /api/reports/<name>`` runs report ``name`` (the names of ``clickpipe report``) with the
query parameters it takes (:data:`PARAMETERS`, those of the report's method) and a segment
given as ``filter[<field>]=<value>`` (the fields of :data:`druid.queries.FILTERS`).
``format=csv`` or ``Accept: text/csv`` answers CSV. Anything else in the query -- an unknown
parameter or filter field, a repeated single parameter, a malformed time, a value with quotes
or SQL -- is refused with 400 before any query reaches Druid.

The OpenAPI document (:func:`openapi`) is built from the same declarations the requests are
parsed with, and tests/dashboard/test_analysis.py exercises every documented path and
parameter against the running dashboard.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from druid import queries

MAX_QUERY_CHARS = 4096
_FILTER_KEY = re.compile(r"filter\[([^\]]{1,40})\]")
CSV = "text/csv"


@dataclass(frozen=True)
class Parameter:
    """A query parameter: its OpenAPI schema and description; ``many``: may repeat (a list)."""

    schema: dict[str, Any]
    help: str
    many: bool = False
    example: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


_TIME_HELP = "a span back from now (30s, 15m, 24h, 7d, 2w), today (midnight UTC) or an ISO 8601 time"
# Every query parameter a report method may take, by its argument name.
PARAMETERS: dict[str, Parameter] = {
    "since": Parameter({"type": "string", "maxLength": 40}, f"window start: {_TIME_HELP}", example="24h"),
    "until": Parameter({"type": "string", "maxLength": 40}, f"window end (now): {_TIME_HELP}", example="0s"),
    "traffic": Parameter({"type": "string", "enum": list(queries.TRAFFIC)}, "which traffic to count (human)",
                         example="human"),
    "granularity": Parameter({"type": "string", "maxLength": 20},
                             f"time buckets: {', '.join(queries.GRANULARITIES)} or an ISO period",
                             example="hour"),
    "limit": Parameter({"type": "integer", "minimum": 1, "maximum": 1000}, "rows of top-N reports (10)",
                       example=5),
    "steps": Parameter({"type": "array", "items": {"type": "string"}, "maxItems": 20},
                       "funnel steps in order: URL paths or event types (repeat the parameter)", many=True,
                       example=["/"]),
    "by": Parameter({"type": "string", "enum": list(queries.FUNNEL_BY)}, "funnel steps are pages or event types",
                    example="page"),
    "page": Parameter({"type": "string", "maxLength": queries.MAX_VALUE_CHARS},
                      "the page (URL path) whose previous and next pages are counted", example="/"),
    "weeks": Parameter({"type": "integer", "minimum": 1, "maximum": 26}, "weekly cohorts to show (6)", example=3),
    "goal_page": Parameter({"type": "string", "maxLength": queries.MAX_VALUE_CHARS},
                           "goal: a view of this page (URL path)", example="/"),
    "goal_event": Parameter({"type": "string", "maxLength": queries.MAX_VALUE_CHARS},
                            "goal: an event of this type (instead of goal_page)"),
    "goal_property": Parameter({"type": "string", "maxLength": queries.MAX_VALUE_CHARS},
                               "with goal_event: key=value the event's custom parameters must hold"),
}
FILTER_PARAMETER = {
    "name": "filter", "in": "query", "style": "deepObject", "explode": True,
    "description": "a segment: filter[<field>]=<value>, every one must match. Referrer and campaign fields "
                   "select whole sessions by their first event; the others select events. Values: 1 to "
                   f"{queries.MAX_VALUE_CHARS} printable characters without quotes, backslash, semicolon, "
                   "-- or /*.",
    "schema": {"type": "object", "additionalProperties": False,
               "properties": {name: {"type": "string", "description": spec.help}
                              for name, spec in queries.FILTERS.items()}},
}


def accepted(name: str) -> list[str]:
    """The query parameters report ``name`` takes (``filters`` stands for ``filter[...]``)."""
    method = queries.REPORTS[name]
    return [p for p in inspect.signature(method).parameters if p in PARAMETERS or p == "filters"]


def parse(allowed: list[str], query: Mapping[str, list[str]]) -> dict[str, Any]:
    """Keyword arguments from a parsed query string (name -> values), for a method taking
    ``allowed``; ValueError for anything unknown, repeated or malformed. ``format`` is the
    caller's and ignored here."""
    options: dict[str, Any] = {}
    filters: dict[str, str] = {}
    for key, values in query.items():
        match = _FILTER_KEY.fullmatch(key)
        if key == "format":
            continue
        if match and "filters" in allowed:
            if len(values) != 1:
                raise ValueError(f"filter {match.group(1)!r} given {len(values)} times")
            filters[match.group(1)] = values[0]
            continue
        if key not in allowed or key == "filters":
            names = [a for a in allowed if a != "filters"] + (["filter[<field>]"] if "filters" in allowed else [])
            raise ValueError(f"unknown parameter {key[:40]!r}; this endpoint takes {', '.join(names) or 'none'}")
        spec = PARAMETERS[key]
        if "" in values:
            raise ValueError(f"parameter {key!r} is empty")
        if not spec.many and len(values) != 1:
            raise ValueError(f"parameter {key!r} given {len(values)} times")
        if spec.schema["type"] == "integer":
            try:
                number = int(values[0])
            except ValueError:
                raise ValueError(f"parameter {key!r} must be an integer") from None
            if not spec.schema["minimum"] <= number <= spec.schema["maximum"]:
                raise ValueError(f"parameter {key!r} must be between {spec.schema['minimum']} "
                                 f"and {spec.schema['maximum']}")
            options[key] = number
        elif spec.many:
            if len(values) > spec.schema["maxItems"]:
                raise ValueError(f"parameter {key!r} given more than {spec.schema['maxItems']} times")
            options[key] = values
        else:
            if "enum" in spec.schema and values[0] not in spec.schema["enum"]:
                raise ValueError(f"parameter {key!r} must be one of {', '.join(spec.schema['enum'])}")
            if len(values[0]) > spec.schema.get("maxLength", queries.MAX_VALUE_CHARS):
                raise ValueError(f"parameter {key!r} is longer than {spec.schema['maxLength']} characters")
            options[key] = values[0]
    if filters:
        options["filters"] = queries.parse_filters(filters)
    return options


def wants_csv(format_values: list[str] | None, accept: str) -> bool:
    """CSV when ``format=csv``, or when no format is given and the Accept header asks for it;
    ValueError for an unknown format."""
    if format_values:
        if len(format_values) != 1 or format_values[0] not in ("json", "csv"):
            raise ValueError("format must be json or csv")
        return format_values[0] == "csv"
    return CSV in accept


def csv_safe(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows whose text cells cannot run as spreadsheet formulas: a cell starting with = + - @
    (pages and referrers come from the open internet) gets a leading apostrophe."""
    return [{k: "'" + v if isinstance(v, str) and v[:1] in ("=", "+", "-", "@") else v for k, v in row.items()}
            for row in rows]


def _texts(name: str) -> tuple[str, str]:
    """A report's summary (its docstring's first clause) and description (the docstring as
    Markdown paragraphs)."""
    doc = (inspect.getdoc(queries.REPORTS[name]) or name).replace("``", "`")
    paragraphs = [" ".join(part.split()) for part in doc.split("\n\n")]
    return re.split(r"(?<=[.:;])\s", paragraphs[0])[0].rstrip(".:;"), "\n\n".join(paragraphs)


def _parameter(name: str, required: bool = False) -> dict[str, Any]:
    if name == "filters":
        return FILTER_PARAMETER
    spec = PARAMETERS[name]
    out: dict[str, Any] = {"name": name, "in": "query", "description": spec.help, "schema": spec.schema}
    if required:
        out["required"] = True
    if spec.many:
        out.update(style="form", explode=True)
    return out


def required(name: str) -> set[str]:
    """The query parameters report ``name`` cannot do without."""
    parameters = inspect.signature(queries.REPORTS[name]).parameters
    return {p for p in accepted(name) if parameters[p].default is inspect.Parameter.empty}


_FORMAT = {"name": "format", "in": "query", "description": "json (default) or csv; Accept: text/csv also gives CSV",
           "schema": {"type": "string", "enum": ["json", "csv"]}}
_ERRORS = {
    "400": {"description": "bad input (unknown parameter or filter field, malformed time, bad value)",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
    "503": {"description": "Druid did not answer",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
}
_ROWS = {"description": "the report's rows, one object per row (CSV: a header line, then one line per row)",
         "content": {"application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
                     CSV: {"schema": {"type": "string"}}}}


def openapi(summary_parameters: list[str], version: str) -> dict[str, Any]:
    """The OpenAPI 3.0 document of the dashboard's JSON API."""
    paths: dict[str, Any] = {
        "/api/summary": {"get": {
            "summary": "Every panel of the dashboard for one window and segment",
            "description": "Rows of the dashboard's panels (keys: the panel names), the comparison with the "
                           "previous period (compare) and, with a goal, its conversions (goals).",
            "parameters": [_parameter(p) for p in summary_parameters],
            "responses": {"200": {"description": "panels by name",
                                  "content": {"application/json": {"schema": {"type": "object"}}}}, **_ERRORS}}},
        "/api/openapi.yaml": {"get": {"summary": "This document",
                                      "responses": {"200": {"description": "OpenAPI 3.0, YAML",
                                                            "content": {"application/yaml": {}}}}}},
        "/healthz": {"get": {"summary": "The process is alive",
                             "responses": {"200": {"description": "ok",
                                                   "content": {"application/json": {}}}}}},
    }
    for name in queries.REPORTS:
        summary, description = _texts(name)
        paths[f"/api/reports/{name}"] = {"get": {
            "summary": summary, "description": description, "operationId": f"report_{name.replace('-', '_')}",
            "parameters": [_parameter(p, p in required(name)) for p in accepted(name)] + [_FORMAT],
            "responses": {"200": _ROWS, **_ERRORS}}}
    return {
        "openapi": "3.0.3",
        "info": {"title": "clickpipe dashboard and export API", "version": version,
                 "description": "Reports over the clicks and sessions Druid datasources, as JSON or CSV. "
                                "Human traffic unless traffic says otherwise; visitors and sessions are "
                                "theta-sketch estimates (exact below 16384)."},
        "paths": paths,
        "components": {"schemas": {"Error": {"type": "object", "required": ["error"],
                                             "properties": {"error": {"type": "string"}}}}},
    }
