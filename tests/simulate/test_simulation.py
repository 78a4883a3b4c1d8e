"""End to end: `clickpipe simulate` against a real collector and worker, then `clickpipe evaluate`."""

from __future__ import annotations

import itertools
import json

import pytest

from simulate.plan import Planner, Timing
from tests.support.simulation import deployment

GAP_S, SWEEP_S = 8, 1
DURATION_S, RATE = 25, 40


@pytest.fixture
def deployed(stack, geo_env, tmp_path):
    with deployment(stack.kafka_bootstrap, tmp_path, geo_env, GAP_S, SWEEP_S, stack.partitions) as d:
        yield d


def test_simulated_traffic_is_scored_within_the_goals(deployed, tmp_path):
    truth = tmp_path / "truth.jsonl"
    sim = deployed.clickpipe("simulate", "--url", deployed.url, "--rate", str(RATE), "--duration", str(DURATION_S),
                             "--seed", "42", "--truth", str(truth), timeout=DURATION_S + 90)
    assert sim.returncode == 0, sim.stderr
    sent = json.loads(sim.stdout)
    # exactly the plan: every party that fits in the run, all its events, its resends
    fitting = list(itertools.takewhile(lambda p: p.start <= DURATION_S,
                                       Planner(42, "any", Timing(GAP_S, SWEEP_S)).parties(RATE)))
    fitting = [p for p in fitting if p.start + p.duration <= DURATION_S]
    assert sent["failed"] == 0
    assert sent["accepted"] == sum(len(p.event_ids) for p in fitting)
    assert sent["resent"] == sum(r.resend for p in fitting for r in p.requests) > 0

    ev = deployed.clickpipe("evaluate", str(truth), "--json", "--timeout", "120", timeout=180)
    assert ev.returncode == 0, ev.stderr
    report = json.loads(ev.stdout)
    delivery, sessions, parties = report["delivery"], report["sessions"], report["parties"]
    # no event lost, no duplicate through, each from the simulated address
    assert delivery["expected"] == delivery["seen"] == sent["accepted"]
    assert delivery["lost"] == delivery["duplicated"] == delivery["unexpected"] == delivery["ip_mismatches"] == 0
    assert parties["precision"] >= 0.99 and parties["recall"] >= 0.95
    assert abs(sessions["error"]) <= 0.01
    assert sessions["closed"] == sessions["observed"] and sessions["closed_event_mismatches"] == 0
    assert set(report["by_kind"]) == {"human", "human-nojs", "crawler", "headless", "scraper", "pixel-bot"}


def test_evaluate_exits_1_on_a_missing_topic(deployed, tmp_path):
    truth = tmp_path / "truth.jsonl"
    truth.write_text(json.dumps({"run": {"run_id": "r", "started_ms": 0}}) + "\n")
    ev = deployed.clickpipe("evaluate", str(truth), "--enriched-topic", "no-such-topic-for-evaluate",
                            timeout=60)
    assert ev.returncode == 1 and "no-such-topic-for-evaluate" in ev.stderr
