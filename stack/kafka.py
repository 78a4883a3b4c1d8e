"""A single-node Apache Kafka broker in KRaft mode (broker and controller in one JVM)."""

from __future__ import annotations

import base64
import subprocess
import uuid

from clickpipe.config import Settings
from stack import jars
from stack.services import LOG4J2_CONSOLE, Service, properties


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
        # Kafka's cluster ids are 16 random bytes in unpadded URL-safe base64 (what
        # `StorageTool random-uuid` prints); making one here saves starting a JVM.
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        result = subprocess.run(
            self._java("kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(self.properties)),
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
