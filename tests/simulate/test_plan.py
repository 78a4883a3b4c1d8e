"""The traffic plan, without services: determinism, mix, session structure, ground truth."""

from __future__ import annotations

import collections
from urllib.parse import parse_qsl, urlencode

import pytest

from collector.ids import is_valid_id
from collector.mapping import Context, Rejection, pixel_event, to_record
from simulate.plan import BOT_KINDS, EVENTS, KINDS, PIXEL, Mix, Planner, Timing

TIMING = Timing(gap_s=30, sweep_s=5)
N = 3000


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
    assert kinds == (set(KINDS) if share else {"human", "human-nojs"})


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


def test_bots_and_pixel_humans_have_the_shapes_the_rules_need(parties):
    by_kind = collections.defaultdict(list)
    for p in parties:
        by_kind[p.kind].append(p)
    # the pixel-only rule fires on the third hit of a party never seen with the tag
    assert all(len(p.event_ids) >= 3 and {r.transport for r in p.requests} == {PIXEL} for p in by_kind["pixel-bot"])
    assert all(len(p.event_ids) <= 2 and {r.transport for r in p.requests} == {PIXEL} for p in by_kind["human-nojs"])
    assert all(any(e.get("webdriver") for r in p.requests for e in r.events) or "HeadlessChrome" in p.user_agent
               for p in by_kind["headless"])
    assert all(not p.cookies for p in by_kind["crawler"])
    # scrapers are fast: several hits a second
    assert all(len(p.event_ids) / max(p.duration, 0.1) > 3 for p in by_kind["scraper"])
    assert any(":" in p.ip for p in parties) and any("." in p.ip for p in parties)


def test_resends_repeat_an_earlier_request_of_a_party_with_its_cookie(parties):
    resends = [(p, i) for p in parties for i, r in enumerate(p.requests) if r.resend]
    assert resends
    for p, i in resends:
        assert p.cookies and i >= 2
        assert p.requests[i].events == p.requests[i - 1].events


def test_every_planned_event_passes_the_collectors_validation(parties):
    ctx = Context(server_time=1, source="tag", ip="81.2.69.142", user_agent="ua", party_id="party-0001")
    for p in parties[:500]:
        for r in p.requests:
            if r.transport == EVENTS:
                records = [to_record(e, ctx, 50) for e in r.events]
            else:
                records = [to_record(pixel_event(parse_qsl(urlencode(r.events[0]), keep_blank_values=True)), ctx, 50)]
            assert not any(isinstance(x, Rejection) for x in records), (p.kind, r.events)
            assert [x["event_id"] for x in records] == [e["event_id"] for e in r.events]


def test_single_page_route_changes_are_page_views_of_the_same_page_kind(parties):
    """Route changes (results page, sort order, tab) follow the page they change, without campaign."""
    views = [e for p in parties if p.kind == "human" for r in p.requests if not r.resend for e in r.events
             if e["event_type"] == "pageView"]
    spa = [e for e in views if "#" in e["location"] or "sort=" in e["location"] or "page=" in e["location"]]
    assert len(spa) > 0.05 * len(views)
    for e in spa:
        assert "utm_" not in e["location"]
        assert e["referrer"].split("?")[0].split("#")[0] == e["location"].split("?")[0].split("#")[0]
