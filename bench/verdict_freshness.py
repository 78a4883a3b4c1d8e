"""What session verdicts cost: how long a session judged bot stays in the human reports, and
how much slower the human-traffic filter makes a report.

Runs a private deployment (collector, one worker, private Druid datasources, as
bench/druid_freshness.py does) under a steady background load of human clicks, and sends
probe sessions: a page view that looks human, then, ``--gap`` seconds later, an event of the
same party that reveals automation (``webdriver``), which decides the session after its first
event. A poller asks Druid every ``--poll`` seconds which probe pages are visible at all and
which are in the human traffic of druid/queries.py. Per probe:

- event freshness: the collector's 2xx for the first page view -> visible in Druid;
- verdict freshness: the 2xx of the deciding event -> the first page view gone from the
  human traffic (it was visible there until the verdict reached Druid).

Then the query cost: the ``traffic`` report over human traffic (with the verdict subquery)
and over all traffic (no filter), alternated ``--queries`` times each, after adding
``--extra-verdicts`` verdict rows to the verdicts datasource (a site with many bot sessions).

    .venv/bin/python -m bench.verdict_freshness [--probes 60] [--load 100] [--extra-verdicts 20000]

Prints p50, p95 and max of both freshness figures, and the report latencies.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

import requests

import schemas
from bench.druid_freshness import UA, _background, _start_collector
from clickpipe.config import load
from druid import queries, supervisors
from druid.client import DruidError
from tests.support.druid import count_rows, private_druid, private_env, produce_rows, wait_for
from tests.support.pipeline import Run


def _quantiles(values: list[float]) -> str:
    if len(values) < 2:
        return f"n={len(values)}"
    q = statistics.quantiles(sorted(values), n=100, method="inclusive")
    return f"p50 {q[49]:.0f}  p95 {q[94]:.0f}  max {max(values):.0f}  (n={len(values)})"


def _print_freshness(args, achieved, sent_first, sent_verdict, visible, human_seen, excluded) -> None:
    events = [(visible[p] - sent_first[p]) * 1000 for p in sent_first if p in visible]
    verdicts = [(excluded[p] - sent_verdict[p]) * 1000 for p in sent_verdict if p in excluded]
    print(f"{args.probes} probe sessions; background load {args.load}/s ({achieved[0] if achieved else 0:.0f}/s "
          f"achieved); poll every {args.poll * 1000:.0f} ms")
    print(f"event freshness ms (2xx -> visible):                         {_quantiles(events)}")
    print(f"verdict freshness ms (deciding 2xx -> out of human traffic): {_quantiles(verdicts)}")
    print(f"probes whose first page view was never seen as human: {len(sent_verdict) - len(human_seen)}; "
          f"never excluded within {args.timeout:.0f} s: {len(sent_verdict) - len(verdicts)}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--probes", type=int, default=60)
    parser.add_argument("--load", type=int, default=100, help="background clicks per second")
    parser.add_argument("--gap", type=float, default=1.0, help="seconds between a probe's two events")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between probes")
    parser.add_argument("--poll", type=float, default=0.2, help="seconds between visibility queries")
    parser.add_argument("--timeout", type=float, default=90, help="seconds to wait for the last probe")
    parser.add_argument("--extra-verdicts", type=int, default=20000)
    parser.add_argument("--queries", type=int, default=20)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="verdict-freshness-"))
    base = load()
    run = Run(base.kafka_bootstrap, workdir, partitions=2)
    cfg = load(private_env("bench-verdicts", DRUID_TASK_DURATION="PT1H", TOPIC_ENRICHED=run.topics["enriched"],
                           TOPIC_SESSIONS=run.topics["sessions"], TOPIC_VERDICTS=run.topics["verdicts"]))
    tag = uuid.uuid4().hex[:6]
    sent_first: dict[str, float] = {}
    sent_verdict: dict[str, float] = {}
    visible: dict[str, float] = {}
    human_seen: set[str] = set()
    excluded: dict[str, float] = {}
    achieved: list[float] = []
    timings: dict[str, list[float]] = {"human": [], "all": []}
    run.create_topics()
    collector = None
    try:
        with private_druid(cfg, create_topics=False) as client:
            supervisors.apply(client, cfg)
            worker = run.start_worker()
            run.wait_ready(worker)
            collector, url = _start_collector(run)
            stop = threading.Event()
            loader = threading.Thread(target=_background, args=(url, args.load, stop, achieved), daemon=True)
            loader.start()
            if not isinstance(wait_for(lambda: count_rows(client, cfg.druid_clicks_datasource), bool, 180), int):
                raise SystemExit("the background load never became visible in Druid")
            reports = queries.Reports(cfg)
            pattern = f"'/probe/{tag}/%'"

            def poll(done: threading.Event) -> None:
                while not done.is_set():
                    try:
                        every = reports.sql(f"SELECT DISTINCT url_path FROM {reports.clicks} "
                                            f"WHERE {reports._where('10m', None, 'all')} AND url_path LIKE {pattern}")
                        human = reports.sql(f"SELECT DISTINCT url_path FROM {reports.clicks} "
                                            f"WHERE {reports._where('10m', None, 'human')} AND url_path LIKE {pattern}")
                    except DruidError:
                        time.sleep(args.poll)
                        continue
                    now = time.time()
                    for row in every:
                        visible.setdefault(row["url_path"], now)
                    shown = {row["url_path"] for row in human}
                    human_seen.update(shown)
                    for path in sent_verdict:
                        if path in human_seen and path not in shown:
                            excluded.setdefault(path, now)
                    time.sleep(args.poll)

            done = threading.Event()
            poller = threading.Thread(target=poll, args=(done,), daemon=True)
            poller.start()
            http = requests.Session()
            for i in range(args.probes):
                party, path = f"probe-{tag}-{i}", f"/probe/{tag}/{i}"
                first = {"party_id": party, "event_id": f"{party}-a", "location": f"https://shop.example.com{path}"}
                if http.post(f"{url}/events", json=[first], headers={"User-Agent": UA}, timeout=10).ok:
                    sent_first[path] = time.time()
                time.sleep(args.gap)
                deciding: dict[str, str | bool] = {
                    "party_id": party, "event_id": f"{party}-b", "event_type": "click", "webdriver": True,
                    "location": f"https://shop.example.com/probe/{tag}/{i}/b"}
                if http.post(f"{url}/events", json=[deciding], headers={"User-Agent": UA}, timeout=10).ok:
                    sent_verdict[path] = time.time()
                time.sleep(max(0.0, args.interval - args.gap))
            deadline = time.monotonic() + args.timeout
            while len(excluded) < len(sent_verdict) and time.monotonic() < deadline:
                time.sleep(0.5)
            done.set()
            poller.join(10)
            stop.set()
            loader.join(30)
            _print_freshness(args, achieved, sent_first, sent_verdict, visible, human_seen, excluded)

            # query cost, with many verdicts in the datasource
            start = int(time.time() * 1000) - 3_600_000
            produce_rows(cfg, cfg.topic_verdicts, schemas.current("BotVerdict"),
                         ({"session_id": f"extra-{tag}-{n}", "party_id": f"extra-{n}", "session_start": start + n,
                           "decided_time": start + n + 1000, "reason": "page-rate"}
                          for n in range(args.extra_verdicts)), per_message=500)
            wait_for(lambda: count_rows(client, cfg.druid_bot_sessions_datasource),
                     lambda n: (n or 0) >= args.extra_verdicts, 120)
            for _ in range(args.queries):
                for traffic in ("human", "all"):
                    # the traffic report's shape without its sketches (Druid 33 hides sketch columns
                    # while every segment is still being written, issue #16982)
                    began = time.perf_counter()
                    reports.sql(f"SELECT TIME_FLOOR(__time, 'PT1M') AS t, SUM(page_views) AS page_views, "
                                f"SUM(\"count\") AS events FROM {reports.clicks} "
                                f"WHERE {reports._where('1h', None, traffic)} GROUP BY 1 ORDER BY 1")
                    timings[traffic].append((time.perf_counter() - began) * 1000)
            verdict_rows = count_rows(client, cfg.druid_bot_sessions_datasource)
    finally:
        if collector is not None:
            collector.send_signal(signal.SIGTERM)
            collector.wait(60)
        run.kill_workers(signal.SIGTERM)
        run.delete_topics()

    print(f"traffic query, {verdict_rows} verdict rows: human (verdict subquery) {_quantiles(timings['human'])} ms; "
          f"all (no filter) {_quantiles(timings['all'])} ms; ratio of medians "
          f"{statistics.median(timings['human']) / statistics.median(timings['all']):.2f}")


if __name__ == "__main__":
    main()
