"""One party's rows in the declared datasources: find them, export them, erase them.

Rows are found by the ``party`` dimension (:func:`clickpipe.party.party_key` of the party id,
computed by the caller). Erasure rewrites each time chunk that holds a party's rows without
them (:mod:`druid.reindex`). A reindex reads published segments only, so the datasource's
supervisor is first given time to read the stream up to given offsets (everything the
pipeline wrote for the party), then suspended: its tasks publish what they hold and stop,
and the stream waits in Kafka (nothing is lost, reports lag meanwhile). The supervisor is
resumed afterwards (unless it was suspended before). Every function raises
:class:`druid.client.DruidError` with what failed.
"""

from __future__ import annotations

import functools
import json
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from clickpipe.config import Settings
from druid import reindex, specs
from druid.client import DruidClient, DruidError

_FLOOR = {"hour": "PT1H", "day": "P1D"}
_SKETCHES = {"thetaSketch", "quantilesDoublesSketch"}


def declared(settings: Settings) -> list[specs.Datasource]:
    return list(specs.load_declaration().values())


def columns(ds: specs.Datasource) -> list[str]:
    """What an export shows of a row: time, every dimension and every metric but sketches (those
    hold hashes of ids that the party and session dimensions already show)."""
    maps = [ds.map_dimension(f, k) for f, keys in ds.maps.items() for k in keys]
    return ["__time", *ds.dimensions, *maps, *(m.name for m in ds.metrics if m.type not in _SKETCHES)]


def existing(client: DruidClient) -> set[str]:
    """Datasources Druid can query now."""
    rows = client.sql("SELECT TABLE_NAME FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_SCHEMA = 'druid'")
    return {r["TABLE_NAME"] for r in rows}


def _party(key: str) -> list[dict[str, Any]]:
    return [{"type": "VARCHAR", "value": key}]


def rows(client: DruidClient, settings: Settings, key: str) -> Iterator[dict[str, Any]]:
    """Every row of the party in every declared datasource, as ``{"datasource": name, column: value, ...}``."""
    present = existing(client)
    for ds in declared(settings):
        name = ds.name(settings)
        if name not in present:
            continue
        select = ", ".join(f'"{c}"' for c in columns(ds))
        for row in client.sql(f'SELECT {select} FROM "{name}" WHERE "party" = ? ORDER BY __time', _party(key)):
            yield {"datasource": name, **row}


def counts(client: DruidClient, settings: Settings, key: str) -> dict[str, dict[str, int]]:
    """Per datasource: the party's ``rows`` and ``events`` (SUM of count); zeros where it has none."""
    present = existing(client)
    out = {}
    for ds in declared(settings):
        name = ds.name(settings)
        found = (client.sql(f'SELECT COUNT(*) AS "rows", COALESCE(SUM("count"), 0) AS events FROM "{name}" '
                            f'WHERE "party" = ?', _party(key)) if name in present else [])
        out[name] = {"rows": found[0]["rows"], "events": found[0]["events"]} if found else {"rows": 0, "events": 0}
    return out


def intervals(client: DruidClient, ds: specs.Datasource, settings: Settings, key: str) -> list[str]:
    """The time chunks of ``ds`` holding rows of the party (contiguous ones merged)."""
    floor = _FLOOR[ds.segment_granularity]
    found = client.sql(f'SELECT DISTINCT TIMESTAMP_TO_MILLIS(TIME_FLOOR(__time, \'{floor}\')) AS t '
                       f'FROM "{ds.name(settings)}" WHERE "party" = ?', _party(key))
    return reindex.chunks([r["t"] for r in found], ds.segment_granularity)


def _wait(what: str, probe: Callable[[], bool], timeout: float, poll: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise DruidError(f"{what}: not done after {timeout:.0f}s")
        time.sleep(poll)


def _read_up_to(client: DruidClient, supervisor_id: str, targets: Mapping[int, int]) -> bool:
    """True when the supervisor's tasks have read every partition up to its target offset."""
    payload = client.supervisor_status(supervisor_id)["payload"]
    read: dict[int, int] = {}
    for task in (payload.get("activeTasks") or []) + (payload.get("publishingTasks") or []):
        for partition, offset in (task.get("currentOffsets") or {}).items():
            read[int(partition)] = max(read.get(int(partition), -1), int(offset))
    return all(read.get(p, -1) >= offset for p, offset in targets.items() if offset > 0)


def _idle(client: DruidClient, datasource: str) -> bool:
    return not any(client.tasks(datasource, state) for state in ("waiting", "pending", "running"))


def _mark_replaced_unused(client: DruidClient, datasource: str, interval: str) -> int:
    """Mark the segments of ``interval`` that newer ones overshadow unused (Druid would
    too, in its own time); returns how many."""
    start, end = (t.replace("Z", ".000Z") for t in interval.split("/"))  # as sys.segments writes times
    found = client.sql('SELECT segment_id FROM sys.segments WHERE datasource = ? AND "start" >= ? '
                       'AND "end" <= ? AND is_overshadowed = 1',
                       [{"type": "VARCHAR", "value": v} for v in (datasource, start, end)])
    if found:
        client.mark_unused(datasource, [r["segment_id"] for r in found])
    return len(found)


def erase(client: DruidClient, settings: Settings, key: str, targets: Mapping[str, Mapping[int, int]],
          timeout: float, marker: Path, log: Callable[[str], None] = lambda line: None) -> dict[str, dict[str, Any]]:
    """Rewrite every declared datasource without the party's rows; returns per datasource the
    party's ``rows``/``events`` before, the ``intervals`` rewritten and the Druid ``tasks`` run.

    ``targets``: per datasource, the Kafka offsets (partition -> next offset) of its topic up to
    which the supervisor must have read before it is suspended: then every row the pipeline
    wrote for the party is published before the rewrite. The supervisors are suspended
    together (their tasks publish at the same time) and resumed together, also on failure.
    While they are, ``marker`` lists them: an erase killed meanwhile leaves it behind, and the
    next erase resumes them first. ``timeout`` bounds each wait.
    """
    started = time.monotonic()

    def say(line: str) -> None:  # the caller's log, with the time spent so far
        log(f"[druid +{time.monotonic() - started:.1f} s] {line}")

    if marker.exists():
        for name in json.loads(marker.read_text()):
            if client.supervisor_status(name)["payload"].get("suspended", False):
                say(f"{name}: resuming the supervisor an interrupted erase suspended")
                client.supervisor_action(name, "resume")
        marker.unlink()
    before = counts(client, settings, key)
    running = set(client.supervisor_ids())
    sources = {ds.name(settings): ds for ds in declared(settings)}
    managed = [name for name in sources
               if name in running and not client.supervisor_status(name)["payload"].get("suspended", False)]
    for name in managed:
        say(f"{name}: waiting for the supervisor to read its topic up to the erasure")
        _wait(f"{name}: supervisor reading up to the erasure",
              functools.partial(_read_up_to, client, name, targets[name]), timeout)
    suspended = []
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps(managed))
        for name in managed:
            client.supervisor_action(name, "suspend")
            suspended.append(name)
        say(f"suspended {', '.join(suspended) or 'no supervisor'}; waiting for their tasks to publish")
        for name in suspended:
            _wait(f"{name}: tasks publishing after suspend", functools.partial(_idle, client, name), timeout)
        say("their tasks have published")
        present = existing(client)
        return {name: {**before[name], **_rewrite(client, settings, ds, key, timeout, say)} if name in present
                else {**before[name], "intervals": [], "tasks": []} for name, ds in sources.items()}
    finally:
        for name in suspended:
            client.supervisor_action(name, "resume")
        marker.unlink(missing_ok=True)


def _rewrite(client: DruidClient, settings: Settings, ds: specs.Datasource, key: str, timeout: float,
             log: Callable[[str], None]) -> dict[str, list[str]]:
    """Rewrite the chunks of ``ds`` holding the party without it, then delete the replaced segments."""
    name = ds.name(settings)
    chunks = intervals(client, ds, settings, key)
    tasks = []
    for interval in chunks:
        log(f"{name}: rewriting {interval} without the party")
        task_spec = reindex.spec(ds, settings, interval, {"type": "not", "field": {
            "type": "equals", "column": "party", "matchValueType": "STRING", "matchValue": key}})
        tasks.append(reindex.run(client, task_spec, timeout))
    if chunks:
        log(f"{name}: waiting until no query finds the party")
        _wait(f"{name}: rewritten segments served", lambda: counts(client, settings, key)[name]["rows"] == 0,
              timeout)
    # The replaced segments still exist (unused, in deep storage) until killed. Killed while the
    # supervisor is suspended: a kill task waits for the interval's lock otherwise.
    for interval in chunks:
        replaced = _mark_replaced_unused(client, name, interval)
        log(f"{name}: deleting the {replaced} replaced segments of {interval}")
        tasks.append(reindex.run(client, {"type": "kill", "dataSource": name, "interval": interval}, timeout))
    return {"intervals": chunks, "tasks": tasks}
