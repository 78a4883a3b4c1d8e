"""Broker loss: a running pipeline worker rides out a Kafka outage without a restart.

The worker runs against a private single-node broker (:mod:`tests.support.broker`:
same jar cache, own ports, own data directory under this test's tmp_path), so stopping
that broker disturbs no other test. After a first wave of clicks is fully enriched, the
broker is stopped with SIGTERM and kept down for ~10 s while the worker keeps running, then
started again on the same data directory. A second wave is produced and must come out too.

This proves that the one worker process -- never restarted, same pid throughout -- keeps
retrying while Kafka is gone and resumes processing by itself once it is back, and that,
reading committed data only, every produced click is in the enriched topic exactly once
(no loss, no duplicate from a transaction aborted or retried around the outage).
"""

from __future__ import annotations

import collections
import tempfile
import time

import pytest

from clickpipe.config import settings as default_settings
from tests.support.broker import start_private_broker, wait_healthy
from tests.support.pipeline import Run, decode_all

# Needs a real broker (its own), not the shared stack: marked as a service test explicitly.
pytestmark = pytest.mark.stack

PARTIES = 20
EVENTS_PER_WAVE = 10  # per party
OUTAGE_S = 10
RECOVERY_TIMEOUT_S = 180


@pytest.fixture
def broker(tmp_path, monkeypatch):
    """(Kafka service, its settings): a private broker whose state dir lies under tmp_path."""
    # The helper makes its state dir with tempfile.mkdtemp(); point that at tmp_path so the
    # broker's data is cleaned up with the test's other files.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    service, settings = start_private_broker(default_settings)
    yield service, settings
    service.process.stop()


@pytest.fixture
def run(broker, geo_env, tmp_path):
    _, settings = broker
    workdir = tmp_path / "pipeline"
    workdir.mkdir()
    # the broker (and all its topics) goes away with the broker fixture: no topic cleanup
    with Run(settings.kafka_bootstrap, workdir, partitions=settings.partitions, env={
        "CLICKPIPE_PIPELINE_COMMIT_INTERVAL_MS": "500",
        **geo_env,
    }, delete_topics_on_exit=False) as r:
        yield r


def wave(raw_click, wave_no: int) -> list[dict]:
    now = int(time.time() * 1000)
    return [raw_click(party_id=f"party-{p:02d}", event_id=f"w{wave_no}-e{i}", server_time=now + i)
            for i in range(EVENTS_PER_WAVE) for p in range(PARTIES)]


def written(run: Run, worker) -> float:
    """How many enriched records ``worker`` says it wrote since it started (its /metrics)."""
    line = f'clickpipe_pipeline_records_out_total{{topic="{run.topics["enriched"]}"}} '
    values = [float(x[len(line):]) for x in run.metrics(worker).splitlines() if x.startswith(line)]
    assert len(values) == 1, f"no {line.strip()} in the worker's metrics"
    return values[0]


def keys(records) -> collections.Counter:
    return collections.Counter((r["party_id"], r["event_id"]) for r in records)


def test_worker_recovers_from_broker_loss_without_restart(broker, run, raw_click):
    service, _ = broker
    worker = run.start_worker()
    run.wait_ready(worker)

    first = wave(raw_click, 1)
    run.produce(first)
    enriched = decode_all(run.consume("enriched", len(first), timeout=90, settle=2))
    # the outage must begin with a worker that has demonstrably been processing
    assert keys(enriched) == keys(first), "first wave not enriched exactly once before the outage"

    stopping = time.monotonic()
    assert service.process.stop(), "private broker was not running"
    stopped = time.monotonic()
    assert not service.healthy(), "private broker still answering after stop"
    time.sleep(OUTAGE_S)
    assert worker.poll() is None, f"worker exited ({worker.returncode}) while Kafka was down; see {worker.log_path}"
    service.start()
    wait_healthy(service)
    back = time.monotonic()

    second = wave(raw_click, 2)
    run.produce(second)
    expected = first + second
    # settle=0: stop as soon as the count is reached, to time the recovery ...
    reached = len(decode_all(run.consume("enriched", len(expected), timeout=RECOVERY_TIMEOUT_S, settle=0)))
    recovery = time.monotonic() - back
    # ... then read again, waiting for stragglers, for the exactly-once check
    enriched = decode_all(run.consume("enriched", len(expected), timeout=60, settle=5))
    got = keys(enriched)
    print(f"\nbroker loss: SIGTERM to exit {stopped - stopping:.1f}s, then down {back - stopped:.1f}s until "
          f"healthy again; {reached}/{len(expected)} enriched {recovery:.1f}s after that; "
          f"{len(enriched)} in the end")

    expected_keys = keys(expected)
    lost = set(expected_keys) - set(got)
    assert not lost, f"{len(lost)} clicks lost (did the worker recover?); see {worker.log_path}"
    assert max(got.values()) == 1, f"clicks duplicated: {sum(v - 1 for v in got.values())}"
    assert got == expected_keys  # and nothing that was not produced
    # the same process did all of it: still alive (so still the pid we started), the only
    # worker ever started, and its in-memory counters -- which a restart would reset -- cover
    # both waves (>=: a transaction aborted around the outage may be written once more)
    assert worker.poll() is None, f"worker exited ({worker.returncode}); see {worker.log_path}"
    assert run.workers == [worker]
    assert written(run, worker) >= len(expected)
