"""Run a replay: read the raw topic's history through the live worker's steps, then replace the range in Druid.

:func:`replay` plans (:mod:`replay.plan`), processes, ingests, and resumes wherever a previous
run of the same replay (same settings, same range) stopped (:mod:`replay.checkpoint`).

Processing (:class:`Replayer`) is the live worker's decision code on a private, plain
Kafka consumer: each raw message goes through :meth:`agents.messages.EventProcessor.process`
with the state of its partition, in offset order per partition, exactly as the enrich
agent handles it. Instead of the worker's wall-clock sweep messages (which it skips, like
any control message), it sweeps each partition on event time, every
``session_sweep_seconds`` of it, as the worker does while it works through a backlog; at the
end it sweeps every partition at the window's ``close_at_ms``, by when every session that
starts inside the range has ended. Only clicks inside the range, and sessions (and late bot
verdicts of sessions) starting inside it, are written; dead letters are not (the live worker
wrote them already).
"""

from __future__ import annotations

import functools
import shutil
import sys
import time
from datetime import datetime, timezone
from typing import Any, BinaryIO, Mapping, cast

import orjson
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from tqdm import tqdm

from agents.messages import DeadLetter, EventProcessor, Outcome, control_kind, read_events
from clickpipe import erased
from clickpipe.config import Settings
from clickpipe.party import party_key
from druid import replace, specs
from druid.client import DruidClient, DruidError
from replay.checkpoint import OUTPUTS, Progress, Workdir
from replay.plan import Plan, PlanError, ReplayError, Window, fingerprint, iso, locate, segment_ms, window
from steps import Pipeline
from tables.expiry import ExpiryIndex

IDLE_TIMEOUT_S = 60.0  # no message for this long while offsets remain: the topic stopped answering
TASK_TIMEOUT_S = 1800.0
SWEEP_ALL = 1 << 30  # keys one sweep may take: all that are due


class Replayer:
    """The processing phase over ``plan``, continuing from ``progress``."""

    def __init__(self, settings: Settings, plan: Plan, work: Workdir, progress: Progress, show_progress: bool,
                 erased_list: Mapping[str, int] | None = None):
        self.settings = settings
        self.plan = plan
        self.window = plan.window
        self.work = work
        self.progress = progress
        self.show_progress = show_progress
        self.pipeline = Pipeline(settings)
        # As the worker's (agents.enrich): the same party dimension, and the erased parties' events
        # dropped (clickpipe.erased), so a replay never brings an erased party back. Duplicates
        # are dropped and counted, never set aside: dead letters are not replayed.
        self.processor = EventProcessor(self.pipeline, keep_duplicates=False,
                                        party_key=functools.partial(party_key, salt=settings.privacy_party_salt),
                                        erased=erased_list or {})
        self.sweep_ms = settings.session_sweep_seconds * 1000
        for p, (first, _) in plan.offsets.items():
            progress.next_offsets.setdefault(p, first)
            progress.parties.setdefault(p, {})
            progress.ips.setdefault(p, {})
            progress.watermarks.setdefault(p, 0)
            progress.swept_at.setdefault(p, 0)
        self.parties_due: ExpiryIndex[str] = ExpiryIndex()
        self.ips_due: ExpiryIndex[str] = ExpiryIndex()
        for p in plan.offsets:
            for key, state in progress.parties[p].items():
                self.parties_due.set(p, key, self.pipeline.due_at(state))
            for key, value in progress.ips[p].items():
                self.ips_due.set(p, key, self.pipeline.ip_due_at(value))
        # saved with the rest: a resumed replay sweeps when an uninterrupted one would have
        self.watermark = progress.watermarks
        self.swept_at = progress.swept_at
        self.outputs: dict[str, BinaryIO] = {}
        self.since_checkpoint = 0
        self.ticked = 0.0

    def count(self, name: str, n: float = 1) -> None:
        self.progress.counts[name] = self.progress.counts.get(name, 0) + n

    def run(self) -> None:
        """Read every partition from its next offset to its end; save progress every ``replay_checkpoint_events``."""
        self.outputs = self.work.outputs(self.progress)
        try:
            self._read()
            for p in self.plan.offsets:
                self._sweep(p, self.window.close_at_ms)
            self.progress.phase = "ingest"
            self.work.save(self.progress, self.outputs)
        finally:
            for f in self.outputs.values():
                f.close()

    def _read(self) -> None:
        ends = {p: end for p, (_, end) in self.plan.offsets.items()}
        remaining = {p for p, end in ends.items() if self.progress.next_offsets[p] < end}
        done = sum(self.progress.next_offsets[p] - first for p, (first, _) in self.plan.offsets.items())
        if not remaining:
            return
        consumer = Consumer({"bootstrap.servers": self.settings.kafka_bootstrap,
                             "group.id": f"clickpipe-replay-{self.work.path.name}", "enable.auto.commit": False,
                             "isolation.level": "read_committed", "enable.partition.eof": True})
        topic = self.plan.topic
        consumer.assign([TopicPartition(topic, p, self.progress.next_offsets[p]) for p in sorted(remaining)])
        bar = tqdm(total=self.plan.messages(), initial=done, unit="msg", file=sys.stderr, smoothing=0.1,
                   disable=not self.show_progress, dynamic_ncols=True)
        started, events_at_start = time.monotonic(), self.progress.counts.get("events_read", 0)
        self.ticked = started
        last_message = time.monotonic()
        try:
            while remaining:
                batch = consumer.consume(num_messages=500, timeout=1.0)
                for msg in batch:
                    p = msg.partition()
                    error = msg.error()
                    if error is not None:
                        if error.code() == KafkaError._PARTITION_EOF:
                            remaining.discard(p)  # the log ends before the planned end (records deleted since)
                            continue
                        raise ReplayError(f"reading {topic}/{p}: {error}")
                    offset = cast(int, msg.offset())  # a message without an error has one
                    if p not in remaining or offset < self.progress.next_offsets[p]:
                        continue
                    if offset >= ends[p]:
                        remaining.discard(p)
                        continue
                    self._message(p, msg)
                    self.progress.next_offsets[p] = offset + 1
                    if offset + 1 >= ends[p]:
                        remaining.discard(p)
                    events = self.progress.counts.get("events_read", 0) - events_at_start
                    bar.postfix = f"{events / max(time.monotonic() - started, 1e-9):,.0f} events/s"  # shown by update
                    bar.update(1)
                    if self.since_checkpoint >= self.settings.replay_checkpoint_events:
                        self._checkpoint()
                if batch:
                    last_message = time.monotonic()
                else:
                    # transaction markers occupy offsets no message is delivered for
                    for tp in consumer.position([TopicPartition(topic, p) for p in remaining]):
                        if tp.offset >= ends[tp.partition]:
                            remaining.discard(tp.partition)
                    if remaining and time.monotonic() - last_message > IDLE_TIMEOUT_S:
                        raise ReplayError(f"{topic} delivered nothing for {IDLE_TIMEOUT_S:.0f} s; partitions "
                                          f"{sorted(remaining)} stopped before their planned end")
            self._checkpoint()
        except KafkaException as exc:
            raise ReplayError(f"reading {topic}: {exc}") from None
        finally:
            bar.close()
            consumer.close()

    def _checkpoint(self) -> None:
        now = time.monotonic()
        self.count("seconds_reading", now - self.ticked)  # processing time, summed over resumed runs
        self.ticked = now
        self.work.save(self.progress, self.outputs)
        self.since_checkpoint = 0

    def _message(self, p: int, msg: Any) -> None:
        headers = list(msg.headers() or ())
        self.count("messages_read")
        if control_kind(headers) is not None:
            self.count("control_messages_skipped")
            return
        events = read_events(msg.key(), msg.value(), headers)
        if isinstance(events, DeadLetter):
            self.count("undecodable_messages")
            return
        out = self.processor.process(events, self.progress.parties[p], self.progress.ips[p], msg.key())
        self.count("events_read", len(events))
        self.since_checkpoint += len(events)
        self._apply(p, out)
        self.watermark[p] = max(self.watermark[p], out.latest_time)
        if self.watermark[p] - self.swept_at[p] >= self.sweep_ms:
            self._sweep(p, self.watermark[p])

    def _apply(self, p: int, out: Outcome) -> None:
        """Store the outcome's state and write its rows that fall inside the range."""
        parties, ips = self.progress.parties[p], self.progress.ips[p]
        for key, state in out.parties.items():
            if state is None:
                parties.pop(key, None)
            else:
                parties[key] = state
            self.parties_due.set(p, key, None if state is None else self.pipeline.due_at(state))
        for key in out.parties_gone:
            self.parties_due.set(p, key, None)
        for key, value in out.ips.items():
            if value is None:
                ips.pop(key, None)
            else:
                ips[key] = value
            self.ips_due.set(p, key, None if value is None else self.pipeline.ip_due_at(value))
        for key, due in out.ips_unchanged.items():
            self.ips_due.set(p, key, due)
        start, end = self.window.start_ms, self.window.end_ms
        clicks = [row for row in out.enriched if start <= orjson.loads(row)["server_time"] < end]
        sessions = [row for row in out.sessions if start <= orjson.loads(row)["start_time"] < end]
        # late verdicts replace the range's old ones: a session no longer judged bot loses its verdict
        verdicts = [row for row in out.verdicts if start <= orjson.loads(row)["session_start"] < end]
        for output, rows in zip(OUTPUTS, (clicks, sessions, verdicts), strict=True):
            if rows:
                self.outputs[output].write(b"\n".join(rows) + b"\n")
                self.count(f"{output}_written", len(rows))
        for reason, n in out.bots.items():
            self.count(f"bot_events_read:{reason}", n)
        for reason, n in out.dropped.items():
            self.count(f"dropped_events_read:{reason}", n)

    def _sweep(self, p: int, now: int) -> None:
        """Expire the partition's due state as of ``now`` (event time), as the worker's sweep would."""
        self.swept_at[p] = now
        parties, ips = self.progress.parties[p], self.progress.ips[p]
        keys = self.parties_due.pop_due(p, now, SWEEP_ALL)
        if keys:
            self._apply(p, self.processor.sweep_parties(keys, now, parties, ips))
        keys = self.ips_due.pop_due(p, now, SWEEP_ALL)
        if keys:
            self._apply(p, self.processor.sweep_ips(keys, now, ips))


def workdir(settings: Settings, win: Window) -> Workdir:
    stamp = "-".join(iso(t).replace(":", "").replace("-", "") for t in (win.start_ms, win.end_ms))
    return Workdir(settings.replay_dir / f"{stamp}-{fingerprint(settings, win)}")


def replay(settings: Settings, since: datetime, until: datetime | None, restart: bool = False,
           show_progress: bool = True, keep_rows: bool = False, now: datetime | None = None,
           log=print) -> dict[str, Any]:
    """Replay ``[since, until)`` (widened to whole segments) and replace it in Druid; the final counters.

    Once Druid holds the new rows the row files are deleted, unless ``keep_rows``.

    :class:`PlanError` for a range that cannot be replayed, :class:`ReplayError` when Kafka or
    Druid fails (running the same command again resumes).
    """
    declaration = specs.load_declaration()
    if set(declaration) != set(OUTPUTS):
        raise PlanError(f"replay writes {', '.join(OUTPUTS)}; druid/datasources.toml declares "
                        f"{', '.join(declaration)}")
    win = window(settings, since, until, now or datetime.now(timezone.utc),
                 segment_ms([ds.segment_granularity for ds in declaration.values()]))
    work = workdir(settings, win)
    if restart and work.path.exists():
        shutil.rmtree(work.path)
    progress = work.load()
    if progress is None:
        plan = locate(settings, win)
        progress = Progress(plan=plan.to_json())
        work.save(progress)
        log(f"[replay] {win.interval()}: reading {plan.topic} from {iso(win.read_from_ms)} to "
            f"{iso(win.read_until_ms)}, {plan.messages():,} messages; work directory {work.path}")
    else:
        plan = Plan.from_json(progress.plan)
        log(f"[replay] {win.interval()}: resuming ({progress.phase}) from {work.path}")
    if progress.phase == "process":
        try:
            erased.ensure_topic(settings.kafka_bootstrap, settings.topic_erased, settings.partitions)
            erased_list = erased.load(settings.kafka_bootstrap, settings.topic_erased)
        except KafkaException as exc:
            raise ReplayError(f"reading the erased list {settings.topic_erased}: {exc}") from None
        Replayer(settings, plan, work, progress, show_progress, erased_list).run()
    if progress.phase == "ingest":
        try:
            ingest(settings, declaration, work, progress, win, log)
        except DruidError as exc:
            raise ReplayError(str(exc)) from None
    if not keep_rows:
        work.remove_rows()
    counts = dict(progress.counts)
    if counts.get("seconds_reading"):
        counts["events_per_second"] = round(counts.get("events_read", 0) / counts["seconds_reading"])
        counts["seconds_reading"] = round(counts["seconds_reading"], 1)
    return counts


def ingest(settings: Settings, declaration: dict[str, specs.Datasource], work: Workdir, progress: Progress,
           win: Window, log=print) -> None:
    """Replace the window in every datasource with the replayed rows, streaming suspended meanwhile."""
    client = DruidClient(settings, timeout=settings.druid_query_timeout_seconds)
    started = time.monotonic()
    names = {key: ds.name(settings) for key, ds in declaration.items()}
    if not progress.tasks:
        # recorded before suspending: a replay killed meanwhile still resumes them
        progress.suspended = sorted(set(progress.suspended) | set(replace.running(client, list(names.values()))))
        work.save(progress)
        replace.suspend(client, progress.suspended, list(names.values()), TASK_TIMEOUT_S)
    try:
        for key, ds in declaration.items():
            task_id = progress.tasks.get(names[key])
            if task_id is None or client.task_status(task_id).get("statusCode") == "FAILED":
                task_id = f"clickpipe-replay-{names[key]}-{work.path.name}-{int(time.time())}"
                client.submit_task(replace.overwrite_spec(ds, settings, work.path, work.file(key).name,
                                                          win.interval(), task_id))
                progress.tasks[names[key]] = task_id
                work.save(progress)
                log(f"[replay] {names[key]}: replacing {win.interval()} (task {task_id})")
        for name, task_id in progress.tasks.items():
            status = replace.wait_for_task(client, task_id, TASK_TIMEOUT_S)
            if status["statusCode"] != "SUCCESS":
                progress.tasks.pop(name)
                work.save(progress)
                raise ReplayError(f"Druid task {task_id} failed: {status.get('errorMsg')}")
    finally:
        replace.resume(client, progress.suspended)
        progress.suspended = []
        work.save(progress)
    progress.phase = "done"
    progress.counts["seconds_ingesting"] = round(time.monotonic() - started, 1)
    work.save(progress)
