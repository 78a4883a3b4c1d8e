"""Stream-processing benchmark against the real local Kafka.

One run measures, on the same generated traffic:

(a) a pass-through worker that only decodes and re-encodes (bench/pipeline_passthrough.py),
(b) the full pipeline worker (app.main),

each on its own copy of the raw topic, pre-loaded, so the worker runs flat out; throughput is
read from the worker's /metrics (records in) between 10 % and 90 % of the backlog. Then the
steps alone are profiled in-process on the same records. Memory is the worker's peak RSS;
state size is the RocksDB directory after a clean stop and the mean JSON state per party.

Traffic: most user agents come from a small pool of real browser strings (2 % are one-off
variants), 5 % of events are bots (crawler UAs, headless, webdriver), 1 % are duplicates,
and 10 % of events are a party's last before a 31-minute pause, so they end a session.

Usage: python bench/pipeline_bench.py [--events 150000] [--parties 30000] [--workers 1]
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import re
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import schemas
from app.geodata import test_database_env
from app.testing import Run
from clickpipe.config import load, settings
from steps import Context, Drop, Pipeline
from steps.decode import decode

BROWSERS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.{v} Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_{v} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:{v}.0) Gecko/20100101 Firefox/{v}.0",
    "Mozilla/5.0 (iPad; CPU OS 16_{v} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Safari/537.36",
]
BOTS = [
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "python-requests/2.31.0", "curl/8.4.0",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36",
]
REFERRERS = [None, None, None, "https://www.google.com/search?q=shoes", "https://www.bing.com/search?q=boots",
             "https://t.co/x1", "https://l.facebook.com/l.php", "https://blog.example.org/post", "INTERNAL"]
PATHS = [f"/{section}/{i}" for section in ("products", "blog", "help", "cart") for i in range(50)]


def traffic(n: int, parties: int, seed: int = 7) -> list[dict]:
    """``n`` RawClick dicts on a realistic timeline (see the module doc)."""
    rng = random.Random(seed)
    ua_pool = [b.format(v=v) for b in BROWSERS for v in range(110, 122)]
    ips = [f"{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
           for _ in range(5000)] + ["81.2.69.142", "216.160.83.56", "89.160.20.112", "2001:218::1", "1.0.0.1"]
    party_ua = {}
    party_ip = {}
    asleep_until = {}
    seq = collections.Counter()
    t0 = int(time.time() * 1000) - 2 * 3600_000
    out = []
    i = 0
    while len(out) < n:
        now = t0 + i * 20
        i += 1
        p = f"party-{rng.randrange(parties):07d}"
        if asleep_until.get(p, 0) > now:
            continue
        if p not in party_ua:
            r = rng.random()
            party_ua[p] = (rng.choice(BOTS) if r < 0.05 else
                           rng.choice(BROWSERS).format(v=rng.randint(1, 10**6)) if r < 0.07 else rng.choice(ua_pool))
            party_ip[p] = rng.choice(ips)
        seq[p] += 1
        ref = rng.choice(REFERRERS) if seq[p] == 1 else "INTERNAL"
        query = "?utm_source=news&utm_medium=email&utm_campaign=spring" if rng.random() < 0.05 else ""
        record = {
            "server_time": now, "client_time": now - 150, "source": "tag", "party_id": p, "session_id": None,
            "page_view_id": f"pv{seq[p]}", "event_id": f"e{seq[p]}", "event_type": "pageView" if rng.random() < 0.7 else "click",
            "location": f"https://shop.example.com{rng.choice(PATHS)}{query}",
            "referrer": "https://shop.example.com/" if ref == "INTERNAL" else ref,
            "user_agent": party_ua[p], "ip": party_ip[p], "screen_width": 1920, "screen_height": 1080,
            "viewport_width": 1280, "viewport_height": 720, "device_pixel_ratio": 1.0, "params": {},
            "new_party": seq[p] == 1, "corrupted": False, "no_js": False,
            "webdriver": True if party_ua[p] in BOTS[-1:] else None, "consent": "granted",
        }
        out.append(record)
        if rng.random() < 0.01:
            out.append(dict(record))  # a duplicate, as a retrying client would send
        if rng.random() < 0.10:
            asleep_until[p] = now + 31 * 60_000  # next event opens a new session
    return out[:n]


def counter(metrics_text: str, name: str) -> float:
    total = 0.0
    for line in metrics_text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def vm(pid: int, field: str) -> int:
    """A /proc/<pid>/status memory field in bytes."""
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.M).group(1)) * 1024


def measure(run: Run, records: list[dict], app_module: str, workers: int = 1, timeout: float = 600) -> dict:
    """Throughput of ``workers`` worker processes over ``records`` (summed), their peak memory and state.

    One worker finds the backlog already in the topic. Several are all started, and the
    group settled, before the records are produced, so no rebalance falls in the measurement.
    """
    run.create_topics()
    if workers == 1:
        run.produce(records)
    procs = [run.start_worker(f"{app_module}-{i}.log", app_module=app_module, datadir=f"state-{i}")
             for i in range(workers)]
    for proc in procs:
        run.wait_ready(proc)
    if workers > 1:
        run.produce(records)
    enriched = f'clickpipe_pipeline_records_out_total{{topic="{run.topics["enriched"]}"}}'
    samples = []
    deadline = time.monotonic() + timeout
    n = len(records)
    peak = 0
    while time.monotonic() < deadline:
        texts = [run.metrics(proc) for proc in procs]
        done = sum(counter(text, "clickpipe_pipeline_records_in_total") for text in texts)
        samples.append((time.monotonic(), done))
        peak = max([peak] + [vm(proc.pid, "VmRSS") for proc in procs])
        finished = sum(counter(text, enriched) + counter(text, "clickpipe_pipeline_dropped_total") for text in texts)
        if finished >= n:
            break
        time.sleep(0.5)
    texts = [run.metrics(proc) for proc in procs]
    lo = next(s for s in samples if s[1] >= 0.1 * n)
    hi = next(s for s in samples if s[1] >= 0.9 * n)
    dropped = collections.Counter()
    for text in texts:
        for line in text.splitlines():
            if line.startswith("clickpipe_pipeline_dropped_total{"):
                dropped[line.split('"')[1]] += float(line.rsplit(" ", 1)[1])
    total = lambda name: sum(counter(text, name) for text in texts)  # noqa: E731
    result = {
        "workers": workers,
        "events_per_s": (hi[1] - lo[1]) / (hi[0] - lo[0]),
        "rss_peak_mb": max([peak] + [vm(proc.pid, "VmHWM") for proc in procs]) / 2**20,
        "records_in": total("clickpipe_pipeline_records_in_total"),
        "enriched_out": total(enriched),
        "sessions_out": total(f'clickpipe_pipeline_records_out_total{{topic="{run.topics["sessions"]}"}}'),
        "dropped": dict(dropped),
        "bots": total("clickpipe_pipeline_bots_total"),
    }
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        proc.wait(timeout=60)
        run.workers.remove(proc)
    du = subprocess.check_output(["du", "-sbc", *(str(run.workdir / f"state-{i}") for i in range(workers))])
    result["state_dir_mb"] = int(du.split()[-2]) / 2**20
    return result


def profile_steps(records: list[dict], step_settings) -> dict:
    """Mean microseconds per event in decode, each step and encode, in this process."""
    raw = schemas.current("RawClick")
    enriched = schemas.current("EnrichedClick")
    encoded = [schemas.encode(raw, r) for r in records]
    pipeline = Pipeline(step_settings)
    totals = collections.Counter()
    states: dict[str, dict] = {}
    ips: dict = {}

    def timing(name, seconds):
        totals[name] += seconds

    started = time.perf_counter()
    for data in encoded:
        t = time.perf_counter()
        record = decode(data, raw.headers)
        totals["decode"] += time.perf_counter() - t
        ctx = Context(party=states.setdefault(record["party_id"], {}), ips=ips)
        try:
            record = pipeline.process(record, ctx, timing)
        except Drop:
            continue
        t = time.perf_counter()
        json.dumps(ctx.party)  # what the table stores per event
        totals["state-json"] += time.perf_counter() - t
        t = time.perf_counter()
        schemas.encode(enriched, record)
        totals["encode"] += time.perf_counter() - t
    wall = time.perf_counter() - started
    per_event = {k: v / len(records) * 1e6 for k, v in totals.items()}
    state_bytes = [len(json.dumps(s)) for s in states.values()]
    return {"us_per_event": per_event, "events_per_s_in_process": len(records) / wall,
            "parties": len(states), "mean_state_bytes": sum(state_bytes) / len(state_bytes)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=150_000)
    parser.add_argument("--parties", type=int, default=30_000)
    parser.add_argument("--workers", type=int, default=1, help="worker processes for (a) and (b) each")
    args = parser.parse_args()
    geo_env = test_database_env(settings.cache_dir)
    records = traffic(args.events, args.parties)
    report = {"events": len(records), "parties": len({r["party_id"] for r in records})}
    tmp = tempfile.mkdtemp(prefix="pipeline-bench-")  # kept: worker logs for the record
    report["workdir"] = tmp
    for name, module in (("passthrough", "bench.pipeline_passthrough"), ("pipeline", "app.main")):
        workdir = Path(tmp) / name
        workdir.mkdir()
        run = Run(settings.kafka_bootstrap, workdir, partitions=settings.partitions, env=geo_env)
        try:
            report[name] = measure(run, records, module, args.workers)
        finally:
            run.kill_workers(signal.SIGTERM)
            run.delete_topics()
    report["ratio"] = report["pipeline"]["events_per_s"] / report["passthrough"]["events_per_s"]
    report["profile"] = profile_steps(records[:50_000], load({**geo_env}))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
