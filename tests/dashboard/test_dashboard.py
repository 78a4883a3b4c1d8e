"""The live dashboard in real headless Chromium against real Druid: the numbers it shows are
the numbers Druid gives, and a screenshot is kept in test-artifacts/."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time

import pytest
import requests

import schemas
from clickpipe.config import load
from druid import queries, supervisors
from stack.services import port_open
from tests.support import ROOT
from tests.support.browser import Chromium
from tests.support.druid import count_rows, private_druid, private_env, produce_rows, wait_for
from tests.support.records import enriched_click

ARTIFACTS = ROOT / "test-artifacts"
PAGES = ["/", "/pricing", "/docs", "/blog/streaming", "/signup"]


def _clicks(now_ms: int) -> list[dict]:
    """Seven human visitors and one bot over the last 30 minutes; more views for earlier pages."""
    clicks = []
    for party in range(8):
        is_bot = party == 7
        for i, path in enumerate(PAGES[: 5 - party % 4]):
            clicks.append(enriched_click(
                server_time=now_ms - (party * 180_000 + i * 20_000), party_id=f"party-{party}",
                session_id=f"s-{party}", first_in_session=i == 0, url_path=path,
                url_host="shop.example.com", geo_country=["GB", "US", "SE"][party % 3],
                is_bot=is_bot, bot_reason="ua:crawler" if is_bot else None))
    return clicks


@pytest.fixture(scope="module")
def dashboard(stack):
    env = private_env(prefix="test-dash")
    cfg = load(env)
    clicks = _clicks(int(time.time() * 1000))
    with private_druid(cfg) as client:
        produce_rows(cfg, cfg.topic_enriched, schemas.current("EnrichedClick"), clicks)
        supervisors.apply(client, cfg)
        assert wait_for(lambda: count_rows(client, cfg.druid_clicks_datasource),
                        lambda got: got == len(clicks)) == len(clicks)
        port = 18095
        proc_env = {**{k: v for k, v in os.environ.items() if not k.startswith("CLICKPIPE_")}, **env,
                    "CLICKPIPE_DASHBOARD_PORT": str(port), "CLICKPIPE_DASHBOARD_REFRESH_SECONDS": "2"}
        server = subprocess.Popen([sys.executable, "-m", "commands.cli", "dashboard"], env=proc_env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while not port_open("127.0.0.1", port) and time.monotonic() < deadline:
                time.sleep(0.2)
            yield f"http://127.0.0.1:{port}", queries.Reports(cfg), clicks
        finally:
            server.terminate()
            server.wait(timeout=30)


def test_summary_api_serves_every_panel_from_druid(dashboard):
    url, reports, clicks = dashboard
    body = requests.get(f"{url}/api/summary", timeout=30).json()
    humans = [c for c in clicks if not c["is_bot"]]
    assert sum(r["page_views"] for r in body["traffic"]) == len(humans)
    assert body["pages"][0]["url_path"] == "/" and body["pages"][0]["page_views"] == 7
    assert body["bots"][0]["bot_events"] == len(clicks) - len(humans)
    assert {r["geo_country"] for r in body["countries"]} == {"GB", "US", "SE"}


def test_page_in_chromium_shows_druids_numbers(dashboard):
    url, reports, clicks = dashboard
    browser = Chromium()
    try:
        browser.navigate(url + "/")
        browser.wait_for("!!(document.body && document.body.dataset.updated)", timeout=30)
        shown = {key: browser.evaluate(f"document.getElementById('{key}').textContent")
                 for key in ("visitors-now", "bot-share")}
        shown |= {key: browser.evaluate(f"document.querySelector('.card[data-metric={key}] .value').textContent")
                  for key in ("page_views", "events")}
        top_page = browser.evaluate("document.querySelector('#pages tbody tr td').textContent")
        ARTIFACTS.mkdir(exist_ok=True)
        browser.call("Emulation.setDeviceMetricsOverride", width=1440, height=1000, deviceScaleFactor=1,
                     mobile=False)
        time.sleep(2.5)  # one refresh at the new size so the chart is laid out for it
        shot = browser.call("Page.captureScreenshot", format="png")
        (ARTIFACTS / "dashboard.png").write_bytes(base64.b64decode(shot["data"]))
    finally:
        browser.close()

    live = reports.live()[0]
    traffic = reports.traffic(since="1h", granularity="minute")
    bots = reports.bots(since="1h")[0]
    assert shown["visitors-now"] == f"{live['visitors']:,.0f}"
    assert shown["page_views"] == f"{sum(r['page_views'] for r in traffic):,}"
    assert shown["events"] == f"{sum(r['events'] for r in traffic):,}"
    assert shown["bot-share"] == f"{100 * bots['bot_share']:.1f} %"
    assert top_page == "/"
    assert (ARTIFACTS / "dashboard.png").stat().st_size > 10_000
