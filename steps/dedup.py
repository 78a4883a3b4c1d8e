"""Drop repeated (party_id, event_id) pairs seen within a bounded time.

State: ``party["dedup"]`` maps event id to its server_time, in arrival order. An id is
forgotten ``dedup_memory_seconds`` (event time) after it was seen, or when the party has more
than ``dedup_max_ids`` ids (oldest first), so memory per party is bounded in time and size.
"""

from __future__ import annotations

from typing import Any

from steps import Context, Drop, Record

KEY = "dedup"


class Dedup:
    reads = frozenset({"event_id", "server_time"})
    reads_if_present: frozenset[str] = frozenset()
    writes: frozenset[str] = frozenset()

    def __init__(self, memory_ms: int, max_ids: int):
        self.memory_ms = memory_ms
        self.max_ids = max_ids

    def __call__(self, record: Record, ctx: Context) -> Record:
        seen: dict[str, int] = ctx.party.setdefault(KEY, {})
        now = record["server_time"]
        self._expire(seen, now)
        event_id = record["event_id"]
        if event_id in seen:
            raise Drop("duplicate", event_id)
        seen[event_id] = now
        while len(seen) > self.max_ids:
            del seen[next(iter(seen))]
        return record

    def _expire(self, seen: dict[str, int], now_ms: int) -> None:
        # Arrival order is nearly time order; stopping at the first fresh id keeps this O(expired).
        horizon = now_ms - self.memory_ms
        while seen:
            oldest = next(iter(seen))
            if seen[oldest] >= horizon:
                break
            del seen[oldest]

    def due_at(self, state: dict[str, Any]) -> int | None:
        """The earliest sweep time at which every remembered id is forgotten (and the memory goes)."""
        seen = state.get(KEY)
        return max(seen.values()) + self.memory_ms + 1 if seen else None

    def sweep(self, ctx: Context, now_ms: int) -> None:
        seen = ctx.party.get(KEY)
        if seen is not None:
            self._expire(seen, now_ms)
            if not seen:
                del ctx.party[KEY]


def build(settings) -> Dedup:
    return Dedup(settings.dedup_memory_seconds * 1000, settings.dedup_max_ids)
