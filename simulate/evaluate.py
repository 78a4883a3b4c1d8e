"""Score the pipeline's outputs against a simulation's ground truth.

:func:`read_outputs` reads the enriched-clicks and sessions topics (``read_committed``, from
shortly before the run started) until every accepted event of the run has been seen and every
session those events opened has been closed, or until a timeout. :func:`score` is pure: it
compares the records with the ground truth and returns a :class:`Report`.

Figures:

- bot filtering, per party of the ground truth (a simulated client is flagged if any of its
  events has ``is_bot``) and per event: precision = flagged bots / all flagged, recall =
  flagged bots / all bots;
- sessions: expected (ground truth) vs observed (distinct ``session_id`` over the run's
  events), the relative error, and how many expected sessions were reproduced exactly (their
  events, and only those, share one session id); closed Session records found;
- delivery: accepted events never seen (lost), seen more than once (duplicates not
  dropped), seen although the sender counted them as failed, and events whose ``ip`` is not
  the simulated one (the collector is not trusting X-Forwarded-For).
"""

from __future__ import annotations

import collections
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterable, cast

import schemas
from simulate.truth import GroundTruth

GOALS = {"precision": 0.99, "recall": 0.95, "session_error": 0.01}
START_MARGIN_MS = 60_000  # read from this long before the run's start (clock skew, early records)
SETTLE_S = 2.0  # after everything expected arrived, keep reading this long for extras
_CLICK_FIELDS = ("event_id", "party_id", "session_id", "is_bot", "bot_reason", "ip")
_SESSION_FIELDS = ("session_id", "party_id", "events", "is_bot", "close_reason")


class TopicError(RuntimeError):
    """A topic could not be read (missing topic, broker unreachable); the message says which."""


@dataclass
class Outputs:
    clicks: list[dict] = field(default_factory=list)  # the run's enriched clicks (selected fields)
    sessions: list[dict] = field(default_factory=list)  # Session records of the run's parties
    undecodable: int = 0
    complete: bool = False  # every accepted event seen (and every session closed) before the timeout


def read_outputs(truth: GroundTruth, bootstrap: str, enriched_topic: str, sessions_topic: str | None,
                 timeout_s: float) -> Outputs:
    """Read the run's records from the topics (see the module doc); :class:`TopicError` if unreadable."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    run_prefix = truth.run["run_id"] + "."
    expected = truth.accepted_ids()
    since = int(truth.run["started_ms"]) - START_MARGIN_MS
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"evaluate-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, "isolation.level": "read_committed",
                         "auto.offset.reset": "earliest", "socket.timeout.ms": 10_000})
    out = Outputs()
    sessions_by_party: dict[str, list[dict]] = collections.defaultdict(list)
    try:
        topics = [enriched_topic] + ([sessions_topic] if sessions_topic else [])
        wanted = []
        try:
            meta = consumer.list_topics(timeout=10)
        except KafkaException as exc:
            raise TopicError(f"cannot reach Kafka at {bootstrap}: {exc}") from None
        for topic in topics:
            info = meta.topics.get(topic)
            if info is None or info.error is not None or not info.partitions:
                raise TopicError(f"topic {topic!r} does not exist on {bootstrap}")
            wanted += [TopicPartition(topic, p, since) for p in info.partitions]
        try:
            offsets = consumer.offsets_for_times(wanted, timeout=10)
        except KafkaException as exc:
            raise TopicError(f"cannot look up offsets of {', '.join(topics)}: {exc}") from None
        # offset -1: no record at or after `since` yet; start at the end (OFFSET_END)
        consumer.assign([TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else -1)
                         for tp in offsets])
        seen: set[str] = set()
        deadline = time.monotonic() + timeout_s
        complete_at = None
        while time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=5000, timeout=0.5):
                value = msg.value()
                if msg.error() is not None or value is None:
                    continue
                try:
                    # the pipeline writes (str, bytes) header pairs
                    records = schemas.decode_rows(value, cast(list[tuple[str, bytes | None]] | None, msg.headers()))
                except schemas.SchemaError:
                    out.undecodable += 1
                    continue
                for record in records:
                    if msg.topic() == enriched_topic:
                        if record["event_id"].startswith(run_prefix):
                            out.clicks.append({k: record.get(k) for k in _CLICK_FIELDS})
                            seen.add(record["event_id"])
                    else:
                        sessions_by_party[record["party_id"]].append({k: record.get(k) for k in _SESSION_FIELDS})
            done = expected <= seen and (sessions_topic is None or _all_closed(out.clicks, sessions_by_party))
            if done and complete_at is None:
                complete_at = time.monotonic()
            if complete_at is not None and time.monotonic() - complete_at >= SETTLE_S:
                break
    finally:
        consumer.close()
    out.complete = complete_at is not None
    parties = {c["party_id"] for c in out.clicks}
    out.sessions = [s for p in parties for s in sessions_by_party.get(p, ())]
    return out


def _all_closed(clicks: list[dict], sessions_by_party: dict[str, list[dict]]) -> bool:
    opened = {c["session_id"] for c in clicks}
    closed = {s["session_id"] for p in {c["party_id"] for c in clicks} for s in sessions_by_party.get(p, ())}
    return opened <= closed


@dataclass
class Confusion:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def add(self, truth: bool, predicted: bool) -> None:
        if truth and predicted:
            self.tp += 1
        elif predicted:
            self.fp += 1
        elif truth:
            self.fn += 1
        else:
            self.tn += 1

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    def as_dict(self) -> dict:
        return {"tp": self.tp, "fp": self.fp, "fn": self.fn, "tn": self.tn,
                "precision": self.precision, "recall": self.recall}


@dataclass
class Report:
    run_id: str
    parties: Confusion
    events: Confusion
    by_kind: dict[str, dict[str, Any]]
    expected_events: int
    seen_events: int
    lost_events: int
    duplicated_events: int
    unexpected_events: int
    ip_mismatches: int
    expected_sessions: int
    observed_sessions: int
    exact_sessions: int
    closed_sessions: int | None  # None: sessions topic not read
    closed_event_mismatches: int | None
    reasons: dict[str, int]
    run: dict[str, Any] = field(default_factory=dict)

    @property
    def session_error(self) -> float | None:
        if not self.expected_sessions:
            return None
        return (self.observed_sessions - self.expected_sessions) / self.expected_sessions

    def goals(self) -> dict[str, bool]:
        p, r, e = self.parties.precision, self.parties.recall, self.session_error
        return {"precision": p is not None and p >= GOALS["precision"],
                "recall": r is not None and r >= GOALS["recall"],
                "session_error": e is not None and abs(e) <= GOALS["session_error"]}

    def as_dict(self) -> dict:
        return {"run_id": self.run_id, "parties": self.parties.as_dict(), "events": self.events.as_dict(),
                "by_kind": self.by_kind, "bot_reasons": self.reasons,
                "delivery": {"expected": self.expected_events, "seen": self.seen_events, "lost": self.lost_events,
                             "duplicated": self.duplicated_events, "unexpected": self.unexpected_events,
                             "ip_mismatches": self.ip_mismatches},
                "sessions": {"expected": self.expected_sessions, "observed": self.observed_sessions,
                             "error": self.session_error, "exact": self.exact_sessions,
                             "closed": self.closed_sessions, "closed_event_mismatches": self.closed_event_mismatches},
                "goals": self.goals(), "run": self.run}

    def table(self) -> str:
        def f(x: float | None) -> str:
            return "-" if x is None else f"{x:.4f}"

        goals = self.goals()
        mark = {True: "met", False: "MISSED"}
        lines = [f"run {self.run_id}" + (f"  ({self.run.get('elapsed_s')} s, {self.run.get('events_per_s')} events/s "
                                          f"sent)" if self.run.get("elapsed_s") else ""), "",
                 "bot filtering     precision  recall    tp     fp     fn     tn",
                 f"  parties         {f(self.parties.precision):9}  {f(self.parties.recall):8}  "
                 f"{self.parties.tp:<6} {self.parties.fp:<6} {self.parties.fn:<6} {self.parties.tn}",
                 f"  events          {f(self.events.precision):9}  {f(self.events.recall):8}  "
                 f"{self.events.tp:<6} {self.events.fp:<6} {self.events.fn:<6} {self.events.tn}", "",
                 "kind          parties  flagged  events  flagged"]
        for kind, row in sorted(self.by_kind.items()):
            lines.append(f"  {kind:11} {row['parties']:7}  {row['flagged_parties']:7}  {row['events']:6}  "
                         f"{row['flagged_events']:7}")
        lines += ["", "bot reasons: " + (", ".join(f"{k} {v}" for k, v in sorted(self.reasons.items())) or "none"), "",
                  f"events: expected {self.expected_events}, seen {self.seen_events}, lost {self.lost_events}, "
                  f"duplicated {self.duplicated_events}, unexpected {self.unexpected_events}, "
                  f"ip mismatches {self.ip_mismatches}",
                  f"sessions: expected {self.expected_sessions}, observed {self.observed_sessions}, "
                  f"error {'-' if self.session_error is None else f'{self.session_error:+.2%}'}, "
                  f"exact {self.exact_sessions}"
                  + ("" if self.closed_sessions is None else
                     f", closed records {self.closed_sessions} "
                     f"({self.closed_event_mismatches} with other event counts)"),
                  "",
                  f"goals: party precision >= {GOALS['precision']} {mark[goals['precision']]}, "
                  f"party recall >= {GOALS['recall']} {mark[goals['recall']]}, "
                  f"|session error| <= {GOALS['session_error']:.0%} {mark[goals['session_error']]}"]
        return "\n".join(lines)


def score(truth: GroundTruth, clicks: Iterable[dict], sessions: Iterable[dict] | None) -> Report:
    """Compare enriched ``clicks`` (and closed ``sessions``, None if not read) with ``truth``."""
    by_event = collections.defaultdict(list)
    for click in clicks:
        by_event[click["event_id"]].append(click)
    expected = truth.accepted_ids()
    parties, events = Confusion(), Confusion()
    by_kind: dict[str, dict[str, Any]] = {}
    reasons: collections.Counter = collections.Counter()
    ip_mismatches = exact = expected_sessions = 0
    observed: set[str] = set()
    members = collections.defaultdict(set)  # observed session id -> event ids of the run in it
    for click_list in by_event.values():
        members[click_list[0]["session_id"]].add(click_list[0]["event_id"])
    for party in truth.parties:
        row = by_kind.setdefault(party["kind"], {"parties": 0, "flagged_parties": 0, "events": 0,
                                                 "flagged_events": 0})
        flagged_any, seen_any = False, False
        for session in party["sessions"]:
            expected_sessions += 1
            ids_seen = set()
            for event_id in session:
                found = by_event.get(event_id)
                if not found:
                    continue
                click = found[0]
                seen_any = True
                ids_seen.add(click["session_id"])
                flagged = bool(click["is_bot"])
                flagged_any |= flagged
                events.add(party["bot"], flagged)
                row["events"] += 1
                row["flagged_events"] += flagged
                if flagged:
                    reasons[click["bot_reason"]] += 1
                if party.get("ip") and click.get("ip") != party["ip"]:
                    ip_mismatches += 1
            observed |= ids_seen
            if len(ids_seen) == 1 and members[next(iter(ids_seen))] == set(session):
                exact += 1
        if seen_any:
            parties.add(party["bot"], flagged_any)
            row["parties"] += 1
            row["flagged_parties"] += flagged_any
    unexpected = set(by_event) - expected  # seen, though the sender counted them as not accepted
    closed = mismatches = None
    if sessions is not None:
        records = {s["session_id"]: s for s in sessions}
        clicks_per_session = collections.Counter(c[0]["session_id"] for c in by_event.values())
        closed = sum(1 for sid in observed if sid in records)
        mismatches = sum(1 for sid in observed if sid in records and records[sid]["events"] != clicks_per_session[sid])
    return Report(
        run_id=truth.run["run_id"], parties=parties, events=events, by_kind=by_kind,
        expected_events=len(expected), seen_events=len(expected & set(by_event)),
        lost_events=len(expected - set(by_event)),
        duplicated_events=sum(len(v) - 1 for v in by_event.values()), unexpected_events=len(unexpected),
        ip_mismatches=ip_mismatches, expected_sessions=expected_sessions, observed_sessions=len(observed),
        exact_sessions=exact, closed_sessions=closed, closed_event_mismatches=mismatches, reasons=dict(reasons),
        run=truth.summary or {})
