"""Poison on a Druid-facing topic: lines that are not JSON rows are counted and dropped, never
fatal; every valid row of the same messages is ingested, and `clickpipe druid status` shows
the count and the saved parse exceptions."""

from __future__ import annotations

import os

import orjson
from confluent_kafka import Producer
from druid_support import druid_status, run_cli

import schemas
from clickpipe.config import load
from druid import supervisors
from tests.support.druid import count_rows, private_druid, private_env, produce_rows, wait_for
from tests.support.records import enriched_click


def _garbage(size: int) -> bytes:
    """Random bytes on one line (Druid splits a value into lines at newlines only)."""
    return bytes(b for b in os.urandom(size) if b not in b"\r\n")


def test_bad_lines_and_a_binary_message_are_counted_while_every_valid_row_lands(stack):
    env = private_env()
    cfg = load(env)
    ds = cfg.druid_clicks_datasource
    schema = schemas.current("EnrichedClick")
    before, mixed, after = ([enriched_click() for _ in range(n)] for n in (40, 10, 30))
    # A row whose screen_width is no number: ingested without it, counted "with errors".
    flawed = orjson.dumps({**enriched_click(), "screen_width": "wide"})
    lines = schemas.encode_rows(schema, mixed).split(b"\n")
    poison = b"\n".join(lines[:5] + [b'{"server_time": 17', b"not json", flawed] + lines[5:])
    valid_rows = len(before) + len(mixed) + 1 + len(after)

    with private_druid(cfg) as client:
        produce_rows(cfg, cfg.topic_enriched, schema, before, per_message=10)
        producer = Producer({"bootstrap.servers": cfg.kafka_bootstrap})
        producer.produce(cfg.topic_enriched, value=poison, headers=schema.row_headers)
        producer.produce(cfg.topic_enriched, value=_garbage(400))
        assert producer.flush(30) == 0
        produce_rows(cfg, cfg.topic_enriched, schema, after, per_message=10)
        supervisors.apply(client, cfg)

        # Settled: the exact count on three polls in a row, so a late duplicate would show.
        counts: list = []
        wait_for(lambda: counts.append(count_rows(client, ds)) or counts[-3:],
                 lambda last: last == [valid_rows] * 3, 120, interval=2)
        assert counts[-1] == valid_rows
        [row] = client.sql(f'SELECT SUM("count") FILTER (WHERE screen_width = 1920) AS n FROM "{ds}"')
        assert row == {"n": valid_rows - 1}  # the flawed row landed without its width

        status = wait_for(lambda: druid_status(env), lambda s: s[ds]["unparseable"] == 3, 60)
        clicks = status[ds]
        assert (clicks["state"], clicks["last_error"], clicks["lag"]) == ("RUNNING", None, 0), clicks
        assert (clicks["unparseable"], clicks["with_errors"]) == (3, 1), clicks
        assert client.latest_task(ds) is None  # no task failed (or ended at all)
        saved = clicks["parse_exceptions"]
        assert sorted(e["type"] for e in saved) == ["processedWithError"] + ["unparseable"] * 3
        details = " ".join(e["detail"] for e in saved)
        assert "Unable to parse row [not json]" in details and 'Unable to parse row [{"server_time": 17]' in details
        assert "Could not convert value [wide] to long for dimension [screen_width]" in details
        assert [e["time"] for e in saved] == sorted((e["time"] for e in saved), reverse=True)

        table = run_cli(env, "druid", "status")
        assert table.returncode == 0, table.stdout + table.stderr
        lines = table.stdout.splitlines()
        assert lines[0].split()[4:6] == ["UNPARSEABLE", "WITH_ERRORS"]
        assert [line.split()[:6] for line in lines if line.startswith(ds + " ")] == [
            [ds, cfg.topic_enriched, "RUNNING", "0", "3", "1"]]
        assert f"Parse exceptions saved by the current tasks of {ds} (newest first):" in lines
        assert any("Unable to parse row [not json]" in line for line in lines)
