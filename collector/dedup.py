"""Short-term duplicate memory, after Divolte's: a fixed array of hash signatures.

Memory use is fixed (8 bytes a slot) and lookups are O(1); a collision evicts the older
signature, so it forgets rather than grows. It only sees the events of its own worker
process: events of one party reach the same worker only with sticky load balancing, so
the downstream processor stays the authority on deduplication; this flag is a cheap
early signal (retried batches from the tag are the common case it catches).
"""

from __future__ import annotations

from array import array


class DuplicateMemory:
    """Remembers recently seen ``(party_id, event_id)`` pairs in ``slots`` slots."""

    def __init__(self, slots: int):
        self._slots = array("q", bytes(8 * slots))
        self._size = slots

    def _slot(self, party_id: str, event_id: str) -> tuple[int, int]:
        signature = hash((party_id, event_id)) or 1  # 0 marks an empty slot
        return signature % self._size, signature

    def contains(self, party_id: str, event_id: str) -> bool:
        """True if the pair was remembered (and not evicted since)."""
        index, signature = self._slot(party_id, event_id)
        return self._slots[index] == signature

    def remember(self, party_id: str, event_id: str) -> None:
        """Remember the pair, evicting whatever shared its slot.

        Separate from :meth:`contains` so that only events actually queued are
        remembered: a batch refused with 503 and retried is not a duplicate.
        """
        index, signature = self._slot(party_id, event_id)
        self._slots[index] = signature
