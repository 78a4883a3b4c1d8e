"""The tag in real headless Chromium: page views (load, SPA navigation, return from the
back/forward cache), custom events, the engagement event that ends a page view and an event
sent on unload all reach Kafka, with the expected ids and cookie flags; real input is counted
as interaction evidence, script-made events and pages never shown are not; delivery falls
back when fetch is missing; opt-out, Do Not Track and Global Privacy Control stop it; the
async command queue and consent work."""

from __future__ import annotations

import contextlib
import http.server
import threading
import time

from collector_support import Topic

from tests.support.browser import Chromium
from tests.support.collector import CollectorProcess
from tests.support.net import free_port

PAGE = """<!doctype html><html><head><title>shop</title>
<script src="{collector}/tag.js"></script></head>
<body><p>product page</p><script>
window.customEventId = clickpipe.signal("addToCart", {{sku: "A1", qty: 2}});
addEventListener("pagehide", function () {{ clickpipe.signal("leave", {{reason: "unload"}}); }});
</script></body></html>"""


def serve_page(html: str, port: int) -> http.server.ThreadingHTTPServer:
    """The site under test, on its own origin (another port: cross-origin, same-site)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@contextlib.contextmanager
def tagged_site(stack, page: str, env: dict | None = None, **browser_options):
    """A collector on a fresh topic, a site whose page loads its tag, and a browser (given
    ``browser_options``, see :class:`Chromium`): yields (browser, site origin, collector, topic)
    and cleans everything up afterwards."""
    topic = Topic(stack.kafka_bootstrap)
    page_port = free_port()
    origin = f"http://127.0.0.1:{page_port}"
    collector = CollectorProcess(
        {"CLICKPIPE_TOPIC_RAW": topic.name, "CLICKPIPE_COLLECTOR_CORS_ORIGINS": origin, **(env or {})}
    )
    browser = site = None
    try:
        collector.wait_ready()
        site = serve_page(page.format(collector=collector.url), page_port)
        browser = Chromium(**browser_options)
        yield browser, origin, collector, topic
    finally:
        if browser:
            browser.close()
        if site:
            site.shutdown()
        collector.stop()
        topic.delete()


def test_tag_in_headless_chromium(stack):
    with tagged_site(stack, PAGE) as (browser, origin, collector, topic):
        browser.navigate(origin + "/product")
        custom_id = browser.wait_for("window.customEventId")
        # the first batch (page view + custom event) is sent after the tag's flush delay
        browser.wait_for("document.cookie.indexOf('_cps=') >= 0")
        cookies = _wait_for_party_cookie(browser, collector.url)
        browser.evaluate("history.pushState({}, '', '/cart')")  # SPA navigation: a second page view
        browser.evaluate("new Promise(r => setTimeout(r, 1500))")  # past the tag's flush delay
        browser.navigate("about:blank")  # pagehide: the "leave" event goes out with keepalive

        # each page view was visible for over half a second after its last event: each ends
        # with an engagement event (the first on the route change, the second on pagehide)
        records = topic.records(6, timeout=30)
        assert len(records) == 6, records
        views = sorted((r for r in records if r["event_type"] == "pageView"), key=lambda r: r["client_time"])
        by_type = {r["event_type"]: r for r in records}
        assert sorted(by_type) == ["addToCart", "engagement", "leave", "pageView"], records
        ends = {r["page_view_id"]: r for r in records if r["event_type"] == "engagement"}
        assert set(ends) == {v["page_view_id"] for v in views}
        assert all(e["interaction"]["visible_ms"] >= 500 and e["interaction"]["pointer"] == 0 for e in ends.values())
        assert [v["location"] for v in views] == [origin + "/product", origin + "/cart"]
        assert views[1]["referrer"] == origin + "/product" and views[1]["page_view_id"] != views[0]["page_view_id"]
        assert by_type["leave"]["page_view_id"] == views[1]["page_view_id"]
        assert by_type["addToCart"]["event_id"] == custom_id
        assert by_type["addToCart"]["params"] == {"sku": "A1", "qty": "2"}
        assert by_type["leave"]["params"] == {"reason": "unload"}

        party = cookies[0]
        assert {r["party_id"] for r in records} == {party["value"]}
        assert party["httpOnly"] is True and party["sameSite"] == "Lax" and party["secure"] is False
        assert party["expires"] > 0  # persistent, not a session cookie

        view = views[0]
        assert len({r["session_id"] for r in records}) == 1 and view["session_id"]
        assert by_type["addToCart"]["page_view_id"] == view["page_view_id"] and view["page_view_id"]
        assert view["location"] == origin + "/product" and view["source"] == "tag"
        assert view["screen_width"] > 0 and view["viewport_width"] > 0 and view["client_time"] > 0
        assert isinstance(view["webdriver"], bool) and view["no_js"] is False


def _wait_for_party_cookie(browser: Chromium, url: str, timeout: float = 15.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cookies = [c for c in browser.call("Network.getCookies", urls=[url])["cookies"] if c["name"] == "_cpp"]
        if cookies:
            return cookies
        time.sleep(0.2)
    raise TimeoutError("party cookie never set")


IDLE_PAGE = """<!doctype html><html><head><script src="{collector}/tag.js"></script></head><body></body></html>"""


def test_session_rotates_on_an_idle_page_and_opt_out_stops_sending(stack):
    with tagged_site(stack, IDLE_PAGE, {"CLICKPIPE_COLLECTOR_SESSION_TIMEOUT": "2"}) as (browser, origin, _, topic):
        browser.navigate(origin + "/article")
        first = browser.wait_for("window.clickpipe && clickpipe.signal('read')")
        browser.evaluate("new Promise(r => setTimeout(r, 3000))")  # idle beyond the 2 s timeout
        late = browser.evaluate("clickpipe.signal('readMore')")
        browser.evaluate("new Promise(r => setTimeout(r, 1000))")
        browser.evaluate("clickpipe.optOut()")
        assert browser.evaluate("clickpipe.signal('afterOptOut')") is None
        browser.evaluate("new Promise(r => setTimeout(r, 1000))")

        records = {r["event_id"]: r for r in topic.records(4, timeout=20)}
        assert {r["event_type"] for r in records.values()} == {"pageView", "read", "readMore"}, records
        assert len(records) == 3
        view = next(r for r in records.values() if r["event_type"] == "pageView")
        assert records[first]["session_id"] == view["session_id"]
        assert records[late]["session_id"] != records[first]["session_id"]
        assert records[late]["page_view_id"] == view["page_view_id"]  # same page, new session
        assert len({r["party_id"] for r in records.values()}) == 1


ASYNC_PAGE = """<!doctype html><html><head><script>
window.clickpipe = window.clickpipe || {{q: [], signal: function () {{
  clickpipe.q.push(["signal"].concat([].slice.call(arguments))); }}}};
clickpipe.signal("early", {{n: 1}});
window.earlyWasQueued = clickpipe.q.length === 1;
</script><script async src="{collector}/tag.js"></script></head><body></body></html>"""


def test_calls_made_before_an_async_tag_loads_are_sent_once_it_has(stack):
    with tagged_site(stack, ASYNC_PAGE) as (browser, origin, _, topic):
        browser.navigate(origin + "/landing")
        assert browser.wait_for("window.earlyWasQueued") is True
        browser.wait_for("window.clickpipe && clickpipe.v === 1")
        late = browser.evaluate("clickpipe.signal('late')")
        browser.evaluate("clickpipe.flush()")

        records = topic.records(3, timeout=20)
        by_type = {r["event_type"]: r for r in records}
        assert sorted(by_type) == ["early", "late", "pageView"] and len(records) == 3, records
        assert by_type["early"]["params"] == {"n": "1"}
        assert by_type["late"]["event_id"] == late
        assert by_type["early"]["page_view_id"] == by_type["pageView"]["page_view_id"]


def test_consent_recorded_by_the_tag_travels_with_later_events(stack):
    with tagged_site(stack, IDLE_PAGE) as (browser, origin, _, topic):
        browser.navigate(origin + "/article")
        before = browser.wait_for("window.clickpipe && clickpipe.signal('before')")
        browser.evaluate("clickpipe.consent('maybe'); clickpipe.consent('__proto__')")  # ignored
        ignored = browser.evaluate("clickpipe.signal('ignored')")
        browser.evaluate("clickpipe.consent('granted')")
        granted = browser.evaluate("clickpipe.signal('granted')")
        browser.evaluate("clickpipe.consent('denied')")
        denied = browser.evaluate("clickpipe.signal('denied')")
        browser.evaluate("clickpipe.flush()")

        records = {r["event_id"]: r for r in topic.records(5, timeout=20)}
        assert len(records) == 5, records
        assert [records[i]["consent"] for i in (before, ignored, granted, denied)] == \
            ["unknown", "unknown", "granted", "denied"]


def test_a_page_restored_from_the_back_forward_cache_counts_as_a_new_page_view(stack):
    with tagged_site(stack, IDLE_PAGE) as (browser, origin, _, topic):
        browser.navigate(origin + "/a")
        browser.wait_for("window.clickpipe && clickpipe.v === 1")
        browser.evaluate("window.beforeLeaving = true")
        browser.evaluate("new Promise(r => setTimeout(r, 700))")  # visible long enough for an engagement event
        browser.navigate(origin + "/b")  # pagehide on /a sends its page view and engagement
        browser.wait_for("location.pathname === '/b' && window.clickpipe && clickpipe.v === 1")
        browser.evaluate("new Promise(r => setTimeout(r, 700))")
        browser.evaluate("history.back()")
        browser.wait_for("location.pathname === '/a'")
        browser.evaluate("new Promise(r => setTimeout(r, 500))")
        # restored, not reloaded: the document still has what was set on it before it was left
        assert browser.evaluate("window.beforeLeaving === true") is True
        browser.evaluate("clickpipe.flush()")

        records = sorted(topic.records(5, timeout=20), key=lambda r: r["client_time"])
        seen = sorted((r["event_type"], r["location"]) for r in records)
        assert seen == sorted([("pageView", origin + "/a"), ("engagement", origin + "/a"), ("pageView", origin + "/b"),
                               ("engagement", origin + "/b"), ("pageView", origin + "/a")]), seen
        # the time in the back/forward cache is not visible time
        assert all(r["interaction"]["visible_ms"] < 5000 for r in records)
        views = [r for r in records if r["event_type"] == "pageView"]
        assert [v["location"] for v in views] == [origin + "/a", origin + "/b", origin + "/a"]
        assert len({v["page_view_id"] for v in views}) == 3
        assert len({v["session_id"] for v in views}) == 1


def test_without_fetch_events_go_as_pixels_and_by_beacon_on_unload(stack):
    no_fetch = "Object.defineProperty(window, 'fetch', {value: undefined, configurable: true});"
    access_log = {"GUNICORN_CMD_ARGS": "--access-logfile -"}
    with tagged_site(stack, IDLE_PAGE, access_log, init_script=no_fetch) as (browser, origin, collector, topic):
        browser.navigate(origin + "/article")
        browser.wait_for("window.clickpipe && clickpipe.v === 1")
        assert browser.evaluate("typeof fetch") == "undefined"
        read = browser.evaluate("clickpipe.signal('read', {depth: 3})")
        browser.evaluate("clickpipe.flush()")
        browser.evaluate("addEventListener('pagehide', function () { window.leaveId = clickpipe.signal('leave'); })")
        browser.evaluate("new Promise(r => setTimeout(r, 700))")  # visible long enough for an engagement event
        browser.navigate("about:blank")
        browser.wait_for("location.href === 'about:blank'")

        records = {r["event_type"]: r for r in topic.records(4, timeout=20)}
        assert sorted(records) == ["engagement", "leave", "pageView", "read"], records
        assert records["read"]["event_id"] == read and records["read"]["params"] == {"depth": "3"}
        assert {r["source"] for r in records.values()} == {"tag"}
        requests = [line.split('"')[1][:60] for line in collector.access_log()
                    if "via=tag" in line and "OPTIONS" not in line]  # the beacon's JSON body needs a preflight
        assert len(requests) == 4, requests
        assert sum(line.startswith("GET /p.gif?via=tag&event_type=") for line in requests) == 2, requests
        # beacons: the tag's engagement event, then the page's own "leave", each sent as it is made
        assert sum(line.startswith("POST /events?via=tag") for line in requests) == 2, requests


def test_do_not_track_and_global_privacy_control_stop_the_tag_when_honoured(stack):
    # Chromium has a real Do Not Track setting; it has no Global Privacy Control, so that
    # signal is defined the way the browsers that send it (Firefox, Brave) expose it.
    gpc = "Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', {get: () => true});"
    env = {"CLICKPIPE_COLLECTOR_HONOR_DNT": "true"}
    with tagged_site(stack, IDLE_PAGE, env) as (control, origin, collector, topic):
        for options in ({"preferences": {"enable_do_not_track": True}}, {"init_script": gpc}):
            browser = Chromium(**options)
            try:
                browser.navigate(origin + "/private")
                browser.wait_for("window.clickpipe && clickpipe.v === 1")
                assert browser.evaluate("navigator.doNotTrack === '1' || navigator.globalPrivacyControl === true")
                assert browser.evaluate("clickpipe.signal('blocked')") is None
                browser.evaluate("clickpipe.flush()")
                browser.navigate("about:blank")
            finally:
                browser.close()
        control.navigate(origin + "/public")
        sent = control.wait_for("window.clickpipe && clickpipe.signal('allowed')")
        control.evaluate("clickpipe.flush()")

        records = topic.records(2, timeout=20)
        assert sorted(r["event_type"] for r in records) == ["allowed", "pageView"], records
        assert {r["location"] for r in records} == {origin + "/public"} and sent in {r["event_id"] for r in records}


LONG_PAGE = """<!doctype html><html><head><script src="{collector}/tag.js"></script></head>
<body style="height: 5000px"><p>a long article</p>
<script>if (location.pathname === "/hidden") clickpipe.signal("seen");</script></body></html>"""


def test_real_interaction_is_counted_and_a_page_never_shown_reports_none(stack):
    with tagged_site(stack, LONG_PAGE) as (browser, origin, collector, topic):
        browser.call("Emulation.setFocusEmulationEnabled", enabled=True)  # headless windows have no focus
        browser.navigate(origin + "/article")
        browser.wait_for("window.clickpipe && clickpipe.v === 1")
        browser.click(200, 200)
        browser.click(220, 240)
        for key in "abc":
            browser.press(key)
        browser.wheel(200, 200, 600)
        browser.wait_for("window.scrollY > 0")
        # script-made events are not the visitor's: they must not count
        browser.evaluate("document.body.dispatchEvent(new PointerEvent('pointerdown', {bubbles: true}));"
                         "document.body.dispatchEvent(new KeyboardEvent('keydown', {key: 'x', bubbles: true}))")
        browser.evaluate("new Promise(r => setTimeout(r, 300))")
        read = browser.evaluate("clickpipe.signal('read')")
        browser.click(200, 300)  # after the last event: reported by the engagement event on leaving
        # a tab opened in the background and closed unseen: its script signals, nobody interacts
        hidden_page = origin + "/hidden"
        tab = browser.background_tab(hidden_page)
        browser.evaluate("new Promise(r => setTimeout(r, 1500))")
        browser.close_tab(tab)
        browser.navigate("about:blank")  # pagehide of the article

        # article: pageView, read, engagement; the hidden tab: only its script's "seen" (a page
        # view is counted once a page is shown, and nothing happened there to report on leaving)
        records = topic.records(4, timeout=30)
        by_type = {(r["location"], r["event_type"]): r for r in records}
        article = origin + "/article"
        assert len(records) == 4 and set(by_type) == {(hidden_page, "seen"), (article, "engagement"),
                                                      (article, "pageView"), (article, "read")}, records
        view, at_read, leaving = (by_type[(article, t)] for t in ("pageView", "read", "engagement"))
        assert at_read["event_id"] == read
        assert view["interaction"]["ever_visible"] is True
        assert (view["interaction"]["pointer"], view["interaction"]["keys"]) == (0, 0)
        counts = at_read["interaction"]
        assert (counts["pointer"], counts["keys"], counts["touch"]) == (2, 3, 0), counts
        assert counts["scrolls"] >= 1 and counts["ever_visible"] is True
        assert 0 < counts["focused_ms"] <= counts["visible_ms"]
        assert leaving["interaction"]["pointer"] == 3 and leaving["page_view_id"] == view["page_view_id"]
        assert leaving["interaction"]["visible_ms"] >= counts["visible_ms"]

        unseen = by_type[(hidden_page, "seen")]["interaction"]
        assert unseen == {"pointer": 0, "touch": 0, "keys": 0, "scrolls": 0, "visible_ms": 0, "focused_ms": 0,
                          "ever_visible": False}
        # Chromium sends its low-entropy client hints with every request, the tag's included
        assert "Chromium" in view["ch_ua"] and view["ch_ua_mobile"] == "?0" and view["ch_ua_platform"]
