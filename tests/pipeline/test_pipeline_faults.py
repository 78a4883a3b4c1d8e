"""Fault tests against the real broker: kill -9 the worker mid-stream three times; add and
remove workers mid-stream.

Clicks arrive in waves (each party gets a few clicks per wave; waves are further apart than
the session gap) while the worker is killed with SIGKILL and restarted: once while it is
running, then twice shortly after each restart, while it is still working through the
backlog that built up during the downtime. Reading committed data only, the enriched topic
must then hold every click exactly once and the sessions topic every session exactly once,
each with the click count it should have. Scaling out and in moves partitions, with their
table state, between live workers while clicks keep coming: the same counts must hold.
"""

from __future__ import annotations

import collections
import threading
import time

import pytest

from tests.support.pipeline import Run, decode_all

PARTIES = 200
EVENTS = 4  # per party and wave
WAVES = 14
WAVE_EVERY_S = 5.0
WAVE_SPREAD_S = 1.5  # a wave's clicks are produced over this long
GAP_S = 3  # < WAVE_EVERY_S - WAVE_SPREAD_S: each wave is a new session per party
KILLS = 3


@pytest.fixture
def run(stack, tmp_path):
    with Run(stack.kafka_bootstrap, tmp_path, partitions=stack.partitions, env={
        "CLICKPIPE_SESSION_GAP_SECONDS": str(GAP_S),
        "CLICKPIPE_SESSION_SWEEP_SECONDS": "1",
        "CLICKPIPE_PIPELINE_COMMIT_INTERVAL_MS": "500",
    }) as r:
        yield r


def produce_waves(run: Run, raw_click, produced: list) -> None:
    producer = run.producer()
    for w in range(WAVES):
        started = time.monotonic()
        for i in range(EVENTS):
            now = int(time.time() * 1000)
            records = [raw_click(party_id=f"party-{p:03d}", event_id=f"w{w}-e{i}", server_time=now)
                       for p in range(PARTIES)]
            run.produce(records, producer)
            producer.flush(30)
            produced.extend(records)
            time.sleep(WAVE_SPREAD_S / EVENTS)
        time.sleep(max(0.0, WAVE_EVERY_S - (time.monotonic() - started)))


def test_kill_9_three_times_loses_and_duplicates_nothing(run, raw_click):
    produced: list = []
    producer = threading.Thread(target=produce_waves, args=(run, raw_click, produced))
    run.kill_9_during(producer, KILLS, warmup_s=7)
    producer.join(timeout=120)
    check_exactly_once(run, produced)


def test_workers_added_and_removed_mid_stream_lose_and_duplicate_nothing(run, raw_click):
    produced: list = []
    producer = threading.Thread(target=produce_waves, args=(run, raw_click, produced))
    first = run.start_worker("worker-a.log", datadir="state-a")
    run.wait_ready(first)
    producer.start()
    time.sleep(8)
    second = run.start_worker("worker-b.log", datadir="state-b")  # scale out: partitions move to it
    run.wait_ready(second)
    time.sleep(8)
    first.terminate()  # scale in, the way an operator stops a worker: its partitions go back
    first.wait(timeout=60)
    run.workers.remove(first)
    time.sleep(8)
    third = run.start_worker("worker-a2.log", datadir="state-a")  # out again, on the old local state
    run.wait_ready(third)
    assert producer.is_alive(), "the stream ended before the last rebalance: not a mid-stream test"
    producer.join(timeout=120)
    assert second.poll() is None and third.poll() is None
    line = f'clickpipe_pipeline_records_in_total{{topic="{run.topics["raw"]}"}} '
    read = [float(m.split(line, 1)[1].split()[0]) for m in map(run.metrics, (second, third))]
    assert all(n > 0 for n in read), f"both remaining workers should have had partitions: {read}"
    check_exactly_once(run, produced)


def check_exactly_once(run: Run, produced: list) -> None:
    """Every produced click in the enriched topic once, every session once with its clicks."""
    assert len(produced) == PARTIES * EVENTS * WAVES

    enriched = decode_all(run.consume("enriched", len(produced), timeout=180, settle=5))
    keys = collections.Counter((r["party_id"], r["event_id"]) for r in enriched)
    assert len(keys) == len(produced), f"clicks lost: {len(produced) - len(keys)}"
    assert max(keys.values()) == 1, f"clicks duplicated: {sum(v - 1 for v in keys.values())}"

    sessions = decode_all(run.consume("sessions", PARTIES * WAVES, timeout=60, settle=5))
    ids = collections.Counter(s["session_id"] for s in sessions)
    assert max(ids.values()) == 1, f"sessions duplicated: {sum(v - 1 for v in ids.values())}"
    assert len(ids) == PARTIES * WAVES, f"sessions lost: {PARTIES * WAVES - len(ids)}"
    clicks_per_session = collections.Counter(r["session_id"] for r in enriched)
    assert set(clicks_per_session) == set(ids)
    assert all(s["events"] == clicks_per_session[s["session_id"]] == EVENTS for s in sessions)
