"""Freshness: time from a click's produce acknowledgement to its visibility in Druid SQL.

Ingests a private enriched-clicks topic into a private datasource through the generated
spec, keeps a steady background load of synthetic clicks flowing, and sends probe clicks
one at a time, each with its own page path. A poller queries Druid SQL every
``--poll`` seconds for probe paths; a probe's freshness is the first poll that sees it
minus the moment Kafka acknowledged it. (This measures Kafka → Druid; the collector's 2xx
happens at its own produce acknowledgement, so the collector → Kafka leg is not included.)
Everything it created is removed at the end.

    .venv/bin/python bench/druid_freshness.py [--probes 200] [--load 500] [--interval 0.25] [--poll 0.1]

Prints p50, p95 and the maximum in milliseconds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from confluent_kafka import Producer  # noqa: E402

import schemas  # noqa: E402
from clickpipe.config import load  # noqa: E402
from druid import specs  # noqa: E402
from druid.client import DruidError  # noqa: E402
from druid.testing import count_rows, enriched_click, private_druid, private_env, wait_for  # noqa: E402


def _background(cfg, schema, rate: int, stop: threading.Event, sent: list[float]) -> None:
    """Produce ``rate`` synthetic clicks per second until ``stop``; appends the rate achieved."""
    producer = Producer({"bootstrap.servers": cfg.kafka_bootstrap, "linger.ms": 5})
    n = 0
    began = time.monotonic()
    while not stop.is_set():
        due = int((time.monotonic() - began) * rate)
        while n < due:
            record = enriched_click(party_id=f"load-{n % 5000}", session_id=f"load-s{n % 20000}",
                                    url_path=f"/products/{n % 300}")
            producer.produce(cfg.topic_enriched, key=record["party_id"].encode(),
                             value=schemas.encode_framed(schema, record))
            n += 1
        producer.poll(0)
        time.sleep(0.01)
    producer.flush(30)
    sent.append(n / (time.monotonic() - began))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--probes", type=int, default=200)
    parser.add_argument("--load", type=int, default=500, help="background clicks per second")
    parser.add_argument("--interval", type=float, default=0.25, help="seconds between probes")
    parser.add_argument("--poll", type=float, default=0.1, help="seconds between visibility queries")
    parser.add_argument("--timeout", type=float, default=60, help="seconds to wait for the last probe")
    args = parser.parse_args()

    cfg = load(private_env("bench-druid", DRUID_TASK_DURATION="PT1H"))
    schema = schemas.current("EnrichedClick")
    run = uuid.uuid4().hex[:6]
    acked: dict[str, float] = {}
    seen: dict[str, float] = {}

    with private_druid(cfg) as client:
        client.submit_supervisor(specs.build(specs.load_declaration()["clicks"], cfg))
        stop = threading.Event()
        sent: list[float] = []
        loader = threading.Thread(target=_background, args=(cfg, schema, args.load, stop, sent), daemon=True)
        loader.start()
        # Wait until the supervisor's task reads the load, so probes measure steady state.
        if not isinstance(wait_for(lambda: count_rows(client, cfg.druid_clicks_datasource),
                                   lambda n: bool(n), timeout=180), int):
            sys.exit("the background load never became visible in Druid")
        time.sleep(5)

        polling = threading.Event()

        def poll() -> None:
            since = time.time() - 60
            query = (f"SELECT DISTINCT url_path FROM \"{cfg.druid_clicks_datasource}\" "
                     f"WHERE __time >= MILLIS_TO_TIMESTAMP({int(since * 1000)}) "
                     f"AND url_path LIKE '/probe/{run}/%'")
            while not polling.is_set():
                try:
                    rows = client.sql(query)
                except DruidError:
                    rows = []
                now = time.time()
                for row in rows:
                    seen.setdefault(row["url_path"], now)
                time.sleep(args.poll)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        producer = Producer({"bootstrap.servers": cfg.kafka_bootstrap, "linger.ms": 0})
        for i in range(args.probes):
            path = f"/probe/{run}/{i}"
            record = enriched_click(party_id=f"probe-{i}", session_id=f"probe-s{i}", url_path=path)

            def delivered(err, _msg, path=path):
                if err is None:
                    acked[path] = time.time()

            producer.produce(cfg.topic_enriched, key=record["party_id"].encode(),
                             value=schemas.encode_framed(schema, record), on_delivery=delivered)
            producer.flush(10)
            time.sleep(args.interval)
        deadline = time.monotonic() + args.timeout
        while len(seen.keys() & acked.keys()) < len(acked) and time.monotonic() < deadline:
            time.sleep(0.5)
        polling.set()
        stop.set()
        poller.join(10)
        loader.join(60)

    delays = sorted((seen[p] - acked[p]) * 1000 for p in acked if p in seen)
    missing = len(acked) - len(delays)
    quantiles = statistics.quantiles(delays, n=100, method="inclusive")
    print(f"{len(delays)} probes visible ({missing} not within {args.timeout:.0f} s), background load "
          f"{args.load}/s ({sent[0] if sent else 0:.0f}/s achieved), poll every {args.poll * 1000:.0f} ms")
    print(f"freshness ms: p50 {quantiles[49]:.0f}  p95 {quantiles[94]:.0f}  max {delays[-1]:.0f}")


if __name__ == "__main__":
    main()
