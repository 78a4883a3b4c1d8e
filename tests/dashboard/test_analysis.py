"""Reports that answer questions -- segments, period comparison, goals, weekly retention, paths,
entry and exit pages -- over one known data set ingested by real Kafka and Druid, through
``druid.queries``, ``clickpipe report``, the dashboard's export API (JSON, CSV, OpenAPI) and the
page in real headless Chromium. Every expected figure is computed here from the records."""

from __future__ import annotations

import base64
import collections
import csv
import io
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import yaml

import schemas
from clickpipe.config import load
from dashboard import api
from druid import queries, supervisors
from stack.services import port_open
from tests.support import ROOT
from tests.support.browser import Chromium
from tests.support.druid import count_rows, private_druid, private_env, produce_rows, wait_for
from tests.support.records import enriched_click, session

ARTIFACTS = ROOT / "test-artifacts"
MINUTE = 60_000
REFERRERS = {"Google": ("search", "www.google.com"), "Facebook": ("social", "www.facebook.com")}
LONG = "/blog/2026/12/how-we-count-visitors-with-theta-sketches-without-losing-a-single-session-along-the-way"
# (party, referrer source or None for direct, country, steps): a step is a page path or a
# custom event (type, params). Sessions of the last hour, then of the hour before.
Visit = tuple[str, str | None, str, list]
CURRENT: list[Visit] = [
    ("p1", "Google", "GB", ["/", "/pricing", "/signup", ("signup", {"plan": "pro"})]),
    ("p2", "Google", "US", ["/", "/docs", LONG]),
    ("p3", "Facebook", "GB", ["/blog", "/", ("video", {"plan": "pro"}), "/pricing"]),
    ("p4", None, "DE", ["/pricing", "/signup", ("signup", {"plan": "free"})]),
    ("p5", "Facebook", "GB", ["/"]),
    ("p6", "Google", "US", ["/docs", "/", "/pricing", "/"]),
    ("p1", None, "GB", ["/pricing"]),
]
PREVIOUS: list[Visit] = [
    ("p7", "Google", "US", ["/", "/pricing"]),
    ("p8", None, "GB", ["/docs"]),
    ("p2", "Facebook", "US", ["/", "/blog", "/", "/blog"]),
]
BOT: Visit = ("b1", None, "US", ["/", "/", "/signup"])
# Weekly cohorts, by weeks before the current one: (party, week of the first visit, weeks of
# the later visits).
RETURNING = [("r0", 2, [1, 0]), ("r1", 2, [1]), ("r2", 2, [0]), ("r3", 2, []), ("r4", 1, [0]), ("r5", 1, []),
             ("r6", 0, [])]


def _session(party: str, source: str | None, country: str, steps: list, start: int, n: int, first_visit: bool,
             is_bot: bool = False) -> list[dict]:
    events: list[dict] = []
    for i, step in enumerate(steps):
        first = i == 0
        referrer_class, referrer_host = REFERRERS[source] if source else ("direct", None)
        page, (event_type, params) = (step, ("pageView", {})) if isinstance(step, str) else (None, step)
        events.append(enriched_click(
            server_time=start + i * 10_000, party_id=party, session_id=f"{party}-s{n}", session_seq=i + 1,
            first_in_session=first, event_type=event_type, params=params,
            url_path=page or (events[-1]["url_path"] if events else "/"),
            referrer_class=referrer_class if first else "internal",
            referrer_source=source if first else None,
            referrer_host=referrer_host if first else "shop.example.com",
            geo_country=country, new_party=first and first_visit, is_bot=is_bot,
            bot_reason="ua:crawler" if is_bot else None))
    return events


def _data_set(now_ms: int) -> list[dict]:
    clicks: list[dict] = []
    seen: set[str] = set()
    sessions = collections.Counter[str]()
    plan = [(s, now_ms - 45 * MINUTE + k * 2 * MINUTE) for k, s in enumerate(CURRENT)]
    plan += [(s, now_ms - 100 * MINUTE + k * 2 * MINUTE) for k, s in enumerate(PREVIOUS)]
    for (party, source, country, steps), start in sorted(plan, key=lambda p: p[1]):
        clicks += _session(party, source, country, steps, start, sessions[party], party not in seen)
        seen.add(party)
        sessions[party] += 1
    clicks += _session(*BOT, now_ms - 30 * MINUTE, 0, True, is_bot=True)
    now = datetime.fromtimestamp(now_ms / 1000, timezone.utc)
    monday = (now - timedelta(days=now.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    monday_ms = int(monday.timestamp() * 1000)
    for party, first_week, later in RETURNING:
        for n, weeks_ago in enumerate([first_week, *later]):
            week_start = monday_ms - weeks_ago * 7 * 24 * 60 * MINUTE
            # the middle of that week, or of the part of the current week that has passed
            start = week_start + min(7 * 24 * 60 * MINUTE, now_ms - 3 * 60 * MINUTE - week_start) // 2
            clicks += _session(party, None, "FR", ["/", "/docs"], start, n, n == 0)
    return clicks


def _closed(clicks: list[dict]) -> list[dict]:
    """The Session record of each session of ``clicks``."""
    by_session: dict[str, list[dict]] = collections.defaultdict(list)
    for c in clicks:
        by_session[c["session_id"]].append(c)
    closed = []
    for sid, events in by_session.items():
        first, last = events[0], events[-1]
        views = [c for c in events if c["event_type"] == "pageView"]
        closed.append(session(
            session_id=sid, party_id=first["party_id"], start_time=first["server_time"],
            end_time=last["server_time"], duration_ms=last["server_time"] - first["server_time"],
            page_views=len(views), events=len(events), bounce=len(events) == 1,
            landing_page=f"https://shop.example.com{views[0]['url_path']}",
            exit_page=f"https://shop.example.com{views[-1]['url_path']}",
            referrer_class=first["referrer_class"], referrer_source=first["referrer_source"],
            geo_country=first["geo_country"], is_bot=first["is_bot"]))
    return closed


@pytest.fixture(scope="module")
def loaded(stack):
    """(Reports, clicks, env, dashboard URL): the data set ingested into private datasources, and a
    dashboard process serving them."""
    env = private_env(prefix="test-analysis")
    cfg = load(env)
    clicks = _data_set(int(time.time() * 1000))
    closed = _closed(clicks)
    with private_druid(cfg) as client:
        produce_rows(cfg, cfg.topic_enriched, schemas.current("EnrichedClick"), clicks)
        produce_rows(cfg, cfg.topic_sessions, schemas.current("Session"), closed)
        assert {r["outcome"] for r in supervisors.apply(client, cfg)} == {"created"}
        for ds, n in ((cfg.druid_clicks_datasource, len(clicks)), (cfg.druid_sessions_datasource, len(closed))):
            assert wait_for(lambda ds=ds: count_rows(client, ds), lambda got, n=n: got == n) == n
        port = 18096
        proc_env = {**{k: v for k, v in os.environ.items() if not k.startswith("CLICKPIPE_")}, **env,
                    "CLICKPIPE_DASHBOARD_PORT": str(port), "CLICKPIPE_DASHBOARD_REFRESH_SECONDS": "30"}
        server = subprocess.Popen([sys.executable, "-m", "commands.cli", "dashboard"], env=proc_env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while not port_open("127.0.0.1", port) and time.monotonic() < deadline:
                time.sleep(0.2)
            yield queries.Reports(cfg), clicks, env, f"http://127.0.0.1:{port}"
        finally:
            server.terminate()
            server.wait(timeout=30)


# --- what the records say ----------------------------------------------------------------------

def _in(clicks: Iterable[dict], since_ms: float, until_ms: float | None = None) -> list[dict]:
    until_ms = until_ms if until_ms is not None else time.time() * 1000
    return [c for c in clicks if not c["is_bot"] and since_ms <= c["server_time"] < until_ms]


def _ago(minutes: float) -> float:
    return time.time() * 1000 - minutes * MINUTE


def _segment(clicks: list[dict], **filters: str) -> list[dict]:
    """The events a filter set selects: session-start fields through each session's first event."""
    def matches(c: dict, field: str, value: str) -> bool:
        spec = queries.FILTERS[field]
        if not spec.session_start:
            return c[spec.clicks] == value
        return any(f["session_id"] == c["session_id"] and f["first_in_session"] and f[spec.clicks] == value
                   for f in clicks)
    return [c for c in clicks if all(matches(c, k, v) for k, v in filters.items())]


def _sequences(clicks: list[dict]) -> list[list[str]]:
    by_session: dict[str, list[dict]] = collections.defaultdict(list)
    for c in clicks:
        if c["event_type"] == "pageView":
            by_session[c["session_id"]].append(c)
    return [[c["url_path"] for c in sorted(events, key=lambda c: c["session_seq"])] for events in by_session.values()]


def _totals(clicks: list[dict]) -> dict[str, int]:
    return {"page_views": sum(c["event_type"] == "pageView" for c in clicks), "events": len(clicks),
            "visitors": len({c["party_id"] for c in clicks}), "sessions": len({c["session_id"] for c in clicks})}


def _counts(rows: list[dict], key: Callable[[dict], Any], value: str) -> dict:
    return {key(r): r[value] for r in rows}


# --- the reports --------------------------------------------------------------------------------

def test_segments_apply_to_every_report(loaded):
    reports, clicks, _, _ = loaded
    recent = _in(clicks, _ago(60))
    google = _segment(recent, referrer_source="Google")
    assert {c["party_id"] for c in google} == {"p1", "p2", "p6"}  # whole sessions, not first events only
    pages = reports.pages(since="1h", limit=100, filters={"referrer_source": "Google"})
    views = collections.Counter(c["url_path"] for c in google if c["event_type"] == "pageView")
    assert _counts(pages, lambda r: r["url_path"], "page_views") == views
    countries = reports.countries(since="1h", limit=100, filters={"referrer_source": "Google", "country": "US"})
    assert _counts(countries, lambda r: r["geo_country"], "events") == {"US": len(_segment(google, country="US"))}
    [closed] = reports.sessions(since="1h", filters={"referrer_source": "Google"})
    assert closed["sessions"] == len({c["session_id"] for c in google})
    traffic = reports.traffic(since="1h", granularity="day", filters={"page": "/pricing"})
    assert sum(r["page_views"] for r in traffic) == views["/pricing"] + sum(
        c["url_path"] == "/pricing" and c["event_type"] == "pageView" for c in recent if c not in google)


def test_comparison_with_the_previous_period(loaded):
    reports, clicks, _, _ = loaded
    rows = reports.compare(since="1h", filters={"country": "GB"})
    current = _totals(_segment(_in(clicks, _ago(60)), country="GB"))
    previous = _totals(_segment(_in(clicks, _ago(120), _ago(60)), country="GB"))
    assert {r["metric"]: (r["current"], r["previous"]) for r in rows} == {
        m: (current[m], previous[m]) for m in current}
    assert {r["metric"]: r["change"] for r in rows} == {
        m: pytest.approx((current[m] - previous[m]) / previous[m]) for m in current}


@pytest.mark.parametrize("goal, matches", [
    ({"goal_page": "/signup"}, lambda c: c["event_type"] == "pageView" and c["url_path"] == "/signup"),
    ({"goal_event": "signup"}, lambda c: c["event_type"] == "signup"),
    ({"goal_event": "signup", "goal_property": "plan=pro"},
     lambda c: c["event_type"] == "signup" and c["params"].get("plan") == "pro"),
])
def test_goal_conversions(loaded, goal, matches):
    reports, clicks, _, _ = loaded
    recent = _in(clicks, _ago(60))
    [row] = reports.goals(**goal, since="1h")
    reached = [c for c in recent if matches(c)]
    assert row["conversions"] == len(reached) > 0
    assert row["converted_visitors"] == len({c["party_id"] for c in reached})
    assert row["conversion_rate"] == pytest.approx(len({c["party_id"] for c in reached})
                                                   / len({c["party_id"] for c in recent}))
    assert row["session_conversion_rate"] == pytest.approx(len({c["session_id"] for c in reached})
                                                           / len({c["session_id"] for c in recent}))


def test_weekly_retention_cohorts(loaded):
    reports, clicks, _, _ = loaded
    rows = reports.retention(weeks=3)
    now = datetime.now(timezone.utc)
    monday = (now - timedelta(days=now.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    weeks = [monday - timedelta(weeks=2 - i) for i in range(3)]

    def week(c: dict) -> int:
        moment = datetime.fromtimestamp(c["server_time"] / 1000, timezone.utc)
        return max(i for i, start in enumerate(weeks) if moment >= start) if moment >= weeks[0] else -1

    human = [c for c in clicks if not c["is_bot"]]
    cohorts = {i: {c["party_id"] for c in human if c["new_party"] and week(c) == i} for i in range(3)}
    active = {i: {c["party_id"] for c in human if week(c) == i} for i in range(3)}
    expected = [{"cohort": weeks[i].date().isoformat(), "week": j - i, "visitors": len(cohorts[i] & active[j]),
                 "of_cohort": pytest.approx(len(cohorts[i] & active[j]) / len(cohorts[i]))}
                for i in range(3) for j in range(i, 3)]
    assert rows == expected
    assert rows[1]["visitors"] == 2 and rows[2]["visitors"] == 2  # r0, r1 a week later; r0, r2 two weeks later


def test_entry_and_exit_pages_and_paths(loaded):
    reports, clicks, _, _ = loaded
    sequences = _sequences(_in(clicks, _ago(60)))
    entries = reports.entry_pages(since="1h", limit=100)
    assert _counts(entries, lambda r: r["url_path"], "sessions") == collections.Counter(s[0] for s in sequences)
    assert sum(r["share"] for r in entries) == pytest.approx(1)
    exits = reports.exit_pages(since="1h", limit=100)
    assert _counts(exits, lambda r: r["url_path"], "sessions") == collections.Counter(s[-1] for s in sequences)
    views = collections.Counter(p for s in sequences for p in s)
    assert all(r["exit_rate"] == pytest.approx(r["sessions"] / views[r["url_path"]]) for r in exits)

    rows = reports.paths("/", since="1h", limit=100)
    before, after = collections.Counter(), collections.Counter()
    for seq in sequences:
        for i, page in enumerate(seq):
            if page == "/":
                before[seq[i - 1] if i else None] += 1
                after[seq[i + 1] if i + 1 < len(seq) else None] += 1
    assert {(r["direction"], r["url_path"]): r["page_views"] for r in rows} == {
        **{("previous", p): n for p, n in before.items()}, **{("next", p): n for p, n in after.items()}}
    assert after["/pricing"] == 3  # p3's custom event between / and /pricing is not a page
    top = reports.paths("/", since="1h", limit=1)
    assert [r["direction"] for r in top] == ["previous", "next"]
    assert top[1]["page_views"] == max(after.values())


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CLICKPIPE_")}
    return subprocess.run([sys.executable, "-m", "commands.cli", *args], env={**clean, **env},
                          capture_output=True, text=True, timeout=120)


def test_report_command_takes_filters_and_goals(loaded):
    reports, _, env, _ = loaded
    result = _cli(env, "report", "goals", "--goal-event", "signup", "--goal-property", "plan=pro",
                     "--since", "1h", "--filter", "country=GB", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == reports.goals(goal_event="signup", goal_property="plan=pro", since="1h",
                                                      filters={"country": "GB"})
    paths = _cli(env, "report", "paths", "--page", "/", "--since", "1h", "--format", "json")
    assert json.loads(paths.stdout) == reports.paths("/", since="1h")


# --- the export API ------------------------------------------------------------------------------

def _documented(url: str) -> dict:
    return yaml.safe_load(requests.get(f"{url}/api/openapi.yaml", timeout=10).text)


def _example(parameter: dict) -> list[tuple[str, str]]:
    if parameter["name"] == "filter":
        return [("filter[country]", "GB")]
    spec = api.PARAMETERS[parameter["name"]]
    values = spec.example if isinstance(spec.example, list) else [spec.example]
    return [(parameter["name"], str(v)) for v in values]


def test_every_documented_path_and_parameter_works_as_documented(loaded):
    """The served OpenAPI document against the implementation: every route is documented and
    every documented path answers; each documented parameter is accepted (and gives the rows
    the Python report gives), an undocumented one is refused."""
    reports, _, _, url = loaded
    spec = _documented(url)
    assert set(spec["paths"]) == {"/api/summary", "/api/openapi.yaml", "/healthz"} | {
        f"/api/reports/{name}" for name in queries.REPORTS}
    for path, item in spec["paths"].items():
        parameters = item["get"].get("parameters", [])
        query: list[tuple[str, str]] = []
        for parameter in parameters:
            if parameter["name"] in ("format", "goal_event", "goal_property"):
                continue  # format below; goal_event instead of goal_page in test_goal_conversions
            query += _example(parameter)
        response = requests.get(url + path, params=query, timeout=60)
        assert response.status_code == 200, (path, query, response.text)
        if path.startswith("/api/reports/"):
            name = path.rsplit("/", 1)[1]
            options = api.parse(api.accepted(name), {k: [v for key, v in query if key == k] for k, _ in query})
            expected = queries.run(reports, name, **options)
            got = response.json()
            if name not in ("live", "compare"):  # these two depend on the moment of the call
                assert got == [{k: str(v) if isinstance(v, datetime) else v for k, v in r.items()}
                               for r in expected], path
            assert "format" in {p["name"] for p in parameters}
        refused = requests.get(url + path, params=[("bogus", "1")], timeout=30)
        if path.startswith(("/api/summary", "/api/reports/")):
            assert refused.status_code == 400 and "bogus" in refused.json()["error"], path


def test_csv_export(loaded):
    reports, _, _, url = loaded
    expected = reports.pages(since="1h", limit=100)
    for kwargs in ({"params": {"since": "1h", "limit": "100", "format": "csv"}},
                   {"params": {"since": "1h", "limit": "100"}, "headers": {"Accept": "text/csv"}}):
        response = requests.get(f"{url}/api/reports/pages", timeout=30, **kwargs)
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(response.text)))
        assert [{k: r[k] for k in ("url_path", "page_views")} for r in rows] == [
            {"url_path": r["url_path"], "page_views": str(r["page_views"])} for r in expected]


# --- the page ------------------------------------------------------------------------------------

def _shown(browser: Chromium, table: str) -> list[list[str]]:
    return browser.evaluate(f"[...document.querySelectorAll('#{table} tbody tr')].map("
                            f"tr => [...tr.cells].map(td => td.title || td.textContent))")


def test_a_click_on_a_referrer_filters_every_panel_and_stays_in_the_url(loaded):
    reports, _, _, url = loaded
    browser = Chromium()
    try:
        browser.navigate(url + "/?since=1h")
        browser.wait_for("!!document.body && !!document.body.dataset.updated && !document.body.dataset.filters",
                         timeout=60)
        browser.evaluate("document.querySelector('#referrers tbody tr[data-value=\"Google\"]').click()")
        browser.wait_for("document.body.dataset.filters === 'referrer_source=Google'", timeout=60)
        shown_url = browser.evaluate("location.href")
        panels = {t: _shown(browser, t) for t in ("pages", "referrers", "countries", "entry_pages", "exit_pages")}
        compare = browser.evaluate("Object.fromEntries([...document.querySelectorAll('.card[data-metric]')].map("
                                   "c => [c.dataset.metric, [c.dataset.current, c.dataset.previous]]))")
        browser.evaluate("window.beforeReload = true")
        browser.call("Page.reload")
        browser.wait_for("!window.beforeReload && !!document.body && !!document.body.dataset.updated", timeout=60)
        after_reload = browser.evaluate("document.body.dataset.filters")
        chip = browser.evaluate("document.querySelector('#filters').textContent")
        # a goal set through the form: a custom event with a property match
        browser.evaluate("document.getElementById('goal-kind').value = 'event';"
                         "document.getElementById('goal-value').value = 'signup';"
                         "document.getElementById('goal-property').value = 'plan=pro';"
                         "document.getElementById('goal').requestSubmit()")
        browser.wait_for("!document.getElementById('goal-card').hidden", timeout=60)
        goal_url = browser.evaluate("location.href")
        goal_rate = browser.evaluate("document.getElementById('goal-rate').textContent")
        # another time range from the menu: the last 7 days, compared with the 7 before
        browser.evaluate("document.body.dataset.updated = ''; const preset = document.getElementById('preset');"
                         "preset.value = '7d'; preset.dispatchEvent(new Event('change'))")
        browser.wait_for("!!document.body.dataset.updated", timeout=60)
        week_url = browser.evaluate("location.href")
        week = browser.evaluate("Object.fromEntries([...document.querySelectorAll('.card[data-metric]')].map("
                                "c => [c.dataset.metric, [c.dataset.current, c.dataset.previous]]))")
        ARTIFACTS.mkdir(exist_ok=True)
        browser.call("Emulation.setDeviceMetricsOverride", width=1440, height=1100, deviceScaleFactor=1, mobile=False)
        browser.evaluate("document.body.dataset.updated = ''; refresh()")
        browser.wait_for("!!document.body.dataset.updated", timeout=60)
        shot = browser.call("Page.captureScreenshot", format="png")
        (ARTIFACTS / "dashboard-segment.png").write_bytes(base64.b64decode(shot["data"]))
    finally:
        browser.close()

    assert parse_qs(urlsplit(shown_url).query) == {"since": ["1h"], "filter[referrer_source]": ["Google"]}
    assert after_reload == "referrer_source=Google" and "Google" in chip
    segment = {"referrer_source": "Google"}
    assert sorted(panels["pages"]) == sorted([r["url_path"], f"{r['page_views']:,}", f"{r['visitors']:,}"]
                                             for r in reports.pages(since="1h", filters=segment))
    assert {row[0] for row in panels["referrers"]} == {"Google"}
    assert sorted(row[0] for row in panels["countries"]) == sorted(
        r["geo_country"] for r in reports.countries(since="1h", filters=segment))
    assert sorted(panels["entry_pages"]) == sorted(
        [r["url_path"], f"{r['sessions']:,}", f"{100 * r['bounce_rate']:.1f} %"]
        for r in reports.entry_pages(since="1h", filters=segment))
    assert sorted(row[0] for row in panels["exit_pages"]) == sorted(
        r["url_path"] for r in reports.exit_pages(since="1h", filters=segment))
    expected = {r["metric"]: [str(r["current"]), str(r["previous"])]
                for r in reports.compare(since="1h", filters=segment)}
    assert compare == expected
    assert [LONG, "1", "1"] in panels["pages"]  # the whole label, however narrow its column
    assert parse_qs(urlsplit(goal_url).query) == {"since": ["1h"], "filter[referrer_source]": ["Google"],
                                                   "goal_event": ["signup"], "goal_property": ["plan=pro"]}
    assert parse_qs(urlsplit(week_url).query)["since"] == ["7d"]
    assert week == {r["metric"]: [str(r["current"]), str(r["previous"])]
                    for r in reports.compare(since="7d", filters=segment)}
    [goal] = reports.goals(goal_event="signup", goal_property="plan=pro", since="1h", filters=segment)
    assert goal["converted_visitors"] == 1 and goal_rate == f"{100 * goal['conversion_rate']:.1f} %"


def test_a_panel_that_fails_leaves_the_others(loaded, monkeypatch):
    from falcon import testing

    from dashboard import app

    reports, _, env, _ = loaded
    monkeypatch.setattr(app, "PANEL_SEQUENCE_ROWS", 2)
    body = testing.TestClient(app.create(load(env))).simulate_get("/api/summary", query_string="since=1h").json
    assert body["entry_pages"] == [] and "more than 2 page views" in body["errors"]["entry_pages"]
    assert set(body["errors"]) == {"entry_pages", "exit_pages"}
    assert sorted(r["url_path"] for r in body["pages"]) == sorted(r["url_path"] for r in reports.pages(since="1h"))
