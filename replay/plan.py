"""What a replay covers: the time range it replaces, and the raw topic's offsets that hold it.

The range the user asks for (``--from``, ``--to``) is widened to whole segments of the
coarsest segment granularity of the datasources (a replay replaces whole segments, so
Druid swaps each of them atomically). To rebuild the state the live worker had when the
range begins (open sessions, rate windows, remembered event ids), reading starts
``session_cap_seconds + session_gap_seconds`` earlier; to see the end of every session that
starts inside the range, reading goes on until the same span after it. Rows are emitted only
for events (clicks) and sessions (by their start) inside the range.

A range is refused, with a message saying why (:class:`PlanError`), when it is malformed,
empty, too recent (sessions starting in it may still be open, and Druid may still be
appending to its segments) or no longer complete in the raw topic (retention deleted part
of the history it needs).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any, Mapping

from confluent_kafka import Consumer, KafkaException, TopicPartition

from clickpipe.config import Settings

# Message timestamps (the collector's produce time) trail the events' server_time by the
# collector's batching delay, milliseconds; a minute on each side of the read window is ample.
SLACK_MS = 60_000
GRANULARITY_MS = {"minute": 60_000, "fifteen_minute": 900_000, "thirty_minute": 1_800_000, "hour": 3_600_000,
                  "six_hour": 21_600_000, "eight_hour": 28_800_000, "day": 86_400_000}
KAFKA_TIMEOUT_S = 30.0


class PlanError(ValueError):
    """The range cannot be replayed; the message says why and what would work."""


class ReplayError(RuntimeError):
    """Kafka or Druid failed the replay; it can be resumed once they work again."""


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def segment_ms(granularities: list[str]) -> int:
    """The coarsest of the datasources' segment granularities, in ms (week and month are not supported)."""
    try:
        return max(GRANULARITY_MS[g.lower()] for g in granularities)
    except KeyError as exc:
        raise PlanError(f"segment granularity {exc.args[0]!r} cannot be replayed; use one of "
                        f"{', '.join(GRANULARITY_MS)}") from None


@dataclass(frozen=True)
class Window:
    """The replaced range ``[start_ms, end_ms)`` and the event times read around it (epoch ms)."""

    start_ms: int
    end_ms: int
    read_from_ms: int  # first message timestamp read (state warm-up)
    close_at_ms: int  # every session starting before end_ms is closed by then

    @property
    def read_until_ms(self) -> int:
        return self.close_at_ms + SLACK_MS

    def interval(self) -> str:
        return f"{iso(self.start_ms)}/{iso(self.end_ms)}"


def window(settings: Settings, since: datetime, until: datetime | None, now: datetime, segment: int) -> Window:
    """The :class:`Window` of ``[since, until)`` widened to whole segments of ``segment`` ms.

    ``until`` defaults to the latest segment boundary whose rows are final at ``now``.
    """
    span = (settings.session_cap_seconds + settings.session_gap_seconds) * 1000
    now_ms = int(now.timestamp() * 1000)
    latest = (now_ms - span - SLACK_MS) // segment * segment
    start = int(since.timestamp() * 1000) // segment * segment
    if until is None:
        end = latest
    else:
        until_ms = int(until.timestamp() * 1000)
        if until_ms <= int(since.timestamp() * 1000):
            raise PlanError(f"--to ({iso(until_ms)}) must be later than --from ({iso(int(since.timestamp() * 1000))})")
        end = -(-until_ms // segment) * segment
    if end > latest:
        raise PlanError(f"the range ends at {iso(end)} (whole segments of {segment // 60_000} min), too recent: "
                        f"sessions starting before then may still be open and Druid may still be appending to "
                        f"those segments; the latest end a replay can take now is {iso(latest)} (now minus "
                        f"CLICKPIPE_SESSION_CAP_SECONDS + CLICKPIPE_SESSION_GAP_SECONDS + {SLACK_MS // 1000} s)")
    if start >= end:
        raise PlanError(f"nothing to replay: the range {iso(start)}/{iso(end)} is empty (whole segments); --from must "
                        f"be before {iso(min(end, latest))}")
    return Window(start, end, start - span - SLACK_MS, end + span)


@dataclass(frozen=True)
class Plan:
    """A replay's window over one raw topic, and per partition the offsets ``[first, end)`` to read."""

    topic: str
    window: Window
    offsets: Mapping[int, tuple[int, int]]

    def messages(self) -> int:
        return sum(end - first for first, end in self.offsets.values())

    def to_json(self) -> dict[str, Any]:
        return {"topic": self.topic, "window": asdict(self.window),
                "offsets": {str(p): list(o) for p, o in self.offsets.items()}}

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> "Plan":
        return cls(body["topic"], Window(**body["window"]),
                   {int(p): (int(o[0]), int(o[1])) for p, o in body["offsets"].items()})


def fingerprint(settings: Settings, win: Window) -> str:
    """Names a replay: the same settings and window resume the same work; anything else starts afresh."""
    return hashlib.sha256(f"{settings!r}{win!r}".encode()).hexdigest()[:12]


def locate(settings: Settings, win: Window) -> Plan:
    """Find, per partition of the raw topic, the offsets holding the messages of ``win``'s read window.

    :class:`PlanError` if the topic does not exist or retention has deleted records the window needs;
    :class:`ReplayError` if Kafka does not answer.
    """
    topic = settings.topic_raw
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": "clickpipe-replay-plan",
                         "enable.auto.commit": False})
    try:
        metadata = consumer.list_topics(topic, timeout=KAFKA_TIMEOUT_S).topics.get(topic)
        if metadata is None or metadata.error is not None or not metadata.partitions:
            raise PlanError(f"the raw topic {topic!r} does not exist at {settings.kafka_bootstrap}")
        partitions = sorted(metadata.partitions)
        firsts = consumer.offsets_for_times([TopicPartition(topic, p, win.read_from_ms) for p in partitions],
                                            timeout=KAFKA_TIMEOUT_S)
        ends = consumer.offsets_for_times([TopicPartition(topic, p, win.read_until_ms) for p in partitions],
                                          timeout=KAFKA_TIMEOUT_S)
        offsets = {}
        for p, first, end in zip(partitions, firsts, ends, strict=True):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=KAFKA_TIMEOUT_S)
            first_offset = high if first.offset < 0 else first.offset  # < 0: nothing that late: none to read
            end_offset = high if end.offset < 0 else end.offset
            if low > 0 and first_offset <= low and low < high:
                raise PlanError(
                    f"partition {p} of {topic!r} no longer holds records from {iso(win.read_from_ms)} (retention "
                    f"deleted them): a replay from {iso(win.start_ms)} needs the history from "
                    f"CLICKPIPE_SESSION_CAP_SECONDS + CLICKPIPE_SESSION_GAP_SECONDS before it; choose a later --from")
            offsets[p] = (first_offset, max(first_offset, end_offset))
        return Plan(topic, win, offsets)
    except KafkaException as exc:
        raise ReplayError(f"Kafka at {settings.kafka_bootstrap} did not answer: {exc}") from None
    finally:
        consumer.close()
