"""The pipeline worker with trial changes to its hot path, switched on by environment variables.

For measuring what a change to the worker would buy before making it
(``python -m bench.pipeline_bench --variant``); nothing here is used by the pipeline itself.

- ``BENCH_MAX_UNCOMMITTED=N``: the agent commits after N events instead of
  ``agents.enrich.MAX_UNCOMMITTED`` (outputs and changelog writes wait in memory until then).
- ``BENCH_ONE_LOOKUP=1``: a table read (``table.get``) does one store lookup. Faust's
  ``Table.get`` goes through ``key in data`` and then ``data[key]``: two RocksDB reads and two
  key encodings for every party and IP counter read.

Run as ``faust -A bench.pipeline_variants worker``.
"""

import os

import agents.enrich
import tables

if os.environ.get("BENCH_MAX_UNCOMMITTED"):
    agents.enrich.MAX_UNCOMMITTED = int(os.environ["BENCH_MAX_UNCOMMITTED"])

if os.environ.get("BENCH_ONE_LOOKUP") == "1":
    def _get(self, key, default=None):
        self.on_key_get(key)
        try:
            return self.data[key]  # the store's __getitem__: one lookup, KeyError if absent
        except KeyError:
            return default

    # a deliberate monkeypatch of the method for this variant, which mypy forbids by default
    tables.AttachedTable.get = _get  # type: ignore[method-assign]

from app.main import app  # noqa: E402,F401
