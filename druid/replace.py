"""Replace a time range of a datasource with rows from files, atomically (core Druid only).

:func:`overwrite_spec` turns a datasource's supervisor spec (:mod:`druid.specs`: the same
dimensions, metrics, transforms and granularities) into a native batch task
(``index_parallel``) that reads newline-delimited JSON rows from a directory Druid's indexer
can read (a ``local`` input source) and overwrites the interval: ``appendToExisting`` false
and ``dropExisting`` true, so every segment of the interval is replaced by the task's, even
where the new rows leave a segment empty (a tombstone). Druid publishes the new segments
as a new version in one metadata transaction; queries see either the old version or the
new one, never both (the broker switches when the new version is loaded, which the task
waits for: ``awaitSegmentAvailabilityTimeoutMillis``).

Streaming ingestion must not append to the interval meanwhile: :func:`suspend` suspends the
datasources' supervisors and waits until their tasks have published and stopped (an
exclusive lock on the interval is then free), :func:`resume` resumes them.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

from clickpipe.config import Settings
from druid import specs
from druid.client import DruidClient, DruidError

POLL_S = 1.0
SEGMENT_WAIT_MS = 300_000  # the task waits this long for its segments to be served
ACTIVE = ("waiting", "pending", "running")


def overwrite_spec(ds: specs.Datasource, settings: Settings, base_dir: Path, filename: str,
                   interval: str, task_id: str) -> dict[str, Any]:
    """The batch task replacing ``interval`` of ``ds`` with the rows of ``base_dir/filename``."""
    streaming = specs.build(ds, settings)["spec"]
    schema = copy.deepcopy(streaming["dataSchema"])
    schema["granularitySpec"]["intervals"] = [interval]
    return {
        "type": "index_parallel",
        "id": task_id,
        "spec": {
            "dataSchema": schema,
            "ioConfig": {
                "type": "index_parallel",
                "inputSource": {"type": "local", "baseDir": str(base_dir), "filter": filename},
                "inputFormat": streaming["ioConfig"]["inputFormat"]["valueFormat"],
                "appendToExisting": False,
                "dropExisting": True,
            },
            "tuningConfig": {
                "type": "index_parallel",
                "partitionsSpec": {"type": "dynamic"},
                "maxNumConcurrentSubTasks": 1,
                # the rows were written by the pipeline's own encoder: one Druid cannot read is a bug
                "maxParseExceptions": 0,
                "awaitSegmentAvailabilityTimeoutMillis": SEGMENT_WAIT_MS,
            },
        },
    }


def running(client: DruidClient, supervisor_ids: list[str]) -> list[str]:
    """The supervisors among ``supervisor_ids`` that exist and are not suspended."""
    existing = set(client.supervisor_ids())
    return [sid for sid in supervisor_ids if sid in existing and not client.supervisor_spec(sid).get("suspended")]


def suspend(client: DruidClient, supervisor_ids: list[str], datasources: list[str], timeout: float) -> None:
    """Suspend ``supervisor_ids`` (those not suspended yet); wait until ``datasources`` have no task at all."""
    for sid in running(client, supervisor_ids):
        client.supervisor_action(sid, "suspend")
    deadline = time.monotonic() + timeout
    # no task at all: a streaming task still publishing, or any other (compaction), holds the interval's lock
    while any(client.tasks(ds, state) for ds in datasources for state in ACTIVE):
        if time.monotonic() > deadline:
            raise DruidError(f"the tasks of {', '.join(datasources)} did not stop within {timeout:.0f} s "
                             f"of suspending their supervisors")
        time.sleep(POLL_S)


def resume(client: DruidClient, supervisor_ids: list[str]) -> None:
    """Resume those of ``supervisor_ids`` that are (still) suspended."""
    existing = set(client.supervisor_ids())
    for sid in supervisor_ids:
        if sid in existing and client.supervisor_spec(sid).get("suspended"):
            client.supervisor_action(sid, "resume")


def wait_for_task(client: DruidClient, task_id: str, timeout: float) -> dict[str, Any]:
    """The final status of a task (``status``: SUCCESS or FAILED, ``errorMsg``); DruidError on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        status = client.task_status(task_id)
        if status.get("statusCode") in ("SUCCESS", "FAILED"):
            return status
        if time.monotonic() > deadline:
            raise DruidError(f"task {task_id} still {status.get('statusCode')} after {timeout:.0f} s")
        time.sleep(POLL_S)
