"""The sweep index: due keys per partition, superseded times skipped, lost sweeps retried, rebuilds."""

from __future__ import annotations

from tables.expiry import ExpiryIndex


def test_pop_due_returns_only_due_keys_of_the_partition_earliest_first():
    index = ExpiryIndex()
    index.set(0, "late", 300)
    index.set(0, "early", 100)
    index.set(1, "other-partition", 50)
    index.set(0, "never", None)
    assert index.pop_due(0, 200, limit=10) == ["early"]
    assert index.pop_due(0, 200, limit=10) == []
    assert index.pop_due(0, 300, limit=10) == ["late"]
    assert index.pop_due(1, 1000, limit=10) == ["other-partition"]
    assert len(index) == 0


def test_a_new_time_supersedes_the_old_one_and_none_removes():
    index = ExpiryIndex()
    index.set(0, "a", 100)
    index.set(0, "a", 500)  # the party was active again
    index.set(0, "b", 100)
    index.set(0, "b", None)  # deleted
    assert index.pop_due(0, 400, limit=10) == []
    assert index.pop_due(0, 500, limit=10) == ["a"]


def test_limit_leaves_the_rest_for_the_next_call():
    index = ExpiryIndex()
    for i in range(25):
        index.set(2, f"k{i}", i)
    assert index.pop_due(2, 100, limit=10) == [f"k{i}" for i in range(10)]
    assert len(index.pop_due(2, 100, limit=100)) == 15


def test_handed_out_keys_come_back_only_if_nothing_set_them_since():
    index = ExpiryIndex()
    index.set(0, "lost", 10)
    index.set(0, "swept", 10)
    assert sorted(index.pop_due(0, 20, limit=10)) == ["lost", "swept"]
    index.set(0, "swept", None)  # the sweep message arrived and deleted it
    index.retry(0, ["lost", "swept"])
    assert index.pop_due(0, 20, limit=10) == ["lost"]


def test_heap_of_superseded_entries_is_compacted():
    index = ExpiryIndex()
    for t in range(10_000):
        index.set(0, "busy", t)  # one party, ten thousand writes
    assert len(index._heaps[0]) <= 2 * 1 + 1024 + 1
    assert index.pop_due(0, 10_000, limit=10) == ["busy"]


def test_rebuild_keeps_what_the_agent_wrote_during_the_scan():
    index = ExpiryIndex()
    index.set(0, "kept", 5)
    index.set(3, "revoked", 5)
    index.drop_partitions([0, 1])
    index.begin_rebuild()
    index.set(1, "written-during-scan", 900)
    index.scanned(1, "written-during-scan", 10)  # the scan's snapshot is older
    index.scanned(1, "restored", 20)
    index.scanned(1, "no-state", None)
    index.end_rebuild()
    assert index.pop_due(1, 100, limit=10) == ["restored"]
    assert index.pop_due(3, 100, limit=10) == []
    assert index.pop_due(0, 100, limit=10) == ["kept"]
    assert index.pop_due(1, 900, limit=10) == ["written-during-scan"]
