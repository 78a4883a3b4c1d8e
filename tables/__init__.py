"""The pipeline's tables: partition-local state in RocksDB, each backed by a changelog topic.

- ``parties``: party id -> the party's state (a JSON dict; each step owns one key, see
  :mod:`steps`): dedup memory, bot counters, the open session, and ``_p``, the partition it
  lives in. Written once per click; deleted by the sweep when nothing is left to remember.
- ``ips``: IP -> ``[rate window, events, partition]`` for the per-IP bot rate; entries of
  past windows are deleted by the sweep. The raw topic is keyed by party, so one IP has a
  separate entry in every partition where its parties live (counts are per partition).

Both are written only from the enrich agent (concurrency 1) inside stream iteration, so
every write goes to the changelog partition of the record being processed, in the same
transaction as the outputs and the consumer offset.
"""

from __future__ import annotations

from dataclasses import dataclass

import faust

MIB = 1024 * 1024


@dataclass(frozen=True)
class Tables:
    parties: faust.Table
    ips: faust.Table


def rocksdb_options(settings) -> dict:
    """Memory bounds for each table partition's RocksDB (the library default cache is 2 GiB each)."""
    return {
        "block_cache_size": settings.rocksdb_block_cache_mb * MIB,
        "write_buffer_size": settings.rocksdb_write_buffer_mb * MIB,
        "max_write_buffer_number": 2,
        "max_open_files": settings.rocksdb_max_open_files,
    }


def define(app: faust.App, settings) -> Tables:
    options = rocksdb_options(settings)
    # keys: raw UTF-8 (the app default); values: JSON (the app default)
    common = dict(partitions=settings.partitions, options=options)
    return Tables(
        parties=app.Table("parties", help="Per-party state: dedup, bot counters, open session", **common),
        ips=app.Table("ips", help="Per-IP event counters of the current bot-rate window", **common),
    )
