"""kill -9 of the collector while Kafka is away: which answered events survive.

A private broker is stopped while a sender posts batches; a few seconds into the outage the
collector (master and workers) is killed with SIGKILL, then the broker comes back and the
topic is counted. By default a 200 means "queued in the producer": the events answered
during the outage were only in the killed process's memory, and are lost (this is the case
the setting exists for; the test shows it is real). With ``COLLECTOR_ACK_WAIT_MS`` a 200
means "acknowledged by Kafka": during the outage requests get 503 and are retried, and every
event ever answered 200 is in Kafka.
"""

from __future__ import annotations

import shutil
import time

import pytest
from collector_support import Sender, Topic

from tests.support.broker import start_private_broker, wait_healthy
from tests.support.collector import CollectorProcess


@pytest.mark.parametrize("ack_wait_ms", ["0", "1000"])
def test_kill_9_during_a_broker_outage(stack, ack_wait_ms):
    broker, settings = start_private_broker(stack)
    collector = None
    try:
        topic = Topic(settings.kafka_bootstrap)
        collector = CollectorProcess({
            "CLICKPIPE_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "CLICKPIPE_TOPIC_RAW": topic.name,
            "CLICKPIPE_COLLECTOR_WORKERS": "1",
            "CLICKPIPE_COLLECTOR_ACK_WAIT_MS": ack_wait_ms,
        })
        collector.wait_ready()
        sender = Sender(collector.url, max_requests=2000)
        sender.start()
        time.sleep(3)
        before_outage = len(sender.accepted())
        broker.process.stop()
        time.sleep(5)
        collector.kill_9()
        sender.stop_at = 0
        sender.join(30)
        broker.start()
        wait_healthy(broker)

        accepted = sender.accepted()
        consumed = [r["event_id"] for r in topic.records(len(accepted), timeout=60)]
        lost = accepted - set(consumed)
        statuses = [status for status, _ in sender.outcomes]
        print(f"\nkill -9 test (ack wait {ack_wait_ms} ms): {len(statuses)} requests, {statuses.count(200)} "
              f"answered 200 ({len(accepted)} events, {before_outage} before the outage), "
              f"{statuses.count(503)} answered 503; {len(consumed)} events in Kafka, {len(lost)} answered 200 but lost")
        assert before_outage > 0 and accepted
        if ack_wait_ms == "0":
            assert lost, "events queued during the outage should have died with the process"
        else:
            assert statuses.count(503) > 0, "the outage should have been answered with 503s"
            assert lost == set()
        assert len(consumed) == len(set(consumed))  # and nothing twice
    finally:
        if collector:
            collector.stop()
        broker.process.stop()
        shutil.rmtree(settings.state_dir, ignore_errors=True)
