"""Managing the Kafka supervisors of the declared datasources: apply, status and actions.

The supervisors managed here are those of ``datasources.toml`` (ids = datasource names from
the settings); others running in the same Druid are left alone. Every function raises
:class:`druid.client.DruidError` (Druid unreachable, or a request refused, with Druid's own
message) or :class:`druid.specs.DeclarationError` (the declaration does not match a schema).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from clickpipe.config import Settings
from clickpipe.formatting import render
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
    """One row per declared supervisor: state, lag (records behind the topic), rows its tasks
    could not parse, and last error.

    When the supervisor's latest completed task failed, the last error is that task's error
    and a ``RUNNING`` state becomes ``RUNNING (last task failed)``; otherwise the last error is
    the supervisor's latest recent error. A supervisor that was never applied (or was
    terminated) has state ``NOT APPLIED``.

    ``unparseable`` (lines that are not a JSON row: dropped) and ``with_errors`` (rows ingested
    without a value that does not fit its column) count what the supervisor's current reading
    and publishing tasks met since they started; a replica's rows are counted once.
    ``parse_exceptions`` lists what those tasks saved (:data:`druid.specs.TUNING`),
    newest first: ``time`` (ISO, UTC), ``type`` and ``detail`` (Druid's message, one line).
    """
    running = set(client.supervisor_ids())
    rows = []
    for ds in specs.load_declaration().values():
        supervisor_id = ds.name(settings)
        row: dict[str, Any] = {"supervisor": supervisor_id, "topic": ds.topic(settings), "state": "NOT APPLIED",
                               "lag": None, "unparseable": None, "with_errors": None, "last_error": None,
                               "parse_exceptions": []}
        if supervisor_id in running:
            payload = client.supervisor_status(supervisor_id)["payload"]
            state = payload.get("detailedState") or payload.get("state")
            row["state"] = state if payload.get("healthy", True) else f"{state} (unhealthy)"
            row["lag"] = payload.get("aggregateLag")
            stats = client.supervisor_stats(supervisor_id)
            row["unparseable"] = _counted(stats, "unparseable")
            row["with_errors"] = _counted(stats, "processedWithError")
            row["parse_exceptions"] = [_parse_exception(e) for e in sorted(
                client.supervisor_parse_errors(supervisor_id), key=lambda e: -e.get("timeOfExceptionMillis", 0))]
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


def _counted(stats: dict[str, dict[str, Any]], counter: str) -> int:
    """``counter`` summed over task groups; a group's replicas read the same rows, so the largest counts."""
    def of(task: Any) -> int:  # a task that did not answer has no totals
        totals = task.get("totals") if isinstance(task, dict) else None
        return ((totals or {}).get("buildSegments") or {}).get(counter, 0)

    return sum(max(map(of, group.values()), default=0) for group in stats.values())


def _parse_exception(report: dict[str, Any]) -> dict[str, str | None]:
    """A saved parse exception as ``time``, ``type`` and one printable line of ``detail``.

    Druid's ``input`` is left out: it is the whole row, personal data included; an
    unparseable line is quoted in the detail anyway.
    """
    millis = report.get("timeOfExceptionMillis")
    when = (datetime.fromtimestamp(millis / 1000, timezone.utc).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z") if millis is not None else None)
    detail = " ".join(report.get("details") or [])
    return {"time": when, "type": report.get("errorType"),
            "detail": "".join(c if c.isprintable() else "?" for c in detail)}


def render_status(rows: list[dict[str, Any]], fmt: str = "table", shown: int = 5) -> str:
    """A :func:`status` result as text: JSON has every field; a table or CSV has one line per
    supervisor, and a table is followed by each supervisor's ``shown`` latest parse exceptions."""
    if fmt == "json":
        return render(rows, fmt)
    text = render([{k: v for k, v in r.items() if k != "parse_exceptions"} for r in rows], fmt)
    if fmt != "table":
        return text
    for row in rows:
        saved = row["parse_exceptions"]
        if saved:
            more = f"; {len(saved) - shown} more with --format json" if len(saved) > shown else ""
            text += (f"\n\nParse exceptions saved by the current tasks of {row['supervisor']} "
                     f"(newest first{more}):\n" + render(saved[:shown], max_width=120))
    return text


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
