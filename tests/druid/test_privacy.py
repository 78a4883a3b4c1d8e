"""Privacy requests against the real pipeline and Druid: export a party, erase it while other
parties keep sending (the first erase killed -9 half-way, the second completing), then look
for it everywhere (Druid, the worker's table changelog, the pipeline's output for its late raw
events, a replay of the raw topic) and count everyone else's events.

The pipeline runs with a party salt, so Druid holds the pseudonymised party only.
"""

from __future__ import annotations

import collections
import io
import json
import os
import re
import stat
import subprocess
import sys
import threading
import time

import orjson
import pytest
from confluent_kafka import Consumer, TopicPartition
from druid_support import run_cli

from clickpipe.config import load
from clickpipe.party import digest, party_key
from clickpipe.topics import ensure_topics
from druid import supervisors
from privacy import requests
from tests.support.druid import count_rows, private_druid, private_env, wait_for
from tests.support.pipeline import Run, WorkerProcess, decode_all
from tests.support.records import raw_click

GAP_S = 3
SALT = "test-salt"
PARTIES = [f"privacy-party-{p:02d}" for p in range(12)]
ERASED = PARTIES[5]
EVENTS = 6  # per party before the erasure
PAGES = ["/", "/products", "/products/42", "/cart", "/checkout", "/thanks"]
CONCURRENT_WAVES = 150  # at most: waves of one event per other party, every 2 s, until the erasure is done
LATE = 4  # raw events of the erased party from before its erasure, produced after it (a replay, a late batch)


@pytest.fixture
def run(stack, tmp_path):
    with Run(stack.kafka_bootstrap, tmp_path, partitions=2, env={
        "CLICKPIPE_SESSION_GAP_SECONDS": str(GAP_S),
        "CLICKPIPE_SESSION_SWEEP_SECONDS": "1",
        "CLICKPIPE_PIPELINE_COMMIT_INTERVAL_MS": "500",
        "CLICKPIPE_BOT_MAX_IP_EVENTS": "1000000",
        "CLICKPIPE_PRIVACY_PARTY_SALT": SALT,
    }) as r:
        yield r


def _env(run: Run, tmp_path) -> dict[str, str]:
    t = run.topics
    return private_env(TOPIC_RAW=t["raw"], TOPIC_ENRICHED=t["enriched"], TOPIC_SESSIONS=t["sessions"],
                       TOPIC_VERDICTS=t["verdicts"], TOPIC_ERASED=t["erased"], PARTITIONS=str(run.partitions),
                       PIPELINE_APP_ID=f"pipeline-{run.tag}", PRIVACY_PARTY_SALT=SALT,
                       PRIVACY_LOG=str(tmp_path / "privacy-requests.jsonl"), PRIVACY_TIMEOUT="300")


def _cli(env: dict[str, str], *args: str) -> subprocess.Popen:
    """``clickpipe *args`` running in a child process configured by ``env`` (stderr readable by line)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CLICKPIPE_")}
    return subprocess.Popen([sys.executable, "-m", "commands.cli", *args], env={**clean, **env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _party_events(client, datasource: str) -> dict[str, int]:
    return {r["party"]: r["n"] for r in client.sql(
        f'SELECT "party", SUM("count") AS n FROM "{datasource}" GROUP BY "party"')}


def _changelog_latest(bootstrap: str, topic: str, partitions: int) -> dict[str | None, bytes | None]:
    """The latest value of every key of a (compacted) changelog topic, read_committed."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"check-{time.monotonic_ns()}",
                         "enable.auto.commit": False, "isolation.level": "read_committed"})
    latest: dict[str | None, bytes | None] = {}
    try:
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(partitions)}
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            batch = consumer.consume(num_messages=10_000, timeout=1.0)
            for m in batch:
                if m.error() is None:
                    latest[requests.table_key(m.key())] = m.value()
            positions = {tp.partition: tp.offset for tp in consumer.position(
                [TopicPartition(topic, p) for p in range(partitions)])}
            if not batch and all(positions[p] >= end - 1 or end == 0 for p, end in ends.items()):
                break
    finally:
        consumer.close()
    return latest


def test_export_then_erase_under_concurrent_traffic(run, tmp_path):
    env = _env(run, tmp_path)
    cfg = load(env)
    key = party_key(ERASED, SALT)
    assert key != ERASED
    with private_druid(cfg, create_topics=False) as client:
        supervisors.apply(client, cfg)
        # an erase suspends every supervisor of the declared datasources together
        supervised = [cfg.druid_clicks_datasource, cfg.druid_sessions_datasource, cfg.druid_bot_sessions_datasource]
        worker = run.start_worker()
        run.wait_ready(worker)
        producer = run.producer()
        start = int(time.time() * 1000)
        sent = {p: [raw_click(party_id=p, server_time=start + 10 * i + n, source="batch",
                              location=f"https://shop.example.com{PAGES[i]}") for i in range(EVENTS)]
                for n, p in enumerate(PARTIES)}
        run.produce([r for records in sent.values() for r in records], producer)
        producer.flush(30)
        total = EVENTS * len(PARTIES)
        assert wait_for(lambda: count_rows(client, cfg.druid_clicks_datasource), lambda n: n == total, 180) == total
        # one session per party, closed by the idle sweep
        assert wait_for(lambda: count_rows(client, cfg.druid_sessions_datasource),
                        lambda n: n == len(PARTIES), 120) == len(PARTIES)
        clicks_before = _party_events(client, cfg.druid_clicks_datasource)
        assert clicks_before == {party_key(p, SALT): EVENTS for p in PARTIES}

        # Export: exactly the party's rows.
        out = io.StringIO()
        exported = requests.export(cfg, ERASED, out)
        rows = [json.loads(line) for line in out.getvalue().splitlines()]
        assert exported == {cfg.druid_clicks_datasource: EVENTS, cfg.druid_sessions_datasource: 1,
                            cfg.druid_bot_sessions_datasource: 0}  # a human: no verdict
        assert {r["party"] for r in rows} == {key}
        clicks = [r for r in rows if r["datasource"] == cfg.druid_clicks_datasource]
        assert sorted((r["__time"], r["url_path"], r["count"]) for r in clicks) == sorted(
            (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(e["server_time"] / 1000))
             + f".{e['server_time'] % 1000:03d}Z", PAGES[i], 1) for i, e in enumerate(sent[ERASED]))
        [session] = [r for r in rows if r["datasource"] == cfg.druid_sessions_datasource]
        assert (session["events"], session["page_views"], session["landing_page"]) == (
            EVENTS, EVENTS, "https://shop.example.com/")
        assert len({r["session_id"] for r in clicks}) == 1
        # The command writes the same lines to an owner-only file.
        result = run_cli(env, "privacy", "export", ERASED, "--out", str(tmp_path / "export.jsonl"))
        assert result.returncode == 0, result.stderr
        assert (tmp_path / "export.jsonl").read_text() == out.getvalue()
        assert stat.S_IMODE(os.stat(tmp_path / "export.jsonl").st_mode) == 0o600

        # Rollup cost of the party dimension, measured: rows stored per event.
        [clicks_stored] = client.sql(f'SELECT COUNT(*) AS n FROM "{cfg.druid_clicks_datasource}"')
        [sessions_stored] = client.sql(f'SELECT COUNT(*) AS n FROM "{cfg.druid_sessions_datasource}"')
        print(f"stored rows: clicks {clicks_stored['n']} for {total} events, "
              f"sessions {sessions_stored['n']} for {len(PARTIES)} sessions")

        # Erase while every other party keeps sending.
        others = [p for p in PARTIES if p != ERASED]
        concurrent: dict[str, int] = {p: 0 for p in others}
        stop = threading.Event()

        def traffic() -> None:
            feed = run.producer()
            for w in range(CONCURRENT_WAVES):
                if stop.is_set() and w >= 5:
                    break
                now = int(time.time() * 1000)
                run.produce([raw_click(party_id=p, server_time=now + n, source="batch",
                                       location="https://shop.example.com/later") for n, p in enumerate(others)], feed)
                for p in others:
                    concurrent[p] += 1
                feed.flush(30)
                time.sleep(2.0)

        sender = threading.Thread(target=traffic)
        sender.start()
        lines: list[str] = []
        try:
            # An erase killed -9 while it holds the supervisors suspended ...
            interrupted = _cli(env, "privacy", "erase", ERASED)
            assert interrupted.stderr is not None
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and "waiting for their tasks to publish" not in (
                    line := interrupted.stderr.readline()):
                assert line, f"the erase ended before suspending: {interrupted.wait()}"
            interrupted.kill()
            interrupted.wait(timeout=30)
            marker = requests.suspension_marker(cfg)
            assert sorted(json.loads(marker.read_text())) == sorted(supervised)
            assert all(client.supervisor_status(ds)["payload"]["suspended"] for ds in supervised)
            # ... is run again: it resumes them first, then carries the request out.
            started = time.monotonic()
            done = requests.erase(cfg, ERASED, echo=lines.append)
        finally:
            stop.set()
            sender.join(timeout=120)
        erase_seconds = time.monotonic() - started
        print(f"erase took {erase_seconds:.1f} s: " + " | ".join(lines))
        assert done["druid"][cfg.druid_clicks_datasource]["rows"] == EVENTS
        assert done["druid"][cfg.druid_sessions_datasource]["rows"] == 1
        for ds in (cfg.druid_clicks_datasource, cfg.druid_sessions_datasource):
            # one rewrite and one kill of the replaced segments per time chunk (all within one here)
            assert [t.split("_")[0] for t in done["druid"][ds]["tasks"]] == ["index", "kill"], done
        assert not sender.is_alive()
        assert not marker.exists()
        assert not any(client.supervisor_status(ds)["payload"]["suspended"] for ds in supervised)

        # Late raw events of the erased party, from before the erasure: dropped, never in Druid.
        run.produce([raw_click(party_id=ERASED, server_time=start + 100 + i, source="batch") for i in range(LATE)])

        # Everyone else: every event counted, old and concurrent.
        expected = {party_key(p, SALT): EVENTS + concurrent[p] for p in others}
        final = wait_for(lambda: _party_events(client, cfg.druid_clicks_datasource), lambda got: got == expected, 180)
        assert final == expected

        def erased_drops(proc: WorkerProcess) -> float:
            found = re.search(r'dropped_total\{reason="erased"\} ([0-9.]+)', run.metrics(proc))
            return float(found.group(1)) if found else 0.0

        assert wait_for(lambda: erased_drops(worker), lambda n: n == LATE, 60) == LATE

        # No query finds the party: by its dimension, nor any trace in either datasource.
        for ds in (cfg.druid_clicks_datasource, cfg.druid_sessions_datasource):
            assert client.sql(f'SELECT COUNT(*) AS n FROM "{ds}" WHERE "party" = ?',
                              [{"type": "VARCHAR", "value": key}]) == [{"n": 0}]
        [session_id] = {r["session_id"] for r in clicks}
        assert client.sql(f'SELECT COUNT(*) AS n FROM "{cfg.druid_clicks_datasource}" WHERE session_id = ?',
                          [{"type": "VARCHAR", "value": session_id}]) == [{"n": 0}]
        none = {"rows": 0, "events": 0}
        assert requests.parties.counts(client, cfg, key) == {cfg.druid_clicks_datasource: none,
                                                             cfg.druid_sessions_datasource: none,
                                                             cfg.druid_bot_sessions_datasource: none}
        sessions_after = {r["party"] for r in client.sql(
            f'SELECT DISTINCT "party" FROM "{cfg.druid_sessions_datasource}"')}
        assert key not in sessions_after and {party_key(p, SALT) for p in others} <= sessions_after

        # No table state: the party's latest changelog record is a tombstone.
        latest = _changelog_latest(run.bootstrap, f"pipeline-{run.tag}-parties-changelog", run.partitions)
        assert ERASED in latest and latest[ERASED] is None
        assert all(latest.get(p) is not None for p in others)  # others still have state (dedup)

        # A replay of the raw topic (a new app: empty tables, reading from the start) does not
        # bring the party back: its workers load the erased list before they read.
        replay = f"pipeline-{run.tag}-replay"  # deleted with the run's topics (prefix)
        ensure_topics(run.bootstrap, [f"{replay}-enriched", f"{replay}-sessions"], run.partitions)
        run.env.update({"CLICKPIPE_PIPELINE_APP_ID": replay, "CLICKPIPE_TOPIC_ENRICHED": f"{replay}-enriched",
                        "CLICKPIPE_TOPIC_SESSIONS": f"{replay}-sessions"})
        replayer = run.start_worker("replay.log", datadir="replay-state")
        run.wait_ready(replayer)
        replayed = decode_all(run.consume(f"{replay}-enriched", sum(expected.values()), timeout=180))
        assert collections.Counter(r["party"] for r in replayed) == expected  # every other event, none of it
        assert erased_drops(replayer) == EVENTS + LATE

        # The request log: what was done, for whom by digest, never the id or the data.
        log = cfg.privacy_log
        assert stat.S_IMODE(os.stat(log).st_mode) == 0o600
        text = log.read_text()
        assert ERASED not in text and key not in text
        entries = [orjson.loads(line) for line in text.splitlines()]
        assert [(e["kind"], e["party_digest"]) for e in entries] == [
            ("export", digest(ERASED)), ("export", digest(ERASED)), ("erase", digest(ERASED))]
        assert entries[2]["druid"][cfg.druid_clicks_datasource]["rows"] == EVENTS


def test_unknown_party_is_refused_with_exit_code_3(stack, tmp_path):
    env = private_env(PRIVACY_LOG=str(tmp_path / "log.jsonl"))
    for action in ("export", "erase"):
        result = run_cli(env, "privacy", action, "nobody-ever")
        assert result.returncode == 3, result.stderr
        assert "unknown party 'nobody-ever': Druid holds no row of it" in result.stderr
    result = run_cli(env, "privacy", "export", "x" * 300)
    assert result.returncode == 2 and "1 to 256 characters" in result.stderr
    assert not (tmp_path / "log.jsonl").exists()  # nothing was carried out
