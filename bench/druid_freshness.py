"""Freshness: time from the collector's 2xx to the event being visible in Druid SQL.

Runs a private deployment — a collector (`clickpipe collector`) and one Faust worker
(`tests.support.pipeline.Run`) on private topics, and private Druid datasources on those topics through
the generated specs — keeps a steady background load of clicks flowing into the collector,
and sends probe clicks one at a time, each with its own page path. A poller queries Druid
SQL every ``--poll`` seconds for probe paths; a probe's freshness is the first poll that sees
it minus the moment the collector answered 2xx. Everything it created is removed at the end.

    .venv/bin/python -m bench.druid_freshness [--probes 200] [--load 200] [--interval 0.25] [--poll 0.1]

Prints p50, p95 and the maximum in milliseconds.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import requests

from clickpipe.config import load
from druid import supervisors
from druid.client import DruidError
from tests.support import ROOT
from tests.support.druid import count_rows, private_druid, private_env, wait_for
from tests.support.net import free_port
from tests.support.pipeline import Run

UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
BATCH = 20


def _event(party: str, path: str) -> dict:
    return {"party_id": party, "event_id": uuid.uuid4().hex, "location": f"https://shop.example.com{path}"}


def _background(url: str, rate: int, stop: threading.Event, achieved: list[float]) -> None:
    """POST ``rate`` clicks per second to the collector, in batches, until ``stop``."""
    http = requests.Session()
    sent = 0
    began = time.monotonic()
    while not stop.is_set():
        if sent < (time.monotonic() - began) * rate:
            events = [_event(f"load-party-{(sent + i) % 2000:05d}", f"/products/{(sent + i) % 300}")
                      for i in range(BATCH)]
            http.post(f"{url}/events", json=events, headers={"User-Agent": UA}, timeout=10).raise_for_status()
            sent += BATCH
        else:
            time.sleep(0.005)
    achieved.append(sent / (time.monotonic() - began))


def _start_collector(run: Run) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "CLICKPIPE_COLLECTOR_PORT": str(port), "CLICKPIPE_KAFKA_BOOTSTRAP": run.bootstrap,
           "CLICKPIPE_TOPIC_RAW": run.topics["raw"]}
    log = open(run.workdir / "collector.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "commands.cli", "collector"], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/readyz", timeout=2).status_code == 200:
                return proc, url
        except requests.ConnectionError:
            pass
        time.sleep(0.5)
    sys.exit(f"the collector did not start; see {run.workdir / 'collector.log'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--probes", type=int, default=200)
    parser.add_argument("--load", type=int, default=200, help="background clicks per second")
    parser.add_argument("--interval", type=float, default=0.25, help="seconds between probes")
    parser.add_argument("--poll", type=float, default=0.1, help="seconds between visibility queries")
    parser.add_argument("--timeout", type=float, default=60, help="seconds to wait for the last probe")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="druid-freshness-"))
    base = load()
    run = Run(base.kafka_bootstrap, workdir, partitions=2)
    cfg = load(private_env("bench-druid", DRUID_TASK_DURATION="PT1H", TOPIC_ENRICHED=run.topics["enriched"],
                           TOPIC_SESSIONS=run.topics["sessions"], TOPIC_VERDICTS=run.topics["verdicts"]))
    probe_run = uuid.uuid4().hex[:6]
    answered: dict[str, float] = {}
    seen: dict[str, float] = {}
    achieved: list[float] = []
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
            # Probes measure steady state: wait until the load is visible in Druid.
            if not isinstance(wait_for(lambda: count_rows(client, cfg.druid_clicks_datasource), bool, 180), int):
                sys.exit("the background load never became visible in Druid")
            time.sleep(5)

            polling = threading.Event()
            query = (f"SELECT DISTINCT url_path FROM \"{cfg.druid_clicks_datasource}\" "
                     f"WHERE __time >= CURRENT_TIMESTAMP - INTERVAL '10' MINUTE "
                     f"AND url_path LIKE '/probe/{probe_run}/%'")

            def poll() -> None:
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
            http = requests.Session()
            for i in range(args.probes):
                path = f"/probe/{probe_run}/{i}"
                response = http.post(f"{url}/events", json=[_event(f"probe-party-{i:05d}", path)],
                                     headers={"User-Agent": UA}, timeout=10)
                if response.status_code // 100 == 2:
                    answered[path] = time.time()
                time.sleep(args.interval)
            deadline = time.monotonic() + args.timeout
            while len(seen.keys() & answered.keys()) < len(answered) and time.monotonic() < deadline:
                time.sleep(0.5)
            polling.set()
            stop.set()
            poller.join(10)
            loader.join(30)
    finally:
        if collector is not None:
            collector.send_signal(signal.SIGTERM)
            collector.wait(60)
        run.kill_workers(signal.SIGTERM)
        run.delete_topics()

    delays = sorted((seen[p] - answered[p]) * 1000 for p in answered if p in seen)
    quantiles = statistics.quantiles(delays, n=100, method="inclusive")
    print(f"{len(delays)} of {args.probes} probes visible ({len(answered) - len(delays)} answered 2xx but not "
          f"visible within {args.timeout:.0f} s); background load {args.load}/s "
          f"({achieved[0] if achieved else 0:.0f}/s achieved); poll every {args.poll * 1000:.0f} ms")
    print(f"freshness ms: p50 {quantiles[49]:.0f}  p95 {quantiles[94]:.0f}  max {delays[-1]:.0f}")


if __name__ == "__main__":
    main()
