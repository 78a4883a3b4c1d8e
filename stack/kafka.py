"""The local Apache Kafka cluster in KRaft mode: one node or several, each broker and controller in one JVM.

With ``CLICKPIPE_KAFKA_BROKERS`` = N, node n (1..N) listens on ``kafka_port + 2(n-1)`` for
clients and ``kafka_controller_port + 2(n-1)`` for the controller quorum; all N nodes are
voters (static ``controller.quorum.voters``), so a cluster of three keeps its metadata
quorum and serves every partition with one node down. Internal topics (consumer offsets,
the transaction log) get ``kafka_replication`` replicas and ``kafka_min_insync_replicas``.
"""

from __future__ import annotations

import base64
import os
import subprocess
from collections.abc import Callable

from clickpipe.config import Settings
from stack import jars
from stack.services import LOG4J2_CONSOLE, Service, port_open, properties


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


def brokers(settings: Settings) -> list[Kafka]:
    """The nodes of the local cluster ``settings`` describe, node 1 first."""
    return [Kafka(settings, node) for node in range(1, settings.kafka_brokers + 1)]


class Kafka(Service):
    """Node ``node`` of the local cluster; a single node is the service ``kafka``, node n of several ``kafka-n``."""

    name = "kafka"

    def __init__(self, settings: Settings, node: int = 1):
        if not 1 <= node <= settings.kafka_brokers:
            raise ValueError(f"kafka node {node} is not one of the {settings.kafka_brokers} configured")
        self.node = node
        self.host = settings.kafka_host
        self.port = settings.kafka_port + 2 * (node - 1)
        self.controller_port = settings.kafka_controller_port + 2 * (node - 1)
        if settings.kafka_brokers > 1:
            self.name = f"kafka-{node}"
        super().__init__(settings)
        self.dir = self.state / self.name
        self.data = self.dir / "data"
        self.properties = self.dir / "server.properties"
        self.voters = ",".join(f"{n}@{settings.kafka_host}:{settings.kafka_controller_port + 2 * (n - 1)}"
                               for n in range(1, settings.kafka_brokers + 1))

    def _classpath(self) -> str:
        return str(jars.kafka_home(self.settings) / "libs" / "*")

    def _java(self, main: str, *args: str) -> list[str]:
        return [
            "java", f"-Xms{self.settings.kafka_heap}", f"-Xmx{self.settings.kafka_heap}",
            f"-Dlog4j2.configurationFile={self.dir / 'log4j2.xml'}", "-Djava.awt.headless=true",
            "-cp", self._classpath(), main, *args,
        ]

    def configuration(self) -> dict[str, str]:
        """This node's server.properties."""
        s = self.settings
        replicas, min_isr = str(s.kafka_replication), str(s.kafka_min_insync_replicas)
        return {
            "process.roles": "broker,controller",
            "node.id": str(self.node),
            "controller.quorum.voters": self.voters,
            "listeners": f"PLAINTEXT://{self.host}:{self.port},CONTROLLER://{self.host}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{self.host}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.data),
            "num.partitions": "1",
            # Also what a topic created without these settings (by a client) gets.
            "default.replication.factor": replicas,
            "min.insync.replicas": min_isr,
            "offsets.topic.replication.factor": replicas,
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": replicas,
            "transaction.state.log.min.isr": min_isr,
            "transaction.state.log.num.partitions": "4",
            "share.coordinator.state.topic.replication.factor": replicas,
            "share.coordinator.state.topic.min.isr": min_isr,
            # A replica that was down never becomes leader before it has caught up: no
            # acknowledged write is lost to a leader change.
            "unclean.leader.election.enable": "false",
            "group.initial.rebalance.delay.ms": "0",
            "num.network.threads": "2",
            "num.io.threads": "2",
            # The log cleaner's dedupe map is heap; the 128 MiB default is a quarter of ours.
            "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
        }

    def prepare(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "log4j2.xml").write_text(LOG4J2_CONSOLE)
        voters_file = self.dir / "voters"
        if (self.data / "meta.properties").exists():
            # A single node formatted before the file existed had the one voter it has now.
            formatted_for = voters_file.read_text().strip() if voters_file.exists() else self.voters
            if formatted_for != self.voters:
                raise RuntimeError(
                    f"{self.name}: its storage belongs to the cluster {formatted_for}, not {self.voters}; "
                    f"keep CLICKPIPE_KAFKA_BROKERS as it was or wipe the stack (clickpipe stack reset)")
        self.properties.write_text(properties(self.configuration()))
        if not (self.data / "meta.properties").exists():
            self._format()
            voters_file.write_text(self.voters + "\n")

    def _format(self) -> None:
        result = subprocess.run(
            self._java("kafka.tools.StorageTool", "format", "-t", self._cluster_id(), "-c", str(self.properties)),
            capture_output=True, text=True,
        )
        if result.returncode != 0:
            raise RuntimeError(f"{self.name}: formatting storage failed:\n{result.stdout}{result.stderr}")

    def _cluster_id(self) -> str:
        """The id every node of the cluster is formatted with: a formatted sibling's, else a new one."""
        for sibling in brokers(self.settings):
            meta = sibling.data / "meta.properties"
            if meta.exists():
                for line in meta.read_text().splitlines():
                    if line.startswith("cluster.id="):
                        return line.removeprefix("cluster.id=").strip()
        return new_cluster_id()

    def command(self) -> list[str]:
        return self._java("kafka.Kafka", str(self.properties))

    def healthy(self) -> bool:
        """True when this node answers a metadata request that lists it as a registered broker."""
        from confluent_kafka.admin import AdminClient

        if not port_open(self.host, self.port):
            return False
        client = AdminClient({"bootstrap.servers": f"{self.host}:{self.port}", "log_level": 0})
        try:
            return self.node in client.list_topics(timeout=2).brokers
        except Exception:  # noqa: BLE001 - any failure means "not ready yet"
            return False
