"""How long Druid keeps each declared datasource, and the automatic compaction of its segments.

Retention is a datasource's load rules on the coordinator: segments newer than its
``retention_days`` (and any in the future) are served by ``druid_segment_replicas``
historicals, older ones are dropped -- unloaded from the historicals and marked unused, so a
kill task can delete them from deep storage. With 0 days, everything is kept.

Automatic compaction (the coordinator's compaction duty) rewrites the small segments
streaming ingestion publishes -- one per task period, partition and hour -- into segments of
``druid_compaction_granularity``, leaving the newest ``druid_compaction_skip_offset`` alone
while tasks still write there. Fewer, larger segments make queries cheaper and the metadata
smaller; rollup rows of the same key across segments are merged.

:func:`apply` sets both where Druid's differs from the settings and nothing otherwise, so it
is safe to run on every deploy (``clickpipe druid apply`` runs it after the supervisors).
"""

from __future__ import annotations

from typing import Any

from clickpipe.config import Settings
from druid import specs
from druid.client import DruidClient, DruidError

MAX_ROWS_PER_SEGMENT = 5_000_000  # Druid's recommended segment size is 300-700 MB, a few million rows


def rules(settings: Settings, ds: specs.Datasource) -> list[dict[str, Any]]:
    """The coordinator's load rules for ``ds``, first match wins."""
    replicants = {"_default_tier": settings.druid_segment_replicas}
    days = ds.retention_days(settings)
    if days == 0:
        return [{"type": "loadForever", "tieredReplicants": replicants}]
    return [{"type": "loadByPeriod", "period": f"P{days}D", "includeFuture": True, "tieredReplicants": replicants},
            {"type": "dropForever"}]


def compaction(settings: Settings, ds: specs.Datasource) -> dict[str, Any]:
    """The automatic compaction config of ``ds``."""
    return {
        "dataSource": ds.name(settings),
        "skipOffsetFromLatest": settings.druid_compaction_skip_offset,
        "granularitySpec": {"segmentGranularity": settings.druid_compaction_granularity},
        "tuningConfig": {"partitionsSpec": {"type": "dynamic", "maxRowsPerSegment": MAX_ROWS_PER_SEGMENT}},
    }


def current_rules(client: DruidClient, datasource: str) -> list[dict[str, Any]]:
    """The datasource's own rules (empty: it follows the cluster default)."""
    return client.get(f"/druid/coordinator/v1/rules/{datasource}") or []


def current_compaction(client: DruidClient, datasource: str) -> dict[str, Any] | None:
    """The datasource's automatic compaction config, or None when it has none."""
    try:
        return client.get(f"/druid/coordinator/v1/config/compaction/{datasource}")
    except DruidError as exc:
        if "HTTP 404" in str(exc):
            return None
        raise


def apply(client: DruidClient, settings: Settings) -> list[dict[str, str]]:
    """Set each declared datasource's rules and compaction config where Druid's differ.

    Returns one row per datasource and kind (``retention``, ``compaction``) with ``outcome``
    set or unchanged and a short description of what is configured. Druid fills in defaults
    for what is not given, so "differs" means: some value given here is not what Druid has.
    """
    rows = []
    for ds in specs.load_declaration().values():
        name = ds.name(settings)
        wanted_rules = rules(settings, ds)
        days = ds.retention_days(settings)
        outcome = "unchanged"
        if not _covers(current_rules(client, name), wanted_rules):
            client.post(f"/druid/coordinator/v1/rules/{name}", wanted_rules)
            outcome = "set"
        rows.append({"datasource": name, "kind": "retention", "outcome": outcome,
                     "config": f"load P{days}D, then drop" if days else "load forever"})
        wanted = compaction(settings, ds)
        outcome = "unchanged"
        if not _covers(current_compaction(client, name), wanted):
            client.post("/druid/coordinator/v1/config/compaction", wanted)
            outcome = "set"
        rows.append({"datasource": name, "kind": "compaction", "outcome": outcome,
                     "config": f"{settings.druid_compaction_granularity} segments, skip newest "
                               f"{settings.druid_compaction_skip_offset}"})
    return rows


def remove(client: DruidClient, datasource: str) -> None:
    """Forget ``datasource``'s own rules and compaction config (for a datasource being dropped)."""
    client.post(f"/druid/coordinator/v1/rules/{datasource}", [])
    if current_compaction(client, datasource) is not None:
        client.delete(f"/druid/coordinator/v1/config/compaction/{datasource}")


def _covers(actual: Any, wanted: Any) -> bool:
    """True when every value of ``wanted`` is in ``actual`` (which may hold more keys, Druid's defaults)."""
    if isinstance(wanted, dict):
        return isinstance(actual, dict) and all(k in actual and _covers(actual[k], v) for k, v in wanted.items())
    if isinstance(wanted, list):
        return (isinstance(actual, list) and len(actual) == len(wanted)
                and all(_covers(a, w) for a, w in zip(actual, wanted, strict=True)))
    return actual == wanted
