"""Analyst queries over the ``clicks`` and ``sessions`` datasources, through pydruid's DB-API.

Every report is a method of :class:`Reports` returning a list of dicts (one per row) and is
listed in :data:`REPORTS` for ``clickpipe report <name>``. Common arguments:

- ``since`` / ``until``: a window start and end, each either a span back from now (``30s``,
  ``15m``, ``24h``, ``7d``, ``2w``) or an ISO 8601 time (``2026-01-31T12:00:00Z``); ``until``
  defaults to now.
- ``traffic``: ``human`` (default), ``bots`` or ``all``. Human traffic is every event (or
  session) that is neither flagged ``is_bot`` nor part of a session judged bot later
  (the ``bot_sessions`` datasource of session verdicts, see :meth:`Reports._where`).
- ``limit``: rows of "top" reports, which rank groups by events (page views for ``pages``).

Visitors and sessions counted from the clicks datasource are theta-sketch estimates: exact
up to 16384 distinct values, about 0.8% relative standard error beyond (4096 and 1.6% per
group in top-N reports, see :data:`GROUP_SKETCH_SIZE`). Session metrics
come from the sessions datasource, which receives a session when it closes (after the
inactivity gap), so the latest sessions appear there with that delay.

Failures raise :class:`druid.client.DruidError` with Druid's message, or with the address
that could not be reached.
"""

from __future__ import annotations

import inspect
import re
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Sequence
from urllib.parse import urlsplit

import requests
from pydruid.db import connect
from pydruid.db.exceptions import Error as PydruidError

from clickpipe.config import Settings
from druid.client import DruidError

TRAFFIC = ("human", "bots", "all")
GRANULARITIES = {"minute": "PT1M", "5minutes": "PT5M", "15minutes": "PT15M", "hour": "PT1H",
                 "day": "P1D", "week": "P1W", "month": "P1M"}
FUNNEL_BY = {"page": "url_path", "event": "event_type"}
LIVE_WINDOW = timedelta(minutes=5)
# How long the absence of the verdicts datasource is believed (it appears with its first row).
VERDICTS_RECHECK_S = 2.0
# Theta union size of per-group sketches in top-N reports: exact up to 4096 distinct values,
# about 1.6% relative error beyond, and a quarter of the default's merge-buffer memory.
GROUP_SKETCH_SIZE = 4096
_SPAN = re.compile(r"^(\d+)([smhdw])$")
_SPAN_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_time(value: str, now: datetime | None = None) -> datetime:
    """A span back from ``now`` (``15m``, ``24h``, ``7d``) or an ISO 8601 time, as an aware UTC datetime."""
    now = now or datetime.now(timezone.utc)
    match = _SPAN.match(value.strip())
    if match:
        return now - timedelta(**{_SPAN_UNITS[match.group(2)]: int(match.group(1))})
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{value!r} is neither a span like 15m, 24h, 7d nor an ISO 8601 time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def literal(value: str) -> str:
    """A Druid SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _timestamp(moment: datetime) -> str:
    return f"TIMESTAMP '{moment.astimezone(timezone.utc).strftime('%Y-%m-%d %H:%M:%S.%f')[:-3]}'"


def _period(granularity: str) -> str:
    if granularity in GRANULARITIES:
        return GRANULARITIES[granularity]
    if re.fullmatch(r"P(T?\d+[SMHDWY])+|PT\d+[SMH]", granularity):
        return granularity
    raise ValueError(f"unknown granularity {granularity!r}; use {', '.join(GRANULARITIES)} or an ISO period")


class Reports:
    """The analyst queries, against the datasources named in ``settings``."""

    def __init__(self, settings: Settings):
        broker = urlsplit(settings.druid_broker_url)
        self.address = settings.druid_broker_url
        self.connection = connect(host=broker.hostname, port=broker.port or 80, path="/druid/v2/sql/",
                                  scheme=broker.scheme or "http",
                                  context={"timeout": settings.druid_query_timeout_seconds * 1000})
        self.clicks = _identifier(settings.druid_clicks_datasource)
        self.sessions_table = _identifier(settings.druid_sessions_datasource)
        self.verdicts_name = settings.druid_bot_sessions_datasource
        self.verdicts = _identifier(settings.druid_bot_sessions_datasource)
        self.session_cap = timedelta(seconds=settings.session_cap_seconds)
        self._verdicts_seen_at: float | None = None  # monotonic time the datasource was last found missing
        self._has_verdicts = False

    # --- plumbing ------------------------------------------------------------------------

    def sql(self, query: str) -> list[dict[str, Any]]:
        """Rows of a Druid SQL query, as dicts."""
        cursor = self.connection.cursor()
        try:
            cursor.execute(query)
            rows = cursor.fetchall()
        except requests.RequestException as exc:
            raise DruidError(f"Druid is not reachable at {self.address} ({type(exc).__name__}); "
                             f"is the stack up? (clickpipe stack status)") from exc
        except PydruidError as exc:
            hint = ""
            if "Object '" in str(exc) and "not found" in str(exc):
                hint = "; a datasource appears with its first ingested row (clickpipe druid status)"
            elif "Column '" in str(exc) and "not found" in str(exc):
                hint = ("; if it is a sketch column (visitors, sessions), Druid 33 hides it from SQL while every "
                        "segment of the datasource is still being written by an ingestion task that has persisted "
                        "to disk once (Druid issue #16982); it reappears when the first segments are handed off")
            # Parse errors list every token the parser expected: keep the part that helps.
            raise DruidError(f"Druid refused the query: {str(exc)[:600]}{hint}") from exc
        return [row._asdict() for row in rows]

    def _where(self, since: str | None, until: str | None, traffic: str, now: datetime | None = None) -> str:
        """The WHERE conditions of a report over clicks or sessions: the time window and the traffic.

        The one filter of human traffic: ``human`` keeps rows that are not flagged ``is_bot``
        and whose session no verdict names (a session judged bot after its first events, whose
        earlier rows went out as human); ``bots`` keeps the others. A verdict is kept with the
        session's start, so verdicts from one session cap before the window are considered.
        """
        if traffic not in TRAFFIC:
            raise ValueError(f"unknown traffic {traffic!r}; use one of {', '.join(TRAFFIC)}")
        now = now or datetime.now(timezone.utc)
        start = parse_time(since, now) if since else None
        end = parse_time(until, now) if until else now
        conditions = []
        if start is not None:
            conditions.append(f"__time >= {_timestamp(start)}")
        conditions.append(f"__time < {_timestamp(end)}")
        if traffic != "all":
            verdicts = self._verdict_sessions(start, end)
            if traffic == "bots":
                conditions.append(f"(is_bot = 'true' OR session_id IN ({verdicts}))" if verdicts else "is_bot = 'true'")
            else:
                # rows written before sessions carried session_id have none: no verdict can name them
                conditions.append("is_bot = 'false'" + (f" AND (session_id IS NULL OR session_id NOT IN ({verdicts}))"
                                                        if verdicts else ""))
        return " AND ".join(conditions)

    def _verdict_sessions(self, start: datetime | None, end: datetime) -> str | None:
        """The subquery of session ids judged bot that may have rows in [start, end); None while
        no verdict exists (the datasource appears with its first row)."""
        if not self._verdicts_exist():
            return None
        window = [f"__time < {_timestamp(end)}"]
        if start is not None:
            window.insert(0, f"__time >= {_timestamp(start - self.session_cap)}")
        return f"SELECT session_id FROM {self.verdicts} WHERE {' AND '.join(window)}"

    def _verdicts_exist(self) -> bool:
        if self._has_verdicts:
            return True
        if self._verdicts_seen_at is not None and time.monotonic() - self._verdicts_seen_at < VERDICTS_RECHECK_S:
            return False
        rows = self.sql("SELECT TABLE_NAME FROM INFORMATION_SCHEMA.TABLES "
                        f"WHERE TABLE_SCHEMA = 'druid' AND TABLE_NAME = {literal(self.verdicts_name)}")
        self._has_verdicts = bool(rows)
        self._verdicts_seen_at = time.monotonic()
        return self._has_verdicts

    # --- reports over clicks ---------------------------------------------------------------

    def live(self, traffic: str = "human") -> list[dict[str, Any]]:
        """Visitors, sessions, page views and events of the last five minutes."""
        now = datetime.now(timezone.utc)
        where = self._where(f"{int(LIVE_WINDOW.total_seconds())}s", None, traffic, now)
        return self.sql(
            f"SELECT APPROX_COUNT_DISTINCT_DS_THETA(visitors) AS visitors, "
            f"APPROX_COUNT_DISTINCT_DS_THETA(sessions) AS sessions, "
            f'COALESCE(SUM(page_views), 0) AS page_views, COALESCE(SUM("count"), 0) AS events '
            f"FROM {self.clicks} WHERE {where}")

    def traffic(self, since: str = "24h", until: str | None = None, granularity: str = "hour",
                traffic: str = "human") -> list[dict[str, Any]]:
        """Page views, events, visitors and sessions per time bucket (``granularity``)."""
        return self.sql(
            f"SELECT TIME_FLOOR(__time, {literal(_period(granularity))}) AS \"time\", "
            f'SUM(page_views) AS page_views, SUM("count") AS events, '
            f"APPROX_COUNT_DISTINCT_DS_THETA(visitors) AS visitors, "
            f"APPROX_COUNT_DISTINCT_DS_THETA(sessions) AS sessions "
            f"FROM {self.clicks} WHERE {self._where(since, until, traffic)} GROUP BY 1 ORDER BY 1")

    def _top(self, columns: Sequence[str], since: str, until: str | None, traffic: str, limit: int,
             condition: str = "TRUE", rank: str = "events") -> list[dict[str, Any]]:
        """The ``limit`` groups of ``columns`` with most ``rank`` (events or page_views), with
        their page views, events, visitors and sessions.

        Two queries: the ranking sums only counters, so it is cheap for any number of groups;
        the sketches are then merged for the winning groups alone (a theta union per group
        per sketch takes the broker's merge-buffer memory; thousands of groups exhaust it).
        """
        where = f"{self._where(since, until, traffic)} AND {condition}"
        select = ", ".join(columns)
        counters = 'SUM(page_views) AS page_views, SUM("count") AS events'
        ranked = self.sql(f"SELECT {select}, {counters} FROM {self.clicks} WHERE {where} "
                          f"GROUP BY {select} ORDER BY {rank} DESC LIMIT {int(limit)}")
        if not ranked:
            return []
        groups = " OR ".join(
            "(" + " AND ".join(f"{c} IS NULL" if row[c] is None else f"{c} = {literal(str(row[c]))}"
                               for c in columns) + ")"
            for row in ranked)
        sketches = {tuple(r[c] for c in columns): r for r in self.sql(
            f"SELECT {select}, APPROX_COUNT_DISTINCT_DS_THETA(visitors, {GROUP_SKETCH_SIZE}) AS visitors, "
            f"APPROX_COUNT_DISTINCT_DS_THETA(sessions, {GROUP_SKETCH_SIZE}) AS sessions "
            f"FROM {self.clicks} WHERE {where} AND ({groups}) GROUP BY {select}")}
        return [{**row, **{k: sketches[tuple(row[c] for c in columns)][k] for k in ("visitors", "sessions")}}
                for row in ranked]

    def pages(self, since: str = "24h", until: str | None = None, traffic: str = "human",
              limit: int = 10) -> list[dict[str, Any]]:
        """Most viewed pages (host and path)."""
        return self._top(["url_host", "url_path"], since, until, traffic, limit, "event_type = 'pageView'",
                         rank="page_views")

    def referrers(self, since: str = "24h", until: str | None = None, traffic: str = "human",
                  limit: int = 10) -> list[dict[str, Any]]:
        """Where sessions come from: referrer class, source and host of each session's first event
        (so ``events`` is the number of sessions started)."""
        return self._top(["referrer_class", "referrer_source", "referrer_host"], since, until, traffic, limit,
                         "first_in_session = 'true'")

    def campaigns(self, since: str = "24h", until: str | None = None, traffic: str = "human",
                  limit: int = 10) -> list[dict[str, Any]]:
        """Campaigns (utm source, medium, name) of events that carry one."""
        return self._top(["utm_source", "utm_medium", "utm_campaign"], since, until, traffic, limit,
                         "(utm_source IS NOT NULL OR utm_campaign IS NOT NULL)")

    def countries(self, since: str = "24h", until: str | None = None, traffic: str = "human",
                  limit: int = 10) -> list[dict[str, Any]]:
        """Visitors by country (ISO code)."""
        return self._top(["geo_country"], since, until, traffic, limit)

    def cities(self, since: str = "24h", until: str | None = None, traffic: str = "human",
               limit: int = 10) -> list[dict[str, Any]]:
        """Visitors by city."""
        return self._top(["geo_country", "geo_city"], since, until, traffic, limit)

    def devices(self, since: str = "24h", until: str | None = None, traffic: str = "human",
                limit: int = 10) -> list[dict[str, Any]]:
        """Visitors by device class and operating system."""
        return self._top(["device_class", "os_family"], since, until, traffic, limit)

    def browsers(self, since: str = "24h", until: str | None = None, traffic: str = "human",
                 limit: int = 10) -> list[dict[str, Any]]:
        """Visitors by browser family."""
        return self._top(["ua_family"], since, until, traffic, limit)

    def bots(self, since: str = "24h", until: str | None = None) -> list[dict[str, Any]]:
        """Share of events and visitors flagged as bots (both sides counted, whatever ``traffic``)."""
        where = self._where(since, until, "all")
        return self.sql(
            f'SELECT SUM("count") AS events, '
            f"SUM(\"count\") FILTER (WHERE is_bot = 'true') AS bot_events, "
            f"CAST(SUM(\"count\") FILTER (WHERE is_bot = 'true') AS DOUBLE) / SUM(\"count\") AS bot_share, "
            f"APPROX_COUNT_DISTINCT_DS_THETA(visitors) AS visitors, "
            f"APPROX_COUNT_DISTINCT_DS_THETA(visitors) FILTER (WHERE is_bot = 'true') AS bot_visitors "
            f"FROM {self.clicks} WHERE {where} HAVING SUM(\"count\") > 0")

    def bot_reasons(self, since: str = "24h", until: str | None = None, limit: int = 10) -> list[dict[str, Any]]:
        """Bot events and visitors by the rule that flagged them."""
        return self._top(["bot_reason"], since, until, "bots", limit)

    # --- reports over sessions -------------------------------------------------------------

    def sessions(self, since: str = "24h", until: str | None = None, traffic: str = "human") -> list[dict[str, Any]]:
        """Closed sessions that started in the window: count, median and mean duration, bounce
        rate and pages per session."""
        return self.sql(
            f'SELECT SUM("count") AS sessions, APPROX_COUNT_DISTINCT_DS_THETA(visitors) AS visitors, '
            f"APPROX_QUANTILE_DS(duration_quantiles, 0.5) / 1000.0 AS median_duration_s, "
            f'SUM(duration_ms) / 1000.0 / SUM("count") AS mean_duration_s, '
            f'CAST(SUM(bounces) AS DOUBLE) / SUM("count") AS bounce_rate, '
            f'CAST(SUM(page_views) AS DOUBLE) / SUM("count") AS pages_per_session '
            f"FROM {self.sessions_table} WHERE {self._where(since, until, traffic)} HAVING SUM(\"count\") > 0")

    def bot_sessions(self, since: str = "24h", until: str | None = None) -> list[dict[str, Any]]:
        """Sessions judged bots after their first event, started in the window: session id,
        reason, when the verdict came (event time) and how long after the session's start."""
        if not self._verdicts_exist():
            return []
        return self.sql(
            f'SELECT session_id, reason, __time AS session_start, MILLIS_TO_TIMESTAMP(decided_time) AS decided, '
            f"decided_time - TIMESTAMP_TO_MILLIS(__time) AS after_ms "
            f"FROM {self.verdicts} WHERE {self._where(since, until, 'all')} ORDER BY __time")

    # --- funnel ----------------------------------------------------------------------------

    def funnel(self, steps: Sequence[str], by: str = "page", since: str = "24h", until: str | None = None,
               traffic: str = "human", max_rows: int = 1_000_000) -> list[dict[str, Any]]:
        """Sessions reaching each step of an ordered funnel, in order, within the window.

        ``steps`` are URL paths (``by="page"``) or event types (``by="event"``). A session reaches
        step k when, after reaching step k-1, it has a later (or same-millisecond) event matching
        step k. The matching events are read from Druid and followed in Python; ``max_rows``
        bounds how many (a longer window raises :class:`DruidError` rather than truncating).
        """
        if not steps:
            raise ValueError("a funnel needs at least one step")
        if by not in FUNNEL_BY:
            raise ValueError(f"unknown funnel kind {by!r}; use one of {', '.join(FUNNEL_BY)}")
        column = FUNNEL_BY[by]
        rows = self.sql(
            f"SELECT session_id, __time AS t, {column} AS step FROM {self.clicks} "
            f"WHERE {self._where(since, until, traffic)} AND {column} IN ({', '.join(map(literal, set(steps)))}) "
            f"LIMIT {int(max_rows) + 1}")
        if len(rows) > max_rows:
            raise DruidError(f"the funnel matches more than {max_rows} rows; use a shorter window (--since)")
        by_session: dict[str, list[tuple[str, str]]] = {}
        for row in rows:
            by_session.setdefault(row["session_id"], []).append((row["t"], row["step"]))
        reached = [0] * len(steps)
        for events in by_session.values():
            position = 0
            for _, step in sorted(events):
                if step == steps[position]:
                    reached[position] += 1
                    position += 1
                    if position == len(steps):
                        break
        return [{"step": i + 1, by: step, "sessions": n,
                 "of_first": n / reached[0] if reached[0] else None,
                 "of_previous": n / reached[i - 1] if i and reached[i - 1] else (1.0 if n else None)}
                for i, (step, n) in enumerate(zip(steps, reached, strict=False))]


    # --- per session (evaluation) ----------------------------------------------------------

    def session_events(self, session_ids: Sequence[str], since: str, traffic: str = "all",
                       batch: int = 500) -> dict[str, int]:
        """Events of each of ``session_ids`` that ``traffic`` counts (what the reports of that
        traffic see of the session); sessions with none are left out."""
        counts: dict[str, int] = {}
        ids = sorted(set(session_ids))
        for start in range(0, len(ids), batch):
            chunk = ", ".join(map(literal, ids[start:start + batch]))
            for row in self.sql(f'SELECT session_id, SUM("count") AS events FROM {self.clicks} '
                                f"WHERE {self._where(since, None, traffic)} AND session_id IN ({chunk}) "
                                f"GROUP BY session_id"):
                counts[row["session_id"]] = int(row["events"])
        return counts

REPORTS: dict[str, Callable[..., list[dict[str, Any]]]] = {
    "live": Reports.live,
    "traffic": Reports.traffic,
    "pages": Reports.pages,
    "referrers": Reports.referrers,
    "campaigns": Reports.campaigns,
    "countries": Reports.countries,
    "cities": Reports.cities,
    "devices": Reports.devices,
    "browsers": Reports.browsers,
    "bots": Reports.bots,
    "bot-reasons": Reports.bot_reasons,
    "bot-sessions": Reports.bot_sessions,
    "sessions": Reports.sessions,
    "funnel": Reports.funnel,
}


class UnknownReport(KeyError):
    """No report has this name; the message lists the names."""

    def __str__(self) -> str:
        return f"unknown report {self.args[0]!r}; reports: {', '.join(REPORTS)}"


def run(reports: Reports, name: str, **options: Any) -> list[dict[str, Any]]:
    """Run report ``name`` with those ``options`` it takes (None means "use the default").

    Raises :class:`UnknownReport`, or ValueError when a required option is missing or bad.
    """
    if name not in REPORTS:
        raise UnknownReport(name)
    method = REPORTS[name]
    parameters = inspect.signature(method).parameters
    given = {k: v for k, v in options.items() if k in parameters and v is not None}
    missing = [p for p, spec in parameters.items()
               if p != "self" and spec.default is inspect.Parameter.empty and p not in given]
    if missing:
        raise ValueError(f"report {name!r} needs {', '.join('--' + m for m in missing)}")
    return method(reports, **given)
