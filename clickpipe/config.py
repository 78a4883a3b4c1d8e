"""All configuration, read once from environment variables.

Every setting has a documented default that works on one machine with the local stack
(`clickpipe stack up`). Import :data:`settings` and read attributes; never read
``os.environ`` elsewhere. Tests that need other values build their own ``Settings`` with
:func:`load` and an explicit mapping.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

PREFIX = "CLICKPIPE_"


class ConfigError(ValueError):
    """A setting has a value that cannot be used; the message names the variable."""


class _Reader:
    def __init__(self, env: Mapping[str, str]):
        self.env = env

    def str(self, name: str, default: str) -> str:
        return self.env.get(PREFIX + name, default)

    def int(self, name: str, default: int, minimum: int | None = None) -> int:
        raw = self.env.get(PREFIX + name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{PREFIX}{name}={raw!r} is not an integer") from None
        if minimum is not None and value < minimum:
            raise ConfigError(f"{PREFIX}{name}={value} must be >= {minimum}")
        return value

    def bool(self, name: str, default: bool) -> bool:
        raw = self.env.get(PREFIX + name)
        if raw is None:
            return default
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{PREFIX}{name}={raw!r} is not a boolean (use true/false)")

    def path(self, name: str, default: Path) -> Path:
        return Path(self.env.get(PREFIX + name, str(default))).expanduser()


@dataclass(frozen=True)
class Settings:
    """The whole configuration. Field comments give the variable (prefixed CLICKPIPE_)."""

    # --- where things live -------------------------------------------------------------
    cache_dir: Path  # CACHE_DIR: downloaded jars, reused across runs and clones (~/.cache/clickpipe)
    state_dir: Path  # STATE_DIR: service data, logs, pids (~/.local/state/clickpipe)

    # --- Kafka ---------------------------------------------------------------------------
    kafka_host: str  # KAFKA_HOST: address the local broker binds and advertises (127.0.0.1)
    kafka_port: int  # KAFKA_PORT: client listener (9092)
    kafka_controller_port: int  # KAFKA_CONTROLLER_PORT: KRaft controller listener (9093)
    kafka_bootstrap: str  # KAFKA_BOOTSTRAP: bootstrap servers for clients (KAFKA_HOST:KAFKA_PORT)
    kafka_heap: str  # KAFKA_HEAP: broker JVM heap (512m)

    # --- topics --------------------------------------------------------------------------
    topic_raw: str  # TOPIC_RAW (clicks.raw)
    topic_enriched: str  # TOPIC_ENRICHED (clicks.enriched)
    topic_sessions: str  # TOPIC_SESSIONS (clicks.sessions)
    topic_dead_letters: str  # TOPIC_DEAD_LETTERS (clicks.dead-letters)
    partitions: int  # PARTITIONS: partitions of every pipeline topic (4)

    # --- Druid ---------------------------------------------------------------------------
    druid_host: str  # DRUID_HOST: address every Druid service binds (127.0.0.1)
    zookeeper_port: int  # ZOOKEEPER_PORT (2181)
    druid_coordinator_port: int  # DRUID_COORDINATOR_PORT: coordinator + overlord (8081)
    druid_broker_port: int  # DRUID_BROKER_PORT (8082)
    druid_historical_port: int  # DRUID_HISTORICAL_PORT (8083)
    druid_indexer_port: int  # DRUID_INDEXER_PORT (8091)
    druid_router_port: int  # DRUID_ROUTER_PORT (8888)
    druid_router_url: str  # DRUID_ROUTER_URL: entry point for APIs (http://DRUID_HOST:DRUID_ROUTER_PORT)
    druid_broker_url: str  # DRUID_BROKER_URL: SQL and native queries (http://DRUID_HOST:DRUID_BROKER_PORT)

    # --- stack manager -------------------------------------------------------------------
    stack_timeout: int  # STACK_TIMEOUT: seconds `stack up` waits for readiness (300)
    maven: str  # MAVEN: the Maven command used to resolve jars (mvn)


def load(env: Mapping[str, str] | None = None) -> Settings:
    """Build :class:`Settings` from ``env`` (default: the process environment).

    Raises :class:`ConfigError` naming the variable when a value is unusable.
    """
    r = _Reader(os.environ if env is None else env)
    kafka_host = r.str("KAFKA_HOST", "127.0.0.1")
    kafka_port = r.int("KAFKA_PORT", 9092, minimum=1)
    druid_host = r.str("DRUID_HOST", "127.0.0.1")
    router_port = r.int("DRUID_ROUTER_PORT", 8888, minimum=1)
    broker_port = r.int("DRUID_BROKER_PORT", 8082, minimum=1)
    return Settings(
        cache_dir=r.path("CACHE_DIR", Path.home() / ".cache" / "clickpipe"),
        state_dir=r.path("STATE_DIR", Path.home() / ".local" / "state" / "clickpipe"),
        kafka_host=kafka_host,
        kafka_port=kafka_port,
        kafka_controller_port=r.int("KAFKA_CONTROLLER_PORT", 9093, minimum=1),
        kafka_bootstrap=r.str("KAFKA_BOOTSTRAP", f"{kafka_host}:{kafka_port}"),
        kafka_heap=r.str("KAFKA_HEAP", "512m"),
        topic_raw=r.str("TOPIC_RAW", "clicks.raw"),
        topic_enriched=r.str("TOPIC_ENRICHED", "clicks.enriched"),
        topic_sessions=r.str("TOPIC_SESSIONS", "clicks.sessions"),
        topic_dead_letters=r.str("TOPIC_DEAD_LETTERS", "clicks.dead-letters"),
        partitions=r.int("PARTITIONS", 4, minimum=1),
        druid_host=druid_host,
        zookeeper_port=r.int("ZOOKEEPER_PORT", 2181, minimum=1),
        druid_coordinator_port=r.int("DRUID_COORDINATOR_PORT", 8081, minimum=1),
        druid_broker_port=broker_port,
        druid_historical_port=r.int("DRUID_HISTORICAL_PORT", 8083, minimum=1),
        druid_indexer_port=r.int("DRUID_INDEXER_PORT", 8091, minimum=1),
        druid_router_port=router_port,
        druid_router_url=r.str("DRUID_ROUTER_URL", f"http://{druid_host}:{router_port}"),
        druid_broker_url=r.str("DRUID_BROKER_URL", f"http://{druid_host}:{broker_port}"),
        stack_timeout=r.int("STACK_TIMEOUT", 300, minimum=1),
        maven=r.str("MAVEN", "mvn"),
    )


settings = load()
