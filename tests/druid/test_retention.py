"""Retention and compaction, read back from the real Kafka and Druid they were set on.

Kafka: the pipeline topics get the retention of their settings at creation, and a changed
setting is applied to the topics that exist (and only then). Druid: ``clickpipe druid
apply`` sets each datasource's load/drop rules and automatic compaction config; a second
apply changes nothing, a changed setting is applied. Names are private to each test.
"""

from __future__ import annotations

import uuid

from confluent_kafka.admin import AdminClient

from clickpipe.config import load
from clickpipe.topics import delete_topics, topic_configs
from druid import retention
from stack.manager import StackManager
from tests.druid.druid_support import run_cli
from tests.support.druid import private_druid, private_env

HOUR_MS = 3600 * 1000


def _topics_env(tag: str, **hours: str) -> dict[str, str]:
    env = {f"CLICKPIPE_TOPIC_{kind.upper().replace('-', '_')}": f"test-retention-{tag}.{kind}"
           for kind in ("raw", "enriched", "sessions", "dead-letters", "verdicts")}
    return {**env, **{f"CLICKPIPE_TOPIC_{k}_RETENTION_HOURS": v for k, v in hours.items()}}


def test_topic_retention_is_set_at_creation_and_updated_in_place(stack):
    tag = uuid.uuid4().hex[:8]
    cfg = load({**_topics_env(tag), "CLICKPIPE_KAFKA_BOOTSTRAP": stack.kafka_bootstrap})
    names = [cfg.topic_raw, cfg.topic_enriched, cfg.topic_sessions, cfg.topic_verdicts, cfg.topic_dead_letters]
    said: list[str] = []
    admin = AdminClient({"bootstrap.servers": stack.kafka_bootstrap})
    try:
        assert StackManager(cfg, echo=said.append).create_topics() == names
        configs = topic_configs(admin, names)
        assert {n: configs[n]["retention.ms"] for n in names} == {
            cfg.topic_raw: str(720 * HOUR_MS), cfg.topic_enriched: str(168 * HOUR_MS),
            cfg.topic_sessions: str(168 * HOUR_MS), cfg.topic_verdicts: str(168 * HOUR_MS),
            cfg.topic_dead_letters: str(336 * HOUR_MS)}
        assert {configs[n]["cleanup.policy"] for n in names} == {"delete"}
        assert {configs[n]["min.insync.replicas"] for n in names} == {"1"}  # one broker: one replica

        said.clear()
        assert StackManager(cfg, echo=said.append).create_topics() == []
        assert said == [], "an unchanged setting altered a topic"

        changed = load({**_topics_env(tag, RAW="-1", OUTPUT="24"), "CLICKPIPE_KAFKA_BOOTSTRAP": stack.kafka_bootstrap})
        assert StackManager(changed, echo=said.append).create_topics() == []
        assert sorted(said) == sorted([
            f"[stack] topic {cfg.topic_raw}: retention.ms {720 * HOUR_MS} -> -1",
            f"[stack] topic {cfg.topic_enriched}: retention.ms {168 * HOUR_MS} -> {24 * HOUR_MS}",
            f"[stack] topic {cfg.topic_sessions}: retention.ms {168 * HOUR_MS} -> {24 * HOUR_MS}",
            f"[stack] topic {cfg.topic_verdicts}: retention.ms {168 * HOUR_MS} -> {24 * HOUR_MS}"])
        configs = topic_configs(admin, names)
        assert [configs[n]["retention.ms"] for n in names] == [
            "-1", str(24 * HOUR_MS), str(24 * HOUR_MS), str(24 * HOUR_MS), str(336 * HOUR_MS)]
    finally:
        delete_topics(stack.kafka_bootstrap, names)


def test_druid_apply_sets_retention_rules_and_compaction_once(stack):
    env = private_env("test-retention", DRUID_CLICKS_RETENTION_DAYS="30", DRUID_SESSIONS_RETENTION_DAYS="0",
                      DRUID_COMPACTION_SKIP_OFFSET="PT3H")
    cfg = load(env)
    clicks, sessions = cfg.druid_clicks_datasource, cfg.druid_sessions_datasource
    verdicts = cfg.druid_bot_sessions_datasource
    with private_druid(cfg) as client:
        result = run_cli(env, "druid", "apply")
        assert result.returncode == 0, result.stderr
        assert result.stdout.count(" set ") == 6, result.stdout  # rules and compaction of all three

        [load_rule, drop_rule] = retention.current_rules(client, clicks)
        assert (load_rule["type"], load_rule["period"], load_rule["includeFuture"]) == ("loadByPeriod", "P30D", True)
        assert load_rule["tieredReplicants"] == {"_default_tier": 1}
        assert drop_rule["type"] == "dropForever"
        assert [r["type"] for r in retention.current_rules(client, sessions)] == ["loadForever"]
        # the verdicts of bot sessions are kept as long as the clicks they exclude
        assert [r["period"] for r in retention.current_rules(client, verdicts)[:1]] == ["P30D"]
        for ds in (clicks, sessions, verdicts):
            compaction = retention.current_compaction(client, ds)
            assert compaction is not None
            assert compaction["skipOffsetFromLatest"] == "PT3H"
            assert compaction["granularitySpec"]["segmentGranularity"] == "DAY"
            assert compaction["tuningConfig"]["partitionsSpec"]["maxRowsPerSegment"] == retention.MAX_ROWS_PER_SEGMENT

        assert {r["outcome"] for r in retention.apply(client, cfg)} == {"unchanged"}

        shorter = load({**env, "CLICKPIPE_DRUID_CLICKS_RETENTION_DAYS": "7"})
        assert [(r["datasource"], r["kind"]) for r in retention.apply(client, shorter) if r["outcome"] == "set"] == [
            (clicks, "retention"), (verdicts, "retention")]
        assert retention.current_rules(client, clicks)[0]["period"] == "P7D"
    # private_druid removed them again
    assert retention.current_rules(client, clicks) == []
    assert retention.current_compaction(client, clicks) is None
