import pytest

from steps import Context, Drop
from steps.dedup import Dedup


def test_second_copy_of_an_event_is_dropped_as_duplicate(decoded):
    step, ctx = Dedup(memory_ms=60_000, max_ids=100), Context()
    first = decoded(event_id="e1", server_time=1_000)
    assert step(first, ctx) is first
    with pytest.raises(Drop) as err:
        step(decoded(event_id="e1", server_time=2_000), ctx)
    assert err.value.reason == "duplicate"


def test_same_event_id_in_another_party_state_is_not_a_duplicate(decoded):
    step = Dedup(memory_ms=60_000, max_ids=100)
    step(decoded(party_id="a", event_id="e1"), Context())
    assert step(decoded(party_id="b", event_id="e1"), Context())["party_id"] == "b"


def test_ids_are_forgotten_after_the_memory_time(decoded):
    step, ctx = Dedup(memory_ms=10_000, max_ids=100), Context()
    step(decoded(event_id="e1", server_time=1_000), ctx)
    step(decoded(event_id="e2", server_time=12_000), ctx)
    assert "e1" not in ctx.party["dedup"]
    assert step(decoded(event_id="e1", server_time=12_500), ctx)["event_id"] == "e1"


def test_memory_per_party_is_bounded_in_size(decoded):
    step, ctx = Dedup(memory_ms=10**9, max_ids=3), Context()
    for i in range(10):
        step(decoded(event_id=f"e{i}", server_time=1_000 + i), ctx)
    assert list(ctx.party["dedup"]) == ["e7", "e8", "e9"]


def test_sweep_removes_expired_memory_and_due_says_when(decoded):
    step, ctx = Dedup(memory_ms=10_000, max_ids=100), Context()
    step(decoded(event_id="e1", server_time=1_000), ctx)
    assert step.due_at(ctx.party) == 11_001  # forgotten once older than the memory
    step.sweep(ctx, 11_001)
    assert "dedup" not in ctx.party
