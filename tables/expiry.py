"""An in-memory index of table entries by the time they next need a sweep.

The sweep timer used to read every entry of a table on every interval to find the few that
were due; with a million parties that scan was the worker's largest cost. This index keeps,
per partition, a heap of ``(due time, key)``, so finding the due entries costs
O(due · log n). It is derived state: the agent updates it whenever it writes an entry, and
after every rebalance it is rebuilt from the table itself (:meth:`ExpiryIndex.rebuild`),
since the entries of newly assigned partitions were restored from changelogs, not written here.

Times are event times (epoch ms), compared with the clock a sweep runs at. Plain Python:
no Kafka, no Faust.
"""

from __future__ import annotations

import heapq
from typing import Generic, Hashable, Iterable, TypeVar

Key = TypeVar("Key", bound=Hashable)


class ExpiryIndex(Generic[Key]):
    """Per partition: which keys are due for a sweep at a given clock.

    Each key has at most one live due time (:meth:`set`). Heap entries whose time is no longer
    the key's live one are skipped when they surface (lazy deletion), and a heap that grows
    to twice its live entries is rebuilt, so updates cost O(log n) amortised and memory stays
    proportional to the keys held. A key handed out by :meth:`pop_due` stays out until
    :meth:`set` gives it a time again (the sweep of that key writes or deletes it) or
    :meth:`retry` puts back the keys whose sweep never happened (its message was lost).
    """

    def __init__(self) -> None:
        self._due: dict[int, dict[Key, int]] = {}
        self._heaps: dict[int, list[tuple[int, Key]]] = {}
        self._handed_out: dict[int, dict[Key, int]] = {}
        self._rebuilding: set[tuple[int, Key]] | None = None

    def __len__(self) -> int:
        return sum(len(d) for d in self._due.values())

    def set(self, partition: int, key: Key, due: int | None) -> None:
        """``key`` of ``partition`` is next due at ``due`` (None: never, or deleted)."""
        handed = self._handed_out.get(partition)
        if handed:
            handed.pop(key, None)
        if self._rebuilding is not None:
            self._rebuilding.add((partition, key))
        self._put(partition, key, due)

    def _put(self, partition: int, key: Key, due: int | None) -> None:
        live = self._due.setdefault(partition, {})
        if due is None:
            live.pop(key, None)
            return
        if live.get(key) == due:
            return
        live[key] = due
        heap = self._heaps.setdefault(partition, [])
        heapq.heappush(heap, (due, key))
        if len(heap) > 2 * len(live) + 1024:  # mostly superseded entries: rebuild from the live ones
            heap[:] = [(t, k) for k, t in live.items()]
            heapq.heapify(heap)

    def pop_due(self, partition: int, clock: int, limit: int) -> list[Key]:
        """Up to ``limit`` keys of ``partition`` due at or before ``clock``, earliest first."""
        heap = self._heaps.get(partition)
        live = self._due.get(partition, {})
        out: list[Key] = []
        while heap and len(out) < limit and heap[0][0] <= clock:
            due, key = heapq.heappop(heap)
            if live.get(key) == due:
                del live[key]
                self._handed_out.setdefault(partition, {})[key] = due
                out.append(key)
        return out

    def retry(self, partition: int, keys: Iterable[Key]) -> None:
        """Put back ``keys`` handed out by :meth:`pop_due` that nothing has :meth:`set` since."""
        handed = self._handed_out.get(partition, {})
        for key in keys:
            due = handed.pop(key, None)
            if due is not None:
                self._put(partition, key, due)

    def drop_partitions(self, keep: Iterable[int]) -> None:
        """Forget every partition not in ``keep`` (revoked from this worker)."""
        keep = set(keep)
        for table in (self._due, self._heaps, self._handed_out):
            for partition in [p for p in table if p not in keep]:
                del table[partition]

    # --- rebuilding from the table ------------------------------------------------------

    def begin_rebuild(self) -> None:
        """Start a rebuild: from now on, keys :meth:`set` by the agent win over what the scan reads."""
        self._rebuilding = set()

    def scanned(self, partition: int, key: Key, due: int | None) -> None:
        """The table scan read ``key`` (a snapshot: the agent may have written it since)."""
        if self._rebuilding is None or (partition, key) not in self._rebuilding:
            self._put(partition, key, due)

    def end_rebuild(self) -> None:
        self._rebuilding = None
