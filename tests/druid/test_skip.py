"""`clickpipe druid skip`: a record Druid cannot decode is found and skipped, nothing valid lost;
`clickpipe stack restart druid-indexer` then brings Druid SQL back for the datasource."""

from __future__ import annotations

from confluent_kafka import Producer

import schemas
from clickpipe.config import load
from druid import specs
from druid.client import DruidError
from druid.skip import Decoder, first_bad
from druid.testing import count_rows, enriched_click, private_druid, private_env, produce_framed, wait_for
from druid_support import run_cli


def test_decoder_accepts_framed_records_of_the_spec_only():
    schema = schemas.current("EnrichedClick")
    decoder = Decoder({schema.druid_id: schema.source})
    good = schemas.encode_framed(schema, enriched_click())
    assert decoder.problem(good) is None
    assert "not framed" in decoder.problem(b"not avro")
    assert "not framed" in decoder.problem(schemas.encode(schema, enriched_click()))
    assert "is not in the spec" in decoder.problem(bytes([1]) + (schema.druid_id ^ 1).to_bytes(4, "big") + good[5:])
    assert "trailing bytes" in decoder.problem(good + b"x")
    assert decoder.problem(None) == "empty value"
    values = [(10, good), (11, good), (12, b"bad"), (13, good)]
    assert first_bad(values, decoder)[:2] == (12, decoder.problem(b"bad"))
    assert first_bad(values[:2], decoder) == (None, None, 2)


def test_skip_moves_past_a_poison_record_without_losing_valid_ones(private_stack):
    # A private stack: Druid's indexer keeps announcing the segments of tasks that failed this
    # way until it restarts, which stops the broker's SQL schema refresh for every datasource.
    own, stack_cli = private_stack
    up = stack_cli("up")
    assert up.returncode == 0, up.stdout + up.stderr
    env = private_env(KAFKA_BOOTSTRAP=own.kafka_bootstrap, DRUID_ROUTER_URL=own.druid_router_url,
                      DRUID_BROKER_URL=own.druid_broker_url)
    cfg = load(env)
    ds = cfg.druid_clicks_datasource
    schema = schemas.current("EnrichedClick")
    before, after = 7, 5
    with private_druid(cfg) as client:
        produce_framed(cfg, cfg.topic_enriched, schema, [enriched_click() for _ in range(before)])
        producer = Producer({"bootstrap.servers": cfg.kafka_bootstrap})
        producer.produce(cfg.topic_enriched, value=b"not avro")
        assert producer.flush(30) == 0
        produce_framed(cfg, cfg.topic_enriched, schema, [enriched_click() for _ in range(after)])
        client.submit_supervisor(specs.build(specs.load_declaration()["clicks"], cfg))
        failed = wait_for(lambda: client.latest_task(ds), lambda t: t is not None and t["status"] == "FAILED", 90)
        assert failed and failed["status"] == "FAILED", failed

        report = run_cli(env, "druid", "skip", ds)
        assert report.returncode == 3, report.stderr
        lines = [line.split(None, 6) for line in report.stdout.splitlines()]
        assert lines[0] == ["SUPERVISOR", "TOPIC", "PARTITION", "DRUID_OFFSET", "END_OFFSET", "BAD_OFFSET", "REASON"]
        assert lines[1][:6] == [ds, cfg.topic_enriched, "0", "0", str(before + after + 1), str(before)]
        assert "not framed" in lines[1][6]
        assert native_count(client, ds) in (None, 0, before)  # stuck: nothing committed

        done = run_cli(env, "druid", "skip", "--yes", ds, timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"skipped {cfg.topic_enriched}[0] offset {before}" in done.stdout

        # A native query: the broker's SQL schema can take minutes to list a datasource whose first
        # segments come from a standalone task.
        total = wait_for(lambda: native_count(client, ds), lambda n: n == before + after, 240, interval=3)
        assert total == before + after
        clean = run_cli(env, "druid", "skip", ds)
        assert clean.returncode == 0, clean.stdout + clean.stderr
        assert "clickpipe stack restart druid-indexer" in done.stdout

        # The remedy the command prints: SQL sees the datasource again, every row exactly once
        # (the restart kills the reading task; its replacement resumes from the committed offsets).
        restart = stack_cli("restart", "druid-indexer")
        assert restart.returncode == 0, restart.stdout + restart.stderr
        rows = wait_for(lambda: count_rows(client, ds), lambda n: n == before + after, 240, interval=3)
        assert rows == before + after


def native_count(client, ds):
    """SUM("count") of a datasource through a native timeseries query; None while it has no segment."""
    try:
        result = client._call("POST", "/druid/v2", json={
            "queryType": "timeseries", "dataSource": ds, "granularity": "all", "intervals": ["2000/2100"],
            "aggregations": [{"type": "longSum", "name": "n", "fieldName": "count"}]})
    except DruidError:
        return None
    return result[0]["result"]["n"] if result else None
