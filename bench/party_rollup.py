"""What the ``party`` dimension costs Druid's rollup: stored rows with and without it.

Runs the benchmark's realistic traffic (:func:`bench.pipeline_bench.traffic`) through the
worker's code path in process (:class:`agents.messages.EventProcessor`, dict tables), closes
every session at the end, and counts the rows Druid would store for the clicks and sessions
datasources under their rollup: distinct (time floored to the query granularity, every
declared dimension) — with the ``party`` dimension and without it. No Kafka or Druid needed.

Usage: python -m bench.party_rollup [--events 200000] [--parties 20000]
"""

from __future__ import annotations

import argparse
import re
import sys

import orjson

from agents.messages import EventProcessor, read_events
from bench.pipeline_bench import raw_messages, traffic
from clickpipe.config import load
from druid import specs
from steps import Context, Pipeline

GRANULARITY_MS = {"none": 1, "minute": 60_000, "hour": 3_600_000}
URL = re.compile(r"^[^?#]*")


def stored_rows(rows: list[dict], ds: specs.Datasource, with_party: bool) -> int:
    step = GRANULARITY_MS[ds.query_granularity]
    names = [n for n in ds.dimensions if with_party or n != "party"]
    keys = set()
    for row in rows:
        values = []
        for name in names:
            value = row.get(name)
            if ds.dimensions[name] == "url" and value is not None:
                value = URL.match(value).group(0)  # type: ignore[union-attr]  # matches any string
            values.append(value)
        t = row[ds.timestamp]
        keys.add((t - t % step, *values))
    return len(keys)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--parties", type=int, default=20_000)
    args = parser.parse_args()
    settings = load({"CLICKPIPE_GEOIP_CITY_DB": "/nonexistent", "CLICKPIPE_GEOIP_ASN_DB": "/nonexistent"})
    pipeline = Pipeline(settings)
    processor = EventProcessor(pipeline, keep_duplicates=False)
    parties: dict = {}
    ips: dict = {}
    clicks: list[dict] = []
    sessions: list[dict] = []
    for _, key, value, headers in raw_messages(traffic(args.events, args.parties), 100, settings.partitions):
        events = read_events(key, value, list(headers))
        assert isinstance(events, list)
        out = processor.process(events, parties, ips)
        parties.update({k: v for k, v in out.parties.items() if v is not None})
        ips.update(out.ips)
        clicks += map(orjson.loads, out.enriched)
        sessions += map(orjson.loads, out.sessions)
    for party_id, state in parties.items():  # close every open session
        ctx = Context(party=state, ips=ips)
        pipeline.sweep(ctx, 2**62)
        for s in ctx.sessions:
            s["party"] = party_id
        sessions += ctx.sessions
    declaration = specs.load_declaration()
    print(f"{len(clicks)} clicks, {len(sessions)} sessions of {len({c['party_id'] for c in clicks})} parties")
    print("| datasource | events or sessions | rows without party | rows with party | ratio |")
    print("|---|---|---|---|---|")
    for name, rows in (("clicks", clicks), ("sessions", sessions)):
        without, with_party = (stored_rows(rows, declaration[name], flag) for flag in (False, True))
        print(f"| {name} | {len(rows)} | {without} | {with_party} | {with_party / without:.3f} |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
