"""A single-node Apache Kafka broker in KRaft mode (broker and controller in one JVM)."""

from __future__ import annotations

import base64
import os
import subprocess
from collections.abc import Callable

from clickpipe.config import Settings
from stack import jars
from stack.services import LOG4J2_CONSOLE, Service, properties


def new_cluster_id(random_bytes: Callable[[int], bytes] = os.urandom) -> str:
    """A new cluster id as `kafka-storage random-uuid` makes it, without starting a JVM.

    16 random bytes in unpadded URL-safe base64, never starting with "-": the storage
    tool's argument parser would read such an id as an option (Kafka's own Uuid draws
    again in that case too; about one id in 64 would otherwise fail the format).
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(random_bytes(16)).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


class Kafka(Service):
    name = "kafka"

    def __init__(self, settings: Settings):
        self.host = settings.kafka_host
        self.port = settings.kafka_port
        super().__init__(settings)
        self.dir = self.state / "kafka"
        self.data = self.dir / "data"
        self.properties = self.dir / "server.properties"

    def _classpath(self) -> str:
        return str(jars.kafka_home(self.settings) / "libs" / "*")

    def _java(self, main: str, *args: str) -> list[str]:
        return [
            "java", f"-Xms{self.settings.kafka_heap}", f"-Xmx{self.settings.kafka_heap}",
            f"-Dlog4j2.configurationFile={self.dir / 'log4j2.xml'}", "-Djava.awt.headless=true",
            "-cp", self._classpath(), main, *args,
        ]

    def prepare(self) -> None:
        s = self.settings
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "log4j2.xml").write_text(LOG4J2_CONSOLE)
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{s.kafka_host}:{s.kafka_controller_port}",
            "listeners": f"PLAINTEXT://{s.kafka_host}:{s.kafka_port},CONTROLLER://{s.kafka_host}:{s.kafka_controller_port}",
            "advertised.listeners": f"PLAINTEXT://{s.kafka_host}:{s.kafka_port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.data),
            "num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "4",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "num.network.threads": "2",
            "num.io.threads": "2",
            # The log cleaner's dedupe map is heap; the 128 MiB default is a quarter of ours.
            "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
        }
        self.properties.write_text(properties(props))
        if not (self.data / "meta.properties").exists():
            self._format()

    def _format(self) -> None:
        result = subprocess.run(
            self._java("kafka.tools.StorageTool", "format", "-t", new_cluster_id(), "-c", str(self.properties)),
            capture_output=True, text=True,
        )
        if result.returncode != 0:
            raise RuntimeError(f"kafka: formatting storage failed:\n{result.stdout}{result.stderr}")

    def command(self) -> list[str]:
        return self._java("kafka.Kafka", str(self.properties))

    def healthy(self) -> bool:
        """True when the broker answers a metadata request."""
        from confluent_kafka.admin import AdminClient

        client = AdminClient({"bootstrap.servers": f"{self.host}:{self.port}", "log_level": 0})
        try:
            return len(client.list_topics(timeout=2).brokers) > 0
        except Exception:  # noqa: BLE001 - any failure means "not ready yet"
            return False
