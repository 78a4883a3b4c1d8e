"""Bad input to `clickpipe replay` gets a clear message and exit code 2, and changes nothing;
the plan's window and the checkpoint's row files, unit by unit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from clickpipe import erased
from clickpipe.config import load
from clickpipe.party import digest
from clickpipe.topics import delete_topics, ensure_topics
from replay.checkpoint import Progress, Workdir
from replay.plan import PlanError, locate, window
from replay.run import Replayer
from tests.support import ROOT
from tests.support.pipeline import Run
from tests.support.records import raw_click

DAY_MS = 86_400_000
NOW = datetime(2026, 11, 30, 10, 30, tzinfo=timezone.utc)


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CLICKPIPE_")}
    return subprocess.run([sys.executable, "-m", "commands.cli", "replay", "--no-progress", *args], cwd=ROOT,
                          env={**clean, **env}, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args, message", [
    (("--from", "yesterday"), "'yesterday' is neither a span like 15m"),
    (("--from", "10d", "--to", "2026-13-01"), "'2026-13-01' is neither a span"),
    (("--from", "2026-11-20T00:00:00Z", "--to", "2026-11-19T00:00:00Z"),
     "--to (2026-11-19T00:00:00Z) must be later than --from (2026-11-20T00:00:00Z)"),
    (("--from", "3h"), "nothing to replay: the range"),
    (("--from", "10d", "--to", "1h"), "too recent"),
])
def test_bad_times_exit_2_with_a_message(tmp_path, args, message):
    result = _cli({"CLICKPIPE_REPLAY_DIR": str(tmp_path)}, *args)
    assert result.returncode == 2, result
    assert message in result.stderr and result.stderr.startswith("[replay] "), result.stderr
    assert list(tmp_path.iterdir()) == []  # nothing started


def test_a_range_whose_history_retention_deleted_is_refused(stack, tmp_path):
    topic = f"test.replay-retention.{uuid.uuid4().hex[:8]}"
    ensure_topics(stack.kafka_bootstrap, [topic], 1)
    try:
        old = int((datetime.now(timezone.utc) - timedelta(days=5)).timestamp() * 1000)
        producer = Producer({"bootstrap.servers": stack.kafka_bootstrap})
        for i in range(10):  # one message every 6 hours, from 5 days ago
            producer.produce(topic, value=b"x", timestamp=old + i * DAY_MS // 4)
        assert producer.flush(30) == 0
        # what retention does: records before offset 4 (the first day) are deleted
        admin = AdminClient({"bootstrap.servers": stack.kafka_bootstrap})  # kept: its futures need it alive
        [future] = admin.delete_records([TopicPartition(topic, 0, 4)]).values()
        future.result(60)
        env = {"CLICKPIPE_TOPIC_RAW": topic, "CLICKPIPE_REPLAY_DIR": str(tmp_path)}
        result = _cli(env, "--from", "5d", "--to", "3d")
        assert result.returncode == 2, result
        assert "no longer holds records from" in result.stderr and "retention" in result.stderr, result.stderr
        assert list(tmp_path.iterdir()) == []
        result = _cli({**env, "CLICKPIPE_TOPIC_RAW": f"{topic}-missing"}, "--from", "5d", "--to", "3d")
        assert (result.returncode, result.stderr.strip()) == (
            2, f"[replay] the raw topic '{topic}-missing' does not exist at {stack.kafka_bootstrap}")
    finally:
        delete_topics(stack.kafka_bootstrap, [topic])


def test_the_window_is_whole_segments_with_the_session_span_around_it():
    settings = load({"CLICKPIPE_SESSION_CAP_SECONDS": "3600", "CLICKPIPE_SESSION_GAP_SECONDS": "600"})
    since = datetime(2026, 11, 25, 13, 20, tzinfo=timezone.utc)
    until = datetime(2026, 11, 27, 0, 0, 1, tzinfo=timezone.utc)
    win = window(settings, since, until, NOW, DAY_MS)
    day = int(datetime(2026, 11, 25, tzinfo=timezone.utc).timestamp() * 1000)
    span = 4200 * 1000
    assert (win.start_ms, win.end_ms) == (day, day + 3 * DAY_MS)
    assert (win.read_from_ms, win.close_at_ms) == (day - span - 60_000, day + 3 * DAY_MS + span)
    # no --to: the latest day whose sessions have all closed (now - cap - gap - 1 min, floored)
    assert window(settings, since, None, NOW, DAY_MS).end_ms == day + 5 * DAY_MS
    with pytest.raises(PlanError, match="too recent.*2026-11-30T00:00:00Z"):
        window(settings, since, NOW - timedelta(minutes=30), NOW, DAY_MS)


def test_a_resumed_workdir_cuts_row_files_back_to_their_checkpoint(tmp_path):
    work = Workdir(tmp_path / "w")
    progress = Progress(plan={})
    outputs = work.outputs(progress)
    outputs["clicks"].write(b'{"a":1}\n')
    work.save(progress, outputs)
    outputs["clicks"].write(b'{"a":2}\n')  # written after the checkpoint: the crash loses the checkpoint of it
    outputs["clicks"].flush()
    saved = work.load()
    assert saved is not None and saved.sizes == {"clicks": 8, "sessions": 0, "bot_sessions": 0}
    outputs = work.outputs(saved)
    outputs["clicks"].write(b'{"a":2}\n')
    outputs["clicks"].close()
    assert work.file("clicks").read_bytes() == b'{"a":1}\n{"a":2}\n'
    assert work.path.stat().st_mode & 0o777 == 0o700  # the rows hold personal data
    work.remove_rows()
    assert sorted(p.name for p in work.path.iterdir()) == ["checkpoint.json"]


def test_a_replay_drops_the_events_of_erased_parties(stack, tmp_path):
    """The replay reads the erased list as the worker does: an erased party never comes back."""
    day = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=3)
    t0 = int(day.timestamp() * 1000) + 3_600_000
    records = [raw_click(party_id=p, event_id=f"{p}-{i}", server_time=t0 + i * 1000, source="batch")
               for p in ("kept-party", "erased-party") for i in range(5)]
    with Run(stack.kafka_bootstrap, tmp_path, partitions=2) as run:
        run.produce(sorted(records, key=lambda r: r["server_time"]), event_time=True)
        cfg = load({**run.worker_env(1), "CLICKPIPE_REPLAY_DIR": str(tmp_path / "replay")})
        erased.ensure_topic(cfg.kafka_bootstrap, cfg.topic_erased, cfg.partitions)
        erased.record(cfg.kafka_bootstrap, cfg.topic_erased, digest("erased-party"), int(time.time() * 1000))
        win = window(cfg, day, day + timedelta(days=1), datetime.now(timezone.utc), DAY_MS)
        plan = locate(cfg, win)
        work = Workdir(tmp_path / "replay" / "w")
        progress = Progress(plan=plan.to_json())
        Replayer(cfg, plan, work, progress, False, erased.load(cfg.kafka_bootstrap, cfg.topic_erased)).run()
        rows = [json.loads(line) for line in work.file("clicks").read_text().splitlines()]
        assert sorted(r["event_id"] for r in rows) == [f"kept-party-{i}" for i in range(5)]
        assert progress.counts["events_read"] == 10
