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

    # --- collector -----------------------------------------------------------------------
    collector_host: str  # COLLECTOR_HOST: bind address (127.0.0.1; put a proxy in front for the world)
    collector_port: int  # COLLECTOR_PORT (8090)
    collector_workers: int  # COLLECTOR_WORKERS: gunicorn worker processes (2)
    collector_threads: int  # COLLECTOR_THREADS: threads per worker (gthread worker class) (4)
    collector_public_url: str  # COLLECTOR_PUBLIC_URL: base URL the tag posts to ("": the origin the tag was loaded from)
    collector_max_body: int  # COLLECTOR_MAX_BODY: largest accepted request body in bytes (262144)
    collector_max_events: int  # COLLECTOR_MAX_EVENTS: most events in one POST /events batch (100)
    collector_max_params: int  # COLLECTOR_MAX_PARAMS: most custom params per event (50)
    collector_party_cookie: str  # COLLECTOR_PARTY_COOKIE: server-set, HttpOnly party cookie (_cpp)
    collector_party_days: int  # COLLECTOR_PARTY_DAYS: party cookie lifetime in days (365)
    collector_session_cookie: str  # COLLECTOR_SESSION_COOKIE: tag-written session cookie (_cps)
    collector_optout_cookie: str  # COLLECTOR_OPTOUT_COOKIE: set by the tag's optOut(); the collector drops events carrying it (_cpo)
    collector_cookie_domain: str  # COLLECTOR_COOKIE_DOMAIN: e.g. example.com to share across subdomains ("": host only)
    collector_session_timeout: int  # COLLECTOR_SESSION_TIMEOUT: seconds of inactivity that end a session (1800)
    collector_trusted_hops: int  # COLLECTOR_TRUSTED_HOPS: reverse proxies in front that append X-Forwarded-For (0)
    collector_anonymize_ip: bool  # COLLECTOR_ANONYMIZE_IP: zero the host part (IPv4 /24, IPv6 /48) before producing (false)
    collector_cors_origins: tuple[str, ...]  # COLLECTOR_CORS_ORIGINS: comma-separated allowed origins ("": same-origin only)
    collector_honor_dnt: bool  # COLLECTOR_HONOR_DNT: drop events from browsers sending Do Not Track (false)
    collector_honor_gpc: bool  # COLLECTOR_HONOR_GPC: drop events from browsers sending Global Privacy Control (true)
    collector_queue_max: int  # COLLECTOR_QUEUE_MAX: producer's local queue, messages; full -> 503 (100000)
    collector_dedup_slots: int  # COLLECTOR_DEDUP_SLOTS: per-worker duplicate memory, (party, event id) slots (1048576)


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
        # collector
        collector_host=r.str("COLLECTOR_HOST", "127.0.0.1"),
        collector_port=r.int("COLLECTOR_PORT", 8090, minimum=1),
        collector_workers=r.int("COLLECTOR_WORKERS", 2, minimum=1),
        collector_threads=r.int("COLLECTOR_THREADS", 4, minimum=1),
        collector_public_url=r.str("COLLECTOR_PUBLIC_URL", "").rstrip("/"),
        collector_max_body=r.int("COLLECTOR_MAX_BODY", 262144, minimum=1024),
        collector_max_events=r.int("COLLECTOR_MAX_EVENTS", 100, minimum=1),
        collector_max_params=r.int("COLLECTOR_MAX_PARAMS", 50, minimum=0),
        collector_party_cookie=r.str("COLLECTOR_PARTY_COOKIE", "_cpp"),
        collector_party_days=r.int("COLLECTOR_PARTY_DAYS", 365, minimum=1),
        collector_session_cookie=r.str("COLLECTOR_SESSION_COOKIE", "_cps"),
        collector_optout_cookie=r.str("COLLECTOR_OPTOUT_COOKIE", "_cpo"),
        collector_cookie_domain=r.str("COLLECTOR_COOKIE_DOMAIN", "").lstrip("."),
        collector_session_timeout=r.int("COLLECTOR_SESSION_TIMEOUT", 1800, minimum=1),
        collector_trusted_hops=r.int("COLLECTOR_TRUSTED_HOPS", 0, minimum=0),
        collector_anonymize_ip=r.bool("COLLECTOR_ANONYMIZE_IP", False),
        collector_cors_origins=tuple(
            o.strip().rstrip("/") for o in r.str("COLLECTOR_CORS_ORIGINS", "").split(",") if o.strip()
        ),
        collector_honor_dnt=r.bool("COLLECTOR_HONOR_DNT", False),
        collector_honor_gpc=r.bool("COLLECTOR_HONOR_GPC", True),
        collector_queue_max=r.int("COLLECTOR_QUEUE_MAX", 100000, minimum=100),
        collector_dedup_slots=r.int("COLLECTOR_DEDUP_SLOTS", 1048576, minimum=1),
    )


settings = load()
