"""The traffic plan, without services: determinism, mix, session structure, ground truth."""

from __future__ import annotations

import collections
import ipaddress
import statistics
from urllib.parse import parse_qsl

import pytest

from collector.ids import is_valid_id
from collector.mapping import Context, Rejection, pixel_event, to_record
from simulate import population as pop
from simulate.plan import BOT_KINDS, EVENTS, HUMAN_KINDS, KINDS, PIXEL, TAG_PIXEL, Mix, Planner, Timing, pixel_query

TIMING = Timing(gap_s=30, sweep_s=5)
N = 2000


@pytest.fixture(scope="module")
def parties():
    return list(Planner(7, "run-test", TIMING).parties(rate=100, limit=N))


def test_same_seed_same_plan_other_seed_other_plan():
    def fingerprint(seed):
        return [(p.kind, p.ip, p.user_agent, p.start, [(r.at, r.transport, r.events) for r in p.requests])
                for p in Planner(seed, "run-test", TIMING).parties(rate=50, limit=200)]

    assert fingerprint(3) == fingerprint(3)
    assert fingerprint(3) != fingerprint(4)


@pytest.mark.parametrize("share", [0.0, 0.2, 0.5])
def test_bot_share_and_every_kind_present(share):
    plan = list(Planner(11, "run-test", TIMING, Mix(bot_share=share)).parties(rate=100, limit=N))
    bots = sum(p.bot for p in plan)
    assert abs(bots / N - share) < 0.03
    assert all((p.kind in BOT_KINDS) == p.bot for p in plan)
    kinds = {p.kind for p in plan}
    assert kinds == (set(KINDS) if share else set(HUMAN_KINDS))


def test_party_starts_give_the_planned_event_rate(parties):
    events = sum(len(p.event_ids) for p in parties[:-1])
    assert events / parties[-1].start == pytest.approx(100, rel=1e-9)
    assert all(a.start <= b.start for a, b in zip(parties, parties[1:], strict=False))


def test_event_ids_are_unique_valid_and_carry_the_run_id(parties):
    ids = [e for p in parties for e in p.event_ids]
    assert len(ids) == len(set(ids))
    assert all(is_valid_id(e) and e.startswith("run-test.") for e in ids)


def test_sessions_partition_the_events_and_follow_the_gap_rule(parties):
    """Within an expected session requests are at most gap/3 apart; between two sessions of a
    party that keeps its cookie, more than gap + sweep; cookie-less parties: one per request."""
    for p in parties:
        sessions = p.sessions()
        assert sorted(e for s in sessions for e in s) == sorted(p.event_ids)
        originals = [r for r in p.requests if not r.resend]
        if not p.cookies:
            assert len(sessions) == len(originals)
            continue
        by_session = collections.defaultdict(list)
        for r in originals:
            by_session[r.session].append(r.at)
        spans = [(min(ts), max(ts)) for _, ts in sorted(by_session.items())]
        for ts in by_session.values():
            ts.sort()
            assert all(b - a <= TIMING.max_step_s + 1e-9 for a, b in zip(ts, ts[1:], strict=False))
        for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
            assert start - end > TIMING.gap_s + TIMING.sweep_s
        assert len(sessions) == len(spans)


def test_some_humans_return_and_campaigns_only_on_landings(parties):
    humans = [p for p in parties if p.kind == "human"]
    assert sum(len(p.sessions()) > 1 for p in humans) > 0.1 * len(humans)
    with_campaign = 0
    for p in humans:
        first_page = {}
        for r in p.requests:
            for e in r.events:
                if "utm_campaign=" in e["location"]:
                    with_campaign += 1
                    # the landing page view or an event on that same page, never a later page
                    first_page.setdefault(r.session, e.get("page_view_id"))
                    assert e.get("page_view_id") == first_page[r.session]
    assert with_campaign > 0.1 * len(humans)


def _by_kind(parties):
    by_kind = collections.defaultdict(list)
    for p in parties:
        by_kind[p.kind].append(p)
    return by_kind


def _rate(p):
    """Requests per second over the party's lifetime."""
    originals = [r for r in p.requests if not r.resend]
    return (len(originals) - 1) / max(p.duration, 0.1)


def _counts(e):
    i = e.get("interaction") or {}
    return sum(i.get(k, 0) for k in ("pointer", "touch", "keys", "scrolls"))


def test_people_who_look_odd_behave_as_described(parties):
    by_kind = _by_kind(parties)
    for p in by_kind["human-nojs-reader"]:
        assert len(p.event_ids) == 6 and {r.transport for r in p.requests} == {PIXEL} and p.cookies
        assert len(p.sessions()) == 1
    # a single-page app's burst: five page views (four route changes) within 2.4 s
    for p in by_kind["human-spa"]:
        views = sorted(r.at for r in p.requests for e in r.events if e["event_type"] == "pageView")
        assert any(b - a <= 2.4 for a, b in zip(views, views[4:], strict=False)), views  # 4 steps of <= 0.6 s
    # an office: many people, few addresses
    offices = by_kind["human-office"]
    assert len(offices) > 50 and len({p.ip for p in offices}) <= len(pop.OFFICE_ADDRESSES)
    assert all(p.ip in pop.HOSTING_ADDRESSES for p in by_kind["human-cloud-egress"])
    phones = by_kind["human-carrier-nat"]
    assert len(phones) > 30 and {p.ip for p in phones} <= set(pop.CARRIER_NAT_ADDRESSES)
    assert all(p.user_agent in pop.MOBILE_UAS for p in phones)
    for p in by_kind["human-old-browser"]:
        assert {r.transport for r in p.requests} == {TAG_PIXEL} and not p.hints
    # people touch their pages: most of their page views end with interaction reported
    for kind in ("human", "human-office", "human-cloud-egress", "human-spa"):
        views = collections.defaultdict(int)
        for p in by_kind[kind]:
            for r in p.requests:
                for e in r.events:
                    views[e["page_view_id"]] = max(views[e["page_view_id"]], _counts(e))
        assert sum(1 for n in views.values() if n) > 0.8 * len(views), kind


def test_bots_that_look_human_behave_as_described(parties):
    by_kind = _by_kind(parties)
    for p in by_kind["stealth-browser"]:
        assert p.cookies and p.hints and p.user_agent in pop.CURRENT_CHROME_UAS
        events = [e for r in p.requests for e in r.events]
        assert all(e["webdriver"] is False and e["interaction"]["ever_visible"] for e in events)
        assert all(e["interaction"]["pointer"] == e["interaction"]["keys"] == 0 for e in events)
        views = [e for e in events if e["event_type"] == "pageView"]
        assert len(views) >= 12 and 0.7 < (len(views) - 1) / p.duration < 1.3
    for p in by_kind["cookie-dropper-v4"]:
        assert not p.cookies and len(p.ips) == 1 and ":" not in p.ip and 1.7 < _rate(p) < 2.3
    for p in by_kind["cookie-dropper-v6"]:
        net = ipaddress.ip_network(p.ip + "/64", strict=False)
        assert not p.cookies and len(p.ips) > 10 and all(ipaddress.ip_address(a) in net for a in p.ips)
        assert 4.5 < _rate(p) < 5.6
    for p in by_kind["monitor"]:
        loads = [r.at for r in p.requests if r.events[0]["event_type"] == "pageView"]
        gaps = [b - a for a, b in zip(loads, loads[1:], strict=False)]
        assert p.user_agent in pop.MONITOR_UAS and statistics.pstdev(gaps) < 0.03
    for p in by_kind["lighthouse"]:
        loads = sum(r.events[0]["event_type"] == "pageView" for r in p.requests)
        assert p.user_agent in pop.LIGHTHOUSE_UAS and loads <= 2
    google = ipaddress.ip_network(pop.GOOGLEBOT_NETWORK)
    assert all(ipaddress.ip_address(p.ip) in google for p in by_kind["googlebot"])
    assert not any(ipaddress.ip_address(p.ip) in google for p in by_kind["spoofed-googlebot"])
    assert {p.user_agent for p in by_kind["spoofed-googlebot"]} <= set(pop.GOOGLEBOT_UAS)
    assert all(not p.cookies for p in by_kind["crawler"] + by_kind["googlebot"])
    assert all(_rate(p) > 3 for p in by_kind["scraper"])
    assert all({r.transport for r in p.requests} == {PIXEL} and _rate(p) > 1 for p in by_kind["pixel-bot"])
    assert any(":" in p.ip for p in parties) and any("." in p.ip for p in parties)


def test_each_kind_has_one_verdict_and_every_kind_is_planned(parties):
    assert {p.kind for p in parties} == set(KINDS)
    assert all(p.bot == KINDS[p.kind] for p in parties)
    assert set(BOT_KINDS) | set(HUMAN_KINDS) == set(KINDS) and not set(BOT_KINDS) & set(HUMAN_KINDS)


def test_resends_repeat_an_earlier_request_of_a_party_with_its_cookie(parties):
    resends = [(p, i) for p in parties for i, r in enumerate(p.requests) if r.resend]
    assert resends
    for p, i in resends:
        assert p.cookies and i >= 2
        assert p.requests[i].events == p.requests[i - 1].events


def test_every_planned_event_passes_the_collectors_validation(parties):
    ctx = Context(server_time=1, source="tag", ip="81.2.69.142", user_agent="ua", party_id="party-0001")
    for p in parties[:1000]:
        for r in p.requests:
            if r.transport == EVENTS:
                records = [to_record(e, ctx, 50) for e in r.events]
            else:
                query = pixel_query(r.events[0], via_tag=r.transport == TAG_PIXEL)
                records = [to_record(pixel_event(parse_qsl(query, keep_blank_values=True)), ctx, 50)]
            assert not any(isinstance(x, Rejection) for x in records), (p.kind, r.events)
            assert [x["event_id"] for x in records] == [e["event_id"] for e in r.events]


def test_single_page_route_changes_are_page_views_of_the_same_page_kind(parties):
    """Route changes (results page, sort order, tab) follow the page they change, without campaign."""
    views = [e for p in parties if p.kind in ("human", "human-spa") for r in p.requests if not r.resend
             for e in r.events if e["event_type"] == "pageView"]
    spa = [e for e in views if "#" in e["location"] or "sort=" in e["location"] or "page=" in e["location"]]
    assert len(spa) > 0.05 * len(views)
    for e in spa:
        assert "utm_" not in e["location"]
        assert e["referrer"].split("?")[0].split("#")[0] == e["location"].split("?")[0].split("#")[0]
