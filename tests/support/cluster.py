"""A private Kafka cluster of several brokers, for tests that kill one: killing it disturbs
nobody else's tests. Built from the same code as ``clickpipe stack up --kafka-brokers N``."""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

from clickpipe.config import Settings, load
from stack.kafka import Kafka, brokers
from stack.services import port_open
from tests.support.broker import wait_healthy


def free_port_run(count: int, tries: int = 50) -> int:
    """The first of ``count`` consecutive loopback ports that nothing listens on right now."""
    for _ in range(tries):
        base = random.randrange(20000, 32000)
        if not any(port_open("127.0.0.1", base + i, timeout=0.2) for i in range(count)):
            return base
    raise RuntimeError(f"no {count} consecutive free ports found")


class PrivateCluster:
    """``count`` brokers (all KRaft voters) with their data under ``state_dir``, on free ports."""

    def __init__(self, base: Settings, state_dir: Path, count: int = 3, heap: str = "256m"):
        port = free_port_run(2 * count)
        self.settings = load({
            "CLICKPIPE_CACHE_DIR": str(base.cache_dir),
            "CLICKPIPE_STATE_DIR": str(state_dir),
            "CLICKPIPE_KAFKA_BROKERS": str(count),
            "CLICKPIPE_KAFKA_PORT": str(port),
            "CLICKPIPE_KAFKA_CONTROLLER_PORT": str(port + 1),
            "CLICKPIPE_KAFKA_HEAP": heap,
        })
        self.brokers = brokers(self.settings)

    def start(self, timeout: float = 180.0) -> None:
        for broker in self.brokers:
            if broker.process.pid() is None:
                broker.start()
        for broker in self.brokers:
            wait_healthy(broker, timeout)

    def broker(self, node: int) -> Kafka:
        return self.brokers[node - 1]

    def kill_9(self, node: int) -> None:
        """SIGKILL a broker's process group, as a lost host would; returns once it is gone."""
        broker = self.broker(node)
        pid = broker.process.pid()
        assert pid is not None, f"{broker.name} is not running"
        os.killpg(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while broker.process.pid() is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert broker.process.pid() is None, f"{broker.name} survived SIGKILL"

    def stop(self) -> None:
        for broker in reversed(self.brokers):
            broker.process.stop()
