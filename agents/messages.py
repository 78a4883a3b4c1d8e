"""What the enrich agent decides for one raw message, as plain functions: no Kafka, no Faust.

The agent (:mod:`agents.enrich`) receives a message, calls one of these, then carries the
:class:`Outcome` out: it writes the states, sends the rows and dead letters, counts the
metrics. Tables are passed in as mappings, so every decision here is testable with dicts.

Per message of events (:func:`process_events`): each event is decoded alone; each party's
state is read once (on its first event) and kept for the message's later events; IP state is
read and written through :class:`CachedIps`. An event that a step drops, or that fails, becomes
a dead letter with its own bytes; the rest of the message goes on. An event of an erased party
(:mod:`clickpipe.erased`) is dropped and counted, never set aside: a dead letter would keep it.
Every row written carries ``party`` (:func:`clickpipe.party.party_key`), Druid's party dimension.
"""

from __future__ import annotations

import collections
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, MutableMapping, cast

import orjson

import schemas
from clickpipe.erased import erased_event
from clickpipe.party import digest
from steps import Context, Drop, Pipeline
from steps.decode import decode

log = logging.getLogger(__name__)

CONTROL_HEADER = "clickpipe-control"
SWEEP_PARTY = b"sweep-party"
SWEEP_IP = b"sweep-ip"
ERASE_PARTY = b"erase-party"
DETAIL_LIMIT = 1000  # characters of a dead letter's detail header

Headers = list[tuple[str, bytes]]
Timings = Callable[[str, float], None]


@dataclass
class DeadLetter:
    """One event (or message) set aside: its own key, bytes and headers, and why."""

    key: bytes | None
    value: bytes | None
    headers: Headers
    reason: str
    detail: str

    def headers_with_reason(self, source: str) -> Headers:
        """The original headers plus ``dead-letter-reason``, ``-detail`` and ``-source`` (topic/partition/offset)."""
        return list(self.headers) + [("dead-letter-reason", self.reason.encode()),
                                     ("dead-letter-detail", self.detail[:DETAIL_LIMIT].encode()),
                                     ("dead-letter-source", source.encode())]


@dataclass
class Outcome:
    """Everything handling one message produced, for the agent to carry out."""

    enriched: list[bytes] = field(default_factory=list)  # JSON rows
    sessions: list[bytes] = field(default_factory=list)  # JSON rows
    verdicts: list[bytes] = field(default_factory=list)  # JSON rows (BotVerdict)
    dead: list[DeadLetter] = field(default_factory=list)
    parties: dict[str, dict[str, Any] | None] = field(default_factory=dict)  # to write; None: delete
    ips: dict[str, Any] = field(default_factory=dict)  # to write; None: delete
    # keys a sweep looked at and left as they were (or found gone): their next due time, for the index
    ips_unchanged: dict[str, int | None] = field(default_factory=dict)
    parties_gone: list[str] = field(default_factory=list)
    latest_time: int = 0  # latest server_time among the events processed
    dropped: collections.Counter = field(default_factory=collections.Counter)  # by reason, dead or not
    bots: collections.Counter = field(default_factory=collections.Counter)  # by reason
    sessions_closed: collections.Counter = field(default_factory=collections.Counter)  # by close reason

    def set_aside(self, letter: DeadLetter) -> None:
        self.dropped[letter.reason] += 1
        self.dead.append(letter)

    def close_sessions(self, session_schema: schemas.Schema, sessions: Iterable[dict[str, Any]],
                       party_key: Callable[[str], str]) -> None:
        for s in sessions:
            s["party"] = party_key(s["party_id"])
            self.sessions.append(schemas.encode_rows(session_schema, [s]))
            self.sessions_closed[s["close_reason"]] += 1


def control_kind(headers: Iterable[tuple[str, bytes | None]]) -> bytes | None:
    """The kind of a control (sweep) message, or None for a message of events."""
    return next((v for k, v in headers if k == CONTROL_HEADER), None)


def read_events(key: bytes | None, value: bytes | None, headers: Headers) -> list[schemas.RawEvent] | DeadLetter:
    """The events of a raw message, or the dead letter of a message whose batch envelope cannot be read."""
    try:
        return schemas.raw_events(value, headers)
    except schemas.SchemaError as exc:
        return DeadLetter(key, value, headers, "undecodable", str(exc))


class CachedIps(MutableMapping):
    """The IP state table as the steps see it during one message: each IP read once, written once.

    Reads go to the table the first time and to memory after; writes stay in memory
    (:meth:`written`) for the agent to store once per IP at the end of the message.
    """

    def __init__(self, table: Mapping[str, Any]):
        self.table = table
        self.cache: dict[str, Any] = {}
        self.dirty: set[str] = set()

    def __getitem__(self, key):
        if key not in self.cache:
            self.cache[key] = self.table.get(key)
        value = self.cache[key]
        if value is None:
            raise KeyError(key)
        return value

    def get(self, key, default=None):
        try:
            return self[key]
        except KeyError:
            return default

    def __setitem__(self, key, value) -> None:
        self.cache[key] = value
        self.dirty.add(key)

    def __delitem__(self, key) -> None:
        raise NotImplementedError("steps never delete IP state; the sweep does")

    def __iter__(self):
        return iter(k for k, v in self.cache.items() if v is not None)

    def __len__(self) -> int:
        return sum(1 for v in self.cache.values() if v is not None)

    def written(self) -> dict[str, Any]:
        return {key: self.cache[key] for key in self.dirty}


class EventProcessor:
    """Runs the pipeline over the events of one message (:meth:`process`)."""

    def __init__(self, pipeline: Pipeline, keep_duplicates: bool, timing_sample: int = 128,
                 party_key: Callable[[str], str] = str, erased: Mapping[str, int] | None = None):
        """``party_key`` gives a row's ``party`` from its party id; ``erased`` is the erased list
        (party digest -> erasure time), read on every event, so updating it takes effect at once."""
        self.pipeline = pipeline
        self.keep_duplicates = keep_duplicates
        self.timing_sample = timing_sample  # time the steps of one event in this many
        self.party_key = party_key
        self.erased: Mapping[str, int] = erased if erased is not None else {}
        self.enriched = schemas.current("EnrichedClick")
        self.session = schemas.current("Session")
        self.verdict = schemas.current("BotVerdict")
        self._count = 0

    def process(self, events: list[schemas.RawEvent], parties: Mapping[str, Any], ips: Mapping[str, Any],
                fallback_key: bytes | None = None, timings: Timings | None = None) -> Outcome:
        """Decode and process ``events`` in order; nothing is written, everything is in the :class:`Outcome`.

        ``parties`` and ``ips`` are read (``get``) at most once per key. A dropped duplicate is
        counted and, with ``keep_duplicates``, also set aside; every other drop or failure is set
        aside with its reason. ``fallback_key`` keys the dead letter of an event whose party id
        is unknown (undecodable).
        """
        out = Outcome()
        states: dict[str, dict[str, Any]] = {}
        digests: dict[str, str] = {}
        cached = CachedIps(ips)
        for value, headers in events:
            party_id = None
            try:
                record = decode(value, headers)
                party_id = record["party_id"]
                if self.erased:
                    party_digest = digests.get(party_id) or digests.setdefault(party_id, digest(party_id))
                    if erased_event(self.erased, party_digest, record["server_time"]):
                        out.dropped["erased"] += 1
                        continue
                state = states.get(party_id)
                if state is None:
                    state = states[party_id] = parties.get(party_id) or {}
                ctx = Context(party=state, ips=cached)
                self._count += 1
                record = self.pipeline.process(record, ctx, timings if self._count % self.timing_sample == 0 else None)
                record["party"] = self.party_key(party_id)
                for s in ctx.sessions:
                    s["party"] = record["party"]
                # encode first: a record that does not fit its schema leaves its dead letter, not half its outputs
                row = schemas.encode_rows(self.enriched, [record])
                closed = [schemas.encode_rows(self.session, [s]) for s in ctx.sessions]
                verdicts = [schemas.encode_rows(self.verdict, [{**v, "party": self.party_key(v["party_id"])}])
                            for v in ctx.verdicts]
            except Drop as drop:
                key = party_id.encode() if party_id else fallback_key
                if drop.reason == "duplicate" and not self.keep_duplicates:
                    out.dropped[drop.reason] += 1
                else:
                    out.set_aside(DeadLetter(key, value, headers, drop.reason, drop.detail))
                continue
            except Exception as exc:  # a bug in a step must not stop the stream: set the event aside
                log.exception("event failed")
                key = party_id.encode() if party_id else fallback_key
                out.set_aside(DeadLetter(key, value, headers, "error", f"{type(exc).__name__}: {exc}"))
                continue
            out.enriched.append(row)
            out.sessions += closed
            out.verdicts += verdicts
            out.sessions_closed.update(s["close_reason"] for s in ctx.sessions)
            out.latest_time = max(out.latest_time, record["server_time"])
            if record.get("is_bot"):
                out.bots[record["bot_reason"]] += 1
        out.parties.update(states)
        out.ips.update(cached.written())
        return out

    def sweep_parties(self, keys: Iterable[str], now: int, parties: Mapping[str, Any],
                      ips: MutableMapping[str, Any]) -> Outcome:
        """Expire the state of the parties ``keys`` as of ``now``: closed sessions out, empty states deleted."""
        out = Outcome()
        for key in keys:
            state = parties.get(key)
            if state is None:
                out.parties_gone.append(key)
                continue
            ctx = Context(party=state, ips=ips)
            empty = self.pipeline.sweep(ctx, now)
            out.close_sessions(self.session, ctx.sessions, self.party_key)
            out.parties[key] = None if empty else state
        return out

    def erase(self, erasure: Erasure) -> Outcome:
        """Forget the party's state at once, open session included (never emitted): a changelog tombstone."""
        out = Outcome()
        out.parties[erasure.party_id] = None
        return out

    def sweep_ips(self, keys: Iterable[str], now: int, ips: Mapping[str, Any]) -> Outcome:
        """Delete the IP state of ``keys`` that no step needs as of ``now``; the rest stays as it is."""
        out = Outcome()
        for key in keys:
            value = ips.get(key)
            due = None if value is None else self.pipeline.ip_due_at(value)
            if due is not None and due <= now:
                out.ips[key] = None
            else:
                out.ips_unchanged[key] = due
        return out


@dataclass(frozen=True)
class Sweep:
    """A sweep message: sweep ``keys`` with the clock ``now``; ``id`` ties it to the timer that sent it."""

    now: int
    keys: list[str]
    id: str | None

    def encode(self) -> bytes:
        return orjson.dumps({"now": self.now, "keys": self.keys, "id": self.id})


def parse_sweep(key: bytes | None, value: bytes | None) -> Sweep:
    """The sweep in a control message; one without ``keys`` sweeps its Kafka key (older workers sent those).

    Raises :class:`steps.Drop` (``bad-control``) for anything else.
    """
    try:
        # a missing value or key raises too (JSONDecodeError, AttributeError): a bad control message
        body = orjson.loads(cast(bytes, value))
        keys = [str(k) for k in body["keys"]] if "keys" in body else [cast(bytes, key).decode()]
        return Sweep(int(body["now"]), keys, None if body.get("id") is None else str(body["id"]))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise Drop("bad-control", repr(exc)) from None


@dataclass(frozen=True)
class Erasure:
    """An erase message (``clickpipe privacy erase``): forget ``party_id``, erased at ``erased_at`` (epoch ms)."""

    party_id: str
    erased_at: int

    def encode(self) -> bytes:
        return orjson.dumps({"party_id": self.party_id, "erased_at": self.erased_at})


def parse_erasure(value: bytes | None) -> Erasure:
    """The erasure in a control message; :class:`steps.Drop` (``bad-control``) for anything else."""
    try:
        body = orjson.loads(cast(bytes, value))
        party_id, erased_at = body["party_id"], body["erased_at"]
        if not isinstance(party_id, str) or not party_id or not isinstance(erased_at, int):
            raise TypeError("party_id must be a non-empty string and erased_at an integer")
        return Erasure(party_id, erased_at)
    except (ValueError, KeyError, TypeError) as exc:
        raise Drop("bad-control", repr(exc)) from None


def sweep_clock(now_ms: int, lag: int | None, watermark: int) -> int:
    """The time a sweep of a partition may use: the wall clock when nothing is waiting to be read,
    else the latest event time processed there (a backlog never closes a session whose next
    event is still waiting). 0: no sweep yet."""
    return now_ms if lag == 0 else watermark
