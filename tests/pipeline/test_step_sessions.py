import pytest

from steps import Context
from steps.sessions import Sessions, session_id

MIN = 60_000
T0 = 1_700_000_000_000


@pytest.fixture
def sessions():
    return Sessions(gap_ms=30 * MIN, cap_ms=24 * 60 * MIN, split_on_campaign=True)


def run(step, ctx, decoded, events):
    """Feed ``(minute offset, extra fields)`` events in order; return the enriched records."""
    return [step(decoded(server_time=T0 + int(m * MIN), **extra), ctx) for m, extra in events]


def test_events_within_the_gap_share_a_session(sessions, decoded):
    ctx = Context()
    out = run(sessions, ctx, decoded, [(0, {}), (10, {}), (39, {})])
    assert len({r["session_id"] for r in out}) == 1
    assert [r["session_seq"] for r in out] == [1, 2, 3]
    assert [r["first_in_session"] for r in out] == [True, False, False]
    assert ctx.sessions == []


def test_an_event_after_the_gap_closes_the_session(sessions, decoded):
    ctx = Context()
    out = run(sessions, ctx, decoded, [
        (0, {"location": "https://a.com/landing", "referrer": "https://www.google.com/"}),
        (5, {"event_type": "click", "location": "https://a.com/landing"}),
        (12, {"location": "https://a.com/exit"}),
        (43, {"location": "https://a.com/again"}),
    ])
    assert out[3]["session_id"] != out[0]["session_id"] and out[3]["first_in_session"]
    [closed] = ctx.sessions
    assert closed["session_id"] == out[0]["session_id"]
    assert (closed["start_time"], closed["end_time"], closed["duration_ms"]) == (T0, T0 + 12 * MIN, 12 * MIN)
    assert (closed["page_views"], closed["events"], closed["bounce"]) == (2, 3, False)
    assert (closed["landing_page"], closed["exit_page"]) == ("https://a.com/landing", "https://a.com/exit")
    assert closed["entry_referrer"] == "https://www.google.com/"
    assert closed["close_reason"] == "gap"


def test_exactly_the_gap_is_still_the_same_session(sessions, decoded):
    ctx = Context()
    out = run(sessions, ctx, decoded, [(0, {}), (30, {})])
    assert out[0]["session_id"] == out[1]["session_id"]


def test_out_of_order_events_join_and_may_move_the_start(sessions, decoded):
    ctx = Context()
    out = run(sessions, ctx, decoded, [
        (10, {"location": "https://a.com/second"}),
        (20, {"location": "https://a.com/third"}),
        (5, {"location": "https://a.com/first"}),  # late but within the gap of the start
        (15, {"event_type": "scroll"}),
    ])
    assert len({r["session_id"] for r in out}) == 1
    assert [r["session_seq"] for r in out] == [1, 2, 3, 4]
    sessions.sweep(ctx, T0 + 60 * MIN)
    [closed] = ctx.sessions
    assert closed["start_time"] == T0 + 5 * MIN and closed["end_time"] == T0 + 20 * MIN
    assert closed["landing_page"] == "https://a.com/first" and closed["exit_page"] == "https://a.com/third"
    assert closed["events"] == 4 and closed["close_reason"] == "idle"


def test_very_late_event_is_counted_without_reshaping(sessions, decoded):
    ctx = Context()
    run(sessions, ctx, decoded, [(100, {}), (110, {}), (10, {"location": "https://a.com/old"})])
    sessions.sweep(ctx, T0 + 200 * MIN)
    [closed] = ctx.sessions
    assert (closed["start_time"], closed["end_time"], closed["events"]) == (T0 + 100 * MIN, T0 + 110 * MIN, 3)
    assert closed["landing_page"] != "https://a.com/old"


def test_hard_cap_splits_a_never_idle_session(decoded):
    step, ctx = Sessions(gap_ms=30 * MIN, cap_ms=24 * 60 * MIN, split_on_campaign=False), Context()
    out = run(step, ctx, decoded, [(m, {}) for m in range(0, 25 * 60 + 1, 20)])
    ids = [r["session_id"] for r in out]
    assert len(set(ids)) == 2
    first = ctx.sessions[0]
    assert first["close_reason"] == "cap"
    assert first["end_time"] - first["start_time"] < 24 * 60 * MIN
    assert out[ids.index(ids[-1])]["server_time"] - T0 >= 24 * 60 * MIN


def test_campaign_change_starts_a_new_session(sessions, decoded):
    ctx = Context()
    out = run(sessions, ctx, decoded, [
        (0, {"utm_source": "news", "utm_medium": "email", "utm_campaign": "may"}),
        (1, {}),  # no campaign on the URL: same session
        (2, {"utm_source": "news", "utm_medium": "email", "utm_campaign": "may"}),  # same campaign
        (3, {"utm_source": "google", "utm_medium": "cpc", "utm_campaign": None}),
    ])
    assert [r["first_in_session"] for r in out] == [True, False, False, True]
    [closed] = ctx.sessions
    assert closed["close_reason"] == "campaign" and closed["utm_campaign"] == "may"


def test_campaign_change_is_ignored_when_disabled(decoded):
    step, ctx = Sessions(gap_ms=30 * MIN, cap_ms=24 * 60 * MIN, split_on_campaign=False), Context()
    out = run(step, ctx, decoded, [(0, {"utm_source": "a"}), (1, {"utm_source": "b"})])
    assert out[0]["session_id"] == out[1]["session_id"]


def test_idle_sweep_closes_exactly_once(sessions, decoded):
    ctx = Context()
    run(sessions, ctx, decoded, [(0, {})])
    assert sessions.due_at(ctx.party) > T0 + 30 * MIN
    sessions.sweep(ctx, T0 + 30 * MIN)
    assert ctx.sessions == []
    assert sessions.due_at(ctx.party) <= T0 + 31 * MIN
    sessions.sweep(ctx, T0 + 31 * MIN)
    sessions.sweep(ctx, T0 + 32 * MIN)
    [closed] = ctx.sessions
    assert closed["close_reason"] == "idle" and closed["bounce"]
    # human until the bots step (after this one) gives it its verdict
    assert closed["is_bot"] is False and closed["bot_reason"] is None
    assert sessions.due_at(ctx.party) is None


def test_session_ids_are_deterministic_per_party_and_first_event(sessions, decoded):
    a = sessions(decoded(party_id="p", event_id="e1", server_time=T0), Context())
    b = sessions(decoded(party_id="p", event_id="e1", server_time=T0 + 5), Context())
    c = sessions(decoded(party_id="q", event_id="e1", server_time=T0), Context())
    assert a["session_id"] == b["session_id"] == session_id("p", "e1") != c["session_id"]
