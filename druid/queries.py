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
- ``filters``: a segment, ``{field: value}`` over the fields of :data:`FILTERS` (page,
  referrer, campaign, country, device, browser, ...), all of which must match. Fields about
  how a session started (referrer, campaign) select every event of the sessions whose first
  event matches; the others select events.

Every input reaches SQL either through an allowlist (columns, filter fields, granularities)
or as a validated, quoted literal (:func:`value`); anything else raises ValueError before a
query is sent. pydruid's DB-API "parameters" are client-side string interpolation (they pass
``*`` through unquoted), so they add nothing over :func:`literal`.

Visitors and sessions counted from the clicks datasource are theta-sketch estimates: exact
up to 16384 distinct values, about 0.8% relative standard error beyond (4096 and 1.6% per
group in top-N reports, see :data:`GROUP_SKETCH_SIZE`). Session metrics
come from the sessions datasource, which receives a session when it closes (after the
inactivity gap), so the latest sessions appear there with that delay.

Failures raise :class:`druid.client.DruidError` with Druid's message, or with the address
that could not be reached.
"""

from __future__ import annotations

import collections
import inspect
import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Mapping, Sequence
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
# Page views the entry and exit pages and paths reports read and follow in Python; a window
# matching more raises rather than truncating.
MAX_SEQUENCE_ROWS = 1_000_000
_SPAN = re.compile(r"^(\d+)([smhdw])$")
_SPAN_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_time(value: str, now: datetime | None = None) -> datetime:
    """A span back from ``now`` (``15m``, ``24h``, ``7d``), ``today`` (midnight UTC) or an ISO 8601
    time, as an aware UTC datetime; ValueError for anything else."""
    now = now or datetime.now(timezone.utc)
    text = value.strip()
    if text == "today":
        return now.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    match = _SPAN.match(text)
    if match and len(text) <= 8:
        try:
            return now - timedelta(**{_SPAN_UNITS[match.group(2)]: int(match.group(1))})
        except OverflowError:
            raise ValueError(f"{value!r} reaches back before year 1") from None
    try:
        if len(text) > 40:
            raise ValueError
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{value[:60]!r} is neither a span like 15m, 24h, 7d, nor today, "
                         f"nor an ISO 8601 time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def window(since: str | None, until: str | None, now: datetime | None = None) -> tuple[datetime | None, datetime]:
    """The (start, end) a ``since`` / ``until`` pair means; ValueError unless start < end."""
    now = now or datetime.now(timezone.utc)
    start = parse_time(since, now) if since else None
    end = parse_time(until, now) if until else now
    if start is not None and start >= end:
        raise ValueError(f"the window is empty: since {start.isoformat()} is not before until {end.isoformat()}")
    return start, end


@dataclass(frozen=True)
class Filter:
    """A filter field: its column in the clicks datasource, its column in the sessions datasource
    (None: not there), and whether it describes the session's start (referrer, campaign: it
    selects every event of the sessions whose first event matches) or the event itself."""

    clicks: str
    sessions: str | None
    session_start: bool = False
    help: str = ""


# The filter fields a segment may use, by public name (API, URL, command line).
FILTERS: dict[str, Filter] = {
    "page": Filter("url_path", None, help="URL path of the event's page"),
    "host": Filter("url_host", None, help="host of the event's page"),
    "event": Filter("event_type", None, help="event type (pageView or a custom type)"),
    "referrer_class": Filter("referrer_class", "referrer_class", True, "how the session arrived: search, social, ..."),
    "referrer_source": Filter("referrer_source", "referrer_source", True, "search engine or social network"),
    "referrer_host": Filter("referrer_host", None, True, "host of the session's referrer"),
    "utm_source": Filter("utm_source", "utm_source", True, "campaign source of the session"),
    "utm_medium": Filter("utm_medium", "utm_medium", True, "campaign medium of the session"),
    "utm_campaign": Filter("utm_campaign", "utm_campaign", True, "campaign name of the session"),
    "country": Filter("geo_country", "geo_country", help="ISO country code"),
    "region": Filter("geo_region", "geo_region", help="ISO subdivision code"),
    "city": Filter("geo_city", "geo_city", help="city name"),
    "device": Filter("device_class", "device_class", help="desktop, mobile, tablet, bot or unknown"),
    "os": Filter("os_family", "os_family", help="operating system family"),
    "browser": Filter("ua_family", "ua_family", help="browser family"),
}
MAX_VALUE_CHARS = 200
# Printable text without quotes, backslashes, semicolons or comment markers: no legitimate
# page, host, campaign or country value needs them, and refusing them keeps a hostile value
# from ever reaching SQL, even quoted.
_VALUE = re.compile(r"[^\x00-\x1f\x7f'\"`\\;]+")
_PARAM_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def value(text: str, what: str = "value") -> str:
    """``text`` as a quoted SQL literal, after refusing (ValueError) what no valid value holds."""
    if not isinstance(text, str) or not 0 < len(text) <= MAX_VALUE_CHARS:
        raise ValueError(f"{what} must be 1 to {MAX_VALUE_CHARS} characters")
    if not _VALUE.fullmatch(text) or "--" in text or "/*" in text:
        raise ValueError(f"{what} {text[:60]!r} has a character no value may hold "
                         f"(quotes, backslash, semicolon, control characters, -- or /*)")
    return literal(text)


def parse_filters(pairs: Sequence[str] | Mapping[str, str] | None) -> dict[str, str]:
    """A filter set from ``field=value`` strings (or a mapping), checked; ValueError names the
    problem (unknown field, bad value)."""
    if not pairs:
        return {}
    items = pairs.items() if isinstance(pairs, Mapping) else [
        tuple(p.split("=", 1)) if "=" in p else (p, "") for p in pairs]
    found: dict[str, str] = {}
    for field, text in items:
        if field not in FILTERS:
            raise ValueError(f"unknown filter field {field[:40]!r}; use one of {', '.join(FILTERS)}")
        if field in found:
            raise ValueError(f"filter field {field!r} given twice")
        value(text, f"filter {field}")
        found[field] = text
    return found


@dataclass(frozen=True)
class Goal:
    """A conversion: a page view of ``page``, or an event of type ``event`` whose custom
    parameter ``property`` (``key=value``, from the ``params`` column) matches."""

    page: str | None = None
    event: str | None = None
    property: str | None = None

    @classmethod
    def parse(cls, page: str | None, event: str | None, prop: str | None) -> "Goal":
        if bool(page) == bool(event):
            raise ValueError("a goal is either a page (goal_page) or an event (goal_event), exactly one")
        if prop and not event:
            raise ValueError("goal_property (key=value) goes with goal_event")
        goal = cls(page or None, event or None, prop or None)
        goal.condition()  # validates
        return goal

    def condition(self) -> str:
        """The SQL condition of an event that reaches the goal."""
        if self.page:
            return f"event_type = 'pageView' AND url_path = {value(self.page, 'goal page')}"
        where = f"event_type = {value(self.event or '', 'goal event')}"
        if self.property:
            key, _, expected = self.property.partition("=")
            if not _PARAM_KEY.fullmatch(key) or not expected:
                raise ValueError(f"goal property {self.property[:60]!r} is not key=value "
                                 f"(a key of letters, digits and _)")
            where += f" AND JSON_VALUE(params, {literal('$.' + key)}) = {value(expected, 'goal property value')}"
        return where

    def __str__(self) -> str:
        if self.page:
            return f"page {self.page}"
        return f"event {self.event}" + (f" with {self.property}" if self.property else "")


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
    if re.fullmatch(r"P(\d+[YMWD])*(T(\d+[HMS])+)?", granularity) and granularity not in ("P", "PT"):
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

    def _where(self, since: str | None, until: str | None, traffic: str, now: datetime | None = None,
               filters: Mapping[str, str] | None = None, datasource: str = "clicks") -> str:
        """The WHERE condition every report uses: the window, the traffic side and the segment
        (``filters``, see :data:`FILTERS`) over ``datasource`` (``clicks`` or ``sessions``).

        The one filter of human traffic: ``human`` keeps rows that are not flagged ``is_bot``
        and whose session no verdict names (a session judged bot after its first events, whose
        earlier rows went out as human); ``bots`` keeps the others. A verdict is kept with the
        session's start, so verdicts from one session cap before the window are considered.

        ValueError for a bad window, traffic or filter, or a filter the sessions datasource
        has no column for.
        """
        if traffic not in TRAFFIC:
            raise ValueError(f"unknown traffic {traffic!r}; use one of {', '.join(TRAFFIC)}")
        now = now or datetime.now(timezone.utc)
        start, end = window(since, until, now)
        times = [f"__time >= {_timestamp(start)}"] if start is not None else []
        times.append(f"__time < {_timestamp(end)}")
        # the segment first: a bad filter is refused before anything asks Druid
        segment: list[str] = []
        for field, text in parse_filters(filters).items():
            spec = FILTERS[field]
            if datasource == "sessions":
                if spec.sessions is None:
                    raise ValueError(f"filter {field!r} does not apply to session reports "
                                     f"(the sessions datasource has no such column)")
                segment.append(f"{spec.sessions} = {value(text)}")
            elif spec.session_start:
                # Sessions that started in the window with a matching first event.
                segment.append(f"session_id IN (SELECT session_id FROM {self.clicks} WHERE {' AND '.join(times)} "
                                  f"AND first_in_session = 'true' AND {spec.clicks} = {value(text)})")
            else:
                segment.append(f"{spec.clicks} = {value(text)}")
        conditions = list(times)
        if traffic != "all":
            verdicts = self._verdict_sessions(start, end)
            if traffic == "bots":
                conditions.append(f"(is_bot = 'true' OR session_id IN ({verdicts}))" if verdicts else "is_bot = 'true'")
            else:
                # rows written before sessions carried session_id have none: no verdict can name them
                conditions.append("is_bot = 'false'" + (f" AND (session_id IS NULL OR session_id NOT IN ({verdicts}))"
                                                        if verdicts else ""))
        conditions += segment
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
        try:
            rows = self.sql("SELECT TABLE_NAME FROM INFORMATION_SCHEMA.TABLES "
                            f"WHERE TABLE_SCHEMA = 'druid' AND TABLE_NAME = {literal(self.verdicts_name)}")
        except DruidError:
            return False  # Druid unreachable: the report's own query says so (or its input is refused first)
        self._has_verdicts = bool(rows)
        self._verdicts_seen_at = time.monotonic()
        return self._has_verdicts

    # --- reports over clicks ---------------------------------------------------------------

    def live(self, traffic: str = "human", filters: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        """Visitors, sessions, page views and events of the last five minutes."""
        now = datetime.now(timezone.utc)
        where = self._where(f"{int(LIVE_WINDOW.total_seconds())}s", None, traffic, now, filters)
        return self.sql(
            f"SELECT APPROX_COUNT_DISTINCT_DS_THETA(visitors) AS visitors, "
            f"APPROX_COUNT_DISTINCT_DS_THETA(sessions) AS sessions, "
            f'COALESCE(SUM(page_views), 0) AS page_views, COALESCE(SUM("count"), 0) AS events '
            f"FROM {self.clicks} WHERE {where}")

    def traffic(self, since: str = "24h", until: str | None = None, granularity: str = "hour",
                traffic: str = "human", filters: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        """Page views, events, visitors and sessions per time bucket (``granularity``)."""
        return self.sql(
            f"SELECT TIME_FLOOR(__time, {literal(_period(granularity))}) AS \"time\", "
            f'SUM(page_views) AS page_views, SUM("count") AS events, '
            f"APPROX_COUNT_DISTINCT_DS_THETA(visitors) AS visitors, "
            f"APPROX_COUNT_DISTINCT_DS_THETA(sessions) AS sessions "
            f"FROM {self.clicks} WHERE {self._where(since, until, traffic, filters=filters)} GROUP BY 1 ORDER BY 1")

    def _top(self, columns: Sequence[str], since: str, until: str | None, traffic: str, limit: int,
             filters: Mapping[str, str] | None, condition: str = "TRUE", rank: str = "events") -> list[dict[str, Any]]:
        """The ``limit`` groups of ``columns`` with most ``rank`` (events or page_views), with
        their page views, events, visitors and sessions.

        Two queries: the ranking sums only counters, so it is cheap for any number of groups;
        the sketches are then merged for the winning groups alone (a theta union per group
        per sketch takes the broker's merge-buffer memory; thousands of groups exhaust it).
        """
        where = f"{self._where(since, until, traffic, filters=filters)} AND {condition}"
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
              limit: int = 10, filters: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        """Most viewed pages (host and path)."""
        return self._top(["url_host", "url_path"], since, until, traffic, limit, filters, "event_type = 'pageView'",
                         rank="page_views")

    def referrers(self, since: str = "24h", until: str | None = None, traffic: str = "human",
                  limit: int = 10, filters: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        """Where sessions come from: referrer class, source and host of each session's first event
        (so ``events`` is the number of sessions started)."""
        return self._top(["referrer_class", "referrer_source", "referrer_host"], since, until, traffic, limit, filters,
                         "first_in_session = 'true'")

    def campaigns(self, since: str = "24h", until: str | None = None, traffic: str = "human",
                  limit: int = 10, filters: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        """Campaigns (utm source, medium, name) of events that carry one."""
        return self._top(["utm_source", "utm_medium", "utm_campaign"], since, until, traffic, limit, filters,
                         "(utm_source IS NOT NULL OR utm_campaign IS NOT NULL)")

    def countries(self, since: str = "24h", until: str | None = None, traffic: str = "human",
                  limit: int = 10, filters: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        """Visitors by country (ISO code)."""
        return self._top(["geo_country"], since, until, traffic, limit, filters)

    def cities(self, since: str = "24h", until: str | None = None, traffic: str = "human",
               limit: int = 10, filters: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        """Visitors by city."""
        return self._top(["geo_country", "geo_city"], since, until, traffic, limit, filters)

    def devices(self, since: str = "24h", until: str | None = None, traffic: str = "human",
                limit: int = 10, filters: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        """Visitors by device class and operating system."""
        return self._top(["device_class", "os_family"], since, until, traffic, limit, filters)

    def browsers(self, since: str = "24h", until: str | None = None, traffic: str = "human",
                 limit: int = 10, filters: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        """Visitors by browser family."""
        return self._top(["ua_family"], since, until, traffic, limit, filters)

    def bots(self, since: str = "24h", until: str | None = None,
             filters: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        """Share of events and visitors flagged as bots (both sides counted, whatever ``traffic``)."""
        where = self._where(since, until, "all", filters=filters)
        return self.sql(
            f'SELECT SUM("count") AS events, '
            f"SUM(\"count\") FILTER (WHERE is_bot = 'true') AS bot_events, "
            f"CAST(SUM(\"count\") FILTER (WHERE is_bot = 'true') AS DOUBLE) / SUM(\"count\") AS bot_share, "
            f"APPROX_COUNT_DISTINCT_DS_THETA(visitors) AS visitors, "
            f"APPROX_COUNT_DISTINCT_DS_THETA(visitors) FILTER (WHERE is_bot = 'true') AS bot_visitors "
            f"FROM {self.clicks} WHERE {where} HAVING SUM(\"count\") > 0")

    def bot_reasons(self, since: str = "24h", until: str | None = None, limit: int = 10,
                    filters: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        """Bot events and visitors by the rule that flagged them."""
        return self._top(["bot_reason"], since, until, "bots", limit, filters)

    # --- reports over sessions -------------------------------------------------------------

    def sessions(self, since: str = "24h", until: str | None = None, traffic: str = "human",
                 filters: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        """Closed sessions that started in the window: count, median and mean duration, bounce
        rate and pages per session."""
        return self.sql(
            f'SELECT SUM("count") AS sessions, APPROX_COUNT_DISTINCT_DS_THETA(visitors) AS visitors, '
            f"APPROX_QUANTILE_DS(duration_quantiles, 0.5) / 1000.0 AS median_duration_s, "
            f'SUM(duration_ms) / 1000.0 / SUM("count") AS mean_duration_s, '
            f'CAST(SUM(bounces) AS DOUBLE) / SUM("count") AS bounce_rate, '
            f'CAST(SUM(page_views) AS DOUBLE) / SUM("count") AS pages_per_session '
            f"FROM {self.sessions_table} "
            f"WHERE {self._where(since, until, traffic, filters=filters, datasource='sessions')} "
            f'HAVING SUM("count") > 0')

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
               traffic: str = "human", max_rows: int = 1_000_000,
               filters: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
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
            f"WHERE {self._where(since, until, traffic, filters=filters)} "
            f"AND {column} IN ({', '.join(value(s, 'funnel step') for s in sorted(set(steps)))}) "
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

    # --- comparison, goals, retention --------------------------------------------------------

    def _totals(self, since: str, until: str, traffic: str, filters: Mapping[str, str] | None) -> dict[str, Any]:
        [row] = self.sql(
            f'SELECT COALESCE(SUM(page_views), 0) AS page_views, COALESCE(SUM("count"), 0) AS events, '
            f"APPROX_COUNT_DISTINCT_DS_THETA(visitors) AS visitors, "
            f"APPROX_COUNT_DISTINCT_DS_THETA(sessions) AS sessions "
            f"FROM {self.clicks} WHERE {self._where(since, until, traffic, filters=filters)}")
        return row

    def compare(self, since: str = "24h", until: str | None = None, traffic: str = "human",
                filters: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        """Page views, events, visitors and sessions of the window against the previous period of
        the same length (ending where the window starts): one row per metric with ``current``,
        ``previous`` and ``change`` (relative; None when the previous figure is 0)."""
        start, end = window(since, until)
        if start is None:
            raise ValueError("a comparison needs a window start (since)")
        previous_start = start - (end - start)
        current = self._totals(start.isoformat(), end.isoformat(), traffic, filters)
        previous = self._totals(previous_start.isoformat(), start.isoformat(), traffic, filters)
        return [{"metric": metric, "current": current[metric], "previous": previous[metric],
                 "change": (current[metric] - previous[metric]) / previous[metric] if previous[metric] else None,
                 "since": start.isoformat(), "until": end.isoformat(),
                 "previous_since": previous_start.isoformat()}
                for metric in ("page_views", "events", "visitors", "sessions")]

    def goals(self, goal_page: str | None = None, goal_event: str | None = None, goal_property: str | None = None,
              since: str = "24h", until: str | None = None, traffic: str = "human",
              filters: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        """Conversions of one goal -- a page (``goal_page``) or a custom event (``goal_event``),
        optionally with a custom parameter match (``goal_property`` = ``key=value``) -- with the
        share of visitors and of sessions that reached it."""
        goal = Goal.parse(goal_page, goal_event, goal_property)
        condition = goal.condition()
        [row] = self.sql(
            f'SELECT COALESCE(SUM("count") FILTER (WHERE {condition}), 0) AS conversions, '
            f"APPROX_COUNT_DISTINCT_DS_THETA(visitors) AS visitors, "
            f"APPROX_COUNT_DISTINCT_DS_THETA(visitors) FILTER (WHERE {condition}) AS converted_visitors, "
            f"APPROX_COUNT_DISTINCT_DS_THETA(sessions) AS sessions, "
            f"APPROX_COUNT_DISTINCT_DS_THETA(sessions) FILTER (WHERE {condition}) AS converted_sessions "
            f"FROM {self.clicks} WHERE {self._where(since, until, traffic, filters=filters)}")
        return [{"goal": str(goal), **row,
                 "conversion_rate": row["converted_visitors"] / row["visitors"] if row["visitors"] else None,
                 "session_conversion_rate":
                     row["converted_sessions"] / row["sessions"] if row["sessions"] else None}]

    def retention(self, weeks: int = 6, until: str | None = None, traffic: str = "human",
                  filters: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        """Weekly cohorts of new visitors (``new_party``: first seen in that week, Monday to Sunday
        UTC) over the last ``weeks`` weeks, and how many of each came back in each later week.

        Theta-sketch intersections of the ``visitors`` column: the cohort's sketch (new visitors
        of week c) intersected with the sketch of everyone active in week c + k. One query, no
        per-visitor data leaves Druid, any filter set applies. Exact while both sketches hold
        fewer than 16384 visitors; beyond, an intersection's error grows as the overlap
        shrinks relative to the larger set (a small cohort among many visitors is the worst).
        """
        if not 1 <= int(weeks) <= 26:
            raise ValueError("weeks must be between 1 and 26")
        weeks = int(weeks)
        _, end = window(None, until)
        monday = (end - timedelta(days=end.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
        starts = [monday - timedelta(weeks=weeks - 1 - i) for i in range(weeks)]

        def in_week(i: int) -> str:
            return f"__time >= {_timestamp(starts[i])} AND __time < {_timestamp(starts[i] + timedelta(weeks=1))}"

        def cohort(i: int) -> str:
            return f"DS_THETA(visitors) FILTER (WHERE new_party = 'true' AND {in_week(i)})"

        columns = []
        for i in range(weeks):
            columns.append(f'THETA_SKETCH_ESTIMATE({cohort(i)}) AS "c{i}"')
            columns += [f"THETA_SKETCH_ESTIMATE(THETA_SKETCH_INTERSECT({cohort(i)}, "
                        f'DS_THETA(visitors) FILTER (WHERE {in_week(j)}))) AS "c{i}_w{j}"'
                        for j in range(i + 1, weeks)]
        where = self._where(starts[0].isoformat(), end.isoformat(), traffic, filters=filters)
        [row] = self.sql(f"SELECT {', '.join(columns)} FROM {self.clicks} WHERE {where}")
        out = []
        for i in range(weeks):
            size = round(row[f"c{i}"] or 0)
            for j in range(i, weeks):
                n = size if j == i else round(row[f"c{i}_w{j}"] or 0)
                out.append({"cohort": starts[i].date().isoformat(), "week": j - i, "visitors": n,
                            "of_cohort": n / size if size else None})
        return out

    # --- page sequences: entry and exit pages, paths ----------------------------------------

    def _page_sequences(self, where: str, max_rows: int) -> list[list[str | None]]:
        """Each session's page views matching ``where``, in session order (``session_seq``, then
        time). More than ``max_rows`` page views raise rather than truncate."""
        rows = self.sql(f"SELECT session_id, session_seq, __time AS t, url_path FROM {self.clicks} "
                        f"WHERE {where} AND event_type = 'pageView' LIMIT {int(max_rows) + 1}")
        if len(rows) > max_rows:
            raise DruidError(f"the window holds more than {max_rows} page views; use a shorter window (--since)")
        by_session: dict[str, list[tuple[int, str, str | None]]] = {}
        for row in rows:
            by_session.setdefault(row["session_id"], []).append((row["session_seq"] or 0, row["t"], row["url_path"]))
        return [[path for _, _, path in sorted(events, key=lambda e: (e[0], e[1]))]
                for events in by_session.values()]

    def entry_pages(self, since: str = "24h", until: str | None = None, traffic: str = "human",
                    limit: int = 10, filters: Mapping[str, str] | None = None,
                    max_rows: int = MAX_SEQUENCE_ROWS) -> list[dict[str, Any]]:
        """Pages sessions start on (their first page view in the window): sessions, their share
        of all sessions with a page view, and the bounce rate (sessions of that single page view)."""
        sequences = self._page_sequences(self._where(since, until, traffic, filters=filters), max_rows)
        entries = collections.Counter(seq[0] for seq in sequences)
        bounces = collections.Counter(seq[0] for seq in sequences if len(seq) == 1)
        return [{"url_path": page, "sessions": n, "share": n / len(sequences), "bounce_rate": bounces[page] / n}
                for page, n in _ranked(entries, limit)]

    def exit_pages(self, since: str = "24h", until: str | None = None, traffic: str = "human",
                   limit: int = 10, filters: Mapping[str, str] | None = None,
                   max_rows: int = MAX_SEQUENCE_ROWS) -> list[dict[str, Any]]:
        """Pages sessions end on (their last page view in the window; an open session's latest
        counts): sessions, their share of all sessions with a page view, and the exit rate
        (exits per view of that page)."""
        sequences = self._page_sequences(self._where(since, until, traffic, filters=filters), max_rows)
        exits = collections.Counter(seq[-1] for seq in sequences)
        views = collections.Counter(page for seq in sequences for page in seq)
        return [{"url_path": page, "sessions": n, "share": n / len(sequences), "exit_rate": n / views[page]}
                for page, n in _ranked(exits, limit)]

    def paths(self, page: str, since: str = "24h", until: str | None = None, traffic: str = "human",
              limit: int = 10, filters: Mapping[str, str] | None = None,
              max_rows: int = MAX_SEQUENCE_ROWS) -> list[dict[str, Any]]:
        """Where visitors come from before a view of ``page`` and go after it: the page viewed
        just before (``previous``; None = the session started there) and just after (``next``;
        None = the session ended there, so far), each with the count and share of the page's
        views; the ``limit`` most frequent of each direction.

        Reads the page views of the sessions that viewed ``page`` in the window and follows
        them in order; more than ``max_rows`` such page views raise rather than truncate.
        """
        where = self._where(since, until, traffic, filters=filters)
        viewed = (f"session_id IN (SELECT session_id FROM {self.clicks} WHERE {where} "
                  f"AND event_type = 'pageView' AND url_path = {value(page, 'page')})")
        before: collections.Counter[str | None] = collections.Counter()
        after: collections.Counter[str | None] = collections.Counter()
        for seq in self._page_sequences(f"{where} AND {viewed}", max_rows):
            for i, path in enumerate(seq):
                if path == page:
                    before[seq[i - 1] if i else None] += 1
                    after[seq[i + 1] if i + 1 < len(seq) else None] += 1
        views = sum(before.values())
        return [{"direction": direction, "url_path": path, "page_views": n, "share": n / views}
                for direction, counts in (("previous", before), ("next", after))
                for path, n in _ranked(counts, limit)]

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
    "compare": Reports.compare,
    "goals": Reports.goals,
    "retention": Reports.retention,
    "entry-pages": Reports.entry_pages,
    "exit-pages": Reports.exit_pages,
    "paths": Reports.paths,
}


def _ranked(counts: "collections.Counter[Any]", limit: int) -> list[tuple[Any, int]]:
    """The ``limit`` most frequent items, ties in a stable order (by their text)."""
    return sorted(counts.items(), key=lambda item: (-item[1], str(item[0])))[:int(limit)]


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
