"""Apache Druid on one machine: ZooKeeper, coordinator (+overlord), broker, historical,
indexer and router, each its own JVM, sized for a small box next to Kafka.

Configuration is generated under ``state_dir/druid/conf`` in Druid's usual layout
(``_common/`` plus one directory per service) every time a service starts, so changing a
setting and restarting is enough. Metadata lives in Derby, which the coordinator starts;
deep storage is a local directory.
"""

from __future__ import annotations

import json

import requests

from clickpipe.config import Settings
from stack import jars
from stack.services import LOG4J2_CONSOLE, Service, port_open, properties

# What Druid's own launcher adds on Java 11+ (strong encapsulation exceptions).
JAVA_MODULE_FLAGS = [
    "--add-exports=java.base/jdk.internal.misc=ALL-UNNAMED",
    "--add-exports=java.base/jdk.internal.ref=ALL-UNNAMED",
    "--add-opens=java.base/java.nio=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.ref=ALL-UNNAMED",
    "--add-opens=java.base/java.io=ALL-UNNAMED",
    "--add-opens=java.base/java.lang=ALL-UNNAMED",
    "--add-opens=jdk.management/com.sun.management.internal=ALL-UNNAMED",
]

# Processing buffers shared by broker, historical and indexer: 3 buffers (1 thread +
# 2 merge buffers) of 64 MiB stay well inside each JVM's direct-memory limit.
PROCESSING = {
    "druid.processing.buffer.sizeBytes": str(64 * 1024 * 1024),
    "druid.processing.numMergeBuffers": "2",
    "druid.processing.numThreads": "1",
}


class _JavaOnDruidClasspath(Service):
    """A JVM started from the Druid closure with a generated config directory."""

    heap = "256m"
    direct = "256m"

    def __init__(self, settings: Settings):
        self.host = settings.druid_host
        super().__init__(settings)
        self.root = self.state / "druid"
        self.conf = self.root / "conf"

    def write_common(self) -> None:
        s = self.settings
        common = self.conf / "_common"
        common.mkdir(parents=True, exist_ok=True)
        (common / "log4j2.xml").write_text(LOG4J2_CONSOLE)
        for sub in ("segments", "segment-cache", "indexing-logs", "task", "tmp", "zk"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        home = jars.druid_home(s)
        (common / "common.runtime.properties").write_text(properties({
            "druid.extensions.directory": str(home / "extensions"),
            "druid.extensions.loadList": json.dumps(sorted(jars.DRUID_EXTENSIONS)),
            "druid.host": s.druid_host,
            "druid.startup.logging.logProperties": "false",
            "druid.zk.service.host": f"{s.druid_host}:{s.zookeeper_port}",
            "druid.zk.paths.base": "/druid",
            "druid.metadata.storage.type": "derby",
            "druid.metadata.storage.connector.connectURI":
                f"jdbc:derby://{s.druid_host}:{s.derby_port}/{self.root / 'metadata.db'};create=true",
            "druid.metadata.storage.connector.host": s.druid_host,
            "druid.metadata.storage.connector.port": str(s.derby_port),
            "druid.storage.type": "local",
            "druid.storage.storageDirectory": str(self.root / "segments"),
            "druid.indexer.logs.type": "file",
            "druid.indexer.logs.directory": str(self.root / "indexing-logs"),
            "druid.selectors.indexing.serviceName": "druid/overlord",
            "druid.selectors.coordinator.serviceName": "druid/coordinator",
            "druid.emitter": "noop",
            "druid.indexing.doubleStorage": "double",
            "druid.sql.enable": "true",
            # New datasources and columns become visible to SQL within seconds, not a minute.
            "druid.sql.planner.metadataRefreshPeriod": "PT5S",
            "druid.lookup.enableLookupSyncOnStartup": "false",
            "druid.expressions.useStrictBooleans": "true",
            "druid.global.http.eagerInitialization": "false",
        }))

    def java(self, main: str, *args: str, conf_dir: str) -> list[str]:
        home = jars.druid_home(self.settings)
        classpath = ":".join([str(self.conf / conf_dir), str(self.conf / "_common"), str(home / "lib" / "*")])
        return [
            "java", "-server", f"-Xms{self.heap}", f"-Xmx{self.heap}", f"-XX:MaxDirectMemorySize={self.direct}",
            "-XX:+ExitOnOutOfMemoryError", "-Duser.timezone=UTC", "-Dfile.encoding=UTF-8",
            f"-Djava.io.tmpdir={self.root / 'tmp'}",
            "-Djava.util.logging.manager=org.apache.logging.log4j.jul.LogManager",
            f"-Dlog4j.configurationFile={self.conf / '_common' / 'log4j2.xml'}",
            *JAVA_MODULE_FLAGS, "-cp", classpath, main, *args,
        ]


class ZooKeeper(_JavaOnDruidClasspath):
    """Service discovery and leader election for Druid (ZooKeeper from Druid's own closure)."""

    name = "zookeeper"
    heap = "128m"

    def __init__(self, settings: Settings):
        self.port = settings.zookeeper_port
        super().__init__(settings)

    def prepare(self) -> None:
        self.write_common()
        zk = self.conf / "zk"
        zk.mkdir(parents=True, exist_ok=True)
        (zk / "zoo.cfg").write_text(properties({
            "tickTime": "2000",
            "dataDir": str(self.root / "zk"),
            "clientPort": str(self.port),
            "clientPortAddress": self.host,
            "maxClientCnxns": "0",
            "admin.enableServer": "false",
            "4lw.commands.whitelist": "ruok",
        }))

    def command(self) -> list[str]:
        return self.java("org.apache.zookeeper.server.quorum.QuorumPeerMain", str(self.conf / "zk" / "zoo.cfg"),
                         conf_dir="zk")

    def healthy(self) -> bool:
        import socket

        try:
            with socket.create_connection((self.host, self.port), timeout=2) as sock:
                sock.sendall(b"ruok")
                return sock.recv(16) == b"imok"
        except OSError:
            return False


class DruidService(_JavaOnDruidClasspath):
    """One Druid service (``role`` as in ``org.apache.druid.cli.Main server <role>``)."""

    role: str
    extra: dict[str, str] = {}

    def __init__(self, settings: Settings):
        self.port = getattr(settings, f"druid_{self.role}_port")
        super().__init__(settings)

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"druid-{self.role}"

    def runtime_properties(self) -> dict[str, str]:
        return {"druid.service": f"druid/{self.role}", "druid.plaintextPort": str(self.port), **self.extra}

    def prepare(self) -> None:
        self.write_common()
        d = self.conf / self.role
        d.mkdir(parents=True, exist_ok=True)
        (d / "runtime.properties").write_text(properties(self.runtime_properties()))

    def command(self) -> list[str]:
        return self.java("org.apache.druid.cli.Main", "server", self.role, conf_dir=self.role)

    def url(self, path: str = "") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def healthy(self) -> bool:
        try:
            return requests.get(self.url("/status/health"), timeout=2).json() is True
        except (requests.RequestException, ValueError):
            return False


class Coordinator(DruidService):
    role = "coordinator"
    heap = "384m"
    extra = {
        "druid.coordinator.asOverlord.enabled": "true",
        "druid.coordinator.asOverlord.overlordService": "druid/overlord",
        "druid.coordinator.startDelay": "PT5S",
        "druid.coordinator.period": "PT5S",
        "druid.manager.segments.pollDuration": "PT5S",
        "druid.indexer.queue.startDelay": "PT2S",
        "druid.indexer.storage.type": "metadata",
        "druid.indexer.runner.type": "remote",
    }

    def healthy(self) -> bool:
        # Derby runs inside the coordinator; the others cannot start without it.
        return super().healthy() and port_open(self.host, self.settings.derby_port)


class Broker(DruidService):
    role = "broker"
    heap = "512m"
    direct = "400m"
    extra = {
        "druid.server.http.numThreads": "8",
        "druid.broker.http.numConnections": "5",
        "druid.broker.http.maxQueuedBytes": "10MiB",
        "druid.broker.cache.useCache": "false",
        "druid.broker.cache.populateCache": "false",
        **PROCESSING,
    }

    def healthy(self) -> bool:
        """Healthy and answering SQL."""
        if not super().healthy():
            return False
        try:
            r = requests.post(self.url("/druid/v2/sql"), json={"query": "SELECT 1", "resultFormat": "array"},
                              timeout=5)
            return r.status_code == 200 and r.json() == [[1]]
        except (requests.RequestException, ValueError):
            return False


class Historical(DruidService):
    role = "historical"
    heap = "512m"
    direct = "400m"

    @property
    def extra(self) -> dict[str, str]:  # type: ignore[override]
        return {
            "druid.server.http.numThreads": "8",
            "druid.segmentCache.locations": json.dumps(
                [{"path": str(self.root / "segment-cache"), "maxSize": "20GiB"}]),
            "druid.server.maxSize": str(20 * 1024 ** 3),
            **PROCESSING,
        }


class Indexer(DruidService):
    """Runs ingestion tasks as threads in one JVM (no middleManager + peon per task)."""

    role = "indexer"
    heap = "1g"
    direct = "512m"

    @property
    def extra(self) -> dict[str, str]:  # type: ignore[override]
        return {
            "druid.worker.capacity": str(self.settings.druid_task_slots),
            "druid.server.http.numThreads": str(8 + 2 * self.settings.druid_task_slots),
            "druid.indexer.task.baseTaskDir": str(self.root / "task"),
            "druid.indexer.task.restoreTasksOnRestart": "true",
            **PROCESSING,
        }


class Router(DruidService):
    role = "router"
    heap = "128m"
    direct = "128m"
    extra = {
        "druid.router.defaultBrokerServiceName": "druid/broker",
        "druid.router.coordinatorServiceName": "druid/coordinator",
        "druid.router.managementProxy.enabled": "true",
        "druid.server.http.numThreads": "8",
        "druid.router.http.numConnections": "10",
    }
