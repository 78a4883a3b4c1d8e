"""Replay against the real stack: a bot rule changes, a day is replayed, Druid's reports show the
new verdicts for that day only, with every total unchanged, after the replay was killed (-9)
twice: midway through the raw topic, and while its Druid tasks ran.

The pipeline deployment is private (``tests.support.pipeline.Run``: topics, app id, state) and
so are the Druid datasources on its output topics. The data are two days old (Kafka timestamps
too), so the replayed day's rows are final: every session in it has closed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from clickpipe.config import load
from druid import queries, supervisors
from druid.client import DruidError
from tests.support import ROOT
from tests.support.druid import count_rows, private_druid, private_env, wait_for
from tests.support.net import free_port
from tests.support.pipeline import Run, decode_all
from tests.support.records import raw_click

GAP_S, CAP_S = 60, 600
WINDOW_S = 10  # between the start of one burst party and the next
# The rule that changes: the page views a session may make at once (the page-rate token bucket's
# burst), with no sustain allowance; a burst party's page views past it are a bot's.
OLD_MAX, NEW_MAX = 30, 10
BURST_SPACING_MS = 500
# Under the new rule a burst party is over its rate from its 11th page view and judged once it has
# been over for CLICKPIPE_BOT_PAGE_SUSTAIN_SECONDS (1 s): from its 13th page view (index 12) on.
FIRST_FLAGGED = 12
PIPELINE_ENV = {
    "CLICKPIPE_SESSION_GAP_SECONDS": str(GAP_S),
    "CLICKPIPE_SESSION_CAP_SECONDS": str(CAP_S),
    "CLICKPIPE_SESSION_SWEEP_SECONDS": "1",
    "CLICKPIPE_PIPELINE_COMMIT_INTERVAL_MS": "500",
    "CLICKPIPE_BOT_PAGE_BURST": str(OLD_MAX),
    "CLICKPIPE_BOT_PAGE_RATE_PER_MINUTE": "6",  # twice the humans' rate below
    "CLICKPIPE_BOT_PAGE_SUSTAIN_SECONDS": "1",
}
HUMANS, HUMAN_EVENTS = 1500, 16
BURSTS, BURST_EVENTS = 20, 20
EDGES = 10


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _traffic(day: datetime) -> list[dict]:
    """Two days of clicks around ``day`` (the replayed one), in time order.

    - humans on ``day``: one session each, an event every 10-30 s (irregular, as people are);
    - bursts on ``day`` and the day after: parties sending BURST_EVENTS events in one rate
      window: humans under the old rule, bots (from FIRST_FLAGGED on) under the new one;
    - sessions straddling each edge of ``day``: starting 90 s before it, and 30 s before its end.
    """
    start = _ms(day)
    next_day = start + 86_400_000
    records = []

    def click(party: str, t: int, i: int) -> None:
        records.append(raw_click(party_id=party, event_id=f"{party}-{i}", server_time=t, source="batch",
                                 location=f"https://shop.example.com/p/{i % 5}"))

    for h in range(HUMANS):
        for i in range(HUMAN_EVENTS):
            click(f"human-{h:04d}", start + 3_600_000 + h * 2_000 + i * 20_000 + (h * 7 + i * 13) % 11 * 1_000, i)
    for d, base in ((0, start + 6 * 3_600_000), (1, next_day + 2 * 3_600_000)):
        for b in range(BURSTS):
            for i in range(BURST_EVENTS):
                click(f"burst-{d}-{b:02d}", base + b * WINDOW_S * 1000 + i * BURST_SPACING_MS, i)
    for e in range(EDGES):
        for i, offset_s in enumerate((-90, -60, -30, 0, 30, 60)):
            click(f"edge-start-{e}", start + offset_s * 1000 + e, i)
        for i, offset_s in enumerate((-30, -10, 10, 30)):
            click(f"edge-end-{e}", next_day + offset_s * 1000 + e, i)
    return sorted(records, key=lambda r: r["server_time"])


def _replay_cli(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CLICKPIPE_")}
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "commands.cli", "replay", *args], cwd=ROOT,
                                env={**clean, **env}, stdout=out, stderr=subprocess.STDOUT)


def _checkpoint(replay_dir: Path) -> dict | None:
    found = list(replay_dir.glob("*/checkpoint.json"))
    if not found:
        return None
    try:
        return json.loads(found[0].read_bytes())
    except ValueError:  # replaced while read
        return None


def _done(checkpoint: dict | None) -> tuple[int, int]:
    """(messages read, messages to read) of a checkpoint."""
    if checkpoint is None or not checkpoint["next_offsets"]:
        return 0, 1
    offsets = checkpoint["plan"]["offsets"]
    return (sum(checkpoint["next_offsets"][p] - first for p, (first, _) in offsets.items()),
            sum(end - first for first, end in offsets.values()))


def _read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _rows_in_day(rows: list[dict], field: str, start: int, end: int) -> list[dict]:
    return [r for r in rows if start <= r[field] < end]


def _without(rows: list[dict], *fields: str) -> list[str]:
    """The rows without ``fields``, as a sorted list of canonical JSON (a multiset)."""
    return sorted(json.dumps({k: v for k, v in r.items() if k not in fields}, sort_keys=True) for r in rows)


def _day_counts(client, cfg, day: datetime) -> tuple[int, int]:
    """SUM(count) of the clicks and sessions datasources over ``day``."""
    [clicks] = client.sql(f'SELECT SUM("count") AS n FROM "{cfg.druid_clicks_datasource}" WHERE {_where(day)}')
    [sessions] = client.sql(f'SELECT SUM("count") AS n FROM "{cfg.druid_sessions_datasource}" WHERE {_where(day)}')
    return clicks["n"], sessions["n"]


def _watch_counts(client, cfg, day: datetime, seen: list, stop: list) -> None:
    """Sample :func:`_day_counts` into ``seen`` until ``stop`` is not empty (bounded: 20 minutes)."""
    deadline = time.monotonic() + 1200
    while not stop and time.monotonic() < deadline:
        try:
            seen.append(_day_counts(client, cfg, day))
        except DruidError:
            pass  # a query that timed out on a busy machine says nothing about the counts
        time.sleep(0.5)


def _where(day: datetime, days: int = 1) -> str:
    return (f"__time >= TIMESTAMP '{day:%Y-%m-%d %H:%M:%S}' "
            f"AND __time < TIMESTAMP '{day + timedelta(days=days):%Y-%m-%d %H:%M:%S}'")


def _counts(client, cfg, day: datetime) -> dict:
    """Exact counts of ``day`` (and bot events of the day after) in plain SQL.

    No sketch columns: Druid 33 hides them from SQL while the rows are still held by streaming
    tasks (docs/druid.md), as they are before the replay.
    """
    clicks, sessions = cfg.druid_clicks_datasource, cfg.druid_sessions_datasource
    bot = "FILTER (WHERE is_bot = 'true')"
    [row] = client.sql(f'SELECT SUM("count") AS events, SUM("count") {bot} AS bot_events '
                       f'FROM "{clicks}" WHERE {_where(day)}')
    [ids] = client.sql(f'SELECT COUNT(*) AS n FROM (SELECT session_id FROM "{clicks}" WHERE {_where(day)} '
                       f'GROUP BY session_id)')
    [next_day] = client.sql(f'SELECT SUM("count") {bot} AS bot_events FROM "{clicks}" '
                            f'WHERE {_where(day + timedelta(days=1))}')
    [closed] = client.sql(f'SELECT SUM("count") AS sessions, SUM(events) AS events, SUM("count") {bot} AS bots '
                          f'FROM "{sessions}" WHERE {_where(day)}')
    return {"events": row["events"], "bot_events": row["bot_events"] or 0, "session_ids": ids["n"],
            "bot_events_next_day": next_day["bot_events"] or 0, "sessions": closed["sessions"],
            "session_events": closed["events"], "bot_sessions": closed["bots"] or 0,
            "total": count_rows(client, clicks), "total_sessions": count_rows(client, sessions)}


def test_replay_a_day_with_a_changed_bot_rule_across_kill_9s(stack, tmp_path):
    day = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=2)
    records = _traffic(day)
    start, end = _ms(day), _ms(day + timedelta(days=1))
    in_day = [r for r in records if start <= r["server_time"] < end]
    bursts_in_day = {r["party_id"] for r in in_day if r["party_id"].startswith("burst-")}
    new_bot_events = len(bursts_in_day) * (BURST_EVENTS - FIRST_FLAGGED)
    parties = {r["party_id"] for r in records}
    sessions_in_day = {p for p in parties if p.startswith(("human-", "burst-0", "edge-end"))}
    session_events_in_day = sum(1 for r in records if r["party_id"] in sessions_in_day)

    with Run(stack.kafka_bootstrap, tmp_path, partitions=2, env=PIPELINE_ENV) as run:
        druid_env = private_env(TOPIC_ENRICHED=run.topics["enriched"], TOPIC_SESSIONS=run.topics["sessions"],
                                TOPIC_VERDICTS=run.topics["verdicts"])
        cfg = load(druid_env)
        with private_druid(cfg, create_topics=False) as client:
            supervisors.apply(client, cfg)
            run.produce(records, event_time=True)
            worker = run.start_worker()
            run.wait_ready(worker)
            assert wait_for(lambda: count_rows(client, cfg.druid_clicks_datasource),
                            lambda n: n == len(records), 240, interval=2) == len(records)
            assert wait_for(lambda: count_rows(client, cfg.druid_sessions_datasource),
                            lambda n: n == len(parties), 120, interval=2) == len(parties)
            run.kill_workers(signal.SIGTERM)
            before = _counts(client, cfg, day)
            assert (before["bot_events"], before["bot_events_next_day"], before["bot_sessions"]) == (0, 0, 0)
            assert (before["events"], before["sessions"], before["session_events"]) == (
                len(in_day), len(sessions_in_day), session_events_in_day)

            # The new rule, and a replay of the day that is killed midway and then resumed.
            replay_dir = tmp_path / "replay"
            env = {**run.worker_env(free_port()), **druid_env, **{
                "CLICKPIPE_BOT_PAGE_BURST": str(NEW_MAX),
                "CLICKPIPE_REPLAY_DIR": str(replay_dir),
                "CLICKPIPE_REPLAY_CHECKPOINT_EVENTS": "1000",
            }}
            env = {k: v for k, v in env.items() if k.startswith("CLICKPIPE_")}
            args = ("--from", _iso(day), "--to", _iso(day + timedelta(days=1)), "--keep-rows")
            first = _replay_cli(env, tmp_path / "replay-1.log", *args)
            checkpoint = wait_for(lambda: _checkpoint(replay_dir),
                                  lambda c: _done(c)[0] > 0 or first.poll() is not None, 120, interval=0.02)
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=30)
            killed_at = _checkpoint(replay_dir)
            read, planned = _done(killed_at)
            log = (tmp_path / "replay-1.log").read_text()
            assert killed_at is not None and killed_at["phase"] == "process" and 0 < read < planned, (checkpoint, log)

            # While the resumed replays run and Druid switches versions, the day's counts never change:
            # old and new rows are never counted together, and never both missing.
            seen: list = []
            replays_done: list = []
            watcher = threading.Thread(target=_watch_counts, args=(client, cfg, day, seen, replays_done))
            watcher.start()
            try:
                # resumed, and killed again once its Druid tasks run (the supervisors suspended)
                second = _replay_cli(env, tmp_path / "replay-2.log", *args)
                ingesting = wait_for(lambda: _checkpoint(replay_dir),
                                     lambda c: bool(c and c["tasks"]) or second.poll() is not None, 600, interval=0.05)
                second.send_signal(signal.SIGKILL)
                second.wait(timeout=30)
                log = (tmp_path / "replay-2.log").read_text()
                assert "resuming (process)" in log, log
                # killed once it had submitted a replacing task (maybe before the other one)
                assert ingesting["phase"] == "ingest" and ingesting["tasks"], (ingesting, log)
                assert sorted(ingesting["suspended"]) == sorted([cfg.druid_clicks_datasource,
                                                                 cfg.druid_sessions_datasource,
                                                                 cfg.druid_bot_sessions_datasource])
                third = _replay_cli(env, tmp_path / "replay-3.log", *args)
                assert third.wait(timeout=900) == 0, (tmp_path / "replay-3.log").read_text()
                log = (tmp_path / "replay-3.log").read_text()
                assert "resuming (ingest)" in log, log
                print("\n".join(log.splitlines()[-16:]))  # the replay's counters (shown with -s)
            finally:
                replays_done.append(True)
                watcher.join(timeout=60)
            assert len(seen) >= 10 and set(seen) == {(len(in_day), len(sessions_in_day))}, seen
            [work] = replay_dir.iterdir()
            # nothing doubled in what the resumed replay handed to Druid, nothing missing
            assert sum(1 for _ in open(work / "clicks.json")) == len(in_day)
            assert sum(1 for _ in open(work / "sessions.json")) == len(sessions_in_day)

            # the same steps as the live worker: its rows for the day, but for the changed verdicts
            live = _rows_in_day(decode_all(run.consume("enriched", len(records), 60)), "server_time", start, end)
            replayed = _rows_in_day(_read_rows(work / "clicks.json"), "server_time", start, end)
            changed = [(r["party_id"], r["event_id"], r["bot_reason"]) for r in replayed if r["is_bot"]]
            assert sorted(changed) == sorted((p, f"{p}-{i}", "page-rate") for p in bursts_in_day
                                             for i in range(FIRST_FLAGGED, BURST_EVENTS))
            assert _without(replayed, "is_bot", "bot_reason") == _without(live, "is_bot", "bot_reason")
            live_sessions = _rows_in_day(decode_all(run.consume("sessions", len(parties), 60)), "start_time",
                                         start, end)
            replayed_sessions = _rows_in_day(_read_rows(work / "sessions.json"), "start_time", start, end)
            assert len(replayed_sessions) == len(live_sessions) == len(sessions_in_day)
            assert (_without(replayed_sessions, "is_bot", "bot_reason", "close_reason")
                    == _without(live_sessions, "is_bot", "bot_reason", "close_reason"))

            reports = queries.Reports(cfg)
            after = wait_for(lambda: _counts(client, cfg, day), lambda c: c["bot_events"] == new_bot_events,
                             120, interval=2)
            # the new verdicts, in the day replayed only
            assert (after["bot_events"], after["bot_sessions"], after["bot_events_next_day"]) == (
                new_bot_events, len(bursts_in_day), 0)
            # and the late verdicts that take the bursts' earlier page views out of human reports
            [verdicts] = client.sql(f'SELECT COUNT(*) AS n FROM "{cfg.druid_bot_sessions_datasource}" '
                                    f'WHERE {_where(day)}')
            assert verdicts["n"] == len(bursts_in_day)
            # totals unchanged, nothing doubled: events, session ids of the clicks, sessions and their events
            assert {k: after[k] for k in ("events", "session_ids", "sessions", "session_events")} == {
                k: before[k] for k in ("events", "session_ids", "sessions", "session_events")}
            assert (after["total"], after["total_sessions"]) == (len(records), len(parties))
            # and the analyst reports say so
            since, until = _iso(day), _iso(day + timedelta(days=1))
            [bots] = reports.bots(since=since, until=until)
            assert (bots["events"], bots["bot_events"], bots["bot_visitors"]) == (
                len(in_day), new_bot_events, len(bursts_in_day))
            # a burst's page views before its verdict carry no reason of their own: they count as bot
            # traffic through the session's late verdict (bot_sessions)
            assert {r["bot_reason"]: r["events"] for r in reports.bot_reasons(since=since, until=until)} == {
                "page-rate": new_bot_events, None: len(bursts_in_day) * FIRST_FLAGGED}
            [human] = reports.sessions(since=since, until=until)
            [every] = reports.sessions(since=since, until=until, traffic="all")
            assert (human["sessions"], every["sessions"]) == (len(sessions_in_day) - len(bursts_in_day),
                                                               len(sessions_in_day))
            # streaming ingestion runs again
            states = {s: client.supervisor_status(s)["payload"]["state"]
                      for s in (cfg.druid_clicks_datasource, cfg.druid_sessions_datasource)}
            assert set(states.values()) <= {"RUNNING", "PENDING", "IDLE"}, states

