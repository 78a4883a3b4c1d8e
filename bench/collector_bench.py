"""Collector throughput against an nginx baseline, with wrk, on loopback, in one run.

    .venv/bin/python -m bench.collector_bench [--duration 10] [--connections 32] [--ack-wait-ms N]
        [--slow-clients] [--profile]

Measures, back to back (so the ratio compares like with like on the same machine state):
  (a) nginx serving a static 1x1 GIF (the baseline),
  (b) the collector's pixel endpoint, producing every event to the real Kafka,
  (c) the collector's batch endpoint with 20 events per request (events/s).
With ``--ack-wait-ms N``, (b) and (c) again with ``COLLECTOR_ACK_WAIT_MS=N`` (a 2xx only once
Kafka acknowledged the request's events), right after them. With ``--slow-clients``, (b) and
(c) again while 500 slow-loris connections and 50 bodies trickled at one byte per second
(:class:`tests.support.slow_clients.SlowClients`) hold the collector's sockets: the normal
clients' throughput and p99 under that attack. Needs Debian's wrk
and nginx and a running broker (``clickpipe stack up``); events go to a throwaway topic
that is deleted afterwards. With ``--profile``, py-spy samples one collector worker
during an extra pixel run and an extra batch run, and the hottest functions are printed.

The events/message column is what the collector's batching achieved: the events a run had
accepted over the raw-topic messages it added. Batch settings (``CLICKPIPE_COLLECTOR_BATCH_*``)
are taken from the environment like every other setting.

    .venv/bin/python -m bench.collector_bench --compare DIR [--rounds 5] [--duration 5] [--ack-wait-ms N]

compares instead this checkout's collector with the one in DIR (another checkout of the
project, e.g. from ``git worktree add DIR <commit>``; each is started with its own
collector/gunicorn.conf.py, so its own server and worker class): both run at once, each on a topic of its
own, and take turns at (b) and (c) (and again with the acknowledgement wait), the order
reversed every round; the medians over the rounds are reported. On a machine whose load
varies, interleaving is what makes two versions comparable; consecutive runs are not.

Prints a Markdown section for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests
from confluent_kafka import Consumer, KafkaException, TopicPartition

from clickpipe.config import settings
from clickpipe.topics import delete_topics, ensure_topics
from tests.support import ROOT, asgi
from tests.support.net import free_port
from tests.support.slow_clients import SlowClients

GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
PIXEL_QUERY = ("/p.gif?event_type=pageView&party_id=bench-party-0001"
               "&location=http%3A%2F%2Fshop.example%2Fp%2F1&screen_width=1920&screen_height=1080")
BATCH_SIZE = 20
SLOW_LORIS = 500
SLOW_BODIES = 50
_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:  # refused, or too slow on a loaded machine: ask again
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not become ready")


def start_nginx(workdir: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    (workdir / "html").mkdir()
    (workdir / "html" / "p.gif").write_bytes(GIF)
    conf = workdir / "nginx.conf"
    conf.write_text(
        f"""daemon off;
worker_processes {os.cpu_count() or 1};
pid {workdir}/nginx.pid;
error_log {workdir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {workdir}/tmp;
  proxy_temp_path {workdir}/tmp;
  fastcgi_temp_path {workdir}/tmp;
  uwsgi_temp_path {workdir}/tmp;
  scgi_temp_path {workdir}/tmp;
  server {{
    listen 127.0.0.1:{port};
    root {workdir}/html;
    location = /p.gif {{ add_header Cache-Control "no-store"; default_type image/gif; }}
  }}
}}
"""
    )
    workdir.chmod(0o755)  # nginx workers run as an unprivileged user
    proc = subprocess.Popen(
        ["nginx", "-p", str(workdir), "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/p.gif")
    except RuntimeError:
        stop(proc)
        raise
    return proc, url


def start_collector(topic: str, env: dict | None = None, repo: Path = ROOT) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, **(env or {}), "CLICKPIPE_COLLECTOR_PORT": str(port), "CLICKPIPE_TOPIC_RAW": topic}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "collector/gunicorn.conf.py"],
        cwd=repo,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/readyz")
    except RuntimeError:
        stop(proc)
        raise
    return proc, url


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wrk(url: str, duration: int, connections: int, script: Path | None = None) -> dict:
    """Run wrk; returns requests/s, p50/p99 latency in ms and the count of non-2xx answers."""
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "10s"]
    if script:
        cmd += ["-s", str(script)]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, check=True).stdout

    def latency(pct: str) -> float:
        value, unit = _found(re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M), f"p{pct}").groups()
        return float(value) * _UNITS[unit] * 1000

    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": float(_found(re.search(r"Requests/sec:\s+([\d.]+)", out), "Requests/sec").group(1)),
        "requests": int(_found(re.search(r"(\d+) requests in", out), "requests").group(1)),
        "p50": latency("50"),
        "p99": latency("99"),
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": errors.group(1).strip() if errors else "",
    }


def _found(match: re.Match[str] | None, what: str) -> re.Match[str]:
    """``match``, which wrk's output always has (``what`` names it in the error if not)."""
    assert match is not None, f"no {what} in wrk's output"
    return match


def topic_messages(topic: str, attempts: int = 10) -> int:
    """Messages in ``topic``: the sum of its partitions' high watermarks."""
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": "collector-bench"})
    try:
        for attempt in range(attempts):
            try:
                partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
                return sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions)
            except KafkaException:  # a topic created moments ago can be unknown to a new client a while longer
                if attempt == attempts - 1:
                    raise
                time.sleep(0.5)
        raise ValueError(f"attempts must be at least 1, not {attempts}")
    finally:
        consumer.close()


def collector_run(url: str, args, topic: str, events: int, script: Path | None = None) -> dict:
    """:func:`wrk` against the collector, with ``events_per_message``: events answered 2xx over the
    messages the run added to ``topic`` (``events`` per request)."""
    before = topic_messages(topic)
    result = wrk(url, args.duration, args.connections, script)
    time.sleep(1)  # the last batches linger, then are acknowledged
    messages = topic_messages(topic) - before
    result["events_per_message"] = (result["requests"] - result["non2xx"]) * events / max(messages, 1)
    return result


def batch_script(workdir: Path) -> Path:
    script = workdir / "batch.lua"
    body = json.dumps(_batch_events()).replace("\\", "\\\\").replace('"', '\\"')
    script.write_text(
        f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = "{body}"\n'
    )
    return script


def profile(url: str, proc: subprocess.Popen, duration: int, connections: int, workdir: Path,
            script: Path | None = None) -> str:
    """Sample one worker with py-spy during a wrk run of ``url``; the top functions by own time."""
    children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
    out = workdir / "profile.txt"
    spy = subprocess.Popen(
        [str(Path(sys.executable).with_name("py-spy")), "record", "--pid", children[0], "--duration", str(duration),
         "--format", "raw", "--output", str(out), "--gil"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wrk(url, duration, connections, script)
    spy.wait(duration + 30)
    return summarise_profile(out.read_text())


def summarise_profile(raw: str, top: int = 15) -> str:
    """Collapsed stacks -> the frames where the most samples were spent (self time)."""
    own: dict[str, int] = {}
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        if "idle" in frames[-1] or any("wait" in f and "threading" in f for f in frames[-2:]):
            continue
        total += int(count)
        leaf = re.sub(r"\s*\(/.*?/(site-packages|lib/python3\.\d+)/", " (", frames[-1])
        own[leaf] = own.get(leaf, 0) + int(count)
    rows = sorted(own.items(), key=lambda kv: -kv[1])[:top]
    return "\n".join(f"| {100 * n / total:5.1f}% | `{frame}` |" for frame, n in rows)


def in_process(topic: str, pixel_calls: int = 3000, batch_calls: int = 300) -> dict[str, float]:
    """Microseconds per request through the ASGI app directly (real producer, no HTTP server):
    what the collector's own code costs, apart from the server's."""
    from clickpipe.config import load
    from collector.app import create_app
    from collector.sink import Sink

    config = load({**os.environ, "CLICKPIPE_TOPIC_RAW": topic})
    sink = Sink(config)
    app = create_app(config, sink)
    path, _, query = PIXEL_QUERY.partition("?")
    body = json.dumps(_batch_events()).encode()
    headers = {"Content-Type": "application/json", "Content-Length": str(len(body))}

    async def measure(request: dict, chunks: list[bytes], n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            await asgi.call(app, request, chunks)
        return (time.perf_counter() - start) / n * 1e6

    result = {
        "pixel": asyncio.run(measure(asgi.scope("GET", path, query.encode()), [], pixel_calls)),
        "batch": asyncio.run(measure(asgi.scope("POST", "/events", headers=headers), [body], batch_calls)),
    }
    sink.close(30)
    return result


def _batch_events() -> list[dict]:
    return [
        {"party_id": f"bench-party-{i:04d}", "event_type": "click", "location": "http://shop.example/p/1",
         "screen_width": 1920, "params": {"sku": f"A{i}"}}
        for i in range(BATCH_SIZE)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--ack-wait-ms", type=int, default=0, help="also measure with this COLLECTOR_ACK_WAIT_MS")
    parser.add_argument("--slow-clients", action="store_true",
                        help=f"also measure while {SLOW_LORIS} slow-loris and {SLOW_BODIES} trickled bodies attack")
    parser.add_argument("--compare", type=Path, help="another checkout whose collector to compare with, interleaved")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of the --compare mode")
    args = parser.parse_args()
    if args.compare:
        compare(args)
        return

    workdir = Path(tempfile.mkdtemp(prefix="collector-bench-"))
    topic = f"collector-bench-{uuid.uuid4().hex[:8]}"
    ensure_topics(settings.kafka_bootstrap, [topic], settings.partitions)
    results: dict[str, dict] = {}
    profiles: dict[str, str] = {}
    nginx = None
    started = time.time()
    load_before = os.getloadavg()
    try:
        nginx, nginx_url = start_nginx(workdir)
        results["a"] = wrk(nginx_url + "/p.gif", args.duration, args.connections)
        stop(nginx)
        nginx = None
        proc, url = start_collector(topic)
        try:
            results["b"] = collector_run(url + PIXEL_QUERY, args, topic, 1)
            results["c"] = collector_run(url + "/events", args, topic, BATCH_SIZE, batch_script(workdir))
            if args.slow_clients:
                attack = SlowClients("127.0.0.1", int(url.rsplit(":", 1)[1]), SLOW_LORIS, SLOW_BODIES).start()
                try:
                    deadline = time.monotonic() + 30
                    while attack.connected() < SLOW_LORIS + SLOW_BODIES and time.monotonic() < deadline:
                        time.sleep(0.1)
                    results["b/slow"] = collector_run(url + PIXEL_QUERY, args, topic, 1)
                    results["c/slow"] = collector_run(url + "/events", args, topic, BATCH_SIZE, batch_script(workdir))
                    results["b/slow"]["held"] = attack.connected()
                finally:
                    results["attack"] = dict(attack.stop())
            if args.profile:
                profiles["pixel"] = profile(url + PIXEL_QUERY, proc, args.duration, args.connections, workdir)
                profiles["batch"] = profile(url + "/events", proc, args.duration, args.connections, workdir,
                                            batch_script(workdir))
        finally:
            stop(proc)
        if args.ack_wait_ms:
            proc, url = start_collector(topic, {"CLICKPIPE_COLLECTOR_ACK_WAIT_MS": str(args.ack_wait_ms)})
            try:
                results["b/ack"] = collector_run(url + PIXEL_QUERY, args, topic, 1)
                results["c/ack"] = collector_run(url + "/events", args, topic, BATCH_SIZE, batch_script(workdir))
            finally:
                stop(proc)
        results["in_process"] = in_process(topic)
    finally:
        if nginx:
            stop(nginx)
        delete_topics(settings.kafka_bootstrap, [topic])
        shutil.rmtree(workdir, ignore_errors=True)
    report(results, args, profiles, started, (load_before, os.getloadavg()))


def compare(args) -> None:
    """The ``--compare`` mode: this checkout's collector and another's, interleaved (see the module doc)."""
    waits = [0, args.ack_wait_ms] if args.ack_wait_ms else [0]
    variants = [(f"{label}, COLLECTOR_ACK_WAIT_MS={wait}", repo, wait)
                for wait in waits for label, repo in (("baseline", args.compare.resolve()), ("this checkout", ROOT))]
    workdir = Path(tempfile.mkdtemp(prefix="collector-bench-"))
    script = batch_script(workdir)
    topics = {name: f"collector-bench-{uuid.uuid4().hex[:8]}" for name, _, _ in variants}
    ensure_topics(settings.kafka_bootstrap, list(topics.values()), settings.partitions)
    running: dict[str, tuple[subprocess.Popen, str]] = {}
    runs: dict[str, list[tuple[dict, dict]]] = {name: [] for name in topics}
    started = time.gmtime()
    try:
        for name, repo, wait in variants:
            env = {"CLICKPIPE_COLLECTOR_ACK_WAIT_MS": str(wait)}
            running[name] = start_collector(topics[name], env, repo)
        for n in range(args.rounds):
            for name, _, _ in variants if n % 2 == 0 else variants[::-1]:
                url, topic = running[name][1], topics[name]
                runs[name].append((collector_run(url + PIXEL_QUERY, args, topic, 1),
                                   collector_run(url + "/events", args, topic, BATCH_SIZE, script)))
    finally:
        for proc, _ in running.values():
            stop(proc)
        delete_topics(settings.kafka_bootstrap, list(topics.values()))
        shutil.rmtree(workdir, ignore_errors=True)

    def median(name: str, run: int, key: str) -> float:
        return statistics.median(r[run][key] for r in runs[name])

    lines = [
        f"Run: {time.strftime('%Y-%m-%d %H:%M', started)}-{time.strftime('%H:%M UTC', time.gmtime())},"
        f" {os.cpu_count()} CPUs shared with the Kafka (and Druid) JVMs; baseline: {args.compare.resolve().name};"
        f" {args.rounds} rounds of wrk -t2 -c{args.connections} -d{args.duration}s per run, interleaved;"
        f" collectors: {settings.collector_workers} workers each, the server and worker class of their checkout;"
        f" this checkout's raw-topic batches: at most {settings.collector_batch_max_events} events,"
        f" {settings.collector_batch_max_bytes} bytes, {settings.collector_batch_linger_ms} ms linger.",
        "",
        "| collector | (b) pixel requests/s | p99 ms | events/message | (c) batch events/s | p99 ms | events/message |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in runs:
        lines.append(f"| {name} | {median(name, 0, 'rps'):,.0f} | {median(name, 0, 'p99'):.2f}"
                     f" | {median(name, 0, 'events_per_message'):.1f} | {median(name, 1, 'rps') * BATCH_SIZE:,.0f}"
                     f" | {median(name, 1, 'p99'):.2f} | {median(name, 1, 'events_per_message'):.1f} |")
    lines += ["", "Medians over the rounds; every run's requests/s:", ""]
    for name in runs:
        pixel = ", ".join(f"{p['rps']:,.0f}" for p, _ in runs[name])
        batch = ", ".join(f"{b['rps']:,.0f}" for _, b in runs[name])
        lines.append(f"- {name}: pixel {pixel}; batch {batch}")
    print("\n".join(lines))


def report(results: dict, args, profiles: dict[str, str], started: float,
           load: tuple[tuple[float, ...], tuple[float, ...]]) -> None:
    a, b, c = results["a"], results["b"], results["c"]
    lines = [
        f"Run: {time.strftime('%Y-%m-%d %H:%M', time.gmtime(started))}-{time.strftime('%H:%M UTC', time.gmtime())},"
        f" {os.cpu_count()} CPUs shared with the Kafka (and Druid) JVMs and other users (load average"
        f" {load[0][0]:.1f} before, {load[1][0]:.1f} after), wrk -t2 -c{args.connections} -d{args.duration}s on"
        f" loopback; collector: {settings.collector_workers} workers of `collector.server.Worker` (uvicorn, uvloop,"
        f" httptools; ASGI), raw-topic batches of at most {settings.collector_batch_max_events} events,"
        f" {settings.collector_batch_max_bytes} bytes, {settings.collector_batch_linger_ms} ms linger.",
        "",
        "| run | requests/s | p50 ms | p99 ms | non-2xx | events/s | events/message |",
        "|---|---:|---:|---:|---:|---:|---:|",
        _row("(a) nginx static GIF (baseline)", a, 1),
        _row("(b) collector /p.gif -> Kafka", b, 1),
        _row(f"(c) collector /events, {BATCH_SIZE} events/request", c, BATCH_SIZE),
    ]
    if "b/ack" in results:
        wait = f"COLLECTOR_ACK_WAIT_MS={args.ack_wait_ms}"
        lines.append(_row(f"(b) with {wait}", results["b/ack"], 1))
        lines.append(_row(f"(c) with {wait}", results["c/ack"], BATCH_SIZE))
    if "b/slow" in results:
        attack = f"{SLOW_LORIS} slow-loris + {SLOW_BODIES} trickled bodies"
        lines.append(_row(f"(b) under {attack}", results["b/slow"], 1))
        lines.append(_row(f"(c) under {attack}", results["c/slow"], BATCH_SIZE))
    lines += [
        "",
        f"(b)/(a) = **{b['rps'] / a['rps']:.2f}** (goal 0.15); (c) = **{c['rps'] * BATCH_SIZE:,.0f} events/s**"
        f" (goal 100,000), (c)/(a) = {c['rps'] / a['rps']:.2f} in requests.",
    ]
    if "b/ack" in results:
        lines.append(f"Waiting for Kafka's acknowledgement: pixel {results['b/ack']['rps'] / b['rps']:.2f}× and batch"
                     f" {results['c/ack']['rps'] / c['rps']:.2f}× the throughput without;"
                     f" (b)/(a) = {results['b/ack']['rps'] / a['rps']:.2f}.")
    if "b/slow" in results:
        lines.append(f"Under attack ({results['b/slow']['held']} hostile connections open during the pixel run;"
                     f" what the server did to them: {results['attack']}): pixel"
                     f" {results['b/slow']['rps'] / b['rps']:.2f}× and batch {results['c/slow']['rps'] / c['rps']:.2f}×"
                     " the throughput without.")
    own = results["in_process"]
    lines += [
        "",
        f"The collector's own code, called in process through ASGI (real producer, no HTTP server):"
        f" {own['pixel']:.0f} µs per pixel request, {own['batch']:.0f} µs per batch of {BATCH_SIZE}"
        f" ({own['batch'] / BATCH_SIZE:.0f} µs per event), i.e. at most {1e6 / own['pixel']:,.0f} pixel requests/s"
        f" and {1e6 * BATCH_SIZE / own['batch']:,.0f} events/s per fully used core.",
    ]
    for run, table in profiles.items():
        lines += ["", f"Profile of one collector worker during a {run} run "
                      "(py-spy --gil: where the GIL-holding thread spends its samples, own time):", "",
                  "| share | frame |", "|---:|---|", table]
    print("\n".join(lines))


def _row(name: str, r: dict, events: int) -> str:
    per_message = f"{r['events_per_message']:.1f}" if "events_per_message" in r else "-"
    return (f"| {name} | {r['rps']:,.0f} | {r['p50']:.2f} | {r['p99']:.2f} | {r['non2xx']} |"
            f" {r['rps'] * events:,.0f} | {per_message} |")


if __name__ == "__main__":
    main()
