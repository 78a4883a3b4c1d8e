"""Helpers for the collector tests.

Unit tests run the app over an in-memory producer, which stands in for Kafka only there;
the Kafka boundary itself is proven by the tests that run a real collector process
(:class:`CollectorProcess`) against the real broker (:class:`Topic`).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import falcon.testing
import requests
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, NewTopic

import schemas
from clickpipe.config import load
from collector.app import create_app
from collector.sink import Sink


class MemoryProducer:
    """Records produce() calls; ``capacity`` limits how many it holds (then BufferError)."""

    def __init__(self, conf: dict, capacity: int | None = None):
        self.conf = conf
        self.messages: list[tuple[str, bytes, bytes, list]] = []
        self.capacity = capacity

    def produce(self, topic, value, key, headers=None):
        if self.capacity is not None and len(self.messages) >= self.capacity:
            raise BufferError("Local: Queue full")
        self.messages.append((topic, key, value, headers))

    def poll(self, timeout):
        time.sleep(timeout)
        return 0

    def flush(self, timeout=None):
        return 0

    def __len__(self):
        return len(self.messages)

    def list_topics(self, topic=None, timeout=-1):
        """Metadata shaped like confluent-kafka's: the topic exists with one partition."""
        return SimpleNamespace(topics={topic: SimpleNamespace(error=None, partitions={0: None})})

    def records(self) -> list[dict]:
        """Decode what was produced, through the schema headers like a consumer would."""
        return [schemas.decode(v, schemas.writer_from_headers(h)) for _, _, v, h in self.messages]


def make_client(env: dict | None = None, capacity: int | None = None):
    settings = load(env or {})
    sink = Sink(settings, lambda conf: MemoryProducer(conf, capacity))
    return falcon.testing.TestClient(create_app(settings, sink)), sink._producer, sink


# --- helpers for tests against a real collector process and the real broker ------------

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class CollectorProcess:
    """A real collector (gunicorn with the repository's config) on a free port."""

    def __init__(self, env: dict[str, str]):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full_env = {**os.environ, **env, "CLICKPIPE_COLLECTOR_PORT": str(self.port)}
        full_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.log = tempfile.NamedTemporaryFile(prefix="collector-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "collector/gunicorn.conf.py"],
            cwd=REPO,
            env=full_env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"collector exited {self.proc.returncode}:\n{self.output()}")
            try:
                if requests.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:  # refused, or too slow under load: try again
                pass
            time.sleep(0.3)
        raise RuntimeError(f"collector not ready after {timeout}s:\n{self.output()}")

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")[-4000:]

    def access_log(self) -> list[str]:
        """gunicorn's access log lines, if it was started with ``--access-logfile -``."""
        return [line for line in Path(self.log.name).read_text(errors="replace").splitlines() if '" 20' in line]

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


class Topic:
    """A fresh topic on a real broker, deleted afterwards, so tests never see others' data."""

    def __init__(self, bootstrap: str, partitions: int = 4):
        self.bootstrap = bootstrap
        self.name = f"collector-test-{uuid.uuid4().hex[:12]}"
        self.admin = AdminClient({"bootstrap.servers": bootstrap})
        self.admin.create_topics([NewTopic(self.name, num_partitions=partitions, replication_factor=1)])[
            self.name
        ].result(timeout=30)

    def consume(self, expected: int, timeout: float = 60.0) -> list:
        """Read from the beginning until ``expected`` messages (or ``timeout``); returns messages."""
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"collector-test-{uuid.uuid4().hex}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
            }
        )
        consumer.subscribe([self.name])
        messages = []
        deadline = time.monotonic() + timeout
        try:
            while len(messages) < expected and time.monotonic() < deadline:
                msg = consumer.poll(0.5)
                if msg is not None and msg.error() is None:
                    messages.append(msg)
            # anything beyond the expected count would be a bug too: drain briefly
            end = time.monotonic() + 1.0
            while time.monotonic() < end:
                msg = consumer.poll(0.2)
                if msg is not None and msg.error() is None:
                    messages.append(msg)
        finally:
            consumer.close()
        return messages

    def delete(self) -> None:
        self.admin.delete_topics([self.name])


def decode(msg) -> dict:
    """A consumed message as a record, via the schema its headers name."""
    return schemas.decode(msg.value(), schemas.writer_from_headers(msg.headers()))


def divolte_signed(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Append the checksum ``x`` that Divolte's tag computes (murmur3 of the canonical string)."""
    from collector.divolte import canonical, murmur3_32

    value = murmur3_32(canonical(pairs).encode())
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    n, out = abs(value), ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if not n:
            break
    return pairs + [("x", ("-" if value < 0 else "") + out)]
