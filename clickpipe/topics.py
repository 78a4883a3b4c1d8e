"""Creating Kafka topics the project owns, and waiting until the cluster serves them.

Used by ``clickpipe stack topics`` (the pipeline's topics), by a starting worker (its
tables' changelog topics), and by tests and benchmarks for their own topics. Keyed state is
partition-local, so a topic that exists with another partition count than configured is an
error, never silently used; so is one with fewer replicas than configured (more durability
was asked for than it has). Topic configs (retention, min.insync.replicas) are set at
creation and, on a topic that exists, altered where they differ: the settings stay the
single source of truth.
"""

from __future__ import annotations

import time
import zlib
from typing import Callable

from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic

from clickpipe.config import Settings

HOUR_MS = 3600 * 1000


def _retention(hours: int) -> dict[str, str]:
    return {"cleanup.policy": "delete", "retention.ms": str(hours * HOUR_MS if hours >= 0 else -1)}


def pipeline_topics(settings: Settings) -> list[tuple[list[str], dict[str, str]]]:
    """The pipeline's topics with their configs, in groups that share one.

    The raw topic keeps events longest (it is the history ``clickpipe replay`` re-reads);
    the enriched, sessions and verdicts topics only have to outlive a Druid outage; dead letters stay
    for inspection. Every topic requires ``kafka_min_insync_replicas`` replicas per write and
    is stored with ``topic_compression``.
    """
    s = settings
    isr = {"min.insync.replicas": str(s.kafka_min_insync_replicas), "compression.type": s.topic_compression}
    return [
        ([s.topic_raw], {**_retention(s.topic_raw_retention_hours), **isr}),
        ([s.topic_enriched, s.topic_sessions, s.topic_verdicts], {**_retention(s.topic_output_retention_hours), **isr}),
        ([s.topic_dead_letters], {**_retention(s.topic_dead_letters_retention_hours), **isr}),
    ]


def changelog_config(settings: Settings, config: dict[str, str]) -> dict[str, str]:
    """``config`` of a table's changelog topic (compacted: the latest value per key is its
    state) with the configured ``min.insync.replicas`` and compression."""
    return {**config, "min.insync.replicas": str(settings.kafka_min_insync_replicas),
            "compression.type": settings.topic_compression}


def partition_for(key: bytes, partitions: int) -> int:
    """The partition librdkafka's default partitioner (``consistent_random``) gives a non-empty ``key``.

    CRC-32 of the key modulo the partition count: producers that batch events of one
    partition into one message must put each key where single-event producers put it.
    """
    return zlib.crc32(key) % partitions


class TopicError(Exception):
    """A topic could not be created, has the wrong partition count, or never became ready."""


Altered = Callable[[str, str, "str | None", str], None]


def ensure_topics(bootstrap: str, names: list[str], partitions: int, config: dict[str, str] | None = None,
                  timeout: float = 30.0, replication: int = 1, altered: Altered | None = None) -> list[str]:
    """Create the missing topics of ``names``; return once all are served with leaders. Returns those created.

    A topic is created with ``replication`` replicas and ``config``; on one that exists, the
    entries of ``config`` whose value differs are set (incremental alter), and ``altered`` is
    told of each (topic, key, old value, new value).

    "Served" means the cluster's metadata lists ``partitions`` partitions for each topic, each
    with a leader: a client whose first metadata request comes after this sees every topic
    whole. A consumer group that assigns partitions from a picture missing one of its topics
    keeps that assignment until the next rebalance. Raises :class:`TopicError` naming the
    topic on a partition-count mismatch, a failed creation, or after ``timeout`` seconds.
    """
    client = AdminClient({"bootstrap.servers": bootstrap, "log_level": 4})
    deadline = time.monotonic() + timeout
    existing = _describe(client, names, timeout, partitions)
    missing = [n for n in names if n not in existing]
    if missing:
        futures = client.create_topics([NewTopic(n, num_partitions=partitions, replication_factor=replication,
                                                 config=dict(config or {})) for n in missing])
        for name, future in futures.items():
            try:
                future.result(timeout=timeout)
            except Exception as exc:  # noqa: BLE001 - a concurrent creator is fine
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise TopicError(f"creating topic {name} failed: {exc}") from exc
    present = [n for n in names if n in existing]
    _check_replicas(client, present, replication, timeout)
    if config and present:
        set_configs(client, present, config, timeout, altered)
    while True:
        served = _describe(client, names, max(deadline - time.monotonic(), 1.0), partitions)
        waiting = [n for n in names if served.get(n) != partitions]
        if not waiting:
            return missing
        if time.monotonic() > deadline:
            raise TopicError(f"topics {', '.join(waiting)} have no leader for every partition after {timeout:.0f}s")
        time.sleep(0.2)


def _check_replicas(client: AdminClient, names: list[str], replication: int, timeout: float) -> None:
    topics = _list_topics(client, timeout)
    for name in names:
        meta = topics.get(name)
        if meta is None:
            continue
        replicas = min((len(p.replicas) for p in meta.partitions.values()), default=replication)
        if replicas < replication:
            raise TopicError(f"topic {name} has {replicas} replicas, configured {replication}; add replicas "
                             f"(kafka-reassign-partitions) or recreate it")


def topic_configs(client: AdminClient, names: list[str], timeout: float = 30.0) -> dict[str, dict[str, str]]:
    """Each topic's effective config (every key, defaults included), by topic name."""
    futures = client.describe_configs([ConfigResource("topic", n) for n in names], request_timeout=timeout)
    out = {}
    for resource, future in futures.items():
        try:
            entries = future.result(timeout=timeout)
        except Exception as exc:  # noqa: BLE001 - KafkaException
            raise TopicError(f"describing topic {resource.name} failed: {exc}") from exc
        out[resource.name] = {k: e.value for k, e in entries.items()}
    return out


def set_configs(client: AdminClient, names: list[str], config: dict[str, str], timeout: float = 30.0,
                altered: Altered | None = None) -> list[tuple[str, str, str | None, str]]:
    """Set the entries of ``config`` that differ on each topic of ``names``; returns the changes made
    as (topic, key, old, new). Idempotent: a second call changes nothing."""
    current = topic_configs(client, names, timeout)
    changes = [(name, key, current[name].get(key), value) for name in names
               for key, value in config.items() if current[name].get(key) != value]
    if not changes:
        return []
    resources = []
    for name in dict.fromkeys(c[0] for c in changes):
        entries = [ConfigEntry(key, new, incremental_operation=AlterConfigOpType.SET)
                   for topic, key, _, new in changes if topic == name]
        resources.append(ConfigResource("topic", name, incremental_configs=entries))
    for resource, future in client.incremental_alter_configs(resources, request_timeout=timeout).items():
        try:
            future.result(timeout=timeout)
        except Exception as exc:  # noqa: BLE001 - KafkaException
            raise TopicError(f"setting the config of topic {resource.name} failed: {exc}") from exc
    if altered:
        for change in changes:
            altered(*change)
    return changes


def _describe(client: AdminClient, names: list[str], timeout: float, partitions: int) -> dict[str, int]:
    """For each of ``names`` the cluster lists: how many of its partitions have a leader.

    Raises :class:`TopicError` if one has a partition count other than 0 (being created) and ``partitions``.
    """
    topics = _list_topics(client, timeout)
    led = {}
    for name in names:
        meta = topics.get(name)
        if meta is None or meta.error is not None:
            continue
        if len(meta.partitions) not in (0, partitions):
            raise TopicError(f"topic {name} has {len(meta.partitions)} partitions, configured {partitions}; "
                             f"change CLICKPIPE_PARTITIONS or recreate it")
        led[name] = sum(1 for p in meta.partitions.values() if p.leader >= 0 and p.error is None)
    return led


def _list_topics(client: AdminClient, timeout: float) -> dict:
    """The cluster's topic metadata by name; :class:`TopicError` if Kafka does not answer."""
    try:
        return client.list_topics(timeout=timeout).topics
    except Exception as exc:  # noqa: BLE001 - KafkaException: broker unreachable
        raise TopicError(f"Kafka metadata unavailable: {exc}") from exc


def delete_topics(bootstrap: str, names: list[str], prefix: str | None = None, timeout: float = 30.0) -> list[str]:
    """Delete ``names`` and, if ``prefix`` is given, every topic whose name starts with it; returns what was deleted.

    For cleaning up after tests and benchmarks: a topic that is already gone is not an error.
    """
    client = AdminClient({"bootstrap.servers": bootstrap, "log_level": 4})
    names = list(names)
    if prefix is not None:
        names += sorted(t for t in _list_topics(client, timeout) if t.startswith(prefix) and t not in names)
    if not names:
        return []
    deleted = []
    for name, future in client.delete_topics(names, operation_timeout=timeout).items():
        try:
            future.result(timeout=timeout)
            deleted.append(name)
        except Exception as exc:  # noqa: BLE001 - KafkaException
            if "UNKNOWN_TOPIC_OR_PART" not in str(exc):
                raise TopicError(f"deleting topic {name} failed: {exc}") from exc
    return deleted
