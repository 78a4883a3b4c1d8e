"""Processing steps of the stream pipeline: plain Python, no Kafka, no Faust.

A raw click goes through :func:`steps.decode.decode` (bytes to a record) and then through
the ordered steps named by ``settings.pipeline_steps`` (``CLICKPIPE_PIPELINE_STEPS``). That
list is the one place where steps are registered: the name ``foo`` means the module
``steps/foo.py``, whose ``build(settings)`` returns the step.

A step follows :class:`Step`: a callable ``step(record, ctx) -> record`` that declares the
record fields it ``reads`` and ``writes``. ``record`` is a plain ``dict`` that starts as the
decoded RawClick (:data:`DECODED_FIELDS`) and gains the fields of EnrichedClick; a step
returns it (usually the same object) or raises :class:`Drop` with a reason. ``ctx`` is a
:class:`Context`: the party's state (partition-local, persisted by the caller), per-IP state,
and what the step may want to emit besides the click (closed sessions). :class:`Pipeline`
refuses, at start, an order in which a step reads a field that no earlier step writes.

A step that keeps party state may also implement ``due_at(party_state) -> int | None`` (the
earliest event time, epoch ms, at which a sweep would change that state; None: never) and
``sweep(ctx, now_ms)`` (expire that state; called by the sweep, never from a timer); one that
keeps state in ``ctx.ips`` implements ``ip_due_at(value) -> int | None`` (from when that
value is useless: the sweep deletes it). The worker indexes parties and IPs by those times,
so a sweep touches only what is due.

A step that drops a record raises :class:`Drop` before it changes ``ctx.party``: the party's
state is stored once per Kafka message, after all of its events, so a change made for a
dropped record would be kept.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass, field
from typing import Any, Callable, MutableMapping, Protocol, runtime_checkable

import schemas

Record = dict[str, Any]

# What the decode step gives every step: the RawClick fields, the client's session id renamed.
DECODED_FIELDS = frozenset(schemas.current("RawClick").row_field_names - {"session_id"} | {"client_session_id"})


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
    its state in this partition (one step owns it). ``sessions`` collects Session records
    closed while handling the record, ``verdicts`` BotVerdict records of sessions judged bots
    (:mod:`steps.bots`), for the caller to emit.
    """

    party: dict[str, Any] = field(default_factory=dict)
    ips: MutableMapping[str, Any] = field(default_factory=dict)
    sessions: list[Record] = field(default_factory=list)
    verdicts: list[Record] = field(default_factory=list)


@runtime_checkable
class Step(Protocol):
    """One processing step. ``reads``: the record fields it needs (from decode or an earlier
    step); ``reads_if_present``: fields it uses when a configured step writes them (that step
    must then come earlier); ``writes``: the fields it sets."""

    reads: frozenset[str]
    reads_if_present: frozenset[str]
    writes: frozenset[str]

    def __call__(self, record: Record, ctx: Context) -> Record: ...


class PipelineError(ValueError):
    """The configured steps cannot run in this order; the message says which step and field."""


def check_order(steps: list[tuple[str, Any]]) -> None:
    """Raise :class:`PipelineError` unless every step's reads are written by decode or an earlier step."""
    writers = {f: name for name, step in steps for f in getattr(step, "writes", ())}
    available = set(DECODED_FIELDS)
    for name, step in steps:
        if not isinstance(step, Step):
            raise PipelineError(f"step {name!r} does not declare reads, reads_if_present and writes "
                                f"(see steps/__init__.py)")
        for f in sorted(step.reads | step.reads_if_present):
            if f in available:
                continue
            if f in writers:
                raise PipelineError(f"step {name!r} reads {f!r}, which step {writers[f]!r} writes after it: "
                                    f"put {writers[f]!r} before {name!r} in CLICKPIPE_PIPELINE_STEPS")
            if f in step.reads:
                raise PipelineError(f"step {name!r} reads {f!r}, which neither decode nor any configured step writes")
        available |= step.writes


class Pipeline:
    """The configured steps, in order, plus the sweep over their state."""

    def __init__(self, settings, names: tuple[str, ...] | None = None):
        self.names = tuple(names if names is not None else settings.pipeline_steps)
        self.steps: list[tuple[str, Step]] = [
            (name, importlib.import_module(f"steps.{name}").build(settings)) for name in self.names
        ]
        check_order(self.steps)
        self._due_ats = [step.due_at for _, step in self.steps if hasattr(step, "due_at")]
        self._ip_due_ats = [step.ip_due_at for _, step in self.steps if hasattr(step, "ip_due_at")]

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

    def ip_due_at(self, value: Any) -> int | None:
        """From when an IP's state is useless to every step (the sweep deletes it); None: never."""
        times = [t for t in (ip_due_at(value) for ip_due_at in self._ip_due_ats) if t is not None]
        return max(times) if len(times) == len(self._ip_due_ats) and times else None

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
