"""Superset, as `clickpipe superset` installs, provisions and serves it, on known clicks sent
through the real pipeline (collector → Kafka → worker → Druid): headless Chromium logs in,
opens the provisioned "Click stream" dashboard, every chart renders without an error, and the
figures of several charts equal `clickpipe report` (druid/queries.py) over the same data.

The first run installs Superset into the cache directory (a few minutes, once per pinned
version); later runs reuse it.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from clickpipe.config import Settings, load
from druid import queries, supervisors
from superset_setup.bundle import ASSETS, DASHBOARD_SLUG
from superset_setup.install import ensure_installed
from tests.support import ROOT
from tests.support.browser import Chromium
from tests.support.collector import CollectorProcess
from tests.support.druid import count_rows, private_druid, private_env, wait_for
from tests.support.net import free_port
from tests.support.pipeline import Run

GAP_S = 3
DESKTOP_UA = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/120.0.0.0 Safari/537.36")
MOBILE_UA = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
             "Version/17.0 Mobile/15E148 Safari/604.1")
BOT_UA = "curl/8.4.0"
CHARTS = len(list((ASSETS / "charts").glob("*.yaml")))
ARTIFACTS = ROOT / "test-artifacts"
SERVER_START_S = 900  # a cold cache installs Superset first (measured: docs/superset.md)


def _visits() -> list[tuple[str, str, list[str], str | None]]:
    """(party, user agent, pages, referrer) per visitor: 9 humans of whom some reach the
    checkout, some bounce, and 2 scripted clients."""
    paths = [["/"], ["/", "/cart"], ["/", "/cart", "/checkout"], ["/c/shoes", "/p/7"]]
    referrers = [None, "https://www.google.com/", "https://www.facebook.com/"]
    visits = [(f"ss-human-{p}", MOBILE_UA if p % 3 == 0 else DESKTOP_UA, paths[p % 4], referrers[p % 3])
              for p in range(9)]
    visits += [(f"ss-robot-{p}", BOT_UA, ["/robots-only"] * (4 + p), None) for p in range(2)]
    return visits


def _send(collector_url: str, visits) -> None:
    """One request per visitor; humans send no party id, so the collector issues one (a new
    visitor: the retention cohort of this week), scripted clients name theirs."""
    for party, ua, pages, referrer in visits:
        events = [{**({} if ua != BOT_UA else {"party_id": party}), "event_id": f"{party}-e{i}",
                   "event_type": "pageView",
                   "location": f"https://shop.example.com{page}" + ("?utm_source=newsletter&utm_medium=email"
                                                                    "&utm_campaign=winter" if i == 0 and
                                                                    party.endswith("4") else ""),
                   **({"referrer": referrer} if referrer and i == 0 else {})}
                  for i, page in enumerate(pages)]
        response = requests.post(f"{collector_url}/events", json=events, headers={"User-Agent": ua}, timeout=10)
        assert response.status_code == 200 and response.json()["accepted"] == len(events), response.text


class SupersetProcess:
    """`clickpipe superset` (provision, then serve) with the given environment."""

    def __init__(self, env: dict[str, str], log: Path):
        self.cfg = load(env)
        self.url = f"http://{self.cfg.superset_host}:{self.cfg.superset_port}"
        self.log = log
        self.started = time.monotonic()
        proc_env = {**{k: v for k, v in os.environ.items() if not k.startswith("CLICKPIPE_")}, **env}
        with open(log, "wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "commands.cli", "superset"], cwd=ROOT, env=proc_env,
                                         stdout=out, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float) -> float:
        """Seconds from the process's start until /health answers; fails with the log's tail if the
        process exits first."""
        while time.monotonic() - self.started < timeout:
            assert self.proc.poll() is None, f"clickpipe superset exited:\n{self.log.read_text()[-4000:]}"
            try:
                if requests.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return time.monotonic() - self.started
            except requests.RequestException:
                pass
            time.sleep(1)
        raise TimeoutError(f"Superset not ready after {timeout} s:\n{self.log.read_text()[-4000:]}")

    def rss_mb(self) -> float:
        """Resident memory of the server (gunicorn master and its worker)."""
        pids = [str(self.proc.pid)] + subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True,
                                                     text=True).stdout.split()
        rss_kb = sum(int(line.split()[1]) for pid in pids
                     for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("VmRSS:"))
        return rss_kb / 1024

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def cache_warm():
    """Install Superset before the clock of the data path starts (the same code path as
    `clickpipe superset`; nothing to do once cached)."""
    started = time.monotonic()
    ensure_installed(load())
    return time.monotonic() - started


def _login(browser: Chromium, url: str, username: str, password: str) -> None:
    browser.navigate(f"{url}/login/")
    browser.wait_for("!!document.querySelector('input[name=username], #username')", timeout=60)
    browser.evaluate(f"""(() => {{
        const set = (el, value) => {{
            Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value').set.call(el, value);
            el.dispatchEvent(new Event('input', {{bubbles: true}}));
        }};
        set(document.querySelector('input[name=username], #username'), {json.dumps(username)});
        set(document.querySelector('input[name=password], #password'), {json.dumps(password)});
        (document.querySelector('[type=submit], button[data-test=login-button]')).click();
    }})()""")
    browser.wait_for("!location.pathname.startsWith('/login')", timeout=60)


CHART_STATE = """(() => Array.from(document.querySelectorAll('.dashboard-component-chart-holder')).map(h => ({
    title: (h.querySelector('.header-title, [data-test=editable-title]') || {}).textContent || '',
    loading: !!h.querySelector('.loading, [aria-label=Loading], [data-test=loading-indicator]'),
    error: (h.querySelector('.alert-danger, .ant-alert-error, [data-test=error-message], [role=alert]') || {})
           .textContent || null,
    rendered: !!h.querySelector('canvas, svg, table, .header-line, .superset-legacy-chart-world-map, '
                                + '.no-results, [data-test=empty-state], .ant-empty'),
    bigNumber: (h.querySelector('.header-line') || {}).textContent || null,
    rows: Array.from(h.querySelectorAll('table tbody tr')).map(r => Array.from(r.cells).map(c => c.textContent)),
})))()"""


def _dashboard_state(browser: Chromium, timeout: float) -> list[dict]:
    """The charts once every one has finished loading (or the last state seen)."""
    deadline = time.monotonic() + timeout
    charts: list[dict] = []
    while time.monotonic() < deadline:
        charts = browser.evaluate(CHART_STATE) or []
        if len(charts) == CHARTS and all(not c["loading"] and (c["rendered"] or c["error"]) for c in charts):
            return charts
        time.sleep(0.5)
    return charts


def _figure(charts: list[dict], title: str) -> str:
    [chart] = [c for c in charts if c["title"].strip() == title]
    return chart["bigNumber"].strip()


def test_provisioned_dashboard_renders_every_chart_with_the_reports_figures(stack, tmp_path, cache_warm):
    started = time.monotonic()
    with Run(stack.kafka_bootstrap, tmp_path, partitions=1, env={
        "CLICKPIPE_SESSION_GAP_SECONDS": str(GAP_S), "CLICKPIPE_SESSION_SWEEP_SECONDS": "1",
        "CLICKPIPE_PIPELINE_COMMIT_INTERVAL_MS": "500", "CLICKPIPE_BOT_MAX_IP_EVENTS": "1000000",
    }) as run:
        druid_env = private_env(prefix="test-superset", TOPIC_ENRICHED=run.topics["enriched"],
                                TOPIC_SESSIONS=run.topics["sessions"])
        cfg = load(druid_env)
        superset_env = {**druid_env, "CLICKPIPE_SUPERSET_HOME": str(tmp_path / "superset"),
                        "CLICKPIPE_SUPERSET_PORT": str(free_port())}
        visits = _visits()
        with private_druid(cfg, create_topics=False) as client:
            superset = SupersetProcess(superset_env, tmp_path / "superset.log")  # provisions while data flows
            try:
                supervisors.apply(client, cfg)
                worker = run.start_worker()
                run.wait_ready(worker)
                collector = CollectorProcess({"CLICKPIPE_KAFKA_BOOTSTRAP": run.bootstrap,
                                              "CLICKPIPE_TOPIC_RAW": run.topics["raw"]})
                try:
                    collector.wait_ready()
                    _send(collector.url, visits)
                finally:
                    assert collector.stop() == 0, collector.output()
                total = sum(len(pages) for _, _, pages, _ in visits)
                assert wait_for(lambda: count_rows(client, cfg.druid_clicks_datasource),
                                lambda n: n == total, 120) == total
                assert wait_for(lambda: count_rows(client, cfg.druid_sessions_datasource),
                                lambda n: n == len(visits), 90) == len(visits)

                ready_s = superset.wait_ready(SERVER_START_S)
                _check_home(superset.cfg)
                credentials = json.loads((superset.cfg.superset_home / "admin-credentials.json").read_text())
                assert credentials["password"] in (tmp_path / "superset.log").read_text()  # printed once
                charts = _open_dashboard(superset.url, credentials)
                _compare_with_reports(charts, queries.Reports(cfg))
                humans = sum(1 for _, ua, _, _ in visits if ua != BOT_UA)
                [retention] = [c for c in charts if c["title"].startswith("Retention")]
                assert [row[1:] for row in retention["rows"]] == [["0", str(humans), str(humans), "100.0%"]]
                [cohort] = queries.Reports(cfg).retention(weeks=1)
                assert (retention["rows"][0][0][:10], retention["rows"][0][2]) == (cohort["cohort"],
                                                                                 str(cohort["visitors"]))
                _provision_again(superset_env, superset.url, credentials)
                print(f"\n[superset] install {cache_warm:.0f} s (0 when cached), server ready {ready_s:.0f} s after "
                      f"start, RSS {superset.rss_mb():.0f} MB, test {time.monotonic() - started:.0f} s")
            finally:
                superset.stop()


def _provision_again(env: dict[str, str], url: str, credentials: dict) -> None:
    """A second `clickpipe superset provision` on the same home succeeds, keeps the credentials
    (and does not print the password again) and duplicates nothing."""
    proc_env = {**{k: v for k, v in os.environ.items() if not k.startswith("CLICKPIPE_")}, **env}
    again = subprocess.run([sys.executable, "-m", "commands.cli", "superset", "provision"], cwd=ROOT, env=proc_env,
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert credentials["password"] not in again.stdout + again.stderr
    token = requests.post(f"{url}/api/v1/security/login", json={**credentials, "provider": "db"},
                          timeout=30).json()["access_token"]
    counts = {kind: requests.get(f"{url}/api/v1/{kind}/", headers={"Authorization": f"Bearer {token}"},
                                 timeout=30).json()["count"] for kind in ("database", "dataset", "chart", "dashboard")}
    assert counts == {"database": 1, "dataset": len(list((ASSETS / "datasets").glob("*.yaml"))), "chart": CHARTS,
                      "dashboard": 1}


def _check_home(cfg: Settings) -> None:
    home = cfg.superset_home
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    for secret in ("admin-credentials.json", "secret_key"):
        assert stat.S_IMODE((home / secret).stat().st_mode) == 0o600, secret
    assert (home / "superset.db").exists()


def _open_dashboard(url: str, credentials: dict) -> list[dict]:
    browser = Chromium(timeout=60)
    try:
        browser.call("Emulation.setDeviceMetricsOverride", width=1600, height=5000, deviceScaleFactor=1, mobile=False)
        _login(browser, url, credentials["username"], credentials["password"])
        browser.navigate(f"{url}/superset/dashboard/{DASHBOARD_SLUG}/")
        charts = _dashboard_state(browser, timeout=180)
        titles = sorted(c["title"] for c in charts)
        assert len(charts) == CHARTS, titles
        assert [(c["title"], c["error"]) for c in charts if c["error"]] == []
        assert [c["title"] for c in charts if not c["rendered"]] == []
        ARTIFACTS.mkdir(exist_ok=True)
        bottom = browser.evaluate("Math.max(...Array.from(document.querySelectorAll("
                                  "'.dashboard-component-chart-holder')).map(h => h.getBoundingClientRect().bottom))")
        shot = browser.call("Page.captureScreenshot", format="png",
                            clip={"x": 0, "y": 0, "width": 1600, "height": bottom + 24, "scale": 1})
        (ARTIFACTS / "superset-dashboard.png").write_bytes(base64.b64decode(shot["data"]))
        return charts
    finally:
        browser.close()


def _compare_with_reports(charts: list[dict], reports: queries.Reports) -> None:
    [sessions] = reports.sessions(since="7d")
    [bots] = reports.bots(since="7d")
    page_views = sum(r["page_views"] for r in reports.traffic(since="7d", granularity="day"))
    [top] = reports.pages(since="7d", limit=1)
    assert _figure(charts, "Sessions") == f"{sessions['sessions']:,d}"
    assert _figure(charts, "Page views") == f"{page_views:,d}"
    assert _figure(charts, "Bounce rate") == f"{sessions['bounce_rate']:.2%}"
    assert _figure(charts, "Median session duration (s)") == f"{sessions['median_duration_s']:,.1f}"
    assert _figure(charts, "Bot share of events") == f"{bots['bot_share']:.2%}"
    [top_pages] = [c for c in charts if c["title"].strip() == "Top pages"]
    first = top_pages["rows"][0]
    assert (first[1], first[2]) == (top["url_path"], f"{top['page_views']:,d}")
