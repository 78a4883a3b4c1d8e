"""Plain confluent-kafka pass-through: the baseline of the pipeline benchmark.

One process, no framework: consume raw messages in batches, read each one's events
(:func:`schemas.raw_events`), decode each event alone (:func:`steps.decode.decode`, as the
worker does), write each decoded dict as a JSON row (orjson) and produce one message of
newline-delimited rows per input message, to the same partition number of the output topic.
No steps, no tables, no transactions (offsets auto-committed: at-least-once). The Faust
pass-through (bench/pipeline_passthrough.py) does the same work per message with
:func:`passthrough`.

Usage: python -m bench.confluent_passthrough --bootstrap HOST:PORT --source TOPIC --output TOPIC --events N
(prints one JSON object: throughput between 10 % and 90 % of the events, peak RSS).
"""

from __future__ import annotations

import argparse
import json
import re
import time
import uuid
from pathlib import Path
from typing import Iterable, cast

import orjson
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

import schemas
from steps import Drop
from steps.decode import decode

ROW_HEADERS = schemas.current("RawClick").row_headers
# the stub wants exactly list[tuple[str, str | bytes | None]] (list is invariant); bytes values are what it takes
PRODUCE_HEADERS = cast("list[tuple[str, str | bytes | None]]", ROW_HEADERS)


def passthrough(value: bytes | None, headers: Iterable[tuple[str, bytes | None]] | None) -> tuple[bytes, int]:
    """(JSON rows of the message's decodable events, how many events it held)."""
    try:
        events = schemas.raw_events(value, headers)
    except schemas.SchemaError:
        return b"", 1
    rows = []
    for event, event_headers in events:
        try:
            rows.append(orjson.dumps(decode(event, event_headers)))
        except Drop:
            continue
    return b"\n".join(rows), len(events)


def rss_peak_bytes() -> int:
    text = Path("/proc/self/status").read_text()
    match = re.search(r"^VmHWM:\s+(\d+) kB", text, re.M)
    assert match is not None, "no VmHWM in /proc/self/status"
    return int(match.group(1)) * 1024


def run(bootstrap: str, source: str, output: str, events: int, partitions: int, batch: int, timeout: float) -> dict:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-passthrough-{uuid.uuid4().hex[:8]}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": True,
                         "isolation.level": "read_committed"})
    # assigned, not subscribed: no group join in the measurement (offsets still committed to the group)
    consumer.assign([TopicPartition(source, p, 0) for p in range(partitions)])
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": "all",
                         "batch.size": 256 * 1024})
    done = 0
    messages = 0
    marks: dict[float, tuple[float, int, float]] = {}  # fraction -> (first time reached, events then, CPU time)
    fractions = (0.1, 0.9)
    started = time.monotonic()
    deadline = started + timeout
    try:
        while done < events and time.monotonic() < deadline:
            batch_msgs = consumer.consume(num_messages=batch, timeout=0.5)
            for msg in batch_msgs:
                if msg.error() is not None:
                    raise KafkaException(msg.error())
                # a consumed message's headers are a list of (str, bytes | None), never the dict the stub allows
                value, n = passthrough(msg.value(), cast("list[tuple[str, bytes | None]] | None", msg.headers()))
                partition = msg.partition()
                assert partition is not None  # set on every consumed message
                while True:
                    try:
                        producer.produce(output, value=value, partition=partition, headers=PRODUCE_HEADERS)
                        break
                    except BufferError:
                        producer.poll(0.05)
                done += n
                messages += 1
                for f in fractions:
                    if f not in marks and done >= f * events:
                        marks[f] = (time.monotonic(), done, time.process_time())
            producer.poll(0)
        producer.flush(60)
        finished = time.monotonic()
    finally:
        consumer.close()
    lo, hi = marks.get(0.1), marks.get(0.9)
    return {
        "events_in": done,
        "messages_in": messages,
        "events_per_s": (hi[1] - lo[1]) / (hi[0] - lo[0]) if lo and hi and hi[0] > lo[0] else None,
        # CPU time of this process (all threads, librdkafka's too) per event over the same stretch
        "cpu_us_per_event": 1e6 * (hi[2] - lo[2]) / (hi[1] - lo[1]) if lo and hi and hi[1] > lo[1] else None,
        # from 10 % of the events read to every output delivered (flushed)
        "to_committed_events_per_s": (done - lo[1]) / (finished - lo[0]) if lo else None,
        "seconds_all": finished - started,
        "rss_peak_mb": rss_peak_bytes() / 2**20,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--source", required=True, help="raw topic (RawBatch or RawClick messages)")
    parser.add_argument("--output", required=True)
    parser.add_argument("--events", type=int, required=True, help="events to read before stopping")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--consume-batch", type=int, default=1000, help="messages per consume() call")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    print(json.dumps(run(args.bootstrap, args.source, args.output, args.events, args.partitions,
                         args.consume_batch, args.timeout)))


if __name__ == "__main__":
    main()
