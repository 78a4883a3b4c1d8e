"""clickpipe.topics.ensure_topics against the real broker, and the worker's changelog topics."""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from clickpipe.topics import TopicError, delete_topics, ensure_topics


@pytest.fixture
def admin(stack):
    client = AdminClient({"bootstrap.servers": stack.kafka_bootstrap})
    names: list[str] = []
    yield client, names
    delete_topics(stack.kafka_bootstrap, names)


def new_names(names: list[str], n: int) -> list[str]:
    tag = uuid.uuid4().hex[:8]
    names += [f"test.topics.{tag}.{i}" for i in range(n)]
    return names[-n:]


def test_missing_topics_are_created_served_and_configured_once(stack, admin):
    client, names = admin
    mine = new_names(names, 2)
    assert ensure_topics(stack.kafka_bootstrap, mine, 3, {"cleanup.policy": "compact"}) == mine
    # returned only once every partition has a leader: a fresh client sees them whole at once
    fresh = AdminClient({"bootstrap.servers": stack.kafka_bootstrap}).list_topics(timeout=10).topics
    for name in mine:
        assert sorted(fresh[name].partitions) == [0, 1, 2]
        assert all(p.leader >= 0 for p in fresh[name].partitions.values())
    configs = client.describe_configs([ConfigResource("topic", name) for name in mine])
    assert {f.result(10)["cleanup.policy"].value for f in configs.values()} == {"compact"}
    assert ensure_topics(stack.kafka_bootstrap, mine, 3) == []


def test_a_topic_with_another_partition_count_is_an_error_naming_it(stack, admin):
    client, names = admin
    (name,) = new_names(names, 1)
    client.create_topics([NewTopic(name, num_partitions=2, replication_factor=1)])[name].result(30)
    with pytest.raises(TopicError, match=f"topic {name} has 2 partitions, configured 4"):
        ensure_topics(stack.kafka_bootstrap, [name], 4)


def test_delete_topics_removes_names_and_prefixed_topics_and_tolerates_missing_ones(stack, admin):
    _, names = admin
    a, b, c = new_names(names, 3)
    ensure_topics(stack.kafka_bootstrap, [a, b, c], 1)
    prefix = b.rsplit(".", 1)[0] + "."
    gone = f"{prefix}never-created"
    assert sorted(delete_topics(stack.kafka_bootstrap, [a, gone], prefix=prefix)) == sorted([a, b, c])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        listed = AdminClient({"bootstrap.servers": stack.kafka_bootstrap}).list_topics(timeout=10).topics
        if not {a, b, c} & set(listed):
            break
        time.sleep(0.2)
    assert not {a, b, c} & set(listed)
    assert delete_topics(stack.kafka_bootstrap, [a]) == []


def test_an_unreachable_broker_is_a_clear_error_within_the_timeout():
    start = time.monotonic()
    with pytest.raises(TopicError, match="Kafka metadata unavailable"):
        ensure_topics("127.0.0.1:1", ["anything"], 1, timeout=2)
    assert time.monotonic() - start < 30
