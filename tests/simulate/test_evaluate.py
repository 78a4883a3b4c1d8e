"""The accuracy report on synthetic inputs, and a plan replayed through the real pipeline steps."""

from __future__ import annotations

import heapq
import json
from urllib.parse import parse_qsl

import pytest

from clickpipe.config import load
from collector.mapping import Context as CollectorContext
from collector.mapping import Rejection, pixel_event, to_record
from commands import cli
from simulate.evaluate import Verdict, score
from simulate.plan import EVENTS, KINDS, PIXEL, TAG_PIXEL, Mix, Planner, Timing, pixel_query
from simulate.truth import GroundTruth, TruthError, read
from steps import Context, Drop, Pipeline

GAP_S, SWEEP_S = 30, 5


def party(key, kind, bot, sessions, cookies=True, ip="81.2.69.142"):
    return {"key": key, "kind": kind, "bot": bot, "cookies": cookies, "ip": ip, "sessions": sessions}


def click(event_id, session_id, is_bot, party_id="x", ip="81.2.69.142", reason="headless"):
    return {"event_id": event_id, "party_id": party_id, "session_id": session_id, "is_bot": is_bot,
            "bot_reason": reason if is_bot else None, "ip": ip}


def test_score_counts_parties_events_and_sessions():
    truth = GroundTruth(run={"run_id": "r", "started_ms": 0}, parties=[
        party("h1", "human", False, [["a1", "a2"], ["a3"]]),
        party("h2", "human", False, [["b1"]]),
        party("b1", "headless", True, [["c1", "c2", "c3"]]),
        party("b2", "pixel-bot", True, [["d1", "d2", "d3"]]),
        party("b3", "scraper", True, [["e1"]]),
    ])
    clicks = [
        click("a1", "s1", False), click("a2", "s1", False), click("a3", "s2", False),
        click("b1", "s3", True),  # a human flagged: one false positive party and event
        click("c1", "s4", True), click("c2", "s4", True), click("c3", "s5", True),  # one session split in two
        click("d1", "s6", False), click("d2", "s6", False), click("d3", "s6", True),
        click("d3", "s6", True),  # a duplicate that should have been dropped
        click("zz", "s9", False),  # not in the truth: the sender counted it as failed
        # e1 is lost: the scraper party is not seen at all
    ]
    sessions = [{"session_id": "s1", "events": 2, "is_bot": False}, {"session_id": "s2", "events": 1, "is_bot": False},
                {"session_id": "s6", "events": 4, "is_bot": True, "bot_reason": "headless"}]
    report = score(truth, clicks, sessions)
    # sessions: h1's two judged human; h2's judged bot (its one event is flagged, no closed record);
    # the headless party's (seen as two) and the pixel bot's judged bot; the scraper's never seen
    s = report.sessions_judged
    assert (s.tp, s.fp, s.fn, s.tn) == (2, 1, 0, 2)
    assert report.human_flagged == pytest.approx(1 / 3)
    assert report.by_kind["human"]["judged_bot"] == 1 and report.by_kind["human"]["sessions"] == 3
    assert report.by_kind["headless"]["recall"] == 1.0 and report.by_kind["human"]["judged_bot_share"] == 1 / 3
    assert (report.parties.tp, report.parties.fp, report.parties.fn, report.parties.tn) == (2, 1, 0, 1)
    assert report.parties.precision == pytest.approx(2 / 3) and report.parties.recall == 1.0
    assert (report.events.tp, report.events.fp, report.events.fn, report.events.tn) == (4, 1, 2, 3)
    assert (report.expected_events, report.seen_events, report.lost_events) == (11, 10, 1)
    assert (report.duplicated_events, report.unexpected_events) == (1, 1)
    assert (report.expected_sessions, report.observed_sessions, report.exact_sessions) == (6, 6, 4)
    assert report.session_error == 0.0
    assert (report.closed_sessions, report.closed_event_mismatches) == (3, 1)
    assert report.reasons == {"headless": 3}  # session verdicts: h2, the headless party's, the pixel bot's
    assert report.goals() == {"precision": False, "recall": True, "human_flagged": False, "session_error": True}
    table = report.table()
    assert "0.6667" in table and "MISSED" in table and "expected 6, observed 6" in table


def test_session_verdicts_decide_and_a_closed_session_record_overrides_its_events():
    truth = GroundTruth(run={"run_id": "r", "started_ms": 0}, parties=[
        party("h", "human-spa", False, [["a1", "a2"]]), party("b", "stealth-browser", True, [["b1", "b2"]])])
    clicks = [click("a1", "s1", False), click("a2", "s1", True, reason="page-rate"),
              click("b1", "s2", False), click("b2", "s2", False)]
    # the worker's closed records: s1 judged human in the end, s2 decided bot after its events
    sessions = [{"session_id": "s1", "events": 2, "is_bot": False, "bot_reason": None},
                {"session_id": "s2", "events": 2, "is_bot": True, "bot_reason": "no-interaction"}]
    report = score(truth, clicks, sessions)
    assert (report.sessions_judged.tp, report.sessions_judged.fp) == (1, 0)
    assert report.reasons == {"no-interaction": 1} and report.human_flagged == 0.0
    # a verdict the worker published after the session closed (its earlier parties of one address)
    late = score(truth, clicks, [dict(sessions[0]), {**sessions[1], "is_bot": False}], late={"s2": "party-churn"})
    assert late.sessions_judged.tp == 1 and late.reasons == {"party-churn": 1}
    # verdicts as Druid's human reports see them: s1 partly dropped, s2 dropped entirely
    druid = {"s1": Verdict(False, None, partial=True), "s2": Verdict(True, "no-interaction")}
    report = score(truth, clicks, sessions, druid, "druid")
    assert report.partial_sessions == 1 and report.sessions_judged.tp == 1 and "read from druid" in report.table()


def test_ip_mismatches_reveal_an_untrusted_forwarded_for():
    truth = GroundTruth(run={"run_id": "r", "started_ms": 0}, parties=[party("h", "human", False, [["a", "b"]])])
    report = score(truth, [click("a", "s", False, ip="127.0.0.1"), click("b", "s", False)], None)
    assert report.ip_mismatches == 1 and report.closed_sessions is None


def test_truth_file_round_trip_and_errors(tmp_path):
    path = tmp_path / "truth.jsonl"
    path.write_text(json.dumps({"run": {"run_id": "r", "started_ms": 5}}) + "\n"
                    + json.dumps({"party": party("p", "human", False, [["e"]])}) + "\n"
                    + json.dumps({"summary": {"accepted": 1}}) + "\n")
    truth = read(path)
    assert truth.run["started_ms"] == 5 and truth.accepted_ids() == {"e"} and truth.summary == {"accepted": 1}
    with pytest.raises(TruthError, match="does-not-exist"):
        read(tmp_path / "does-not-exist")
    path.write_text(json.dumps({"party": party("p", "human", False, [])}) + "\n")
    with pytest.raises(TruthError, match="first line must be the run line"):
        read(path)
    path.write_text(json.dumps({"run": {"run_id": "r", "started_ms": 5}}) + "\n{not json\n")
    with pytest.raises(TruthError, match=":2: not JSON"):
        read(path)


def test_evaluate_command_exits_2_on_a_missing_truth_file(tmp_path, capsys):
    assert cli.main(["evaluate", str(tmp_path / "nope.jsonl")]) == 2
    assert "cannot read ground truth" in capsys.readouterr().err


# --- a plan replayed through the real steps, with server time = planned time ---------------

def replay(planner: Planner, rate: float, limit: int, settings):
    """Feed the plan's events through the configured steps as the collector would record them.

    Returns (truth, enriched clicks, closed sessions, late verdicts: session id -> reason).
    Cookie-keeping parties get one party id (new with their first request), the others a new
    one per request; resends carry their earlier event ids again. Every session is closed by a
    last sweep after the plan.
    """
    pipeline = Pipeline(settings)
    parties = list(planner.parties(rate, limit))
    queue = [(p.start + r.at, i, j) for i, p in enumerate(parties) for j, r in enumerate(p.requests)]
    heapq.heapify(queue)
    states: dict[str, dict] = {}
    ips: dict = {}
    clicks, sessions = [], []
    late: dict[str, str] = {}

    def sweep(now_s: float) -> None:
        for state in list(states.values()):
            ctx = Context(party=state, ips=ips)
            if pipeline.due(state, int(now_s * 1000)):
                pipeline.sweep(ctx, int(now_s * 1000))
                sessions.extend(ctx.sessions)
                late.update((v["session_id"], v["reason"]) for v in ctx.verdicts)

    next_sweep = SWEEP_S
    while queue:
        t, i, j = heapq.heappop(queue)
        while next_sweep <= t:  # the worker's idle sweep
            sweep(next_sweep)
            next_sweep += SWEEP_S
        p, r = parties[i], parties[i].requests[j]
        pid = f"{p.key}-party" if p.cookies else f"{p.key}-{j}-party"
        req = CollectorContext(server_time=int(t * 1000), source="pixel" if r.transport == PIXEL else "tag",
                               ip=r.ip or p.ip, user_agent=p.user_agent or None, party_id=pid,
                               new_party=pid not in states, no_js=r.transport == PIXEL,
                               ch_ua=p.hints.get("Sec-CH-UA"), ch_ua_mobile=p.hints.get("Sec-CH-UA-Mobile"),
                               ch_ua_platform=p.hints.get("Sec-CH-UA-Platform"))
        for event in r.events:
            if r.transport != EVENTS:
                event = pixel_event(parse_qsl(pixel_query(event, r.transport == TAG_PIXEL), keep_blank_values=True))
            record = to_record(event, req, 50)
            assert not isinstance(record, Rejection), record  # the simulated requests are all valid
            record["client_session_id"] = record.pop("session_id")
            ctx = Context(party=states.setdefault(pid, {}), ips=ips)
            try:
                clicks.append(pipeline.process(record, ctx))
            except Drop as drop:
                assert drop.reason == "duplicate" and r.resend
            sessions += ctx.sessions
            late.update((v["session_id"], v["reason"]) for v in ctx.verdicts)
    sweep(next_sweep + 10 * (GAP_S + SWEEP_S))
    truth = GroundTruth(run={"run_id": planner.run_id, "started_ms": 0}, parties=[
        {"key": p.key, "kind": p.kind, "bot": p.bot, "cookies": p.cookies, "ip": p.ip, "ips": p.ips,
         "sessions": p.sessions()} for p in parties])
    return truth, clicks, sessions, late


def test_replayed_plan_meets_the_goals_through_the_real_steps(geo_env):
    settings = load({**geo_env, "CLICKPIPE_SESSION_GAP_SECONDS": str(GAP_S),
                     "CLICKPIPE_SESSION_SWEEP_SECONDS": str(SWEEP_S)})
    planner = Planner(21, "replay", Timing(GAP_S, SWEEP_S), Mix(bot_share=0.25))
    truth, clicks, sessions, late = replay(planner, rate=50, limit=400, settings=settings)
    report = score(truth, clicks, sessions, late=late)
    print(report.table())
    assert report.lost_events == report.duplicated_events == report.ip_mismatches == 0
    assert report.observed_sessions == report.exact_sessions == report.expected_sessions
    assert {k for k, row in report.by_kind.items() if row["sessions"]} == set(KINDS)
    # the goals on the session verdicts, over all kinds
    assert report.goals() == {"precision": True, "recall": True, "human_flagged": True, "session_error": True}
