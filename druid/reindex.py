"""Rewrite time chunks of a declared datasource from Druid's own segments, optionally filtered.

A native batch (``index_parallel``) task with the core ``druid`` input source reads the
published segments of an interval and writes them again, through a ``transformSpec`` filter,
over the same interval (or into another datasource): privacy erasure removes one party's rows
this way; a replay may rebuild a range. Only *published* segments are read: rows a Kafka
supervisor's task still holds in memory are not (suspend the supervisor first, see
:mod:`druid.parties`).

The spec is derived from the datasource's supervisor spec (:func:`druid.specs.build`), so
dimensions and granularity are those of the stream; each metric is re-aggregated from its own
stored column (``count`` becomes a ``longSum`` of ``count``, sketches merge). With
``dropExisting`` the task replaces every segment of the interval, and publishes tombstones
where the filter left no rows, so an interval emptied by the filter is empty afterwards.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable

from clickpipe.config import Settings
from druid import specs
from druid.client import DruidClient, DruidError

# Segment granularity -> its length. Druid's hour and day chunks start at UTC boundaries.
GRANULARITY = {"minute": timedelta(minutes=1), "fifteen_minute": timedelta(minutes=15),
               "thirty_minute": timedelta(minutes=30), "hour": timedelta(hours=1), "day": timedelta(days=1)}


def _combining(metric: dict[str, Any]) -> dict[str, Any]:
    """The aggregator that re-aggregates ``metric`` from the column it stored."""
    kind = "longSum" if metric["type"] == "count" else metric["type"]
    return {"type": kind, "name": metric["name"], "fieldName": metric["name"]}


def spec(ds: specs.Datasource, settings: Settings, interval: str, row_filter: dict[str, Any] | None = None,
         target: str | None = None) -> dict[str, Any]:
    """An ``index_parallel`` task spec that rewrites ``interval`` of ``ds`` keeping the rows ``row_filter`` keeps.

    ``interval`` (ISO ``start/end``) must be aligned with the datasource's segment granularity
    (:func:`chunks`). ``target`` is the datasource written (default: ``ds`` itself, replaced).
    """
    schema = specs.build(ds, settings)["spec"]["dataSchema"]
    granularity = dict(schema["granularitySpec"], intervals=[interval])
    return {
        "type": "index_parallel",
        "spec": {
            "dataSchema": {
                "dataSource": target or ds.name(settings),
                "timestampSpec": {"column": "__time", "format": "millis"},
                "dimensionsSpec": schema["dimensionsSpec"],
                # no transforms: the stored rows already went through them once
                "transformSpec": {"filter": row_filter} if row_filter else {},
                "metricsSpec": [_combining(m) for m in schema["metricsSpec"]],
                "granularitySpec": granularity,
            },
            "ioConfig": {
                "type": "index_parallel",
                "inputSource": {"type": "druid", "dataSource": ds.name(settings), "interval": interval},
                "appendToExisting": False,
                "dropExisting": True,
            },
            # one task, no sub-tasks: the indexer's slots are shared with the stream's tasks
            "tuningConfig": {"type": "index_parallel", "maxNumConcurrentSubTasks": 1},
        },
    }


def chunks(times_ms: Iterable[int], segment_granularity: str) -> list[str]:
    """The ISO intervals of the time chunks holding ``times_ms``, contiguous chunks merged, in order."""
    step = GRANULARITY[segment_granularity]
    step_ms = int(step.total_seconds() * 1000)
    starts = sorted({datetime.fromtimestamp((t - t % step_ms) / 1000, timezone.utc) for t in times_ms})
    intervals: list[list[datetime]] = []
    for start in starts:
        if intervals and intervals[-1][1] == start:
            intervals[-1][1] = start + step
        else:
            intervals.append([start, start + step])
    return [f"{a.isoformat().replace('+00:00', 'Z')}/{b.isoformat().replace('+00:00', 'Z')}" for a, b in intervals]


def run(client: DruidClient, task_spec: dict[str, Any], timeout: float, poll: float = 2.0) -> str:
    """Submit a task (a :func:`spec`, or a ``kill`` of unused segments) and wait until it succeeds; returns its id.

    Raises :class:`DruidError` with Druid's message if it fails, or after ``timeout`` seconds
    (the task is left running: it may still finish; its id is in the message).
    """
    task_id = client.submit_task(task_spec)
    deadline = time.monotonic() + timeout
    while True:
        status = client.task_status(task_id)
        code = status.get("statusCode") or status.get("status")
        if code == "SUCCESS":
            return task_id
        if code == "FAILED":
            raise DruidError(f"task {task_id} failed: {status.get('errorMsg') or 'no message'}")
        if time.monotonic() > deadline:
            raise DruidError(f"task {task_id} still {code} after {timeout:.0f}s")
        time.sleep(poll)
