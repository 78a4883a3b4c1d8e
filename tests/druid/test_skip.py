"""`clickpipe druid skip`: a record Druid cannot decode is found and skipped, nothing valid lost,
and on the local stack the indexer is restarted so queries and Druid SQL work again."""

from __future__ import annotations

from confluent_kafka import Producer

import schemas
from clickpipe.config import load
from druid import specs
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
    # A private stack: the indexer keeps announcing the segments of tasks that failed this way
    # until it restarts, which breaks queries and Druid SQL's schema refresh; skip restarts it.
    own, stack_cli, stack_env = private_stack
    up = stack_cli("up")
    assert up.returncode == 0, up.stdout + up.stderr
    env = {**{k: v for k, v in stack_env.items() if k.startswith("CLICKPIPE_")},
           **private_env(KAFKA_BOOTSTRAP=own.kafka_bootstrap, DRUID_ROUTER_URL=own.druid_router_url,
                         DRUID_BROKER_URL=own.druid_broker_url)}
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

        done = run_cli(env, "druid", "skip", "--yes", ds, timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"skipped {cfg.topic_enriched}[0] offset {before}" in done.stdout
        assert "restarting the local stack's indexer" in done.stdout

        # Every valid record exactly once, through Druid SQL (the restart killed the reading task;
        # its replacement resumed from the committed offsets).
        rows = wait_for(lambda: count_rows(client, ds), lambda n: n == before + after, 240, interval=3)
        assert rows == before + after
        clean = run_cli(env, "druid", "skip", ds)
        assert clean.returncode == 0, clean.stdout + clean.stderr
