"""A three-broker Kafka loses the leader of its busiest raw partition mid-stream: HTTP → Druid
still counts every event exactly once.

The cluster is private (:class:`tests.support.cluster.PrivateCluster`: the code of
``clickpipe stack up --kafka-brokers 3``, its own ports and data), so killing a broker
disturbs no other test; Druid is the shared one, reading private datasources from the
private cluster with the whole bootstrap list. Every topic -- raw, outputs, changelogs,
consumer offsets, the transaction log -- has 3 replicas and min.insync.replicas 2.

Clients POST batches of events to a real collector that answers 2xx only once Kafka has
acknowledged them (``COLLECTOR_ACK_WAIT_MS``) and retry the same batch on 503, as the tag
does. While they send, the broker leading the raw partition with the most messages is
killed with SIGKILL and started again later on its data. Then: the collector answered only
2xx or 503, the pipeline worker (never restarted) is still running, and Druid's SUM(count)
equals the unique events sent -- nothing lost, nothing doubled.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field

import pytest
import requests
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from clickpipe.config import load
from clickpipe.topics import topic_configs
from druid import supervisors
from tests.druid.druid_support import run_cli
from tests.support.broker import wait_healthy
from tests.support.cluster import PrivateCluster
from tests.support.collector import CollectorProcess
from tests.support.druid import count_rows, private_druid, private_env, wait_for
from tests.support.pipeline import Run

PARTITIONS = 3
SENDERS = 3
PARTIES = 300
EVENTS_PER_REQUEST = 20
REQUEST_EVERY_S = 0.25  # per sender: 3 x 4 x 20 = 240 events/s offered
KILL_AT_S = 15
RESTART_AT_S = 40
TRAFFIC_S = 60
MAX_TRIES = 120  # per request, 0.5 s apart: a request that never gets a 2xx fails the test
PIPELINE_TOPICS = ("clicks.raw", "clicks.enriched", "clicks.sessions", "clicks.verdicts", "clicks.dead-letters")
HUMAN_UA = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/120.0.0.0 Safari/537.36")


@dataclass
class Traffic:
    """What the clients sent and what the collector answered."""

    sent: set = field(default_factory=set)  # (party, event id) of every batch answered 2xx
    statuses: list = field(default_factory=list)  # (time, status or exception name) of every answer
    refused: list = field(default_factory=list)  # batches that never got a 2xx
    lock: threading.Lock = field(default_factory=threading.Lock)


def send(url: str, sender: int, traffic: Traffic, stop: threading.Event) -> None:
    """Paced batches of new events; a batch answered 503 is sent again as is, after a pause."""
    http = requests.Session()
    n = 0
    while not stop.is_set():
        started = time.monotonic()
        events = [{"party_id": f"fo-party-{(n * EVENTS_PER_REQUEST + i) % PARTIES:03d}",
                   "event_id": f"s{sender}-r{n}-e{i}", "event_type": "pageView",
                   "location": f"https://shop.example.com/p/{i}"} for i in range(EVENTS_PER_REQUEST)]
        n += 1
        for _ in range(MAX_TRIES):
            response: requests.Response | None = None
            try:
                response = http.post(f"{url}/events", json=events, headers={"User-Agent": HUMAN_UA}, timeout=30)
                outcome: int | str = response.status_code
            except requests.RequestException as exc:
                outcome = type(exc).__name__
            with traffic.lock:
                traffic.statuses.append((time.monotonic(), outcome))
            if response is not None and 200 <= response.status_code < 300:
                assert response.json()["accepted"] == len(events), response.text
                with traffic.lock:
                    traffic.sent.update((e["party_id"], e["event_id"]) for e in events)
                break
            time.sleep(0.5)
        else:
            with traffic.lock:
                traffic.refused.append(events)
        time.sleep(max(0.0, REQUEST_EVERY_S - (time.monotonic() - started)))


def busiest_partition(bootstrap: str, topic: str) -> tuple[int, int, int]:
    """(partition, its message count, its leader's node id) of the raw partition holding most messages."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "failover-probe"})
    try:
        sizes = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(PARTITIONS)}
    finally:
        consumer.close()
    partition = max(sizes, key=lambda p: sizes[p])
    leader = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=10).topics[topic]
    return partition, sizes[partition], leader.partitions[partition].leader


def replication(bootstrap: str) -> dict[str, tuple[int, str, str]]:
    """(fewest replicas of a partition, min.insync.replicas, cleanup.policy) of the cluster's topics
    by kind: the run's topics by their kind (raw, enriched, ...), its tables' changelogs as
    ``changelog``, others by name."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topics = admin.list_topics(timeout=10).topics
    configs = topic_configs(admin, list(topics))
    kinds: dict[str, tuple[int, str, str]] = {}
    for name, meta in topics.items():
        kind = ("changelog" if name.endswith("-changelog") else name.rsplit(".", 1)[-1] if name.startswith("test.")
                else name)
        config = configs[name]
        found = (min(len(p.replicas) for p in meta.partitions.values()), config["min.insync.replicas"],
                 config["cleanup.policy"])
        assert kinds.setdefault(kind, found) == found, f"{name}: {found}, other {kind} topics: {kinds[kind]}"
    return kinds


def leader_of(bootstrap: str, topic: str, partition: int) -> int:
    meta = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0}).list_topics(topic, timeout=5)
    return meta.topics[topic].partitions[partition].leader


@pytest.fixture
def cluster(stack, tmp_path):
    cluster = PrivateCluster(stack, tmp_path / "kafka", count=3)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def run(cluster, tmp_path):
    with Run(cluster.settings.kafka_bootstrap, tmp_path, partitions=PARTITIONS, replication=3, env={
        "CLICKPIPE_PIPELINE_COMMIT_INTERVAL_MS": "500",
        "CLICKPIPE_BOT_MAX_IP_EVENTS": "1000000",  # every client is 127.0.0.1
    }, delete_topics_on_exit=False) as r:  # the topics go away with the cluster
        yield r


def test_leader_killed_mid_stream_loses_and_doubles_nothing(cluster, run):
    bootstrap = cluster.settings.kafka_bootstrap
    assert len(bootstrap.split(",")) == 3
    # The command line sees the same cluster (`clickpipe stack ... --kafka-brokers 3`) and
    # creates the pipeline's own topics on it.
    s = cluster.settings
    env = {"CLICKPIPE_STATE_DIR": str(s.state_dir), "CLICKPIPE_CACHE_DIR": str(s.cache_dir),
           "CLICKPIPE_KAFKA_PORT": str(s.kafka_port), "CLICKPIPE_KAFKA_CONTROLLER_PORT": str(s.kafka_controller_port)}
    created = run_cli(env, "stack", "topics", "--kafka-brokers", "3")
    assert created.returncode == 0 and f"created topics: {', '.join(PIPELINE_TOPICS)}" in created.stdout, created
    status = run_cli(env, "stack", "status", "--kafka-brokers", "3")
    assert {line.split()[0] for line in status.stdout.splitlines() if line.split()[-1:] == ["healthy"]} == {
        "kafka-1", "kafka-2", "kafka-3"}, status.stdout  # and the private state dir runs no Druid
    raw = run.topics["raw"]
    cfg = load(private_env("failover", KAFKA_BOOTSTRAP=bootstrap, TOPIC_ENRICHED=run.topics["enriched"],
                           TOPIC_SESSIONS=run.topics["sessions"]))
    with private_druid(cfg, create_topics=False) as client:
        supervisors.apply(client, cfg)
        worker = run.start_worker()
        run.wait_ready(worker)
        kinds = replication(bootstrap)
        expected = {"raw": (3, "2", "delete"), "enriched": (3, "2", "delete"), "erased": (3, "2", "compact"),
                    "changelog": (3, "2", "compact"), "__consumer_offsets": (3, "2", "compact"),
                    "__transaction_state": (3, "2", "compact"),
                    **{name: (3, "2", "delete") for name in PIPELINE_TOPICS}}
        assert {k: kinds.get(k) for k in expected} == expected
        collector = CollectorProcess({"CLICKPIPE_KAFKA_BOOTSTRAP": bootstrap, "CLICKPIPE_TOPIC_RAW": raw,
                                      "CLICKPIPE_COLLECTOR_ACK_WAIT_MS": "3000"})
        traffic, stop = Traffic(), threading.Event()
        senders = [threading.Thread(target=send, args=(collector.url, i, traffic, stop)) for i in range(SENDERS)]
        try:
            collector.wait_ready()
            began = time.monotonic()
            for t in senders:
                t.start()
            time.sleep(KILL_AT_S)
            partition, messages, node = busiest_partition(bootstrap, raw)
            assert messages > 0, "no traffic reached Kafka before the kill"
            cluster.kill_9(node)
            killed = time.monotonic()
            sent_at_kill = len(traffic.sent)
            new_leader = wait_for(lambda: leader_of(bootstrap, raw, partition), lambda n: n not in (node, -1), 60, 0.5)
            moved = time.monotonic() - killed
            assert new_leader not in (node, -1), "leadership never moved off the killed broker"
            time.sleep(max(0.0, began + RESTART_AT_S - time.monotonic()))
            sent_while_down = len(traffic.sent) - sent_at_kill
            cluster.broker(node).start()
            wait_healthy(cluster.broker(node))
            back = time.monotonic() - killed
            time.sleep(max(0.0, began + TRAFFIC_S - time.monotonic()))
        finally:
            stop.set()
            for t in senders:
                t.join(timeout=120)
            assert collector.stop() == 0, collector.output()

        statuses = [s for _, s in traffic.statuses]
        unexpected = sorted({str(s) for s in statuses if not (isinstance(s, int) and (200 <= s < 300 or s == 503))})
        assert not unexpected, f"the collector answered {unexpected} (only 2xx or 503 allowed)"
        assert not traffic.refused, f"{len(traffic.refused)} batches never accepted"
        assert worker.poll() is None, f"the worker died ({worker.returncode}); see {worker.log_path}"
        assert sent_while_down > 0, "nothing was accepted while the broker was down"

        unique = len(traffic.sent)
        counts: list = []
        wait_for(lambda: counts.append(count_rows(client, cfg.druid_clicks_datasource)) or counts[-3:],
                 lambda last: len(last) == 3 and last[0] == last[1] == last[2] == unique, 240, interval=3)
        answered = [t for t, s in traffic.statuses if isinstance(s, int) and s < 300]
        gap = max((b - a for a, b in itertools.pairwise(answered)), default=0.0)
        print(f"\nbroker failover: killed node {node}, leader of raw partition {partition} ({messages} messages); "
              f"new leader node {new_leader} after {moved:.1f}s; node back {back:.1f}s after the kill; "
              f"{unique} unique events sent, {sent_while_down} accepted while it was down; "
              f"{statuses.count(503)} answers 503 of {len(statuses)}; longest time without a 2xx {gap:.1f}s; "
              f"Druid SUM(count) {counts[-1]}")
        assert counts[-1] == unique, f"Druid counts {counts[-1]}, {unique} unique events were sent"
