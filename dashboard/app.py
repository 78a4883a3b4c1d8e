"""The dashboard's HTTP interface.

- ``GET /``: the page (static HTML and script; no build step). It polls the summary every
  ``dashboard_refresh_seconds``.
- ``GET /api/summary``: everything the page shows, as JSON: live visitors (last 5 minutes),
  page views per minute over the last hour, top pages, referrers, campaigns, countries,
  devices and the bot share over the last hour. Human traffic only, but for the bot share.
  503 with ``{"error": ...}`` when Druid cannot answer.
- ``GET /healthz``: the process is alive.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import falcon

from clickpipe.config import Settings
from clickpipe.config import settings as default_settings
from druid.client import DruidError
from druid.queries import Reports

PAGE = Path(__file__).resolve().parent / "page.html"
WINDOW = "1h"

# Panel name -> query; one declarative list so a new panel is one line here plus its table
# in page.html.
PANELS: dict[str, Callable[[Reports], list[dict[str, Any]]]] = {
    "live": lambda r: r.live(),
    "traffic": lambda r: r.traffic(since=WINDOW, granularity="minute"),
    "pages": lambda r: r.pages(since=WINDOW),
    "referrers": lambda r: r.referrers(since=WINDOW),
    "campaigns": lambda r: r.campaigns(since=WINDOW),
    "countries": lambda r: r.countries(since=WINDOW),
    "devices": lambda r: r.devices(since=WINDOW),
    "bots": lambda r: r.bots(since=WINDOW),
}


def summary(reports: Reports, pool: ThreadPoolExecutor) -> dict[str, Any]:
    """Every panel's rows, queried concurrently; raises DruidError if any query fails."""
    futures = {name: pool.submit(query, reports) for name, query in PANELS.items()}
    result: dict[str, Any] = {name: future.result() for name, future in futures.items()}
    result["generated_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    result["window"] = WINDOW
    return result


class PageResource:
    def __init__(self, settings: Settings):
        self.html = PAGE.read_text().replace("{{REFRESH_SECONDS}}", str(settings.dashboard_refresh_seconds))

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_HTML
        resp.text = self.html


class SummaryResource:
    def __init__(self, settings: Settings):
        self.reports = Reports(settings)
        self.pool = ThreadPoolExecutor(max_workers=len(PANELS), thread_name_prefix="dashboard-query")

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.cache_control = ["no-store"]
        try:
            resp.media = summary(self.reports, self.pool)
        except DruidError as exc:
            resp.status = falcon.HTTP_503
            resp.media = {"error": str(exc)}


class HealthResource:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"ok": True}


def create(settings: Settings | None = None) -> falcon.App:
    settings = settings or default_settings
    app = falcon.App()
    app.resp_options.media_handlers[falcon.MEDIA_JSON] = falcon.media.JSONHandler(
        dumps=lambda obj: json.dumps(obj, default=str))
    app.add_route("/", PageResource(settings))
    app.add_route("/api/summary", SummaryResource(settings))
    app.add_route("/healthz", HealthResource())
    return app
