"""Private Druid datasources with known data, for the Druid tests and benchmarks (records
to put in them: :mod:`tests.support.records`).

Everything here talks to the real Kafka and Druid. Each :func:`private_env` call names its
own topics and datasources, so runs never share them with each other or with a real
deployment; :func:`private_druid` removes what it created.
"""

from __future__ import annotations

import itertools
import time
import uuid
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator, Mapping

from confluent_kafka import Producer

import schemas
from clickpipe.config import Settings, load
from clickpipe.config import settings as default_settings
from clickpipe.topics import delete_topics, ensure_topics
from druid import retention
from druid.client import DruidClient, DruidError


def private_env(prefix: str = "test-druid", **env: str) -> dict[str, str]:
    """``CLICKPIPE_*`` variables whose topics and datasources are unique to this call.

    Names are ``<prefix>-clicks-<random>``, ``<prefix>-sessions-<random>``, ``<prefix>-verdicts-<random>``
    (topic) and ``<prefix>-bot-sessions-<random>`` (datasource). Supervisors
    start fast and publish after ten minutes. Keyword overrides are given without the prefix.
    """
    tag = uuid.uuid4().hex[:8]
    base = {
        "TOPIC_ENRICHED": f"{prefix}-clicks-{tag}",
        "TOPIC_SESSIONS": f"{prefix}-sessions-{tag}",
        "DRUID_CLICKS_DATASOURCE": f"{prefix}-clicks-{tag}",
        "DRUID_SESSIONS_DATASOURCE": f"{prefix}-sessions-{tag}",
        "TOPIC_VERDICTS": f"{prefix}-verdicts-{tag}",
        "DRUID_BOT_SESSIONS_DATASOURCE": f"{prefix}-bot-sessions-{tag}",
        "DRUID_TASK_DURATION": "PT10M",
        "DRUID_START_DELAY": "PT1S",
        "DRUID_SUPERVISOR_PERIOD": "PT5S",
        "KAFKA_BOOTSTRAP": default_settings.kafka_bootstrap,
        "DRUID_ROUTER_URL": default_settings.druid_router_url,
        "DRUID_BROKER_URL": default_settings.druid_broker_url,
    }
    base.update(env)
    return {f"CLICKPIPE_{k}": v for k, v in base.items()}


def private_settings(prefix: str = "test-druid", **env: str) -> Settings:
    """Settings of :func:`private_env`."""
    return load(private_env(prefix, **env))


def produce_rows(settings: Settings, topic: str, schema: schemas.Schema, records: Iterable[Mapping[str, Any]],
                 per_message: int = 100) -> int:
    """Produce ``records`` as JSON rows of ``schema`` (:func:`schemas.encode_rows`), ``per_message``
    rows per Kafka message as the pipeline writes them; returns how many records."""
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap, "enable.idempotence": True,
                         "linger.ms": 20})
    # confluent_kafka's stubs take a list of (str, str | bytes | None) pairs, and lists are invariant
    headers: list[tuple[str, str | bytes | None]] = list(schema.row_headers)
    count = 0
    records = iter(records)
    while chunk := list(itertools.islice(records, per_message)):
        value = schemas.encode_rows(schema, chunk)
        while True:
            try:
                producer.produce(topic, value=value, headers=headers)
                break
            except BufferError:  # the local queue is full: let deliveries drain it
                producer.poll(0.1)
        count += len(chunk)
        producer.poll(0)
    assert producer.flush(60) == 0, "records still queued after 60 s"
    return count


def wait_for(probe: Callable[[], Any], done: Callable[[Any], bool], timeout: float = 120,
             interval: float = 1.0) -> Any:
    """Call ``probe`` until ``done(result)`` or ``timeout`` seconds; returns the last result.

    A :class:`DruidError` (the datasource is not queryable yet) counts as not done.
    """
    deadline = time.monotonic() + timeout
    result = None
    while time.monotonic() < deadline:
        try:
            result = probe()
        except DruidError as exc:
            result = exc
        else:
            if done(result):
                return result
        time.sleep(interval)
    return result


def count_rows(client: DruidClient, datasource: str) -> int | None:
    """SUM("count") of a datasource, or None while it is not queryable."""
    rows = client.sql(f'SELECT SUM("count") AS n FROM "{datasource}"')
    return rows[0]["n"] if rows else None


@contextmanager
def private_druid(cfg: Settings, partitions: int = 1, create_topics: bool = True) -> Iterator[DruidClient]:
    """Create ``cfg``'s three topics (unless ``create_topics`` is false: someone else owns them);
    on exit terminate their supervisors, drop their datasources, remove their retention rules and
    compaction configs, and delete the topics this created (the indexer's task slots are shared
    with everyone)."""
    topics = [cfg.topic_enriched, cfg.topic_sessions, cfg.topic_verdicts] if create_topics else []
    if topics:
        ensure_topics(cfg.kafka_bootstrap, topics, partitions)
    client = DruidClient(cfg)
    try:
        yield client
    finally:
        for ds in (cfg.druid_clicks_datasource, cfg.druid_sessions_datasource, cfg.druid_bot_sessions_datasource):
            for action in (lambda ds=ds: client.supervisor_action(ds, "terminate"),
                           lambda ds=ds: client.shutdown_tasks(ds),
                           lambda ds=ds: client.drop_datasource(ds),
                           lambda ds=ds: retention.remove(client, ds)):
                try:
                    action()
                except DruidError:
                    pass  # never created (the test failed before submitting it)
        if topics:
            delete_topics(cfg.kafka_bootstrap, topics)
