"""Broker outage: stop Kafka for 10 s while sending; nothing accepted may be lost.

Uses a private single-node broker (same jars, own ports and data directory) so stopping
it disturbs nobody else's tests. The collector's queue is made small so the outage also
exercises backpressure: while the queue is full, requests must get 503 (and the sender
retries), never a 2xx whose events then vanish.
"""

from __future__ import annotations

import shutil
import time

import requests
from collector_support import Sender, Topic

from tests.support.broker import start_private_broker, wait_healthy
from tests.support.collector import CollectorProcess

OUTAGE_SECONDS = 10


def test_broker_outage_loses_no_accepted_event(stack):
    broker, settings = start_private_broker(stack)
    collector = None
    try:
        topic = Topic(settings.kafka_bootstrap)
        collector = CollectorProcess(
            {
                "CLICKPIPE_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
                "CLICKPIPE_TOPIC_RAW": topic.name,
                "CLICKPIPE_COLLECTOR_QUEUE_MAX": "300",
                "CLICKPIPE_COLLECTOR_WORKERS": "1",
            }
        )
        collector.wait_ready()
        sender = Sender(collector.url)
        sender.start()
        time.sleep(3)
        broker.process.stop()
        stopped = time.monotonic()
        time.sleep(OUTAGE_SECONDS / 2)
        readiness_during_outage = requests.get(collector.url + "/readyz", timeout=10).status_code
        time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - stopped)))
        broker.start()
        wait_healthy(broker)
        outage = time.monotonic() - stopped
        time.sleep(5)  # keep sending while the backlog drains
        sender.stop_at = 0
        sender.join(30)

        statuses = [s for s, _ in sender.outcomes]
        accepted = sender.accepted()
        refused = sum(1 for s in statuses if s == 503)
        consumed = {r["event_id"] for r in topic.records(len(accepted), timeout=90)}
        print(
            f"\nfault test: outage {outage:.1f}s, {len(statuses)} requests, "
            f"{statuses.count(200)} accepted ({len(accepted)} events), {refused} answered 503, "
            f"other {len(statuses) - statuses.count(200) - refused}; {len(consumed)} events in Kafka"
        )
        assert readiness_during_outage == 503
        assert requests.get(collector.url + "/readyz", timeout=10).status_code == 200
        assert set(statuses) <= {200, 503}, sorted(set(statuses))
        assert refused > 0, "the outage should have filled the small queue"
        assert accepted - consumed == set(), f"{len(accepted - consumed)} accepted events lost"
        assert consumed == accepted  # 503 means nothing of that request was queued
    finally:
        if collector:
            collector.stop()
        broker.process.stop()
        shutil.rmtree(settings.state_dir, ignore_errors=True)
