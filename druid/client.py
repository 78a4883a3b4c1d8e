"""A small HTTP client for Druid's APIs, through the Router.

Every failure is a :class:`DruidError` whose message says what was asked and what Druid
answered (or that Druid could not be reached), so command-line tools can print it as is.
"""

from __future__ import annotations

from typing import Any

import requests

from clickpipe.config import Settings


class DruidError(RuntimeError):
    """Druid is unreachable or refused a request; the message carries Druid's own words."""


class DruidClient:
    def __init__(self, settings: Settings, timeout: float = 30.0):
        self.base = settings.druid_router_url.rstrip("/")
        self.timeout = timeout
        self.http = requests.Session()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        url = f"{self.base}{path}"
        try:
            response = self.http.request(method, url, timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise DruidError(f"Druid is not reachable at {self.base} ({type(exc).__name__}); "
                             f"is the stack up? (clickpipe stack status)") from exc
        if response.status_code >= 400:
            raise DruidError(f"{method} {path} -> HTTP {response.status_code}: {_message(response)}")
        return response.json() if response.content else None

    def get(self, path: str) -> Any:
        """``GET`` an API path (``/druid/...``); its JSON answer."""
        return self._call("GET", path)

    def post(self, path: str, body: Any) -> Any:
        """``POST`` JSON ``body`` to an API path; its JSON answer, if any."""
        return self._call("POST", path, json=body)

    def delete(self, path: str) -> Any:
        return self._call("DELETE", path)

    def sql(self, query: str, parameters: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        """Rows of a Druid SQL query as dicts."""
        body: dict[str, Any] = {"query": query, "resultFormat": "object"}
        if parameters:
            body["parameters"] = parameters
        return self._call("POST", "/druid/v2/sql", json=body)

    def submit_supervisor(self, spec: dict[str, Any]) -> str:
        """Create or replace a supervisor; returns its id."""
        return self._call("POST", "/druid/indexer/v1/supervisor", json=spec)["id"]

    def supervisor_ids(self) -> list[str]:
        return self._call("GET", "/druid/indexer/v1/supervisor")

    def supervisor_spec(self, supervisor_id: str) -> dict[str, Any]:
        return self._call("GET", f"/druid/indexer/v1/supervisor/{supervisor_id}")

    def supervisor_status(self, supervisor_id: str) -> dict[str, Any]:
        return self._call("GET", f"/druid/indexer/v1/supervisor/{supervisor_id}/status")

    def supervisor_stats(self, supervisor_id: str) -> dict[str, dict[str, Any]]:
        """Row counters of the supervisor's reading and publishing tasks: task group -> task id ->
        ``{"totals": {"buildSegments": {"processed": n, "unparseable": n, ...}}, ...}``."""
        return self._call("GET", f"/druid/indexer/v1/supervisor/{supervisor_id}/stats")

    def supervisor_parse_errors(self, supervisor_id: str) -> list[dict[str, Any]]:
        """Parse exceptions the supervisor's reading and publishing tasks saved (``errorType``,
        ``details``, ``input``: the offending row, ``timeOfExceptionMillis``)."""
        return self._call("GET", f"/druid/indexer/v1/supervisor/{supervisor_id}/parseErrors")

    def latest_task(self, datasource: str) -> dict[str, Any] | None:
        """The most recently completed task of a datasource (status, errorMsg, ...), if any."""
        tasks = self._call("GET", "/druid/indexer/v1/tasks", params={"datasource": datasource, "state": "complete",
                                                                       "max": 1})
        return tasks[0] if tasks else None

    def supervisor_history(self, supervisor_id: str) -> list[dict[str, Any]]:
        """Every spec version submitted for the supervisor, newest first."""
        return self._call("GET", f"/druid/indexer/v1/supervisor/{supervisor_id}/history")

    def supervisor_action(self, supervisor_id: str, action: str) -> Any:
        """``suspend``, ``resume``, ``reset`` or ``terminate``."""
        return self._call("POST", f"/druid/indexer/v1/supervisor/{supervisor_id}/{action}")

    def shutdown_tasks(self, datasource: str) -> list[str]:
        """Kill the datasource's waiting, pending and running tasks without publishing; their ids.

        Needed before :meth:`drop_datasource` after a terminate: a publishing task would
        otherwise wait (up to its completion timeout, holding a task slot) for the hand-off
        of segments that were just dropped.
        """
        tasks = [t["id"] for state in ("waiting", "pending", "running")
                 for t in self._call("GET", "/druid/indexer/v1/tasks",
                                     params={"datasource": datasource, "state": state})]
        for task_id in tasks:
            self._call("POST", f"/druid/indexer/v1/task/{task_id}/shutdown")
        return tasks

    def submit_task(self, spec: dict[str, Any]) -> str:
        """Submit an ingestion task (a native batch spec, say); returns its id."""
        return self._call("POST", "/druid/indexer/v1/task", json=spec)["task"]

    def task_status(self, task_id: str) -> dict[str, Any]:
        """The task's ``status`` object: ``statusCode`` (RUNNING, SUCCESS, FAILED), ``errorMsg``, ..."""
        return self._call("GET", f"/druid/indexer/v1/task/{task_id}/status")["status"]

    def tasks(self, datasource: str, state: str) -> list[dict[str, Any]]:
        """The datasource's tasks in ``state`` (waiting, pending, running or complete)."""
        return self._call("GET", "/druid/indexer/v1/tasks", params={"datasource": datasource, "state": state})

    def mark_unused(self, datasource: str, segment_ids: list[str]) -> None:
        """Mark the given segments unused: no longer served, and deletable by a ``kill`` task."""
        self._call("POST", f"/druid/coordinator/v1/datasources/{datasource}/markUnused",
                   json={"segmentIds": segment_ids})

    def drop_datasource(self, datasource: str) -> None:
        """Mark all of a datasource's segments unused (its rows disappear from queries)."""
        self._call("DELETE", f"/druid/coordinator/v1/datasources/{datasource}")


def _message(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500] or response.reason
    if isinstance(body, dict):
        return str(body.get("errorMessage") or body.get("error") or body)[:2000]
    return str(body)[:2000]
