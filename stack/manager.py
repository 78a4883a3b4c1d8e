"""Bring the whole local stack up or down, report on it, and create the pipeline topics."""

from __future__ import annotations

import dataclasses
import fcntl
import shutil
import time
from contextlib import contextmanager
from typing import Iterator

from clickpipe.config import Settings
from clickpipe.topics import TopicError, ensure_topics, pipeline_topics
from stack import jars
from stack.druid import Broker, Coordinator, Historical, Indexer, Router, ZooKeeper
from stack.kafka import Kafka, brokers
from stack.services import Service


class StackError(RuntimeError):
    """A service failed to start or become ready; the message names it and its log file."""


class StackManager:
    """The stack's services in start order, in groups that may start together."""

    def __init__(self, settings: Settings, echo=print):
        self.settings = settings
        self.echo = echo
        self.brokers = brokers(settings)
        self.zookeeper = ZooKeeper(settings)
        self.coordinator = Coordinator(settings)
        # Each group waits for the one before: ZooKeeper, then the coordinator (which runs
        # Derby, the metadata store), then the rest.
        self.groups: list[list[Service]] = [
            [*self.brokers, self.zookeeper],
            [self.coordinator],
            [Broker(settings), Historical(settings), Indexer(settings), Router(settings)],
        ]

    @property
    def services(self) -> list[Service]:
        return [svc for group in self.groups for svc in group]

    def service(self, name: str) -> Service:
        for svc in self.services:
            if svc.name == name:
                return svc
        raise StackError(f"no service {name!r}; services: {', '.join(s.name for s in self.services)}")

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise up/down/reset between processes (parallel test runs, a second shell)."""
        self.settings.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.settings.state_dir / "stack.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def up(self) -> None:
        """Start every service not already running and wait until all are ready. Idempotent."""
        with self._locked():
            jars.kafka_home(self.settings)
            jars.druid_home(self.settings)
            deadline = time.monotonic() + self.settings.stack_timeout_seconds
            for group in self.groups:
                for svc in group:
                    if svc.process.pid() is None:
                        self.echo(f"[stack] starting {svc.name} on {svc.host}:{svc.port}")
                        svc.start()
                self._wait_ready(group, deadline)
            self.echo("[stack] all services ready")

    def _wait_ready(self, group: list[Service], deadline: float) -> None:
        started = time.monotonic()
        last_report = started
        pending = list(group)
        while pending:
            for svc in list(pending):
                if svc.process.pid() is None:
                    raise StackError(
                        f"{svc.name} exited during start-up; see its log {svc.process.log_file}\n"
                        f"--- last lines ---\n{svc.process.log_tail()}")
                if svc.healthy():
                    pending.remove(svc)
                    self.echo(f"[stack] {svc.name} ready ({time.monotonic() - started:.0f}s)")
            if not pending:
                return
            if time.monotonic() > deadline:
                names = ", ".join(f"{s.name} (log: {s.process.log_file})" for s in pending)
                raise StackError(f"not ready after {self.settings.stack_timeout_seconds}s: {names}")
            if time.monotonic() - last_report >= 10:
                last_report = time.monotonic()
                self.echo(f"[stack] waiting for {', '.join(s.name for s in pending)} "
                          f"({last_report - started:.0f}s)")
            time.sleep(1)

    def _stop(self, services: list[Service]) -> list[str]:
        """Stop those of ``services`` that run, last first; keep all data. Returns those stopped."""
        stopped = []
        with self._locked():
            for svc in reversed(services):
                if svc.process.stop():
                    stopped.append(svc.name)
                    self.echo(f"[stack] stopped {svc.name}")
        return stopped

    def down(self) -> list[str]:
        """Stop every running service, newest group first; keep all data. Returns those stopped.

        Brokers of a cluster of another size (``CLICKPIPE_KAFKA_BROKERS`` changed since they
        were started) are stopped too.
        """
        return self._stop(self._other_brokers() + self.services)

    def _other_brokers(self) -> list[Kafka]:
        """Running brokers the configured cluster size does not name."""
        ours = {b.name for b in self.brokers}
        others: dict[str, Kafka] = {}
        for count in range(1, 10):
            for broker in brokers(dataclasses.replace(self.settings, kafka_brokers=count)):
                if broker.name not in ours and broker.process.pid() is not None:
                    others[broker.name] = broker
        return list(others.values())

    def restart(self, names: list[str]) -> None:
        """Stop the named services (all of them if ``names`` is empty), then :meth:`up`."""
        self._stop([self.service(n) for n in names] if names else self.services)
        self.up()

    def reset(self) -> None:
        """Stop everything and delete the state directory (data, logs); the jar cache stays."""
        self.down()
        with self._locked():
            for child in self.settings.state_dir.iterdir():
                if child.name != "stack.lock":
                    shutil.rmtree(child) if child.is_dir() else child.unlink()
        self.echo(f"[stack] wiped {self.settings.state_dir}")

    def status(self) -> list[dict[str, object]]:
        """One row per service: name, pid (or None), address, and whether it answers health checks."""
        rows: list[dict[str, object]] = []
        for svc in self.services:
            pid = svc.process.pid()
            rows.append({
                "service": svc.name, "pid": pid, "address": f"{svc.host}:{svc.port}",
                "state": "down" if pid is None else ("healthy" if svc.healthy() else "unhealthy"),
                "log": str(svc.process.log_file),
            })
        return rows

    def create_topics(self) -> list[str]:
        """Create the pipeline topics if missing, with their replication and retention, and set
        the retention of those that exist where it differs (see :func:`clickpipe.topics.pipeline_topics`).
        Returns the names created."""
        s = self.settings
        created: list[str] = []
        try:
            for names, config in pipeline_topics(s):
                created += ensure_topics(s.kafka_bootstrap, names, s.partitions, config,
                                         replication=s.kafka_replication, altered=self._altered)
        except TopicError as exc:
            raise StackError(str(exc)) from exc
        if created:
            self.echo(f"[stack] created topics: {', '.join(created)}")
        return created

    def _altered(self, topic: str, key: str, old: str | None, new: str) -> None:
        self.echo(f"[stack] topic {topic}: {key} {old} -> {new}")
