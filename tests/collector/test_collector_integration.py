"""A real collector process against the real broker: every endpoint reaches Kafka."""

from __future__ import annotations

import itertools
import signal
import time
import uuid
from urllib.parse import urlencode

import pytest
import requests
from collector_support import Topic, divolte_signed

from clickpipe.topics import partition_for
from tests.support.collector import CollectorProcess

N = 20  # events per endpoint


@pytest.fixture(scope="module")
def live(stack):
    topic = Topic(stack.kafka_bootstrap)
    server = CollectorProcess({"CLICKPIPE_TOPIC_RAW": topic.name, "CLICKPIPE_COLLECTOR_WORKERS": "2"})
    try:
        server.wait_ready()
        yield server, topic
    finally:
        server.stop()
        topic.delete()


def test_every_endpoint_reaches_the_raw_topic_in_the_partition_of_its_party(live):
    server, topic = live
    run = uuid.uuid4().hex[:8]
    sent: dict[str, tuple[str | None, str]] = {}  # event id -> (party id or None if cookie, source)

    # batch from a server: explicit party ids; with no trusted proxy (the default) a forged
    # X-Forwarded-For must change nothing: the server itself must not apply it either
    batch = [{"party_id": f"srv-{run}-{i % 3}", "event_id": f"b-{run}-{i:03d}", "event_type": "order"}
             for i in range(N)]
    r = requests.post(server.url + "/events", json=batch, timeout=10, headers={"X-Forwarded-For": "203.0.113.9"})
    assert r.status_code == 200 and r.json() == {"accepted": N, "rejected": []}
    sent.update({e["event_id"]: (e["party_id"], "batch") for e in batch})

    # the tag's path: /events?via=tag with the party in the server-set cookie
    browser = requests.Session()
    for i in range(N):
        event = {"event_id": f"t-{run}-{i:03d}", "event_type": "pageView", "location": "http://127.0.0.1/x"}
        r = browser.post(server.url + "/events?via=tag", json=[event], timeout=10)
        assert r.status_code == 200
        sent[event["event_id"]] = (None, "tag")
    tag_party = browser.cookies["_cpp"]

    # the pixel, from another "browser"
    mail = requests.Session()
    for i in range(N):
        query = urlencode({"event_id": f"p-{run}-{i:03d}", "event_type": "emailOpen", "params.campaign": "c1"})
        r = mail.get(f"{server.url}/p.gif?{query}", timeout=10)
        assert r.status_code == 200 and r.headers["Content-Type"] == "image/gif"
        sent[f"p-{run}-{i:03d}"] = (None, "pixel")
    pixel_party = mail.cookies["_cpp"]

    # Divolte's tag
    for i in range(N):
        pairs = divolte_signed(
            [("p", f"0:k1:dvparty{run}"), ("s", f"0:k1:dvsession{run}"), ("v", f"0:dvpv{run}"),
             ("e", f"d-{run}-{i:03d}"), ("c", "k1"), ("n", "f"), ("f", "f"), ("t", "pageView")]
        )
        r = requests.get(f"{server.url}/csc-event?{urlencode(pairs)}", timeout=10)
        assert r.status_code == 200 and "X-Clickpipe-Corrupted" not in r.headers
        sent[f"d-{run}-{i:03d}"] = (f"0:k1:dvparty{run}", "divolte")

    events = topic.consume(len(sent))
    records = {}
    for msg, record in events:
        # batches carry no key; each sits in the partition librdkafka's default partitioner gives its party
        assert msg.key() is None and msg.partition() == partition_for(record["party_id"].encode(), 4)
        records[record["event_id"]] = record
    assert len(events) == len(sent) == 4 * N
    # one request's events of one partition share a message: the batch's 3 parties make at most 3
    assert len({(msg.partition(), msg.offset()) for msg, r in events if r["source"] == "batch"}) <= 3
    assert set(records) == set(sent)
    for event_id, (party, source) in sent.items():
        record = records[event_id]
        assert record["source"] == source
        expected_party = party or (tag_party if source == "tag" else pixel_party)
        assert record["party_id"] == expected_party
        assert record["corrupted"] is False and record["ip"] == "127.0.0.1"
    assert all(r["params"] == {"campaign": "c1"} for r in records.values() if r["source"] == "pixel")


def test_ready_and_metrics_sum_the_workers(live):
    server, _ = live
    assert requests.get(server.url + "/readyz", timeout=5).json()["ready"] is True
    before = _accepted(server)
    for _ in range(10):  # spread over both workers by the kernel
        requests.post(server.url + "/events", json=[{"party_id": "metrics-party-1"}], timeout=10)
    assert _accepted(server) == before + 10
    text = requests.get(server.url + "/metrics", timeout=5).text
    assert "clickpipe_collector_produce_latency_seconds_count" in text


def _accepted(server) -> float:
    text = requests.get(server.url + "/metrics", timeout=5).text
    return sum(
        float(line.split()[-1]) for line in text.splitlines()
        if line.startswith("clickpipe_collector_accepted_events_total{")
    )


def test_sigterm_flushes_everything_accepted(stack):
    topic = Topic(stack.kafka_bootstrap)
    server = CollectorProcess({"CLICKPIPE_TOPIC_RAW": topic.name})
    try:
        server.wait_ready()
        accepted = 0
        for i in range(50):
            batch = [{"party_id": "sigterm-party", "event_id": f"sigterm-{i:03d}-{j}"} for j in range(20)]
            accepted += requests.post(server.url + "/events", json=batch, timeout=10).json()["accepted"]
        assert server.stop() == 0
        assert len({r["event_id"] for r in topic.records(accepted)}) == accepted == 1000
        assert "flushed Kafka producer (0 events left)" in server.output()
    finally:
        server.stop()
        topic.delete()


def test_sighup_replaces_the_workers_and_loses_nothing(stack):
    """gunicorn's graceful reload: new workers start, the old ones drain and flush their sinks,
    and a client sending all along loses no accepted event."""
    topic = Topic(stack.kafka_bootstrap)
    server = CollectorProcess({"CLICKPIPE_TOPIC_RAW": topic.name})
    try:
        server.wait_ready()
        session = requests.Session()
        accepted: list[str] = []
        sent = itertools.count()

        def post() -> None:
            batch = [{"party_id": "sighup-party", "event_id": f"sighup-{next(sent):05d}"} for _ in range(10)]
            try:
                r = session.post(server.url + "/events", json=batch, timeout=10)
            except requests.ConnectionError:  # a kept-alive connection to an old worker closed: send anew
                session.close()
                return
            if r.status_code == 200:
                accepted.extend(e["event_id"] for e in batch[: r.json()["accepted"]])

        for _ in range(30):
            post()
        server.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 60
        while server.output().count("flushed Kafka producer") < 2 and time.monotonic() < deadline:
            post()
            time.sleep(0.05)
        for _ in range(30):
            post()
        assert server.output().count("flushed Kafka producer (0 events left)") == 2  # the old workers
        assert server.stop() == 0
        consumed = [r["event_id"] for r in topic.records(len(accepted))]
        assert server.output().count("Booting worker") == 4  # two at start, two after the reload
        assert len(accepted) >= 600 and sorted(consumed) == sorted(accepted)
    finally:
        server.stop()
        topic.delete()
