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

    def int(self, name: str, default: int, minimum: int | None = None, maximum: int | None = None) -> int:
        raw = self.env.get(PREFIX + name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{PREFIX}{name}={raw!r} is not an integer") from None
        if minimum is not None and value < minimum:
            raise ConfigError(f"{PREFIX}{name}={value} must be >= {minimum}")
        if maximum is not None and value > maximum:
            raise ConfigError(f"{PREFIX}{name}={value} must be <= {maximum}")
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
    derby_port: int  # DERBY_PORT: Druid's metadata store, run by the coordinator (1527)
    druid_task_slots: int  # DRUID_TASK_SLOTS: concurrent ingestion tasks on the indexer (6)
    druid_router_url: str  # DRUID_ROUTER_URL: entry point for APIs (http://DRUID_HOST:DRUID_ROUTER_PORT)
    druid_broker_url: str  # DRUID_BROKER_URL: SQL and native queries (http://DRUID_HOST:DRUID_BROKER_PORT)

    # --- Druid datasources and supervisors (druid/) --------------------------------------
    druid_clicks_datasource: str  # DRUID_CLICKS_DATASOURCE: datasource and supervisor id of enriched clicks (clicks)
    druid_sessions_datasource: str  # DRUID_SESSIONS_DATASOURCE: datasource and supervisor id of sessions (sessions)
    druid_task_count: int  # DRUID_TASK_COUNT: reading tasks per supervisor, at most the topic's partitions (1)
    druid_replicas: int  # DRUID_REPLICAS: copies of each reading task (1)
    druid_task_duration: str  # DRUID_TASK_DURATION: ISO period a task reads before it publishes (PT10M; see docs/druid.md)
    druid_start_delay: str  # DRUID_START_DELAY: ISO period before a new supervisor starts managing tasks (PT5S)
    druid_supervisor_period: str  # DRUID_SUPERVISOR_PERIOD: ISO period of the supervisor's management loop (PT30S)
    druid_query_timeout: int  # DRUID_QUERY_TIMEOUT: seconds an API call or report query may take (60)

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
    collector_consent_cookie: str  # COLLECTOR_CONSENT_COOKIE: the tag's consent("granted"|"denied") state, sent with each event (_cpc)
    collector_cookie_domain: str  # COLLECTOR_COOKIE_DOMAIN: e.g. example.com to share across subdomains ("": host only)
    collector_session_timeout: int  # COLLECTOR_SESSION_TIMEOUT: seconds of inactivity that end a session (1800)
    collector_trusted_hops: int  # COLLECTOR_TRUSTED_HOPS: reverse proxies in front that append X-Forwarded-For (0)
    collector_anonymize_ip: bool  # COLLECTOR_ANONYMIZE_IP: zero the host part (IPv4 /24, IPv6 /48) before producing (false)
    collector_cors_origins: tuple[str, ...]  # COLLECTOR_CORS_ORIGINS: comma-separated allowed origins ("": same-origin only)
    collector_honor_dnt: bool  # COLLECTOR_HONOR_DNT: drop events from browsers sending Do Not Track (false)
    collector_honor_gpc: bool  # COLLECTOR_HONOR_GPC: drop events from browsers sending Global Privacy Control (true)
    collector_queue_max: int  # COLLECTOR_QUEUE_MAX: events waiting for Kafka, in batches or messages; full -> 503 (100000)
    # The raw topic carries many events per message (a RawBatch, see collector/sink.py). A batch is
    # produced when it holds COLLECTOR_BATCH_MAX_EVENTS events, when the next event would take its
    # events past COLLECTOR_BATCH_MAX_BYTES, or COLLECTOR_BATCH_LINGER_MS after its first event.
    # Defaults chosen by bench/collector_bench.py (docs/benchmarks.md, "Collector").
    collector_batch_max_events: int  # COLLECTOR_BATCH_MAX_EVENTS: most events in one raw-topic message, 1-10000 (500)
    # COLLECTOR_BATCH_MAX_BYTES: most bytes of encoded events in one raw-topic message, 1024-900000 (an event
    # larger than this travels alone); the cap keeps a message under Kafka's default 1 MB limit (262144)
    collector_batch_max_bytes: int
    collector_batch_linger_ms: int  # COLLECTOR_BATCH_LINGER_MS: ms an event waits at most for others to join; 0: none (20)
    # COLLECTOR_ACK_WAIT_MS: 0 answers 2xx once events are queued in the collector, in a batch or the
    # producer's queue (a collector killed -9 loses what is still queued); N > 0 answers 2xx only once
    # Kafka acknowledged every message holding an event of the request, 503 + Retry-After if that
    # takes over N ms (a retry may then repeat events, which the pipeline deduplicates) (0)
    collector_ack_wait_ms: int
    collector_dedup_slots: int  # COLLECTOR_DEDUP_SLOTS: per-worker duplicate memory, (party, event id) slots (1048576)

    # --- dashboard and `clickpipe up` ---------------------------------------------------
    dashboard_host: str  # DASHBOARD_HOST: bind address of the live dashboard (127.0.0.1)
    dashboard_port: int  # DASHBOARD_PORT (8095)
    dashboard_refresh: int  # DASHBOARD_REFRESH_SECONDS: how often the page reloads its numbers (5)

    # --- pipeline (stream processing: app/, agents/, tables/, steps/) --------------------
    pipeline_app_id: str  # PIPELINE_APP_ID: Faust app id = consumer group and changelog prefix (clickpipe-pipeline)
    pipeline_datadir: Path  # PIPELINE_DATADIR: Faust/RocksDB state; one per worker on a host (STATE_DIR/pipeline)
    pipeline_web_port: int  # PIPELINE_WEB_PORT: worker web port; Prometheus metrics at /metrics (6066)
    pipeline_steps: tuple[str, ...]  # PIPELINE_STEPS: ordered step modules of package steps/ run after decode
    pipeline_stream_buffer: int  # PIPELINE_STREAM_BUFFER: Faust stream_buffer_maxsize, events per partition (4096)
    pipeline_commit_interval: int  # PIPELINE_COMMIT_INTERVAL_MS: transaction commit interval (1000)
    pipeline_log_json: bool  # PIPELINE_LOG_JSON: structured JSON log lines from the pipeline (true)
    session_gap: int  # SESSION_GAP_SECONDS: inactivity that ends a session (1800)
    session_cap: int  # SESSION_CAP_SECONDS: longest session; a longer one is split (86400)
    session_split_on_campaign: bool  # SESSION_SPLIT_ON_CAMPAIGN: a new utm campaign starts a new session (true)
    session_sweep_interval: int  # SESSION_SWEEP_SECONDS: how often idle sessions are looked for (60)
    dedup_memory: int  # DEDUP_MEMORY_SECONDS: how long an event id is remembered per party (3600)
    dedup_max_ids: int  # DEDUP_MAX_IDS: most event ids remembered per party, oldest forgotten first (1000)
    keep_duplicates: bool  # KEEP_DUPLICATES: send duplicates to dead letters (reason duplicate) (false)
    bot_rate_window: int  # BOT_RATE_WINDOW_SECONDS: window of the event-rate bot rules (10)
    bot_max_party_events: int  # BOT_MAX_PARTY_EVENTS: events per party per window above which it is a bot (30)
    bot_max_ip_events: int  # BOT_MAX_IP_EVENTS: events per IP per window and partition above which it is a bot (300)
    bot_pixel_only_events: int  # BOT_PIXEL_ONLY_EVENTS: pixel hits from a party never seen with JS before it is a bot (3)
    datacenter_asns: frozenset[int]  # DATACENTER_ASNS: comma-separated ASNs flagged as data-centre traffic (major clouds)
    geoip_city_db: Path  # GEOIP_CITY_DB: MaxMind City database (CACHE_DIR/geoip/GeoLite2-City.mmdb); missing = no geo
    geoip_asn_db: Path  # GEOIP_ASN_DB: MaxMind ASN database (CACHE_DIR/geoip/GeoLite2-ASN.mmdb); missing = no ASN
    geoip_reload_check: int  # GEOIP_RELOAD_SECONDS: how often the database files are checked for changes (10)
    geo_cache_size: int  # GEO_CACHE_SIZE: LRU entries of IP lookups (50000)
    ua_cache_size: int  # UA_CACHE_SIZE: LRU entries of parsed user agents (20000)
    internal_hosts: tuple[str, ...]  # INTERNAL_HOSTS: comma-separated hosts whose referrers count as internal ("": the page's own host)
    rocksdb_block_cache_mb: int  # ROCKSDB_BLOCK_CACHE_MB: block cache per table partition database (16)
    rocksdb_write_buffer_mb: int  # ROCKSDB_WRITE_BUFFER_MB: memtable size per table partition database (8)
    rocksdb_max_open_files: int  # ROCKSDB_MAX_OPEN_FILES: per table partition database (256)

    @property
    def collector_url(self) -> str:
        """The collector's base URL from this host (a wildcard bind address is reached on loopback)."""
        host = {"0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(self.collector_host, self.collector_host)
        return f"http://{host}:{self.collector_port}"


# Amazon, Google, Google Cloud, Microsoft, DigitalOcean, OVH, Hetzner, Linode, Vultr,
# Alibaba, Tencent, Oracle: the usual sources of scripted traffic that claims to be a browser.
_DATACENTER_ASNS = "16509,14618,15169,396982,8075,14061,16276,24940,63949,20473,45102,132203,31898"


def _asns(r: _Reader, name: str, default: str) -> frozenset[int]:
    raw = r.str(name, default)
    try:
        return frozenset(int(a.strip().upper().removeprefix("AS")) for a in raw.split(",") if a.strip())
    except ValueError:
        raise ConfigError(f"{PREFIX}{name}={raw!r} is not a comma-separated list of AS numbers") from None


def load(env: Mapping[str, str] | None = None) -> Settings:
    """Build :class:`Settings` from ``env`` (default: the process environment).

    Raises :class:`ConfigError` naming the variable when a value is unusable.
    """
    r = _Reader(os.environ if env is None else env)
    cache_dir = r.path("CACHE_DIR", Path.home() / ".cache" / "clickpipe")
    state_dir = r.path("STATE_DIR", Path.home() / ".local" / "state" / "clickpipe")
    kafka_host = r.str("KAFKA_HOST", "127.0.0.1")
    kafka_port = r.int("KAFKA_PORT", 9092, minimum=1)
    druid_host = r.str("DRUID_HOST", "127.0.0.1")
    router_port = r.int("DRUID_ROUTER_PORT", 8888, minimum=1)
    broker_port = r.int("DRUID_BROKER_PORT", 8082, minimum=1)
    return Settings(
        cache_dir=cache_dir,
        state_dir=state_dir,
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
        derby_port=r.int("DERBY_PORT", 1527, minimum=1),
        druid_task_slots=r.int("DRUID_TASK_SLOTS", 6, minimum=1),
        druid_router_url=r.str("DRUID_ROUTER_URL", f"http://{druid_host}:{router_port}"),
        druid_broker_url=r.str("DRUID_BROKER_URL", f"http://{druid_host}:{broker_port}"),
        druid_clicks_datasource=r.str("DRUID_CLICKS_DATASOURCE", "clicks"),
        druid_sessions_datasource=r.str("DRUID_SESSIONS_DATASOURCE", "sessions"),
        druid_task_count=r.int("DRUID_TASK_COUNT", 1, minimum=1),
        druid_replicas=r.int("DRUID_REPLICAS", 1, minimum=1),
        druid_task_duration=r.str("DRUID_TASK_DURATION", "PT10M"),
        druid_start_delay=r.str("DRUID_START_DELAY", "PT5S"),
        druid_supervisor_period=r.str("DRUID_SUPERVISOR_PERIOD", "PT30S"),
        druid_query_timeout=r.int("DRUID_QUERY_TIMEOUT", 60, minimum=1),
        stack_timeout=r.int("STACK_TIMEOUT", 300, minimum=1),
        maven=r.str("MAVEN", "mvn"),
        # collector
        dashboard_host=r.str("DASHBOARD_HOST", "127.0.0.1"),
        dashboard_port=r.int("DASHBOARD_PORT", 8095, minimum=1),
        dashboard_refresh=r.int("DASHBOARD_REFRESH_SECONDS", 5, minimum=1),
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
        collector_consent_cookie=r.str("COLLECTOR_CONSENT_COOKIE", "_cpc"),
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
        collector_batch_max_events=r.int("COLLECTOR_BATCH_MAX_EVENTS", 500, minimum=1, maximum=10000),
        collector_batch_max_bytes=r.int("COLLECTOR_BATCH_MAX_BYTES", 262144, minimum=1024, maximum=900000),
        collector_batch_linger_ms=r.int("COLLECTOR_BATCH_LINGER_MS", 20, minimum=0),
        collector_ack_wait_ms=r.int("COLLECTOR_ACK_WAIT_MS", 0, minimum=0),
        collector_dedup_slots=r.int("COLLECTOR_DEDUP_SLOTS", 1048576, minimum=1),
        # pipeline
        pipeline_app_id=r.str("PIPELINE_APP_ID", "clickpipe-pipeline"),
        pipeline_datadir=r.path("PIPELINE_DATADIR", state_dir / "pipeline"),
        pipeline_web_port=r.int("PIPELINE_WEB_PORT", 6066, minimum=1),
        pipeline_steps=tuple(
            s.strip()
            for s in r.str("PIPELINE_STEPS", "dedup,bots,geo,useragent,urls,referrer,sessions").split(",")
            if s.strip()
        ),
        pipeline_stream_buffer=r.int("PIPELINE_STREAM_BUFFER", 4096, minimum=1),
        pipeline_commit_interval=r.int("PIPELINE_COMMIT_INTERVAL_MS", 1000, minimum=10),
        pipeline_log_json=r.bool("PIPELINE_LOG_JSON", True),
        session_gap=r.int("SESSION_GAP_SECONDS", 1800, minimum=1),
        session_cap=r.int("SESSION_CAP_SECONDS", 86400, minimum=1),
        session_split_on_campaign=r.bool("SESSION_SPLIT_ON_CAMPAIGN", True),
        session_sweep_interval=r.int("SESSION_SWEEP_SECONDS", 60, minimum=1),
        dedup_memory=r.int("DEDUP_MEMORY_SECONDS", 3600, minimum=1),
        dedup_max_ids=r.int("DEDUP_MAX_IDS", 1000, minimum=1),
        keep_duplicates=r.bool("KEEP_DUPLICATES", False),
        bot_rate_window=r.int("BOT_RATE_WINDOW_SECONDS", 10, minimum=1),
        bot_max_party_events=r.int("BOT_MAX_PARTY_EVENTS", 30, minimum=1),
        bot_max_ip_events=r.int("BOT_MAX_IP_EVENTS", 300, minimum=1),
        bot_pixel_only_events=r.int("BOT_PIXEL_ONLY_EVENTS", 3, minimum=1),
        datacenter_asns=_asns(r, "DATACENTER_ASNS", _DATACENTER_ASNS),
        geoip_city_db=r.path("GEOIP_CITY_DB", cache_dir / "geoip" / "GeoLite2-City.mmdb"),
        geoip_asn_db=r.path("GEOIP_ASN_DB", cache_dir / "geoip" / "GeoLite2-ASN.mmdb"),
        geoip_reload_check=r.int("GEOIP_RELOAD_SECONDS", 10, minimum=1),
        geo_cache_size=r.int("GEO_CACHE_SIZE", 50000, minimum=0),
        ua_cache_size=r.int("UA_CACHE_SIZE", 20000, minimum=0),
        internal_hosts=tuple(
            h.strip().lower() for h in r.str("INTERNAL_HOSTS", "").split(",") if h.strip()
        ),
        rocksdb_block_cache_mb=r.int("ROCKSDB_BLOCK_CACHE_MB", 16, minimum=1),
        rocksdb_write_buffer_mb=r.int("ROCKSDB_WRITE_BUFFER_MB", 8, minimum=1),
        rocksdb_max_open_files=r.int("ROCKSDB_MAX_OPEN_FILES", 256, minimum=-1),
    )


settings = load()
