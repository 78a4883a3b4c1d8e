"""Query latency of every report over a million (by default) ingested clicks.

Generates synthetic EnrichedClick records (and the Session record of each synthetic
session), produces them as JSON rows to private topics, ingests them through the generated specs
(`druid.supervisors.apply`) into private datasources, then times each report of
`druid.queries.REPORTS` several times over a 24-hour window. It measures twice: while the
rows are served by the real-time ingestion task, and after suspending the supervisors, which
makes the tasks publish and hand their segments off to the historical; then once more on the
historical under a segment (sessions from Google: a session-start filter, the costliest
kind). Everything it created is removed at the end.

    .venv/bin/python -m bench.druid_queries [--events 1000000] [--repeat 5] [--seed 7]

Prints a Markdown table (median and slowest of the repeats, in milliseconds).
"""

from __future__ import annotations

import argparse
import functools
import operator
import random
import statistics
import sys
import time
from typing import Iterator

import schemas
from clickpipe.config import load
from druid import queries, supervisors
from druid.client import DruidClient, DruidError
from tests.support.druid import count_rows, private_druid, private_env, produce_rows, wait_for
from tests.support.records import enriched_click, session

HOUR_MS = 3_600_000
REFERRERS = [("direct", None, None)] * 4 + [("search", "Google", "www.google.com"), ("search", "Bing", "www.bing.com"),
                                            ("social", "Facebook", "www.facebook.com"), ("other", None, "news.example")]
CAMPAIGNS = [None] * 6 + [("newsletter", "email", f"issue-{i}") for i in range(5)] + [("google", "cpc", "brand")]
DEVICES = [("desktop", "Windows", "Chrome"), ("desktop", "Mac OS X", "Safari"), ("mobile", "iOS", "Mobile Safari"),
           ("mobile", "Android", "Chrome Mobile"), ("tablet", "iOS", "Mobile Safari"), ("desktop", "Linux", "Firefox")]
BOT_REASONS = ["ua-spider", "crawler-pattern", "datacenter", "headless", "rate-party"]
FUNNEL = ["/", "/products", "/cart", "/checkout"]


class Synthetic:
    """Sessions of 1-10 events over the last ``hours`` hours; 5% of parties are bots."""

    def __init__(self, events: int, seed: int, hours: int = 20):
        self.rng = random.Random(seed)
        self.events = events
        self.parties = max(events // 20, 10)
        self.end_ms = int(time.time() * 1000) - 60_000
        self.start_ms = self.end_ms - hours * HOUR_MS
        self.pages = FUNNEL + [f"/products/{i}" for i in range(300)] + [f"/blog/{i}" for i in range(100)]
        self.places = [(c, f"{c}-city-{i}")
                       for c in ("GB", "DE", "US", "FR", "NL", "IN", "BR", "JP") for i in range(12)]
        self.sessions: list[dict] = []

    def clicks(self) -> Iterator[dict]:
        rng, produced, n = self.rng, 0, 0
        while produced < self.events:
            party = rng.randrange(self.parties)
            is_bot = party % 20 == 0
            sid = f"s{n}"
            n += 1
            size = min(rng.randint(1, 10), self.events - produced)
            start = rng.randrange(self.start_ms, self.end_ms - 600_000)
            referrer = rng.choice(REFERRERS)
            campaign = rng.choice(CAMPAIGNS)
            country, city = self.places[party % len(self.places)]
            device, os_family, browser = DEVICES[party % len(DEVICES)]
            t = start
            for e in range(size):
                page = FUNNEL[e] if e < len(FUNNEL) and rng.random() < 0.5 else rng.choice(self.pages)
                yield enriched_click(
                    server_time=t, party_id=f"party-{party}", session_id=sid, session_seq=e + 1,
                    first_in_session=e == 0, event_type="pageView" if rng.random() < 0.85 else "addToCart",
                    url_path=page, referrer_class=referrer[0] if e == 0 else "internal",
                    referrer_source=referrer[1] if e == 0 else None,
                    referrer_host=referrer[2] if e == 0 else "shop.example.com",
                    utm_source=campaign and campaign[0], utm_medium=campaign and campaign[1],
                    utm_campaign=campaign and campaign[2], geo_country=country, geo_city=city,
                    device_class=device, os_family=os_family, ua_family=browser, is_bot=is_bot,
                    bot_reason=BOT_REASONS[party % len(BOT_REASONS)] if is_bot else None,
                    new_party=e == 0 and rng.random() < 0.3)
                t += rng.randint(5_000, 60_000)
            produced += size
            self.sessions.append(session(session_id=sid, party_id=f"party-{party}", start_time=start, end_time=t,
                                         duration_ms=t - start, page_views=size, events=size, bounce=size == 1,
                                         is_bot=is_bot, device_class=device, geo_country=country))


SEGMENT = {"referrer_source": "Google"}


def _time_reports(reports: queries.Reports, repeat: int,
                  filters: dict[str, str] | None = None) -> dict[str, list[float] | str]:
    """Milliseconds of each run of each report, or the error of a report Druid refused."""
    options = {"since": "24h", "steps": FUNNEL, "limit": 10, "page": "/products", "goal_page": "/checkout",
               "weeks": 2, "filters": filters}
    timings: dict[str, list[float] | str] = {}
    for name in queries.REPORTS:
        runs = []
        try:
            for _ in range(repeat):
                began = time.perf_counter()
                queries.run(reports, name, **options)
                runs.append((time.perf_counter() - began) * 1000)
        except DruidError as exc:
            print(f"{name}: {exc}", flush=True)
            timings[name] = "error (see above)"
            continue
        timings[name] = runs
    return timings


def _cell(runs: list[float] | str) -> str:
    return runs if isinstance(runs, str) else f"{statistics.median(runs):.0f} / {max(runs):.0f}"


def _columns(client: DruidClient, datasource: str) -> set[str]:
    return {r["COLUMN_NAME"] for r in client.sql("SELECT COLUMN_NAME FROM INFORMATION_SCHEMA.COLUMNS "
                                                 "WHERE TABLE_NAME = ?", [{"type": "VARCHAR", "value": datasource}])}


def _segments(client: DruidClient, datasource: str) -> str:
    [row] = client.sql("SELECT SUM(CASE WHEN is_realtime = 1 THEN 1 ELSE 0 END) AS realtime, "
                       "SUM(CASE WHEN is_realtime = 0 AND is_available = 1 THEN 1 ELSE 0 END) AS historical "
                       "FROM sys.segments WHERE datasource = ?", [{"type": "VARCHAR", "value": datasource}])
    return f"{row['realtime'] or 0} real-time, {row['historical'] or 0} historical segments"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    cfg = load(private_env("bench-druid", DRUID_TASK_DURATION="PT1H"))
    synthetic = Synthetic(args.events, args.seed)
    with private_druid(cfg, partitions=2) as client:
        began = time.monotonic()
        produce_rows(cfg, cfg.topic_enriched, schemas.current("EnrichedClick"), synthetic.clicks())
        produce_rows(cfg, cfg.topic_sessions, schemas.current("Session"), synthetic.sessions)
        print(f"produced {args.events} clicks, {len(synthetic.sessions)} sessions in {time.monotonic() - began:.0f} s",
              flush=True)
        began = time.monotonic()
        supervisors.apply(client, cfg)
        for ds, n in ((cfg.druid_clicks_datasource, args.events),
                      (cfg.druid_sessions_datasource, len(synthetic.sessions))):
            got = wait_for(functools.partial(count_rows, client, ds), functools.partial(operator.eq, n),
                           timeout=1800, interval=5)
            if got != n:
                sys.exit(f"{ds}: {got} rows of {n} after 30 min")
        print(f"ingested in {time.monotonic() - began:.0f} s", flush=True)

        reports = queries.Reports(cfg)
        phases = {}
        state = _segments(client, cfg.druid_clicks_datasource)
        phases[f"real-time task ({state})"] = _time_reports(reports, args.repeat)

        supervisors.act(client, cfg, "suspend")
        handed_off = wait_for(lambda: _segments(client, cfg.druid_clicks_datasource),
                              lambda s: s.startswith("0 real-time") and not s.endswith(" 0 historical segments"),
                              timeout=900, interval=5)
        # The broker learns the columns of handed-off segments on its next metadata refresh.
        for ds in (cfg.druid_clicks_datasource, cfg.druid_sessions_datasource):
            wait_for(functools.partial(_columns, client, ds), lambda columns: "visitors" in columns,
                     timeout=300, interval=5)
        phases[f"historical ({handed_off})"] = _time_reports(reports, args.repeat)
        phases["historical, sessions from Google"] = _time_reports(reports, args.repeat, SEGMENT)

    print(f"\n{args.events:,} clicks, {len(synthetic.sessions):,} sessions; window 24h; "
          f"{args.repeat} runs per report; milliseconds (median / slowest)\n")
    titles = list(phases)
    print("| report | " + " | ".join(titles) + " |")
    print("|---|" + "---|" * len(titles))
    for name in queries.REPORTS:
        cells = [_cell(phases[t][name]) for t in titles]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
