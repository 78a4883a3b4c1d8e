"""Session verdicts end to end: collector (HTTP) → Kafka → worker → Druid → human reports.

A scraper's session and a cookie-dropping client's throw-away parties start out looking human:
their first events reach Druid unflagged. The worker then judges them by behaviour and sends
session verdicts; the human reports (druid/queries.py) must then count only the people, with
no event and no session of those bots, including the events that went out before the verdict.
"""

from __future__ import annotations

import time

import pytest
import requests

from clickpipe.config import load
from druid import queries, supervisors
from tests.support.collector import CollectorProcess
from tests.support.druid import count_rows, private_druid, private_env, wait_for
from tests.support.pipeline import Run

HUMAN_UA = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/120.0.0.0 Safari/537.36")
DROPPER_UA = HUMAN_UA.replace("120.0", "121.0")
HUMANS = 6
DROPPED = 12  # requests of the cookie dropper, each a new party
SCRAPER_PAGES = 40


@pytest.fixture
def run(stack, tmp_path):
    with Run(stack.kafka_bootstrap, tmp_path, partitions=2, env={
        "CLICKPIPE_SESSION_GAP_SECONDS": "3",
        "CLICKPIPE_SESSION_SWEEP_SECONDS": "1",
        "CLICKPIPE_PIPELINE_COMMIT_INTERVAL_MS": "500",
        # a scraper at 10 pages/s is past a burst of 5 at 60/min after 0.6 s, and judged 2 s later
        "CLICKPIPE_BOT_PAGE_BURST": "5",
        "CLICKPIPE_BOT_PAGE_RATE_PER_MINUTE": "60",
        "CLICKPIPE_BOT_PAGE_SUSTAIN_SECONDS": "2",
        # every test request comes from 127.0.0.1: 6 new parties of one user agent are too many
        "CLICKPIPE_BOT_CHURN_MAX_PARTIES_PER_UA": "6",
    }) as r:
        yield r


def post(collector: CollectorProcess, events: list[dict], ua: str, cookies: dict | None = None) -> requests.Response:
    response = requests.post(f"{collector.url}/events", json=events, headers={"User-Agent": ua}, cookies=cookies,
                             timeout=10)
    assert response.status_code == 200 and response.json()["accepted"] == len(events), response.text
    return response


def page(party: str | None, n: int, path: str) -> dict:
    event = {"event_id": f"{party or 'anon'}-{n}-{time.monotonic_ns()}", "event_type": "pageView",
             "location": f"https://shop.example.com{path}"}
    if party is not None:
        event["party_id"] = party
    return event


def test_human_reports_exclude_sessions_judged_bot_after_their_first_events(run):
    cfg = load(private_env(TOPIC_ENRICHED=run.topics["enriched"], TOPIC_SESSIONS=run.topics["sessions"],
                           TOPIC_VERDICTS=run.topics["verdicts"]))
    with private_druid(cfg, create_topics=False) as client:
        assert {r["outcome"] for r in supervisors.apply(client, cfg)} == {"created"}
        worker = run.start_worker()
        run.wait_ready(worker)
        collector = CollectorProcess({"CLICKPIPE_KAFKA_BOOTSTRAP": run.bootstrap,
                                      "CLICKPIPE_TOPIC_RAW": run.topics["raw"],
                                      "CLICKPIPE_COLLECTOR_BATCH_LINGER_MS": "0"})
        human_pages = 0
        try:
            collector.wait_ready()
            # people: a few pages each, a person's pace (well within the session gap)
            for p in range(HUMANS):
                for n, path in enumerate(["/", "/products", "/products/42"][: 1 + p % 3]):
                    post(collector, [page(f"e2e-person-{p}", n, path)], HUMAN_UA)
                    human_pages += 1
                    time.sleep(0.3)
            # a scraper with a browser's user agent, keeping its party: 10 pages a second
            for n in range(SCRAPER_PAGES):
                post(collector, [page("e2e-scraper", n, f"/products/{n}")], HUMAN_UA)
                time.sleep(0.1)
            # a client that drops its cookie: every request is a new party from the same address
            for n in range(DROPPED):
                post(collector, [page(None, n, "/")], DROPPER_UA)
                time.sleep(0.2)
        finally:
            assert collector.stop() == 0, collector.output()

        total = human_pages + SCRAPER_PAGES + DROPPED
        assert wait_for(lambda: count_rows(client, cfg.druid_clicks_datasource), lambda n: n == total, 120) == total
        # the sessions close after the gap; each dropped party is a session of its own
        sessions = HUMANS + 1 + DROPPED
        assert wait_for(lambda: count_rows(client, cfg.druid_sessions_datasource), lambda n: n == sessions, 60) \
            == sessions

        reports = queries.Reports(cfg)
        verdicts = wait_for(lambda: reports.bot_sessions(since="1h"),
                            lambda rows: len({r["reason"] for r in rows}) == 2, 60)
        by_reason: dict[str, int] = {}
        for row in verdicts:
            by_reason[row["reason"]] = by_reason.get(row["reason"], 0) + 1
        # the scraper's session once; the dropper's parties counted before the limit was reached
        assert by_reason["page-rate"] == 1
        assert 1 <= by_reason["party-churn"] < DROPPED

        # some of the bots' events went out unflagged: only the verdicts keep them out
        [unflagged] = client.sql(f"SELECT SUM(\"count\") AS n FROM \"{cfg.druid_clicks_datasource}\" "
                                 f"WHERE is_bot = 'false'")
        assert unflagged["n"] > human_pages

        [live] = reports.live()
        assert live["events"] == live["page_views"] == human_pages
        assert live["visitors"] == HUMANS
        assert sum(r["events"] for r in reports.traffic(since="1h", granularity="minute")) == human_pages
        assert sum(r["events"] for r in reports.traffic(since="1h", granularity="minute", traffic="bots")) \
            == SCRAPER_PAGES + DROPPED
        assert {r["url_path"] for r in reports.pages(since="1h", limit=50)} <= {"/", "/products", "/products/42"}

        [human_sessions] = reports.sessions(since="1h")
        [bot_sessions] = reports.sessions(since="1h", traffic="bots")
        assert (human_sessions["sessions"], bot_sessions["sessions"]) == (HUMANS, 1 + DROPPED)
        reasons = {r["bot_reason"] for r in reports.bot_reasons(since="1h", limit=20)}
        assert {"page-rate", "party-churn"} <= reasons
