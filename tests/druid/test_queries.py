"""Every report against a known data set ingested by real Druid, checked against the records."""

from __future__ import annotations

import collections
import json
import random
import statistics
import time
from datetime import datetime
from typing import Any, Callable, Iterable

import pytest
from druid_support import run_cli

import schemas
from clickpipe.config import load
from druid import queries, supervisors
from tests.support.druid import count_rows, private_druid, private_env, produce_rows, wait_for
from tests.support.records import enriched_click, session

PAGES = ["/", "/products", "/products/42", "/cart", "/checkout", "/thanks"]
REFERRERS = [("direct", None, None), ("search", "Google", "www.google.com"),
             ("social", "Facebook", "www.facebook.com"), ("other", None, "blog.example.org")]
CAMPAIGNS = [None, ("newsletter", "email", "spring-sale"), ("google", "cpc", "brand")]
PLACES = [("GB", "London"), ("GB", "Leeds"), ("DE", "Berlin"), ("US", "Boston")]
DEVICES = [("desktop", "Windows", "Chrome"), ("mobile", "iOS", "Mobile Safari"), ("tablet", "Android", "Chrome")]
BOT_REASONS = ["ua-spider", "datacenter", "rate-party"]


def _data_set(now_ms: int) -> tuple[list[dict], list[dict]]:
    """Clicks and their closed sessions: 60 parties (the last 10 bots), recent ones in the live window."""
    rng = random.Random(5)
    clicks, closed = [], []
    for p in range(60):
        party = f"party-{p:02d}"
        is_bot = p >= 50
        country, city = PLACES[p % len(PLACES)]
        device, os_family, browser = DEVICES[p % len(DEVICES)]
        for s in range(1 + p % 3):
            sid = f"{party}-s{s}"
            # parties 0-9 are live (last two minutes), the others 10 to 50 minutes ago
            start = now_ms - (rng.randint(30, 120) if p < 10 else rng.randint(600, 3000)) * 1000
            referrer_class, referrer_source, referrer_host = rng.choice(REFERRERS)
            campaign = rng.choice(CAMPAIGNS)
            events = []
            for e in range(rng.randint(1, 6)):
                page = PAGES[0] if e == 0 and rng.random() < 0.6 else rng.choice(PAGES)
                first = e == 0
                events.append(enriched_click(
                    server_time=start + e * 4000, party_id=party, session_id=sid, session_seq=e + 1,
                    first_in_session=first, event_type="pageView" if rng.random() < 0.8 else "addToCart",
                    url_path=page, new_party=first and s == 0,
                    referrer_class=referrer_class if first else "internal",
                    referrer_source=referrer_source if first else None,
                    referrer_host=referrer_host if first else "shop.example.com",
                    utm_source=campaign[0] if campaign else None, utm_medium=campaign[1] if campaign else None,
                    utm_campaign=campaign[2] if campaign else None,
                    geo_country=country, geo_city=city, device_class=device, os_family=os_family,
                    ua_family=browser, is_bot=is_bot, bot_reason=BOT_REASONS[p % 3] if is_bot else None))
            clicks += events
            views = [c for c in events if c["event_type"] == "pageView"]
            closed.append(session(
                session_id=sid, party_id=party, start_time=events[0]["server_time"],
                end_time=events[-1]["server_time"], duration_ms=events[-1]["server_time"] - start,
                page_views=len(views), events=len(events), bounce=len(events) == 1,
                landing_page=views[0]["url_path"] if views else None, is_bot=is_bot,
                bot_reason=events[0]["bot_reason"], device_class=device, geo_country=country))
    return clicks, closed


@pytest.fixture(scope="module")
def loaded(stack):
    """(Reports, clicks, sessions, env): the data set ingested into private datasources via apply."""
    env = private_env()
    cfg = load(env)
    clicks, closed = _data_set(int(time.time() * 1000))
    with private_druid(cfg) as client:
        produce_rows(cfg, cfg.topic_enriched, schemas.current("EnrichedClick"), clicks)
        produce_rows(cfg, cfg.topic_sessions, schemas.current("Session"), closed)
        assert {r["outcome"] for r in supervisors.apply(client, cfg)} == {"created"}
        for ds, n in ((cfg.druid_clicks_datasource, len(clicks)), (cfg.druid_sessions_datasource, len(closed))):
            assert wait_for(lambda ds=ds: count_rows(client, ds), lambda got, n=n: got == n) == n
        yield queries.Reports(cfg), clicks, closed, env


def _human(rows: Iterable[dict]) -> list[dict]:
    return [r for r in rows if not r["is_bot"]]


def _summary(clicks: list[dict]) -> dict[str, int]:
    return {"page_views": sum(c["event_type"] == "pageView" for c in clicks), "events": len(clicks),
            "visitors": len({c["party_id"] for c in clicks}), "sessions": len({c["session_id"] for c in clicks})}


def _grouped(clicks: list[dict], key: Callable[[dict], tuple]) -> dict[tuple, dict[str, int]]:
    groups: dict[tuple, list[dict]] = collections.defaultdict(list)
    for c in clicks:
        groups[key(c)].append(c)
    return {k: _summary(v) for k, v in groups.items()}


def _by(rows: list[dict], *columns: str) -> dict[tuple, dict[str, Any]]:
    return {tuple(r[c] for c in columns): {k: r[k] for k in ("page_views", "events", "visitors", "sessions")}
            for r in rows}


def test_live_counts_the_last_five_minutes(loaded):
    reports, clicks, _, _ = loaded
    cutoff = time.time() * 1000 - queries.LIVE_WINDOW.total_seconds() * 1000
    assert reports.live() == [_summary([c for c in _human(clicks) if c["server_time"] >= cutoff])]
    assert reports.live(traffic="bots")[0]["events"] == 0  # no bot is live in the data set


def test_traffic_per_hour_and_per_minute(loaded):
    reports, clicks, _, _ = loaded
    for granularity, ms in (("hour", 3_600_000), ("minute", 60_000)):
        rows = reports.traffic(since="2h", granularity=granularity)
        expected = _grouped(_human(clicks), lambda c, ms=ms: (c["server_time"] // ms * ms,))
        assert {(_epoch_ms(r["time"]),): {k: v for k, v in r.items() if k != "time"} for r in rows} == expected
        assert [r["time"] for r in rows] == sorted(r["time"] for r in rows)


def _epoch_ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


@pytest.mark.parametrize("traffic", ["human", "bots", "all"])
def test_top_pages_per_traffic(loaded, traffic):
    reports, clicks, _, _ = loaded
    chosen = {"human": _human(clicks), "bots": [c for c in clicks if c["is_bot"]], "all": clicks}[traffic]
    views = [c for c in chosen if c["event_type"] == "pageView"]
    rows = reports.pages(since="1h", traffic=traffic, limit=100)
    assert _by(rows, "url_host", "url_path") == _grouped(views, lambda c: (c["url_host"], c["url_path"]))
    top = reports.pages(since="1h", traffic=traffic, limit=3)
    assert [r["page_views"] for r in top] == sorted((r["page_views"] for r in rows), reverse=True)[:3]


@pytest.mark.parametrize("report, columns, condition", [
    ("referrers", ("referrer_class", "referrer_source", "referrer_host"), lambda c: c["first_in_session"]),
    ("campaigns", ("utm_source", "utm_medium", "utm_campaign"), lambda c: c["utm_source"] is not None),
    ("countries", ("geo_country",), lambda c: True),
    ("cities", ("geo_country", "geo_city"), lambda c: True),
    ("devices", ("device_class", "os_family"), lambda c: True),
    ("browsers", ("ua_family",), lambda c: True),
])
def test_breakdowns(loaded, report, columns, condition):
    reports, clicks, _, _ = loaded
    rows = getattr(reports, report)(since="1h", limit=100)
    expected = _grouped([c for c in _human(clicks) if condition(c)], lambda c: tuple(c[k] for k in columns))
    assert _by(rows, *columns) == expected
    assert [r["events"] for r in rows] == sorted((r["events"] for r in rows), reverse=True)
    top = getattr(reports, report)(since="1h", limit=2)
    assert all(r in rows for r in top) and [r["events"] for r in top] == [r["events"] for r in rows[:2]]


def test_bot_share_and_reasons(loaded):
    reports, clicks, _, _ = loaded
    bots = [c for c in clicks if c["is_bot"]]
    assert reports.bots(since="1h") == [{
        "events": len(clicks), "bot_events": len(bots), "bot_share": pytest.approx(len(bots) / len(clicks)),
        "visitors": len({c["party_id"] for c in clicks}), "bot_visitors": len({c["party_id"] for c in bots}),
    }]
    assert _by(reports.bot_reasons(since="1h"), "bot_reason") == _grouped(bots, lambda c: (c["bot_reason"],))


def test_session_metrics(loaded):
    reports, _, closed, _ = loaded
    human = _human(closed)
    durations = sorted(s["duration_ms"] for s in human)
    [row] = reports.sessions(since="2h")
    assert row["median_duration_s"] * 1000 in (durations[(len(durations) - 1) // 2], durations[len(durations) // 2])
    assert row == {
        "sessions": len(human), "visitors": len({s["party_id"] for s in human}),
        "median_duration_s": row["median_duration_s"],
        "mean_duration_s": pytest.approx(statistics.mean(durations) / 1000),
        "bounce_rate": pytest.approx(sum(s["bounce"] for s in human) / len(human)),
        "pages_per_session": pytest.approx(sum(s["page_views"] for s in human) / len(human)),
    }
    assert reports.sessions(since="2h", traffic="bots")[0]["sessions"] == len(closed) - len(human)


def _is_subsequence(steps: list[str], sequence: list[str]) -> bool:
    remaining = iter(sequence)
    return all(step in remaining for step in steps)


@pytest.mark.parametrize("by, column, steps", [
    ("page", "url_path", ["/", "/products", "/cart"]),
    ("page", "url_path", ["/products", "/products"]),
    ("event", "event_type", ["pageView", "addToCart", "pageView"]),
])
def test_ordered_funnel(loaded, by, column, steps):
    reports, clicks, _, _ = loaded
    sequences = collections.defaultdict(list)
    for c in sorted(_human(clicks), key=lambda c: c["server_time"]):
        sequences[c["session_id"]].append(c[column])
    reached = [sum(_is_subsequence(steps[:k + 1], seq) for seq in sequences.values()) for k in range(len(steps))]
    rows = reports.funnel(steps, by=by, since="1h")
    assert [(r["step"], r[by], r["sessions"]) for r in rows] == [(k + 1, s, reached[k]) for k, s in enumerate(steps)]
    assert rows[-1]["of_first"] == pytest.approx(reached[-1] / reached[0])
    assert reached[-1] > 0


def test_report_command_prints_the_same_rows_as_json_csv_and_table(loaded):
    reports, _, _, env = loaded
    expected = reports.countries(since="1h", limit=2)
    as_json = run_cli(env, "report", "countries", "--since", "1h", "--limit", "2", "--format", "json")
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == expected
    as_csv = run_cli(env, "report", "countries", "--since", "1h", "--limit", "2", "--format", "csv")
    assert as_csv.stdout.splitlines() == [",".join(expected[0])] + [
        ",".join(str(v) for v in r.values()) for r in expected]
    table = run_cli(env, "report", "funnel", "--steps", "/", "/cart", "--since", "1h")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["STEP", "PAGE", "SESSIONS", "OF_FIRST", "OF_PREVIOUS"]
    assert [line.split()[:2] for line in lines[1:]] == [["1", "/"], ["2", "/cart"]]
