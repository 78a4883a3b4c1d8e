"""Processing steps of the stream pipeline: plain Python, no Kafka, no Faust.

A raw click goes through :func:`steps.decode.decode` (bytes to a record) and then through
the ordered steps named by ``settings.pipeline_steps`` (``CLICKPIPE_PIPELINE_STEPS``). That
list is the one place where steps are registered: the name ``foo`` means the module
``steps/foo.py``, whose ``build(settings)`` returns the step.

A step is a callable ``step(record, ctx) -> record``. ``record`` is a plain ``dict`` that
starts as the decoded RawClick and gains the fields of EnrichedClick; a step returns it
(usually the same object) or raises :class:`Drop` with a reason. ``ctx`` is a
:class:`Context`: the party's state (partition-local, persisted by the caller) and what the
step may want to emit besides the click (closed sessions). A step that keeps state may also
implement ``due_at(party_state) -> int | None`` (the earliest event time, epoch ms, at which a
sweep would change that state; None: never) and ``sweep(ctx, now_ms)`` (expire that state;
called by the sweep, never from a timer). The worker indexes parties by that time, so a
sweep touches only the parties that are due.

A step that drops a record raises :class:`Drop` before it changes ``ctx.party``: the party's
state is stored once per Kafka message, after all of its events, so a change made for a
dropped record would be kept.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass, field
from typing import Any, Callable, MutableMapping

Record = dict[str, Any]


class Drop(Exception):
    """The record leaves the stream; ``reason`` is a short stable label for metrics and dead letters."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass
class Context:
    """What a step may read and change besides the record.

    ``party`` is the whole state of the record's party (a JSON-friendly dict the caller loads
    before and stores after the steps); each step owns one key in it. ``ips`` maps an IP to
    its state in this partition, and ``partition`` names that partition (kept in the state
    so that a sweep can be routed back to it). ``sessions`` collects Session records closed while handling
    the record, for the caller to emit.
    """

    party: dict[str, Any] = field(default_factory=dict)
    ips: MutableMapping[str, Any] = field(default_factory=dict)
    partition: int = 0
    sessions: list[Record] = field(default_factory=list)


Step = Callable[[Record, Context], Record]


class Pipeline:
    """The configured steps, in order, plus the sweep over their state."""

    def __init__(self, settings, names: tuple[str, ...] | None = None):
        self.names = tuple(names if names is not None else settings.pipeline_steps)
        self.steps: list[tuple[str, Step]] = [
            (name, importlib.import_module(f"steps.{name}").build(settings)) for name in self.names
        ]
        self._due_ats = [step.due_at for _, step in self.steps if hasattr(step, "due_at")]

    def step(self, name: str) -> Step:
        return dict(self.steps)[name]

    def process(self, record: Record, ctx: Context, timings: Callable[[str, float], None] | None = None) -> Record:
        """Run every step on ``record``; :class:`Drop` propagates. ``timings(step, seconds)`` if given."""
        if timings is None:
            for _, step in self.steps:
                record = step(record, ctx)
            return record
        clock = time.perf_counter
        for name, step in self.steps:
            started = clock()
            record = step(record, ctx)
            timings(name, clock() - started)
        return record

    def due_at(self, party_state: dict[str, Any]) -> int | None:
        """The earliest time a sweep would change some step's state of this party (None: never)."""
        times = [t for t in (due_at(party_state) for due_at in self._due_ats) if t is not None]
        return min(times) if times else None

    def due(self, party_state: dict[str, Any], now_ms: int) -> bool:
        """True if some step has state of this party that a sweep at ``now_ms`` would change."""
        t = self.due_at(party_state)
        return t is not None and t <= now_ms

    def sweep(self, ctx: Context, now_ms: int) -> bool:
        """Expire the party's state as of ``now_ms``; True if nothing is left to keep."""
        for _, step in self.steps:
            sweep = getattr(step, "sweep", None)
            if sweep is not None:
                sweep(ctx, now_ms)
        return not any(ctx.party.get(key) for key in ctx.party if not key.startswith("_"))
