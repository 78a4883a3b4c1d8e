"""End to end: `clickpipe simulate` over HTTP against a real collector, Kafka, a worker and Druid,
then `clickpipe evaluate` with the session verdicts Druid's reports apply.

Every modelled kind ends with its expected session verdict (each kind held to the issue's
goals: recall 0.95 for bots, at most 0.5 % of people's sessions judged bot), and the
human-traffic reports count exactly the events of the sessions the worker judged human (a
session judged bot after its first events is excluded whole, its earlier events included).
"""

from __future__ import annotations

import collections
import itertools
import json
import os
import subprocess
import sys

import pytest

from clickpipe.config import load
from druid.queries import Reports
from simulate.evaluate import GOALS, read_outputs, verdicts_from_topics
from simulate.plan import KINDS, Mix, Planner, Timing
from simulate.truth import read
from tests.support import ROOT
from tests.support.druid import wait_for
from tests.support.simulation import deployment

GAP_S, SWEEP_S = 8, 1
DURATION_S, RATE, SEED, BOT_SHARE = 60, 40, 26, 0.5  # seed 26: every kind has 2+ parties that fit in 60 s


@pytest.fixture
def deployed(stack, geo_env, tmp_path):
    with deployment(stack.kafka_bootstrap, tmp_path, geo_env, GAP_S, SWEEP_S, stack.partitions, druid=True) as d:
        yield d


def test_every_kind_ends_with_its_expected_session_verdict_in_druid(deployed, tmp_path):
    truth_file = tmp_path / "truth.jsonl"
    sim = deployed.clickpipe("simulate", "--url", deployed.url, "--rate", str(RATE), "--duration", str(DURATION_S),
                             "--seed", str(SEED), "--bot-share", str(BOT_SHARE), "--truth", str(truth_file),
                             timeout=DURATION_S + 90)
    assert sim.returncode == 0, sim.stderr
    sent = json.loads(sim.stdout)
    # exactly the plan: every party that fits in the run, all its events, its resends
    plan = Planner(SEED, "any", Timing(GAP_S, SWEEP_S), Mix(bot_share=BOT_SHARE))
    fitting = [p for p in itertools.takewhile(lambda p: p.start <= DURATION_S, plan.parties(RATE))
               if p.start + p.duration <= DURATION_S]
    assert sent["failed"] == 0, (sent, sim.stderr[-2000:])
    assert sent["accepted"] == sum(len(p.event_ids) for p in fitting)
    assert {p.kind for p in fitting} == set(KINDS)

    ev = deployed.clickpipe("evaluate", str(truth_file), "--json", "--timeout", "180", timeout=300)
    assert ev.returncode == 0, ev.stderr
    report = json.loads(ev.stdout)
    print(deployed.clickpipe("evaluate", str(truth_file), "--timeout", "30", timeout=120).stdout)
    delivery, sessions = report["delivery"], report["sessions"]
    assert report["verdict_source"] == "druid"
    assert delivery["expected"] == delivery["seen"] == sent["accepted"]
    assert delivery["lost"] == delivery["duplicated"] == delivery["unexpected"] == delivery["ip_mismatches"] == 0
    assert abs(sessions["error"]) <= 0.01 and sessions["closed"] == sessions["observed"]

    # the human reports count exactly the events of the sessions the worker judged human (its
    # closed session records, and the verdicts it published on sessions after their first events)
    truth = read(truth_file)
    outputs = read_outputs(truth, deployed.env["CLICKPIPE_KAFKA_BOOTSTRAP"], deployed.env["CLICKPIPE_TOPIC_ENRICHED"],
                           deployed.env["CLICKPIPE_TOPIC_SESSIONS"], 60, deployed.env["CLICKPIPE_TOPIC_VERDICTS"])
    assert outputs.complete
    worker = verdicts_from_topics(outputs.clicks, outputs.sessions, outputs.late)
    per_session = collections.Counter(c["session_id"] for c in outputs.clicks)
    human_events = sum(n for sid, n in per_session.items() if not worker[sid].bot)
    reports = Reports(load(deployed.env))
    counted = wait_for(lambda: sum(r["events"] for r in reports.traffic(since="1h", granularity="minute")),
                       lambda n: n == human_events, timeout=60)
    assert counted == human_events and 0 < human_events < len(outputs.clicks)

    # each kind meets the goals on its own: a bot kind's sessions judged bot (recall >= 0.95),
    # a human kind's sessions judged bot at most 0.5 % of them (none, at these counts)
    def missed(row: dict) -> bool:
        return row["recall"] < GOALS["recall"] if row["bot"] else row["judged_bot_share"] > GOALS["human_flagged"]

    misjudged = {kind: f"{row['judged_bot']} of {row['sessions']} judged bot"
                 for kind, row in report["by_kind"].items() if missed(row)}
    assert misjudged == {}, misjudged


def test_evaluate_exits_1_on_a_missing_topic(stack, tmp_path):
    truth = tmp_path / "truth.jsonl"
    truth.write_text(json.dumps({"run": {"run_id": "r", "started_ms": 0}}) + "\n")
    ev = subprocess.run([sys.executable, "-m", "commands.cli", "evaluate", str(truth), "--enriched-topic",
                         "no-such-topic-for-evaluate"], cwd=ROOT, capture_output=True, text=True, timeout=60,
                        env={**os.environ, "CLICKPIPE_KAFKA_BOOTSTRAP": stack.kafka_bootstrap})
    assert ev.returncode == 1 and "no-such-topic-for-evaluate" in ev.stderr
