"""The sink's partitions against the real broker: librdkafka's default partitioner is
``collector.sink.partition_for``, and a missing raw topic is refused, not created."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from collector_support import Topic
from confluent_kafka import Producer

import schemas
from clickpipe.config import load
from clickpipe.topics import delete_topics, partition_for
from collector.ids import new_id
from collector.sink import Sink, TopicUnavailable


@pytest.mark.parametrize("partitions", [4, 7])
def test_librdkafka_default_partitioner_is_crc32_of_the_key_modulo_the_partition_count(stack, partitions):
    topic = Topic(stack.kafka_bootstrap, partitions)
    # the collector's own party ids, Divolte's, and arbitrary bytes
    keys = ([new_id().encode() for _ in range(1000)] + [f"0:k{i}:party{i:05d}".encode() for i in range(500)]
            + [uuid.uuid4().bytes for _ in range(500)])
    placed: dict[bytes, int] = {}

    def delivered(err, msg) -> None:
        placed[msg.key()] = msg.partition()

    producer = Producer({"bootstrap.servers": stack.kafka_bootstrap})  # partitioner left at its default
    try:
        for key in keys:
            producer.produce(topic.name, b"x", key, on_delivery=delivered)
            producer.poll(0)
        assert producer.flush(30) == 0
        assert len(placed) == len(keys)
        assert set(placed.values()) == set(range(partitions))
        assert [k for k in keys if placed[k] != partition_for(k, partitions)] == []
    finally:
        topic.delete()


def test_a_sink_refuses_events_for_a_missing_topic_and_never_creates_it(stack):
    name = Topic.new_name()
    settings = load({"CLICKPIPE_KAFKA_BOOTSTRAP": stack.kafka_bootstrap, "CLICKPIPE_TOPIC_RAW": name})
    record = {**{f["name"]: f.get("default") for f in schemas.current("RawClick").source["fields"]},
              "server_time": 1, "source": "batch", "party_id": "party-000001", "event_id": "event-000001",
              "event_type": "pageView"}
    sink = Sink(settings)
    try:
        assert sink.ready() == (False, f"topic {name} unavailable")
        with pytest.raises(TopicUnavailable):
            asyncio.run(sink.send([record]))
        assert name not in sink._producer.list_topics(timeout=10).topics  # asking did not create it
        topic = Topic(stack.kafka_bootstrap, 3, name)
        deadline = time.monotonic() + 10
        while not sink.ready()[0]:
            assert time.monotonic() < deadline, sink.ready()
            time.sleep(0.2)
        assert asyncio.run(sink.send([record])) == 1
        assert sink.close(10) == 0
        [(msg, got)] = topic.consume(1, timeout=30)
        assert got == record and msg.partition() == partition_for(b"party-000001", 3)
    finally:
        sink.close(0)
        delete_topics(stack.kafka_bootstrap, [name])
