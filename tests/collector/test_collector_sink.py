"""collector.sink over an in-memory producer: batching by partition, its bounds, acknowledgement
waits, backpressure and shutdown. (The partitioner and a missing topic against the real broker:
test_collector_partitions.py.)"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from functools import partial

import pytest
from collector_support import MemoryProducer
from confluent_kafka import KafkaError, KafkaException
from prometheus_client import REGISTRY

import schemas
from clickpipe.config import load
from clickpipe.topics import partition_for
from collector.sink import NotDelivered, QueueFull, Sink, TopicUnavailable

LONG = "60000"  # a linger no test waits for: what is produced before close() was due for another reason


def make_sink(producer=MemoryProducer, **env: str) -> tuple[Sink, MemoryProducer]:
    """A sink on ``producer`` (a factory of :class:`MemoryProducer`), configured by ``env``:
    ``batch_linger_ms="0"`` stands for CLICKPIPE_COLLECTOR_BATCH_LINGER_MS=0."""
    settings = load({f"CLICKPIPE_COLLECTOR_{k.upper()}": v for k, v in env.items()})
    sink = Sink(settings, producer)
    return sink, sink._producer


def record(party: str, n: int, location: str | None = None) -> dict:
    """A RawClick as the collector builds it, with the schema's defaults."""
    fields = schemas.current("RawClick").source["fields"]
    return {**{f["name"]: f.get("default") for f in fields}, "server_time": 1, "source": "batch",
            "party_id": party, "event_id": f"{party}-{n:06d}", "event_type": "pageView", "location": location}


def sizes(producer: MemoryProducer) -> list[int]:
    return [len(schemas.raw_events(m.value, m.headers)) for m in producer.messages]


def send(sink: Sink, records: list[dict]) -> int:
    """:meth:`Sink.send` from synchronous code (each call runs its own event loop, as one request)."""
    return asyncio.run(sink.send(records))


def wait_until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


PARTIES = [f"party-{i:04d}" for i in range(40)]


def test_events_are_grouped_by_the_partition_of_their_party_in_order():
    sink, producer = make_sink(batch_linger_ms=LONG)
    records = [record(PARTIES[i % 40], i) for i in range(200)]
    assert send(sink, records[:120]) == 120 and send(sink, records[120:]) == 80
    assert producer.messages == []  # lingering: nothing is full
    assert sink.close(5) == 0
    assert sorted(m.partition for m in producer.messages) == [0, 1, 2, 3]  # one message per partition
    for message in producer.messages:
        assert message.key is None and message.headers == schemas.current("RawBatch").headers
    events = producer.events()
    assert all(p == partition_for(r["party_id"].encode(), 4) for p, r in events)
    for party in PARTIES:
        assert [r["event_id"] for _, r in events if r["party_id"] == party] == \
               [r["event_id"] for r in records if r["party_id"] == party]


def test_a_full_batch_is_produced_at_once_and_a_partitions_batches_keep_their_order():
    sink, producer = make_sink(batch_linger_ms=LONG, batch_max_events="3")
    assert send(sink, [record("party-0001", i) for i in range(7)]) == 7
    assert sizes(producer) == [3, 3]
    sink.close(5)
    assert sizes(producer) == [3, 3, 1]
    assert [r["event_id"] for r in producer.records()] == [f"party-0001-{i:06d}" for i in range(7)]


def test_a_batch_stays_within_the_byte_bound_and_a_larger_event_travels_alone():
    sink, producer = make_sink(batch_linger_ms=LONG, batch_max_bytes="1024")
    small = [record("party-0001", i, "http://shop.example/p/1") for i in range(30)]
    big = record("party-0001", 99, "http://shop.example/" + "x" * 2000)
    send(sink, small[:15] + [big] + small[15:])
    closed = len(producer.messages)  # a batch is produced as soon as an event did not fit
    sink.close(5)
    assert closed == len(producer.messages) - 1 >= 4
    encoded = [[len(e) for e, _ in schemas.raw_events(m.value, m.headers)] for m in producer.messages]
    assert [e for e in encoded if max(e) > 1024] == [[len(schemas.encode(sink.schema, big))]]
    assert all(sum(e) <= 1024 for e in encoded if max(e) <= 1024)
    # each batch was closed by the first event that did not fit
    assert all(sum(e) + following[0] > 1024 for e, following in zip(encoded, encoded[1:], strict=False))
    assert [r["event_id"] for r in producer.records()] == [r["event_id"] for r in small[:15] + [big] + small[15:]]


def test_a_lingering_batch_is_produced_by_the_flusher_after_the_linger():
    sink, producer = make_sink(batch_linger_ms="200")
    sent = time.monotonic()
    send(sink, [record("party-0001", 0)])
    wait_until(lambda: producer.messages)
    assert 0.2 <= time.monotonic() - sent < 2.0
    wait_until(lambda: sink.depth() == 0)  # then its delivery report came in
    sink.close(0)


def test_batches_gather_the_events_of_concurrent_requests():
    sink, producer = make_sink(batch_linger_ms="2000")
    start = threading.Barrier(8)

    def request(t: int) -> None:
        start.wait()
        assert send(sink, [record("party-0001", 10 * t + i) for i in range(10)]) == 10

    threads = [threading.Thread(target=request, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sink.close(5)
    assert sizes(producer) == [80]


def test_with_an_ack_wait_send_returns_once_every_batch_of_the_request_was_acknowledged():
    sink, producer = make_sink(batch_linger_ms="50", batch_max_events="2", ack_wait_ms="2000")
    assert send(sink, [record(PARTIES[i % 5], i) for i in range(11)]) == 11
    assert sum(sizes(producer)) == 11 and len(producer.messages) >= 6  # several batches, several partitions
    assert len(producer) == 0 and sink.depth() == 0  # every report came in before send returned
    sink.close(0)


class RefusesPartition0(MemoryProducer):
    def verdict(self, message):
        return "Broker: Not enough replicas" if message.partition == 0 else None


class NeverReportsPartition0(MemoryProducer):
    def verdict(self, message):
        return self.HOLD if message.partition == 0 else None


@pytest.mark.parametrize("producer_class, detail", [(RefusesPartition0, "Kafka refused {n} event(s)"),
                                                    (NeverReportsPartition0, "did not acknowledge within 0.3 s")])
def test_with_an_ack_wait_one_refused_or_late_batch_fails_the_request(producer_class, detail):
    sink, producer = make_sink(producer_class, batch_linger_ms="10", batch_max_events="2", ack_wait_ms="300")
    records = [record(p, i) for i, p in enumerate(PARTIES[:12])]
    in_partition_0 = sum(partition_for(r["party_id"].encode(), 4) == 0 for r in records)
    assert 0 < in_partition_0 < len(records)
    with pytest.raises(NotDelivered, match=re.escape(detail.format(n=in_partition_0))):
        send(sink, records)
    assert {m.partition for m in producer.messages} == {0, 1, 2, 3}
    sink.close(0)


def test_an_error_at_produce_time_refuses_the_batch():
    class UnknownPartition(MemoryProducer):
        def produce(self, *args, **kwargs):
            raise KafkaException(KafkaError(KafkaError._UNKNOWN_PARTITION))

    def failures() -> float:
        return REGISTRY.get_sample_value("clickpipe_collector_delivery_failures_total") or 0.0

    before = failures()
    sink, _ = make_sink(UnknownPartition, ack_wait_ms="1000")
    with pytest.raises(NotDelivered, match="refused 3 event"):
        send(sink, [record("party-0001", i) for i in range(3)])
    assert sink.depth() == 0 and failures() == before + 3
    sink.close(0)


def test_the_queue_counts_events_in_batches_and_in_unacknowledged_messages():
    sink, producer = make_sink(batch_linger_ms=LONG, batch_max_events="50", queue_max="100")
    producer.deliver = False
    assert send(sink, [record("party-0001", i) for i in range(60)]) == 60
    assert sizes(producer) == [50] and sink.depth() == 60  # 50 in the producer, 10 in a batch
    assert send(sink, [record("party-0002", i) for i in range(50)]) == 40  # the room left
    with pytest.raises(QueueFull):
        send(sink, [record("party-0003", 0)])
    assert sink.ready() == (False, "queue full")
    producer.deliver = True
    wait_until(lambda: sink.depth() == 100 - 50)  # the full batch was acknowledged
    assert send(sink, [record("party-0003", 0)]) == 1
    sink.close(0)


def test_a_batch_the_producer_has_no_room_for_is_kept_and_produced_later():
    sink, producer = make_sink(partial(MemoryProducer, capacity=1, deliver=False), batch_linger_ms="0")
    assert send(sink, [record("party-0001", 0)]) == 1
    assert send(sink, [record("party-0001", 1)]) == 1  # accepted: it waits in its batch
    assert send(sink, [record("party-0001", 2)]) == 1  # joins the waiting batch
    assert sizes(producer) == [1] and sink.depth() == 3
    producer.capacity, producer.deliver = None, True
    wait_until(lambda: sink.depth() == 0)
    assert sizes(producer) == [1, 2]
    assert [r["event_id"] for r in producer.records()] == [f"party-0001-{i:06d}" for i in range(3)]
    sink.close(0)


def test_close_produces_every_batch_and_flushes_the_producer():
    sink, producer = make_sink(batch_linger_ms=LONG)
    producer.deliver = False
    send(sink, [record(p, i) for i, p in enumerate(PARTIES)])
    assert producer.messages == []
    assert sink.close(0.2) == 40  # produced, but never acknowledged: reported as left
    assert sum(sizes(producer)) == 40
    sink, producer = make_sink(batch_linger_ms=LONG)
    send(sink, [record(p, i) for i, p in enumerate(PARTIES)])
    assert sink.close(5) == 0 and len(producer.records()) == 40


def test_without_the_topic_events_are_refused_until_it_appears():
    sink, producer = make_sink(partial(MemoryProducer, partitions=0))
    assert sink.ready() == (False, "topic clicks.raw unavailable")
    with pytest.raises(TopicUnavailable, match="topic clicks.raw unavailable"):
        send(sink, [record("party-0001", 0)])
    producer.partitions = 4

    def accepted() -> bool:
        try:
            return send(sink, [record("party-0001", 0)]) == 1
        except TopicUnavailable:
            return False

    wait_until(accepted)  # the flusher asks again every second
    assert sink.ready() == (True, "ok")
    sink.close(1)


def test_with_an_ack_wait_batches_do_not_linger_past_the_event_loop_round_of_their_requests():
    sink, producer = make_sink(batch_linger_ms="5000", ack_wait_ms="5000")

    async def requests() -> list[int]:
        # Requests that run in the same round of the loop share a batch, produced at its end.
        together = await asyncio.gather(*(sink.send([record("party-0001", i)]) for i in range(3)))
        alone = await sink.send([record("party-0001", 3)])
        return [*together, alone]

    started = time.monotonic()
    assert asyncio.run(requests()) == [1, 1, 1, 1]
    assert time.monotonic() - started < 2.5  # the linger was not waited out
    assert sizes(producer) == [3, 1]
    assert [r["event_id"] for r in producer.records()] == [f"party-0001-{i:06d}" for i in range(4)]
    sink.close(0)
