"""Managing the Kafka supervisors of the declared datasources: apply, status and actions.

The supervisors managed here are those of ``datasources.toml`` (ids = datasource names from
the settings); others running in the same Druid are left alone. Every function raises
:class:`druid.client.DruidError` (Druid unreachable, or a request refused, with Druid's own
message) or :class:`druid.specs.DeclarationError` (the declaration does not match a schema).
"""

from __future__ import annotations

from typing import Any

from clickpipe.config import Settings
from druid import specs
from druid.client import DruidClient, DruidError

ACTIONS = ("suspend", "resume", "reset")


def apply(client: DruidClient, settings: Settings) -> list[dict[str, str]]:
    """Submit each declared spec unless the running supervisor already has it.

    Returns one row per supervisor with ``outcome`` created, updated or unchanged. A spec is
    unchanged when the running one carries the same content hash; nothing is submitted then,
    so tasks are not restarted. Every spec is built before anything is submitted.
    """
    built = specs.build_all(settings)
    running = set(client.supervisor_ids())
    rows = []
    for supervisor_id, spec in built.items():
        if supervisor_id not in running:
            outcome = "created"
        elif _running_hash(client, supervisor_id) == spec["context"][specs.SPEC_HASH_KEY]:
            rows.append({"supervisor": supervisor_id, "outcome": "unchanged"})
            continue
        else:
            outcome = "updated"
        try:
            client.submit_supervisor(spec)
        except DruidError as exc:
            raise DruidError(f"Druid rejected the spec of {supervisor_id!r}: {exc}") from exc
        rows.append({"supervisor": supervisor_id, "outcome": outcome})
    return rows


def _running_hash(client: DruidClient, supervisor_id: str) -> str | None:
    return (client.supervisor_spec(supervisor_id).get("context") or {}).get(specs.SPEC_HASH_KEY)


def declared_ids(settings: Settings) -> list[str]:
    return [ds.name(settings) for ds in specs.load_declaration().values()]


def status(client: DruidClient, settings: Settings) -> list[dict[str, Any]]:
    """One row per declared supervisor: state, lag (records behind the topic) and last error.

    When the supervisor's latest completed task failed, the last error is that task's error
    and a ``RUNNING`` state becomes ``RUNNING (last task failed)``; otherwise the last error is
    the supervisor's latest recent error. A supervisor that was never applied (or was
    terminated) has state ``NOT APPLIED``.
    """
    running = set(client.supervisor_ids())
    rows = []
    for ds in specs.load_declaration().values():
        supervisor_id = ds.name(settings)
        row: dict[str, Any] = {"supervisor": supervisor_id, "topic": ds.topic(settings),
                               "state": "NOT APPLIED", "lag": None, "last_error": None}
        if supervisor_id in running:
            payload = client.supervisor_status(supervisor_id)["payload"]
            state = payload.get("detailedState") or payload.get("state")
            row["state"] = state if payload.get("healthy", True) else f"{state} (unhealthy)"
            row["lag"] = payload.get("aggregateLag")
            task = client.latest_task(supervisor_id)
            errors = payload.get("recentErrors") or []
            if task and task.get("status") == "FAILED":
                if row["state"] == "RUNNING":  # Druid flags a supervisor only after several failures
                    row["state"] = "RUNNING (last task failed)"
                row["last_error"] = f"{task.get('createdTime', '')} {task.get('errorMsg') or 'task failed'}"
            elif errors:
                last = errors[-1]
                row["last_error"] = f"{last.get('timestamp', '')} {last.get('message') or last.get('exceptionClass')}"
        rows.append(row)
    return rows


def healthy(rows: list[dict[str, Any]]) -> bool:
    """True when every supervisor of a :func:`status` result is running."""
    return all(r["state"] == "RUNNING" for r in rows)


def act(client: DruidClient, settings: Settings, action: str, ids: list[str] | None = None) -> list[dict[str, str]]:
    """Run ``action`` (one of :data:`ACTIONS`) on the given declared supervisors (default: all).

    Returns one row per supervisor with ``outcome`` done, or already suspended / already
    running when suspend / resume had nothing to do (Druid refuses those as errors).
    ``reset`` forgets the stored Kafka offsets: the supervisor then reads the topic from its
    earliest retained record again, so rows already in Druid are ingested a second time.
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; use one of {', '.join(ACTIONS)}")
    known = declared_ids(settings)
    targets = ids or known
    unknown = [i for i in targets if i not in known]
    if unknown:
        raise DruidError(f"not a clickpipe supervisor: {', '.join(unknown)} (known: {', '.join(known)})")
    rows = []
    for supervisor_id in targets:
        outcome = "done"
        if action in ("suspend", "resume"):
            suspended = client.supervisor_status(supervisor_id)["payload"].get("suspended", False)
            if suspended == (action == "suspend"):
                outcome = "already suspended" if suspended else "already running"
        if outcome == "done":
            client.supervisor_action(supervisor_id, action)
        rows.append({"supervisor": supervisor_id, "action": action, "outcome": outcome})
    return rows
