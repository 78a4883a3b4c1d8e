"""The dashboard's HTTP interface.

- ``GET /``: the page (static HTML and script; no build step). It polls the summary every
  ``dashboard_refresh_seconds``; its time range, filters and goal live in the page's URL.
- ``GET /api/summary``: everything the page shows for one window (``since``, ``until``;
  the last hour by default), segment (``filter[<field>]=<value>``) and optional goal
  (``goal_page``, or ``goal_event`` with ``goal_property``): live visitors (last 5 minutes),
  traffic over time (minute, hour or day buckets by the window's length), top pages,
  referrers, campaigns, countries, devices, browsers, entry and exit pages, the bot share,
  the comparison with the previous period and the goal's conversions. Human traffic only,
  but for the bot share. A panel whose query fails (say, a window too long for the entry
  and exit pages) is empty, with its reason under ``errors``.
- ``GET /api/reports/<name>``: the export API, every report as JSON or CSV (:mod:`dashboard.api`).
- ``GET /api/openapi.yaml``: the OpenAPI document of the above.
- ``GET /healthz``: the process is alive.

Bad input gets 400 with ``{"error": ...}`` before any query is sent; 503 with
``{"error": ...}`` when Druid cannot answer.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

import falcon
import yaml

import clickpipe
from clickpipe.config import Settings
from clickpipe.config import settings as default_settings
from clickpipe.formatting import render
from dashboard import api
from druid import queries
from druid.client import DruidError
from druid.queries import Reports

PAGE = Path(__file__).resolve().parent / "page.html"
WINDOW = "1h"
SUMMARY_PARAMETERS = ["since", "until", "filters", "goal_page", "goal_event", "goal_property"]
Options = dict[str, Any]
# Page views the entry and exit panels may read per refresh (each); a longer window shows the
# reason in those panels (the export API and `clickpipe report` allow a million).
PANEL_SEQUENCE_ROWS = 200_000

# Panel name -> query over the window and segment; one declarative list so a new panel is one
# line here plus its table in page.html.
PANELS: dict[str, Callable[[Reports, Options], list[dict[str, Any]]]] = {
    "live": lambda r, o: r.live(filters=o["filters"]),
    "traffic": lambda r, o: r.traffic(o["since"], o["until"], o["granularity"], filters=o["filters"]),
    "compare": lambda r, o: r.compare(o["since"], o["until"], filters=o["filters"]),
    "pages": lambda r, o: r.pages(o["since"], o["until"], filters=o["filters"]),
    "referrers": lambda r, o: r.referrers(o["since"], o["until"], filters=o["filters"]),
    "campaigns": lambda r, o: r.campaigns(o["since"], o["until"], filters=o["filters"]),
    "countries": lambda r, o: r.countries(o["since"], o["until"], filters=o["filters"]),
    "devices": lambda r, o: r.devices(o["since"], o["until"], filters=o["filters"]),
    "browsers": lambda r, o: r.browsers(o["since"], o["until"], filters=o["filters"]),
    "entry_pages": lambda r, o: r.entry_pages(o["since"], o["until"], filters=o["filters"],
                                              max_rows=PANEL_SEQUENCE_ROWS),
    "exit_pages": lambda r, o: r.exit_pages(o["since"], o["until"], filters=o["filters"],
                                            max_rows=PANEL_SEQUENCE_ROWS),
    "bots": lambda r, o: r.bots(o["since"], o["until"], filters=o["filters"]),
    "goals": lambda r, o: r.goals(o["goal_page"], o["goal_event"], o["goal_property"], o["since"], o["until"],
                                  filters=o["filters"]),
}


def granularity(start: datetime, end: datetime) -> str:
    """Buckets of the traffic panel: minutes up to 3 hours, hours up to 3 days, then days."""
    span = end - start
    return "minute" if span <= timedelta(hours=3) else "hour" if span <= timedelta(days=3) else "day"


def summary_options(query: dict[str, list[str]], now: datetime | None = None) -> Options:
    """The panels' options from the summary's query string; ValueError for bad input (nothing
    is queried then). The window is fixed here (``now``) so every panel covers the same one."""
    options = {"since": WINDOW, "until": None, "filters": {}, "goal_page": None, "goal_event": None,
               "goal_property": None, **api.parse(SUMMARY_PARAMETERS, query)}
    now = now or datetime.now(timezone.utc)
    start, end = queries.window(options["since"], options["until"], now)
    assert start is not None  # since has a default
    if options["goal_page"] or options["goal_event"] or options["goal_property"]:
        queries.Goal.parse(options["goal_page"], options["goal_event"], options["goal_property"])
    return {**options, "since": start.isoformat(), "until": end.isoformat(), "granularity": granularity(start, end)}


def summary(reports: Reports, pool: ThreadPoolExecutor, options: Options) -> dict[str, Any]:
    """Every panel's rows, queried concurrently. A panel whose query fails has no rows and its
    reason under ``errors``; raises DruidError when every panel failed (Druid is away)."""
    goal = options["goal_page"] or options["goal_event"]
    panels = {name: query for name, query in PANELS.items() if name != "goals" or goal}
    futures = {name: pool.submit(query, reports, options) for name, query in panels.items()}
    result: dict[str, Any] = {"goals": []}
    errors: dict[str, str] = {}
    for name, future in futures.items():
        try:
            result[name] = future.result()
        except DruidError as exc:
            result[name], errors[name] = [], str(exc)
    if len(errors) == len(panels):
        raise DruidError(next(iter(errors.values())))
    result["errors"] = errors
    result["generated_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    result["window"] = {k: options[k] for k in ("since", "until", "granularity", "filters")}
    return result


def _query(req: falcon.Request) -> dict[str, list[str]]:
    if len(req.query_string) > api.MAX_QUERY_CHARS:
        raise ValueError(f"the query string is longer than {api.MAX_QUERY_CHARS} characters")
    parsed = falcon.uri.parse_query_string(req.query_string, keep_blank=True, csv=False)
    return {k: v if isinstance(v, list) else [v] for k, v in parsed.items()}


def _bad_request(resp: falcon.Response, exc: Exception) -> None:
    resp.status = falcon.HTTP_400
    resp.media = {"error": str(exc)}


class PageResource:
    def __init__(self, settings: Settings):
        self.html = PAGE.read_text().replace("{{REFRESH_SECONDS}}", str(settings.dashboard_refresh_seconds))

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_HTML
        resp.text = self.html


class SummaryResource:
    def __init__(self, reports: Reports):
        self.reports = reports
        self.pool = ThreadPoolExecutor(max_workers=len(PANELS), thread_name_prefix="dashboard-query")

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.cache_control = ["no-store"]
        try:
            options = summary_options(_query(req))
        except ValueError as exc:
            return _bad_request(resp, exc)
        try:
            resp.media = summary(self.reports, self.pool, options)
        except DruidError as exc:
            resp.status = falcon.HTTP_503
            resp.media = {"error": str(exc)}


class ReportResource:
    """``GET /api/reports/{name}``: one report as JSON or CSV."""

    def __init__(self, reports: Reports):
        self.reports = reports

    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        resp.cache_control = ["no-store"]
        if name not in queries.REPORTS:
            resp.status = falcon.HTTP_404
            resp.media = {"error": str(queries.UnknownReport(name))}
            return
        try:
            query = _query(req)
            csv = api.wants_csv(query.get("format"), req.accept)
            options = api.parse(api.accepted(name), query)
            rows = queries.run(self.reports, name, **options)
        except ValueError as exc:
            return _bad_request(resp, exc)
        except DruidError as exc:
            resp.status = falcon.HTTP_503
            resp.media = {"error": str(exc)}
            return
        if csv:
            resp.content_type = "text/csv; charset=utf-8"
            resp.downloadable_as = f"{name}.csv"
            resp.text = render(api.csv_safe(rows), "csv") + "\n"
        else:
            resp.media = rows


class _PlainDumper(yaml.SafeDumper):
    """YAML without anchors and aliases: parameters shared by many paths are written out in each."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


class OpenApiResource:
    def __init__(self) -> None:
        self.text = yaml.dump(api.openapi(SUMMARY_PARAMETERS, clickpipe.__version__), Dumper=_PlainDumper,
                              sort_keys=False, width=100)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = "application/yaml"
        resp.text = self.text


class HealthResource:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"ok": True}


def create(settings: Settings | None = None) -> falcon.App:
    settings = settings or default_settings
    reports = Reports(settings)
    app = falcon.App()
    app.resp_options.media_handlers[falcon.MEDIA_JSON] = falcon.media.JSONHandler(
        dumps=lambda obj: json.dumps(obj, default=str))
    app.add_route("/", PageResource(settings))
    app.add_route("/api/summary", SummaryResource(reports))
    app.add_route("/api/reports/{name}", ReportResource(reports))
    app.add_route("/api/openapi.yaml", OpenApiResource())
    app.add_route("/healthz", HealthResource())
    return app
