"""Score the pipeline's outputs against a simulation's ground truth.

:func:`read_outputs` reads the enriched-clicks and sessions topics (``read_committed``, from
shortly before the run started) until every accepted event of the run has been seen and every
session those events opened has been closed, or until a timeout. :func:`score` is pure: it
compares the records with the ground truth and returns a :class:`Report`.

Session verdicts come from Druid (:func:`verdicts_from_druid`: a session is judged bot when
the reports of human traffic count none of its events) or, without Druid, from the topics
(:func:`verdicts_from_topics`). The topics also map each simulated event to the session the
pipeline put it in (event ids are not a Druid dimension).

Figures:

- bot verdicts per SESSION of the ground truth (its truth: the kind's expected verdict) --
  precision = sessions judged bot that are bots / all judged bot, recall = bot sessions judged
  bot / all bot sessions, and the share of human sessions judged bot; the same per kind
  (recall of a bot kind, judged-bot share of a human kind) with the verdicts' reasons; and,
  for reference, per party (flagged if any of its sessions is) and per event (``is_bot``);
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

GOALS = {"precision": 0.99, "recall": 0.95, "human_flagged": 0.005, "session_error": 0.01}
START_MARGIN_MS = 60_000  # read from this long before the run's start (clock skew, early records)
SETTLE_S = 2.0  # after everything expected arrived, keep reading this long for extras
_CLICK_FIELDS = ("event_id", "party_id", "session_id", "is_bot", "bot_reason", "ip")
_SESSION_FIELDS = ("session_id", "party_id", "events", "is_bot", "bot_reason", "close_reason")


class TopicError(RuntimeError):
    """A topic could not be read (missing topic, broker unreachable); the message says which."""


@dataclass
class Outputs:
    clicks: list[dict] = field(default_factory=list)  # the run's enriched clicks (selected fields)
    sessions: list[dict] = field(default_factory=list)  # Session records of the run's parties
    late: dict[str, str] = field(default_factory=dict)  # session id -> reason, judged bot after its first event
    undecodable: int = 0
    complete: bool = False  # every accepted event seen (and every session closed) before the timeout


def read_outputs(truth: GroundTruth, bootstrap: str, enriched_topic: str, sessions_topic: str | None,
                 timeout_s: float, verdicts_topic: str | None = None) -> Outputs:
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
        topics = [enriched_topic] + [t for t in (sessions_topic, verdicts_topic) if t]
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
                    if msg.topic() == verdicts_topic:
                        out.late.setdefault(record["session_id"], record["reason"])
                    elif msg.topic() == enriched_topic:
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


@dataclass(frozen=True)
class Verdict:
    """The pipeline's judgement of one observed session."""

    bot: bool
    reason: str | None = None
    partial: bool = False  # reports of human traffic still count some, not all, of its events
    late_ms: int | None = None  # judged bot after its first events: this long after the session's start


def verdicts_from_topics(clicks: Iterable[dict], sessions: Iterable[dict] | None,
                         late: dict[str, str] | None = None) -> dict[str, Verdict]:
    """Session verdicts as the worker's outputs state them: bot if the worker published a verdict
    on it after its first events (``late``: session id -> reason, from the verdicts topic), else
    the closed Session record's, else (session not closed, or sessions not read) bot if any of
    its events is flagged."""
    out: dict[str, Verdict] = {}
    for click in clicks:
        if click["is_bot"] and not out.get(click["session_id"], Verdict(False)).bot:
            out[click["session_id"]] = Verdict(True, click["bot_reason"])
        else:
            out.setdefault(click["session_id"], Verdict(False))
    for record in sessions or ():
        out[record["session_id"]] = Verdict(bool(record["is_bot"]), record.get("bot_reason"))
    for session_id, reason in (late or {}).items():
        if session_id in out and not out[session_id].bot:  # an immediate reason stays the reason
            out[session_id] = Verdict(True, reason)
    return out


def verdicts_from_druid(settings: Any, clicks: Iterable[dict], since_ms: int, timeout_s: float,
                        late: Iterable[str] = ()) -> dict[str, Verdict]:
    """Session verdicts as Druid's reports see them: a session is judged bot when the reports of
    human traffic count none of its events (``partial`` when they count some but not all).

    Waits (bounded by ``timeout_s``) until Druid holds every event the clicks topic has of each
    session and a verdict row for each of those sessions in ``late`` (session ids the verdicts
    topic names): clicks and verdicts are ingested by separate tasks, and a report read while
    only the clicks are in counts a session decided after its first events as human. Raises
    :class:`druid.client.DruidError` when Druid cannot be queried.
    """
    from datetime import datetime, timezone

    from druid.queries import Reports

    expected = collections.Counter(c["session_id"] for c in clicks)
    reasons = {c["session_id"]: c["bot_reason"] for c in clicks if c["is_bot"]}
    reports = Reports(settings)
    since = datetime.fromtimestamp(since_ms / 1000, timezone.utc).isoformat()
    awaited = set(late) & set(expected)
    deadline = time.monotonic() + timeout_s
    while True:
        everything = reports.session_events(list(expected), since, "all")
        rows = {row["session_id"]: row for row in reports.bot_sessions(since)} if awaited else {}
        if (all(everything.get(s, 0) >= n for s, n in expected.items()) and awaited <= rows.keys()
                or time.monotonic() > deadline):
            break
        time.sleep(2.0)
    human = reports.session_events(list(expected), since, "human")
    decided = {row["session_id"]: row for row in reports.bot_sessions(since)}
    out = {}
    for session_id in expected:
        counted, total = human.get(session_id, 0), everything.get(session_id, 0)
        verdict = decided.get(session_id) or {}
        after = verdict.get("after_ms")
        out[session_id] = Verdict(counted == 0, reasons.get(session_id) or verdict.get("reason"),
                                  0 < counted < total, None if after is None else int(after))
    return out


@dataclass
class Report:
    run_id: str
    sessions_judged: Confusion  # per expected session: truth (bot kind) vs the pipeline's session verdict
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
    reasons: dict[str, int]  # session verdict reasons of sessions judged bot
    partial_sessions: int = 0  # judged human though human reports drop some of their events
    late_ms: list[int] = field(default_factory=list)  # per session judged bot after its first event
    verdict_source: str = "topics"
    run: dict[str, Any] = field(default_factory=dict)

    @property
    def session_error(self) -> float | None:
        if not self.expected_sessions:
            return None
        return (self.observed_sessions - self.expected_sessions) / self.expected_sessions

    @property
    def human_flagged(self) -> float | None:
        """Share of human sessions judged bot."""
        s = self.sessions_judged
        return s.fp / (s.fp + s.tn) if s.fp + s.tn else None

    @property
    def kind_recall(self) -> float | None:
        """Mean recall over the bot kinds: each kind weighs the same, however many sessions it makes
        (a client without cookies makes one per request)."""
        values = [r["recall"] for r in self.by_kind.values() if r["bot"] and r["recall"] is not None]
        return sum(values) / len(values) if values else None

    def goals(self) -> dict[str, bool]:
        p, r, e, h = (self.sessions_judged.precision, self.sessions_judged.recall, self.session_error,
                      self.human_flagged)
        return {"precision": p is not None and p >= GOALS["precision"],
                "recall": r is not None and r >= GOALS["recall"],
                "human_flagged": h is not None and h <= GOALS["human_flagged"],
                "session_error": e is not None and abs(e) <= GOALS["session_error"]}

    def as_dict(self) -> dict:
        return {"run_id": self.run_id, "verdict_source": self.verdict_source,
                "sessions_judged": {**self.sessions_judged.as_dict(), "human_flagged": self.human_flagged,
                                    "kind_recall": self.kind_recall, "partial": self.partial_sessions,
                                    "late": _spread(self.late_ms)},
                "parties": self.parties.as_dict(), "events": self.events.as_dict(),
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

        def row(name: str, c: Confusion) -> str:
            return f"  {name:15} {f(c.precision):9}  {f(c.recall):8}  {c.tp:<6} {c.fp:<6} {c.fn:<6} {c.tn}"

        goals = self.goals()
        mark = {True: "met", False: "MISSED"}
        s = self.sessions_judged
        lines = [f"run {self.run_id}" + (f"  ({self.run.get('elapsed_s')} s, {self.run.get('events_per_s')} events/s "
                                          f"sent)" if self.run.get("elapsed_s") else ""),
                 f"session verdicts read from {self.verdict_source}", "",
                 "bot verdicts      precision  recall    tp     fp     fn     tn",
                 row("sessions", s), row("parties", self.parties), row("events", self.events),
                 f"  human sessions judged bot: {'-' if self.human_flagged is None else f'{self.human_flagged:.2%}'}"
                 f" ({s.fp} of {s.fp + s.tn}); human sessions partly dropped from human reports: "
                 f"{self.partial_sessions}",
                 f"  mean recall over bot kinds: {f(self.kind_recall)}",
                 "  sessions judged bot after their first event: "
                 + ("none" if not self.late_ms else
                    "{n}, verdict {p50_s} s after the session's start (median), {p95_s} s (p95), {max_s} s (max)"
                    .format(**_spread(self.late_ms))), "",
                 "kind                 verdict  sessions  judged bot  share   parties  events  reasons"]
        for kind, r in sorted(self.by_kind.items(), key=lambda kv: (kv[1]["bot"], kv[0])):
            share = r["judged_bot"] / r["sessions"] if r["sessions"] else None
            reasons = ", ".join(f"{k} {v}" for k, v in sorted(r["reasons"].items()))
            lines.append(f"  {kind:19} {'bot' if r['bot'] else 'human':7}  {r['sessions']:8}  {r['judged_bot']:10}  "
                         f"{f(share):6}  {r['parties']:7}  {r['events']:6}  {reasons}")
        lines += ["", "session verdict reasons: "
                  + (", ".join(f"{k} {v}" for k, v in sorted(self.reasons.items())) or "none"), "",
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
                  f"goals: session precision >= {GOALS['precision']} {mark[goals['precision']]}, "
                  f"session recall >= {GOALS['recall']} {mark[goals['recall']]}, "
                  f"human sessions judged bot <= {GOALS['human_flagged']:.1%} {mark[goals['human_flagged']]}, "
                  f"|session error| <= {GOALS['session_error']:.0%} {mark[goals['session_error']]}"]
        return "\n".join(lines)


def _spread(values: list[int]) -> dict[str, Any]:
    ordered = sorted(values)

    def at(q: float) -> float | None:
        return round(ordered[int(q * (len(ordered) - 1))] / 1000, 1) if ordered else None

    return {"n": len(ordered), "p50_s": at(0.5), "p95_s": at(0.95), "max_s": at(1.0)}


def score(truth: GroundTruth, clicks: Iterable[dict], sessions: Iterable[dict] | None,
          verdicts: dict[str, Verdict] | None = None, verdict_source: str = "topics",
          late: dict[str, str] | None = None) -> Report:
    """Compare enriched ``clicks`` (and closed ``sessions``, None if not read) with ``truth``.

    ``verdicts`` (observed session id -> :class:`Verdict`) judge the sessions; by default
    :func:`verdicts_from_topics` (with ``late``). An expected session is judged bot if any observed session
    holding its events is.
    """
    clicks = list(clicks)
    sessions = None if sessions is None else list(sessions)
    if verdicts is None:
        verdicts = verdicts_from_topics(clicks, sessions, late)
    by_event = collections.defaultdict(list)
    for click in clicks:
        by_event[click["event_id"]].append(click)
    expected = truth.accepted_ids()
    judged, parties, events = Confusion(), Confusion(), Confusion()
    by_kind: dict[str, dict[str, Any]] = {}
    reasons: collections.Counter = collections.Counter()
    ip_mismatches = exact = expected_sessions = partial = 0
    late_ms: list[int] = []
    observed: set[str] = set()
    members = collections.defaultdict(set)  # observed session id -> event ids of the run in it
    for click_list in by_event.values():
        members[click_list[0]["session_id"]].add(click_list[0]["event_id"])
    for party in truth.parties:
        row = by_kind.setdefault(party["kind"], {"bot": party["bot"], "parties": 0, "flagged_parties": 0,
                                                 "sessions": 0, "judged_bot": 0, "events": 0, "flagged_events": 0,
                                                 "reasons": collections.Counter()})
        addresses = set(party.get("ips") or [party.get("ip")]) - {None}
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
                events.add(party["bot"], flagged)
                row["events"] += 1
                row["flagged_events"] += flagged
                if addresses and click.get("ip") not in addresses:
                    ip_mismatches += 1
            observed |= ids_seen
            if len(ids_seen) == 1 and members[next(iter(ids_seen))] == set(session):
                exact += 1
            if not ids_seen:
                continue
            found_verdicts = [verdicts.get(sid, Verdict(False)) for sid in sorted(ids_seen)]
            bot = any(v.bot for v in found_verdicts)
            judged.add(party["bot"], bot)
            flagged_any |= bot
            row["sessions"] += 1
            row["judged_bot"] += bot
            if bot:
                late_ms += [v.late_ms for v in found_verdicts if v.bot and v.late_ms is not None]
                reason = next(v.reason for v in found_verdicts if v.bot) or "unknown"
                reasons[reason] += 1
                row["reasons"][reason] += 1
            elif any(v.partial for v in found_verdicts):
                partial += 1
        if seen_any:
            parties.add(party["bot"], flagged_any)
            row["parties"] += 1
            row["flagged_parties"] += flagged_any
    for row in by_kind.values():
        row["reasons"] = dict(row["reasons"])
        share = row["judged_bot"] / row["sessions"] if row["sessions"] else None
        # per kind: recall for bot kinds, false-positive share for human kinds
        row["recall" if row["bot"] else "judged_bot_share"] = share
    unexpected = set(by_event) - expected  # seen, though the sender counted them as not accepted
    closed = mismatches = None
    if sessions is not None:
        records = {s["session_id"]: s for s in sessions}
        clicks_per_session = collections.Counter(c[0]["session_id"] for c in by_event.values())
        closed = sum(1 for sid in observed if sid in records)
        mismatches = sum(1 for sid in observed if sid in records and records[sid]["events"] != clicks_per_session[sid])
    return Report(
        run_id=truth.run["run_id"], sessions_judged=judged, parties=parties, events=events, by_kind=by_kind,
        expected_events=len(expected), seen_events=len(expected & set(by_event)),
        lost_events=len(expected - set(by_event)),
        duplicated_events=sum(len(v) - 1 for v in by_event.values()), unexpected_events=len(unexpected),
        ip_mismatches=ip_mismatches, expected_sessions=expected_sessions, observed_sessions=len(observed),
        exact_sessions=exact, closed_sessions=closed, closed_event_mismatches=mismatches, reasons=dict(reasons),
        partial_sessions=partial, late_ms=late_ms, verdict_source=verdict_source, run=truth.summary or {})
