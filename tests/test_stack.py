"""The local stack against itself: real Kafka and real Druid, no mocks."""

from __future__ import annotations

import time
import uuid
from collections import defaultdict

from confluent_kafka import Consumer, Producer
from pydruid.db import connect


def test_kafka_keyed_records_arrive_complete_and_in_per_key_order(stack):
    topic = f"test-stack-{uuid.uuid4().hex[:8]}"
    keys = [f"party-{k}" for k in range(10)]
    producer = Producer({"bootstrap.servers": stack.kafka_bootstrap, "enable.idempotence": True})
    for seq in range(100):
        for key in keys:
            producer.produce(topic, key=key, value=str(seq).encode())
    assert producer.flush(30) == 0

    consumer = Consumer({
        "bootstrap.servers": stack.kafka_bootstrap, "group.id": f"g-{topic}",
        "auto.offset.reset": "earliest", "enable.auto.commit": False,
    })
    consumer.subscribe([topic])
    seen: dict[str, list[int]] = defaultdict(list)
    deadline = time.monotonic() + 60
    try:
        while sum(map(len, seen.values())) < 1000 and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None or msg.error():
                continue
            seen[msg.key().decode()].append(int(msg.value()))
    finally:
        consumer.close()

    assert sum(map(len, seen.values())) == 1000
    assert {k: v for k, v in seen.items()} == {key: list(range(100)) for key in keys}


def test_druid_answers_sql_through_pydruid_dbapi(stack):
    conn = connect(host=stack.druid_host, port=stack.druid_broker_port, path="/druid/v2/sql/", scheme="http")
    cursor = conn.cursor()
    cursor.execute("SELECT 1 + 1")
    assert [tuple(row) for row in cursor.fetchall()] == [(2,)]
