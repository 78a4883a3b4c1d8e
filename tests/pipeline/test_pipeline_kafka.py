"""End to end against the real broker: a worker process, raw clicks in, every output checked."""

from __future__ import annotations

import collections
import signal
import time

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, ConfigResource

import schemas
from clickpipe.topics import partition_for
from tests.support.pipeline import Run, decode_all

PARTIES = 20
EVENTS_PER_WAVE = 10
GAP_S = 3
BOT_PARTIES = {"party-00", "party-01"}


@pytest.fixture
def run(stack, geo_env, tmp_path):
    with Run(stack.kafka_bootstrap, tmp_path, partitions=stack.partitions, env={
        "CLICKPIPE_SESSION_GAP_SECONDS": str(GAP_S),
        "CLICKPIPE_SESSION_SWEEP_SECONDS": "1",
        "CLICKPIPE_KEEP_DUPLICATES": "true",
        **geo_env,
    }) as r:
        yield r


def wave(raw_click, wave_no: int, start_ms: int) -> list[dict]:
    records = []
    for i in range(EVENTS_PER_WAVE):
        for p in range(PARTIES):
            party = f"party-{p:02d}"
            ua = "curl/8.4.0" if party in BOT_PARTIES else None
            fields = {"user_agent": ua} if ua else {}
            records.append(raw_click(party_id=party, event_id=f"w{wave_no}-e{i}", server_time=start_ms + i * 10,
                                     location=f"https://shop.example.com/w{wave_no}/page{i}", **fields))
    return records


def test_clicks_sessions_duplicates_and_poison_records(run, raw_click):
    raw = schemas.current("RawClick")
    worker = run.start_worker()
    producer: Producer = run.producer()

    first = wave(raw_click, 1, int(time.time() * 1000))
    duplicates = first[::10]  # every 10th click is sent twice
    poison = [
        (b"party-00", b"\x00not avro at all", raw.headers, "undecodable"),
        (b"party-01", schemas.encode(raw, raw_click(party_id="party-01")), None, "unknown-schema"),
        (b"party-02", schemas.encode(raw, raw_click(party_id="")), raw.headers, "invalid"),
    ]
    run.produce(first[:100], producer, batch=None)  # single-event messages, as older producers write them
    for key, value, headers, _ in poison:
        run.produce_bytes(producer, key, value, headers)
    run.produce(first[100:] + duplicates, producer)  # RawBatch messages, as the collector writes them
    producer.flush(30)
    time.sleep(GAP_S + 2)
    second = wave(raw_click, 2, int(time.time() * 1000))
    run.produce(second, producer)
    producer.flush(30)

    unique = first + second
    enriched = decode_all(run.consume("enriched", len(unique), timeout=120))
    assert len(enriched) == len(unique)
    assert collections.Counter((r["party_id"], r["event_id"]) for r in enriched) == collections.Counter(
        (r["party_id"], r["event_id"]) for r in unique)

    by_party = collections.defaultdict(list)
    for r in enriched:
        by_party[r["party_id"]].append(r)
    for party, clicks in by_party.items():
        assert len({c["session_id"] for c in clicks}) == 2, party
        assert sum(c["first_in_session"] for c in clicks) == 2
        assert all(c["is_bot"] == (party in BOT_PARTIES) for c in clicks)
        assert all(c["geo_country"] == "GB" and c["geo_city"] == "London" for c in clicks)
        assert sorted(c["session_seq"] for c in clicks) == sorted(list(range(1, EVENTS_PER_WAVE + 1)) * 2)

    sessions = decode_all(run.consume("sessions", 2 * PARTIES, timeout=60))
    assert len(sessions) == 2 * PARTIES
    assert len({s["session_id"] for s in sessions}) == 2 * PARTIES
    clicks_per_session = collections.Counter(r["session_id"] for r in enriched)
    for s in sessions:
        assert s["events"] == clicks_per_session[s["session_id"]] == EVENTS_PER_WAVE
        assert s["close_reason"] in {"gap", "idle"}
        assert s["landing_page"].endswith("/page0") and s["exit_page"].endswith(f"/page{EVENTS_PER_WAVE - 1}")
        assert s["is_bot"] == (s["party_id"] in BOT_PARTIES)

    dead = run.consume("dead-letters", len(poison) + len(duplicates), timeout=30)
    reasons = collections.Counter(dict(m.headers())["dead-letter-reason"].decode() for m in dead)
    assert reasons == collections.Counter({"duplicate": len(duplicates), **{p[3]: 1 for p in poison}})
    originals = {value for _, value, _, _ in poison}
    assert originals <= {m.value() for m in dead}

    metrics = run.metrics(worker)
    assert f'clickpipe_pipeline_dropped_total{{reason="duplicate"}} {float(len(duplicates))}' in metrics
    assert 'clickpipe_pipeline_bots_total{reason="declared-crawler"} 40.0' in metrics
    assert f'records_out_total{{topic="{run.topics["enriched"]}"}} {float(len(unique))}' in metrics


def test_a_starting_worker_declares_its_compacted_changelog_topics_before_it_joins(run):
    """Left to Faust, the group could be assigned before a changelog topic existed (see tables.declare_changelogs)."""
    changelogs = [f"pipeline-{run.tag}-{table}-changelog" for table in ("parties", "ips")]
    admin = AdminClient({"bootstrap.servers": run.bootstrap})
    assert not set(changelogs) & set(admin.list_topics(timeout=10).topics)
    worker = run.start_worker()
    run.wait_ready(worker)
    topics = admin.list_topics(timeout=10).topics
    assert [len(topics[name].partitions) for name in changelogs] == [run.partitions] * 2
    configs = admin.describe_configs([ConfigResource("topic", name) for name in changelogs])
    assert [f.result(10)["cleanup.policy"].value for f in configs.values()] == ["compact"] * 2
    log = worker.log_path.read_text()
    first_assignment = log.split("Setting newly assigned partitions", 1)[1].split("for group", 1)[0]
    assert all(name in first_assignment for name in changelogs), first_assignment


def test_a_worker_with_empty_local_state_rebuilds_every_table_write_without_the_aborted_tx_wait(
        stack, geo_env, tmp_path, raw_click):
    """Table recovery reads each changelog to its last record, and stops there at once.

    The changelogs are written in transactions, so each ends with a transaction marker; Faust
    would wait for a record at the marker's offset and give up after ~10 s ("Aborted tx until
    highwater"). The worker reports those highwaters one lower (app.faust_internals); a highwater
    one too low would lose the last write of a partition, which here holds the dedup memory
    and the open session of that partition's last click.
    """
    with Run(stack.kafka_bootstrap, tmp_path, partitions=stack.partitions, env=geo_env) as run:
        start = int(time.time() * 1000)
        first = wave(raw_click, 1, start)
        first_worker = run.start_worker("first.log", datadir="first")
        run.produce(first)
        before = decode_all(run.consume("enriched", len(first), timeout=120))
        assert len(before) == len(first)
        first_worker.send_signal(signal.SIGTERM)
        assert first_worker.wait(timeout=60) == 0

        second_worker = run.start_worker("second.log", datadir="second")  # a new host: tables from Kafka only
        run.wait_ready(second_worker)
        resent = first[-PARTIES:]  # every party's last click: the last write of each changelog partition
        later = [raw_click(party_id=c["party_id"], event_id="after-restart", server_time=start + 1000,
                           location="https://shop.example.com/after") for c in resent]
        run.produce(resent + later)
        after = decode_all(run.consume("enriched", len(first) + len(later), timeout=120))

    # every resent click was recognised as a duplicate: nothing but the later clicks was added
    assert collections.Counter((c["party_id"], c["event_id"]) for c in after) == collections.Counter(
        (c["party_id"], c["event_id"]) for c in first + later)
    sessions = {c["party_id"]: c["session_id"] for c in before}
    for click in (c for c in after if c["event_id"] == "after-restart"):
        assert click["session_id"] == sessions[click["party_id"]]  # the session went on where it was
        assert click["session_seq"] == EVENTS_PER_WAVE + 1
    log = second_worker.log_path.read_text()
    assert "Recovery complete" in log
    assert "Aborted tx until highwater" not in log


def test_a_batch_sets_aside_each_bad_event_alone_and_processes_the_rest(run, raw_click):
    """One RawBatch holding valid events, an undecodable one, an invalid one and a duplicate."""
    raw = schemas.current("RawClick")
    worker = run.start_worker()
    producer: Producer = run.producer()
    now = int(time.time() * 1000)
    party = "party-07"
    valid = [raw_click(party_id=party, event_id=f"v{i}", server_time=now + i) for i in range(5)]
    undecodable = b"\x02\xffnot a RawClick"
    invalid = schemas.encode(raw, raw_click(party_id=party, event_id="", server_time=now + 10))
    duplicate = schemas.encode(raw, valid[1])
    events = [schemas.encode(raw, r) for r in valid[:3]] + [undecodable, duplicate, invalid] + [
        schemas.encode(raw, r) for r in valid[3:]]
    partition = partition_for(party.encode(), run.partitions)
    run.produce_batch(producer, partition, events)
    # and whole messages that cannot be read: a batch envelope, a batch of an unknown event schema
    batch_headers = schemas.current("RawBatch").headers
    run.produce_bytes(producer, None, b"\x05broken envelope", batch_headers, partition)
    unknown = schemas.encode(schemas.current("RawBatch"), {"event_schema": "0123456789abcdef", "events": [
        schemas.encode(raw, raw_click(party_id=party, event_id="u1"))]})
    run.produce_bytes(producer, None, unknown, batch_headers, partition)
    producer.flush(30)

    enriched = decode_all(run.consume("enriched", len(valid), timeout=90))
    assert sorted(r["event_id"] for r in enriched) == sorted(r["event_id"] for r in valid)
    assert [r["session_seq"] for r in sorted(enriched, key=lambda r: r["server_time"])] == [1, 2, 3, 4, 5]
    dead = run.consume("dead-letters", 5, timeout=30)
    by_reason = {dict(m.headers())["dead-letter-reason"].decode(): m for m in dead}
    assert sorted(dict(m.headers())["dead-letter-reason"].decode() for m in dead) == sorted(
        ["undecodable", "undecodable", "invalid", "duplicate", "unknown-schema"])
    assert by_reason["invalid"].value() == invalid  # each bad event keeps its own bytes
    assert by_reason["duplicate"].value() == duplicate
    assert undecodable in {m.value() for m in dead}
    assert dict(by_reason["invalid"].headers())["schema-fingerprint"] == raw.fingerprint.encode()
    assert by_reason["invalid"].partition() == partition
    metrics = run.metrics(worker)
    assert 'clickpipe_pipeline_dropped_total{reason="invalid"} 1.0' in metrics
    assert 'clickpipe_pipeline_dropped_total{reason="undecodable"} 2.0' in metrics
