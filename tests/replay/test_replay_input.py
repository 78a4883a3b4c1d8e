"""Bad input to `clickpipe replay` gets a clear message and exit code 2, and changes nothing;
the plan's window and the checkpoint's row files, unit by unit."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from clickpipe.config import load
from clickpipe.topics import delete_topics, ensure_topics
from replay.checkpoint import Progress, Workdir
from replay.plan import PlanError, window
from tests.support import ROOT

DAY_MS = 86_400_000
NOW = datetime(2026, 11, 30, 10, 30, tzinfo=timezone.utc)


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CLICKPIPE_")}
    return subprocess.run([sys.executable, "-m", "commands.cli", "replay", "--no-progress", *args], cwd=ROOT,
                          env={**clean, **env}, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args, message", [
    (("--from", "yesterday"), "'yesterday' is neither a span like 15m, 24h, 7d nor an ISO 8601 time"),
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
    assert saved is not None and saved.sizes == {"clicks": 8, "sessions": 0}
    outputs = work.outputs(saved)
    outputs["clicks"].write(b'{"a":2}\n')
    outputs["clicks"].close()
    assert work.file("clicks").read_bytes() == b'{"a":1}\n{"a":2}\n'
    assert work.path.stat().st_mode & 0o777 == 0o700  # the rows hold personal data
    work.remove_rows()
    assert sorted(p.name for p in work.path.iterdir()) == ["checkpoint.json"]
