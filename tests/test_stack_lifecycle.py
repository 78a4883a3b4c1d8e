"""`clickpipe stack down` stops everything it started, and `up` afterwards reuses the data.

Runs a second, private stack (own state directory and ports, shared jar cache) through the
real command line, so stopping it cannot disturb the stack the other tests use.
"""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, Producer
from private_stack import processes_of

from druid.client import DruidClient


def test_down_leaves_no_process_and_up_reuses_data(private_stack):
    settings, cli, _ = private_stack
    state = str(settings.state_dir)

    first = cli("up")
    assert first.returncode == 0, first.stdout + first.stderr
    assert len(processes_of(state)) == 7  # kafka, zookeeper and five Druid services

    topic = f"lifecycle-{uuid.uuid4().hex[:8]}"
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap})
    for i in range(50):
        producer.produce(topic, key=str(i), value=str(i).encode())
    assert producer.flush(30) == 0
    druid = DruidClient(settings)
    spec = {"type": "kafka", "suspended": True, "spec": {
        "dataSchema": {"dataSource": topic, "timestampSpec": {"column": "ts", "format": "millis"},
                       "dimensionsSpec": {"dimensions": []}, "granularitySpec": {"rollup": False}},
        "ioConfig": {"topic": topic, "inputFormat": {"type": "json"},
                     "consumerProperties": {"bootstrap.servers": settings.kafka_bootstrap}},
        "tuningConfig": {"type": "kafka"}}}
    druid.submit_supervisor(spec)

    down = cli("down")
    assert down.returncode == 0, down.stderr
    deadline = time.monotonic() + 30
    while processes_of(state) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert processes_of(state) == []
    status = cli("status")
    assert status.returncode == 3 and status.stdout.count(" down") == 7, status.stdout

    again = cli("up")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "created topics" not in again.stdout  # the pipeline topics survived
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": topic,
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    values = set()
    deadline = time.monotonic() + 60
    while len(values) < 50 and time.monotonic() < deadline:
        msg = consumer.poll(1.0)
        if msg is not None and not msg.error():
            values.add(int(msg.value()))
    consumer.close()
    assert values == set(range(50))
    assert topic in druid.supervisor_ids()  # Druid's metadata store (Derby) kept the supervisor
