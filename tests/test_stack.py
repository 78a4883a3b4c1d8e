"""The local stack against itself: real Kafka and real Druid, no mocks."""

from __future__ import annotations

import io
import time
import uuid
from collections import defaultdict

import fastavro
import pytest
from confluent_kafka import Consumer, Producer
from pydruid.db import connect

from druid.client import DruidClient


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


PROBE_SCHEMA = {
    "type": "record", "name": "Probe", "namespace": "clickpipe.test",
    "fields": [{"name": "ts", "type": "long"}, {"name": "party", "type": "string"}, {"name": "n", "type": "int"}],
}


def test_druid_ingests_raw_avro_from_kafka_with_inline_schema(stack):
    """Raw Avro binary (what fastavro's schemaless writer makes) decoded inside Druid."""
    topic = f"test-druid-avro-{uuid.uuid4().hex[:8]}"
    parsed = fastavro.parse_schema(PROBE_SCHEMA)
    producer = Producer({"bootstrap.servers": stack.kafka_bootstrap})
    now = int(time.time() * 1000)
    for i in range(500):
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, parsed, {"ts": now + i, "party": f"p{i % 7}", "n": i})
        producer.produce(topic, key=f"p{i % 7}", value=buf.getvalue())
    assert producer.flush(30) == 0

    druid = DruidClient(stack)
    spec = {"type": "kafka", "spec": {
        "dataSchema": {
            "dataSource": topic,
            "parser": {
                "type": "avro_stream",
                "avroBytesDecoder": {"type": "schema_inline", "schema": PROBE_SCHEMA},
                "parseSpec": {"format": "avro", "timestampSpec": {"column": "ts", "format": "millis"},
                              "dimensionsSpec": {"dimensions": ["party"]}},
            },
            "metricsSpec": [{"type": "count", "name": "count"}, {"type": "longSum", "name": "n", "fieldName": "n"}],
            "granularitySpec": {"segmentGranularity": "hour", "queryGranularity": "none", "rollup": True},
        },
        "ioConfig": {"topic": topic, "consumerProperties": {"bootstrap.servers": stack.kafka_bootstrap},
                     "useEarliestOffset": True, "taskCount": 1, "replicas": 1, "taskDuration": "PT10M",
                     "startDelay": "PT1S", "period": "PT5S"},
        "tuningConfig": {"type": "kafka"},
    }}
    assert druid.submit_supervisor(spec) == topic
    try:
        rows: list[dict] = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            tables = druid.sql("SELECT TABLE_NAME FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_NAME = ?",
                               [{"type": "VARCHAR", "value": topic}])
            if tables:
                rows = druid.sql(f'SELECT SUM("count") AS events, SUM(n) AS total, COUNT(DISTINCT party) AS parties '
                                 f'FROM "{topic}"')
                if rows and rows[0]["events"] == 500:
                    break
            time.sleep(2)
        assert rows == [{"events": 500, "total": sum(range(500)), "parties": 7}]
        assert druid.supervisor_status(topic)["payload"]["recentErrors"] == []
    finally:
        druid.supervisor_action(topic, "terminate")
        druid.shutdown_tasks(topic)  # else the publishing task waits for a hand-off of dropped segments
        druid.drop_datasource(topic)
