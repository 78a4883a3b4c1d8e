"""All configuration, read once from environment variables.

Each setting is declared once, as a field of :class:`Settings`: the attribute (named with its
unit, e.g. ``session_gap_seconds``), the variable, the default, the unit, the bounds and a help
text. :func:`load` and the reference docs/settings.md (printed by ``python -m clickpipe.config``)
are derived from these declarations. Every default works on one machine with the local stack
(`clickpipe stack up`). Import :data:`settings` and read attributes; never read ``os.environ``
elsewhere. Tests that need other values build their own ``Settings`` with :func:`load` and an
explicit mapping.
"""

from __future__ import annotations

import os
import typing
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from string import Template
from typing import Any, Callable, Mapping


class ConfigError(ValueError):
    """A setting has a value that cannot be used; the message names the variable."""


@dataclass(frozen=True)
class Setting:
    """The declaration of one setting.

    ``default`` is written as the variable's value would be; ``$CLICKPIPE_X`` in it stands for
    the value of setting ``CLICKPIPE_X``, declared earlier. ``unit`` is what the value counts or
    measures ("" when the name says it all). ``parse`` turns the variable's text into the value,
    raising ``ValueError`` with the end of a sentence ("is not an integer"); without one the
    attribute's type decides. ``section`` opens a new section of the reference at this setting.
    """

    variable: str
    default: str
    help: str
    unit: str = ""
    minimum: int | None = None
    maximum: int | None = None
    parse: Callable[[str], Any] | None = None
    section: str = ""
    derive: Callable[[Mapping[str, str]], str] | None = None
    name: str = ""  # the attribute of Settings, taken from the field that declares the setting

    def default_text(self, texts: Mapping[str, str]) -> str:
        """The default as the variable's text, given the values (as text) of the settings before it.

        ``derive``, when given, computes it (a default no template can say, such as one
        address per broker); ``default`` then describes it in words for the reference.
        """
        return self.derive(texts) if self.derive else Template(self.default).substitute(texts)

    def read(self, raw: str) -> Any:
        """The value of ``raw``; :class:`ConfigError` naming the variable if it cannot be used."""
        parse = self.parse
        if parse is None:  # settings() gives every declared setting a parser
            raise TypeError(f"{self.variable} has no parser")
        try:
            value = parse(raw)
        except ValueError as e:
            raise ConfigError(f"{self.variable}={raw!r} {e}") from None
        if self.minimum is not None and value < self.minimum:
            raise ConfigError(f"{self.variable}={value} must be >= {self.minimum}")
        if self.maximum is not None and value > self.maximum:
            raise ConfigError(f"{self.variable}={value} must be <= {self.maximum}")
        return value


def _setting(variable: str, default: str, help: str, **options: Any) -> Any:
    return field(metadata={"setting": Setting(variable, default, help, **options)})


def _integer(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ValueError("is not an integer") from None


_BOOLEANS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


def _boolean(raw: str) -> bool:
    try:
        return _BOOLEANS[raw.lower()]
    except KeyError:
        raise ValueError("is not a boolean (use true/false)") from None


def _path(raw: str) -> Path:
    return Path(raw).expanduser()


def _items(raw: str) -> list[str]:
    """The non-empty items of a comma-separated list, stripped."""
    return [item.strip() for item in raw.split(",") if item.strip()]


def _choice(raw: str, choices: tuple[str, ...]) -> str:
    if raw not in choices:
        raise ValueError(f"is not one of {', '.join(choices)}")
    return raw


def _local_brokers(texts: Mapping[str, str]) -> str:
    """The client addresses of the local stack's brokers (see ``CLICKPIPE_KAFKA_BROKERS``)."""
    host, port = texts["CLICKPIPE_KAFKA_HOST"], int(texts["CLICKPIPE_KAFKA_PORT"])
    return ",".join(f"{host}:{port + 2 * n}" for n in range(int(texts["CLICKPIPE_KAFKA_BROKERS"])))


_PARSERS: dict[Any, Callable[[str], Any]] = {str: str, int: _integer, bool: _boolean, Path: _path}

@dataclass(frozen=True)
class Settings:
    """The whole configuration; each field declares its setting (see :class:`Setting`)."""

    cache_dir: Path = _setting(
        "CLICKPIPE_CACHE_DIR", "~/.cache/clickpipe",
        "downloaded jars and GeoIP databases, reused across runs and clones", section="Where things live")
    state_dir: Path = _setting(
        "CLICKPIPE_STATE_DIR", "~/.local/state/clickpipe", "data, logs and pid files of the local services")

    kafka_host: str = _setting(
        "CLICKPIPE_KAFKA_HOST", "127.0.0.1", "address the local broker binds and advertises", section="Kafka")
    kafka_port: int = _setting("CLICKPIPE_KAFKA_PORT", "9092", "client listener of the local broker", minimum=1)
    kafka_controller_port: int = _setting(
        "CLICKPIPE_KAFKA_CONTROLLER_PORT", "9093", "KRaft controller listener of the local broker", minimum=1)
    kafka_brokers: int = _setting(
        "CLICKPIPE_KAFKA_BROKERS", "1",
        "brokers of the local stack (`clickpipe stack up --kafka-brokers N`); broker n listens on "
        "CLICKPIPE_KAFKA_PORT + 2(n-1) and CLICKPIPE_KAFKA_CONTROLLER_PORT + 2(n-1), and all are KRaft voters",
        unit="brokers", minimum=1, maximum=9)
    kafka_bootstrap: str = _setting(
        "CLICKPIPE_KAFKA_BOOTSTRAP", "$CLICKPIPE_KAFKA_HOST:$CLICKPIPE_KAFKA_PORT, one per local broker",
        "bootstrap servers of every client, comma-separated host:port", derive=_local_brokers)
    kafka_replication: int = _setting(
        "CLICKPIPE_KAFKA_REPLICATION", "min($CLICKPIPE_KAFKA_BROKERS, 3)",
        "replicas of every topic the project creates, of consumer offsets and of the transaction log",
        unit="replicas", minimum=1, derive=lambda t: str(min(int(t["CLICKPIPE_KAFKA_BROKERS"]), 3)))
    kafka_min_insync_replicas: int = _setting(
        "CLICKPIPE_KAFKA_MIN_INSYNC_REPLICAS", "max($CLICKPIPE_KAFKA_REPLICATION - 1, 1)",
        "replicas that must have a write before it is acknowledged (acks=all), for the same topics",
        unit="replicas", minimum=1, derive=lambda t: str(max(int(t["CLICKPIPE_KAFKA_REPLICATION"]) - 1, 1)))
    kafka_heap: str = _setting("CLICKPIPE_KAFKA_HEAP", "512m", "JVM heap of the local broker, as -Xmx takes it")

    topic_raw: str = _setting(
        "CLICKPIPE_TOPIC_RAW", "clicks.raw", "raw events from the collector (RawBatch)", section="Topics")
    topic_enriched: str = _setting(
        "CLICKPIPE_TOPIC_ENRICHED", "clicks.enriched", "enriched clicks (EnrichedClick), read by Druid")
    topic_sessions: str = _setting(
        "CLICKPIPE_TOPIC_SESSIONS", "clicks.sessions", "closed sessions (Session), read by Druid")
    topic_dead_letters: str = _setting(
        "CLICKPIPE_TOPIC_DEAD_LETTERS", "clicks.dead-letters",
        "records the pipeline does not use, with the reason and the original bytes and headers")
    topic_verdicts: str = _setting(
        "CLICKPIPE_TOPIC_VERDICTS", "clicks.verdicts",
        "sessions judged bots after their first event (BotVerdict), read by Druid; human reports exclude them")
    topic_erased: str = _setting(
        "CLICKPIPE_TOPIC_ERASED", "clicks.erased",
        "compacted list of erased parties (by digest, never the id) that the worker drops raw events of")
    partitions: int = _setting(
        "CLICKPIPE_PARTITIONS", "4",
        "partitions of every pipeline topic; bounds the number of workers that share the work", minimum=1)
    # Retention and compression, applied at creation and by `clickpipe stack topics`
    # (docs/capacity.md): the raw topic is the pipeline's history (`clickpipe replay` reads it),
    # the outputs only need to outlive a Druid outage, changelogs are compacted (latest value
    # per key). The worker writes uncompressed JSON rows; brokers storing them lz4 need 7x
    # less disk for them (bench/disk_usage.py, docs/benchmarks.md "Disk use"), but the kill -9
    # fault test has not yet passed with it (same section), so it is not the default.
    topic_raw_retention_hours: int = _setting(
        "CLICKPIPE_TOPIC_RAW_RETENTION_HOURS", "720", "how long the raw topic keeps events (-1: forever)",
        unit="hours", minimum=-1)
    topic_output_retention_hours: int = _setting(
        "CLICKPIPE_TOPIC_OUTPUT_RETENTION_HOURS", "168",
        "how long the enriched and sessions topics keep rows Druid reads (-1: forever)", unit="hours", minimum=-1)
    topic_compression: str = _setting(
        "CLICKPIPE_TOPIC_COMPRESSION", "producer",
        "compression.type of every topic the project creates, how brokers store it: producer (as sent: the "
        "collector sends lz4, the worker uncompressed), lz4, zstd, gzip, snappy or uncompressed",
        parse=lambda raw: _choice(raw, ("producer", "lz4", "zstd", "gzip", "snappy", "uncompressed")))
    topic_dead_letters_retention_hours: int = _setting(
        "CLICKPIPE_TOPIC_DEAD_LETTERS_RETENTION_HOURS", "336",
        "how long the dead-letter topic keeps what the pipeline rejected (-1: forever)", unit="hours", minimum=-1)

    druid_host: str = _setting(
        "CLICKPIPE_DRUID_HOST", "127.0.0.1", "address every local Druid service binds", section="Druid")
    zookeeper_port: int = _setting(
        "CLICKPIPE_ZOOKEEPER_PORT", "2181", "ZooKeeper, Druid's service discovery", minimum=1)
    druid_coordinator_port: int = _setting(
        "CLICKPIPE_DRUID_COORDINATOR_PORT", "8081", "coordinator + overlord", minimum=1)
    druid_broker_port: int = _setting(
        "CLICKPIPE_DRUID_BROKER_PORT", "8082", "broker: SQL and native queries", minimum=1)
    druid_historical_port: int = _setting(
        "CLICKPIPE_DRUID_HISTORICAL_PORT", "8083", "historical: serves published segments", minimum=1)
    druid_indexer_port: int = _setting(
        "CLICKPIPE_DRUID_INDEXER_PORT", "8091", "indexer: runs the Kafka ingestion tasks", minimum=1)
    druid_router_port: int = _setting(
        "CLICKPIPE_DRUID_ROUTER_PORT", "8888", "router: single entry point for Druid's APIs", minimum=1)
    derby_port: int = _setting(
        "CLICKPIPE_DERBY_PORT", "1527", "Derby, Druid's metadata store, run by the coordinator", minimum=1)
    druid_task_slots: int = _setting(
        "CLICKPIPE_DRUID_TASK_SLOTS", "6", "concurrent ingestion tasks on the local indexer", unit="tasks", minimum=1)
    druid_router_url: str = _setting(
        "CLICKPIPE_DRUID_ROUTER_URL", "http://$CLICKPIPE_DRUID_HOST:$CLICKPIPE_DRUID_ROUTER_PORT",
        "entry point for Druid's APIs (supervisors, tasks)")
    druid_broker_url: str = _setting(
        "CLICKPIPE_DRUID_BROKER_URL", "http://$CLICKPIPE_DRUID_HOST:$CLICKPIPE_DRUID_BROKER_PORT",
        "SQL and native queries (reports, dashboard)")

    druid_clicks_datasource: str = _setting(
        "CLICKPIPE_DRUID_CLICKS_DATASOURCE", "clicks", "datasource and supervisor id of the enriched clicks",
        section="Druid datasources and supervisors")
    druid_sessions_datasource: str = _setting(
        "CLICKPIPE_DRUID_SESSIONS_DATASOURCE", "sessions", "datasource and supervisor id of the sessions")
    druid_bot_sessions_datasource: str = _setting(
        "CLICKPIPE_DRUID_BOT_SESSIONS_DATASOURCE", "bot_sessions",
        "datasource and supervisor id of the session verdicts (sessions judged bots)")
    druid_task_count: int = _setting(
        "CLICKPIPE_DRUID_TASK_COUNT", "1", "reading tasks per supervisor, at most the topic's partitions",
        unit="tasks", minimum=1)
    druid_replicas: int = _setting(
        "CLICKPIPE_DRUID_REPLICAS", "1", "copies of each reading task", unit="tasks", minimum=1)
    druid_task_duration: str = _setting(
        "CLICKPIPE_DRUID_TASK_DURATION", "PT10M", "how long a task reads before it publishes its segments",
        unit="ISO 8601 period")
    druid_start_delay: str = _setting(
        "CLICKPIPE_DRUID_START_DELAY", "PT5S", "wait before a new supervisor starts managing tasks",
        unit="ISO 8601 period")
    druid_supervisor_period: str = _setting(
        "CLICKPIPE_DRUID_SUPERVISOR_PERIOD", "PT30S", "period of a supervisor's management loop",
        unit="ISO 8601 period")
    druid_clicks_retention_days: int = _setting(
        "CLICKPIPE_DRUID_CLICKS_RETENTION_DAYS", "400",
        "clicks newer than this are served; older segments are dropped (0: keep forever)", unit="days", minimum=0)
    druid_sessions_retention_days: int = _setting(
        "CLICKPIPE_DRUID_SESSIONS_RETENTION_DAYS", "400",
        "sessions newer than this are served; older segments are dropped (0: keep forever)", unit="days", minimum=0)
    druid_segment_replicas: int = _setting(
        "CLICKPIPE_DRUID_SEGMENT_REPLICAS", "1",
        "historicals that serve each retained segment (at most the historicals of the tier)",
        unit="replicas", minimum=1)
    druid_compaction_skip_offset: str = _setting(
        "CLICKPIPE_DRUID_COMPACTION_SKIP_OFFSET", "PT2H",
        "automatic compaction leaves the newest intervals (still being written) alone for this long",
        unit="ISO 8601 period")
    druid_compaction_granularity: str = _setting(
        "CLICKPIPE_DRUID_COMPACTION_GRANULARITY", "DAY",
        "segment granularity automatic compaction rewrites the hourly streaming segments into")
    druid_query_timeout_seconds: int = _setting(
        "CLICKPIPE_DRUID_QUERY_TIMEOUT", "60", "longest an API call or report query may take",
        unit="seconds", minimum=1)

    stack_timeout_seconds: int = _setting(
        "CLICKPIPE_STACK_TIMEOUT", "300", "longest `clickpipe stack up` waits for every service to be ready",
        unit="seconds", minimum=1, section="Stack manager")
    maven: str = _setting("CLICKPIPE_MAVEN", "mvn", "the Maven command that resolves the stack's jars")

    collector_host: str = _setting(
        "CLICKPIPE_COLLECTOR_HOST", "127.0.0.1", "bind address (put a proxy in front for the world)",
        section="Collector")
    collector_port: int = _setting("CLICKPIPE_COLLECTOR_PORT", "8090", "bind port", minimum=1)
    collector_workers: int = _setting(
        "CLICKPIPE_COLLECTOR_WORKERS", "2", "gunicorn worker processes", unit="processes", minimum=1)
    collector_max_connections: int = _setting(
        "CLICKPIPE_COLLECTOR_MAX_CONNECTIONS", "4096",
        "open connections (or requests in progress) per worker beyond which requests are answered 503",
        unit="connections", minimum=16)
    collector_header_timeout_ms: int = _setting(
        "CLICKPIPE_COLLECTOR_HEADER_TIMEOUT_MS", "10000",
        "longest a connection may take to send a request's line and headers before it is closed",
        unit="ms", minimum=100)
    collector_body_timeout_ms: int = _setting(
        "CLICKPIPE_COLLECTOR_BODY_TIMEOUT_MS", "10000",
        "longest a `POST /events` body may take to arrive; slower bodies are answered 408",
        unit="ms", minimum=100)
    collector_public_url: str = _setting(
        "CLICKPIPE_COLLECTOR_PUBLIC_URL", "",
        "base URL the tag sends to (empty: the origin the tag was loaded from); a trailing / is removed",
        parse=lambda raw: raw.rstrip("/"))
    collector_max_body_bytes: int = _setting(
        "CLICKPIPE_COLLECTOR_MAX_BODY", "262144", "largest `POST /events` body, also enforced for chunked bodies",
        unit="bytes", minimum=1024)
    collector_max_events: int = _setting(
        "CLICKPIPE_COLLECTOR_MAX_EVENTS", "100", "most events in one `POST /events`", unit="events", minimum=1)
    collector_max_params: int = _setting(
        "CLICKPIPE_COLLECTOR_MAX_PARAMS", "50", "most custom params per event", unit="params", minimum=0)
    collector_party_cookie: str = _setting(
        "CLICKPIPE_COLLECTOR_PARTY_COOKIE", "_cpp", "name of the server-set, HttpOnly party cookie")
    collector_party_days: int = _setting(
        "CLICKPIPE_COLLECTOR_PARTY_DAYS", "365", "party cookie lifetime, renewed on every use",
        unit="days", minimum=1)
    collector_session_cookie: str = _setting(
        "CLICKPIPE_COLLECTOR_SESSION_COOKIE", "_cps", "name of the tag-written session cookie")
    collector_optout_cookie: str = _setting(
        "CLICKPIPE_COLLECTOR_OPTOUT_COOKIE", "_cpo",
        "name of the cookie set by the tag's `optOut()`; the collector drops events carrying it")
    collector_consent_cookie: str = _setting(
        "CLICKPIPE_COLLECTOR_CONSENT_COOKIE", "_cpc",
        "name of the cookie holding the tag's `consent()` state, sent with each event")
    collector_cookie_domain: str = _setting(
        "CLICKPIPE_COLLECTOR_COOKIE_DOMAIN", "",
        "cookie domain, e.g. example.com to share across subdomains (empty: host only); a leading . is removed",
        parse=lambda raw: raw.lstrip("."))
    collector_session_timeout_seconds: int = _setting(
        "CLICKPIPE_COLLECTOR_SESSION_TIMEOUT", "1800", "inactivity that ends a tag session", unit="seconds", minimum=1)
    collector_trusted_hops: int = _setting(
        "CLICKPIPE_COLLECTOR_TRUSTED_HOPS", "0", "reverse proxies in front that append X-Forwarded-For",
        unit="proxies", minimum=0)
    collector_anonymize_ip: bool = _setting(
        "CLICKPIPE_COLLECTOR_ANONYMIZE_IP", "false",
        "zero the host part of the IP (IPv4 /24, IPv6 /48) before producing")
    collector_cors_origins: tuple[str, ...] = _setting(
        "CLICKPIPE_COLLECTOR_CORS_ORIGINS", "",
        "comma-separated allowed origins (empty: same-origin only); a trailing / is removed",
        parse=lambda raw: tuple(origin.rstrip("/") for origin in _items(raw)))
    collector_honor_dnt: bool = _setting(
        "CLICKPIPE_COLLECTOR_HONOR_DNT", "false", "drop events from browsers sending Do Not Track")
    collector_honor_gpc: bool = _setting(
        "CLICKPIPE_COLLECTOR_HONOR_GPC", "true", "drop events from browsers sending Global Privacy Control")
    collector_queue_max: int = _setting(
        "CLICKPIPE_COLLECTOR_QUEUE_MAX", "100000",
        "most accepted events waiting for Kafka per worker, in batches or the producer's queue; full means 503",
        unit="events", minimum=100)
    # The raw topic carries many events per message (a RawBatch, see collector/sink.py). The
    # batch defaults were chosen by bench/collector_bench.py (docs/benchmarks.md, "Collector").
    collector_batch_max_events: int = _setting(
        "CLICKPIPE_COLLECTOR_BATCH_MAX_EVENTS", "500", "most events in one raw-topic message",
        unit="events", minimum=1, maximum=10000)
    # The maximum keeps a message under Kafka's default limit of 1 MB.
    collector_batch_max_bytes: int = _setting(
        "CLICKPIPE_COLLECTOR_BATCH_MAX_BYTES", "262144",
        "most bytes of encoded events in one raw-topic message; a larger event travels alone",
        unit="bytes", minimum=1024, maximum=900000)
    collector_batch_linger_ms: int = _setting(
        "CLICKPIPE_COLLECTOR_BATCH_LINGER_MS", "20",
        "longest an event waits for others to join its batch (0: a request's events are produced at once)",
        unit="ms", minimum=0)
    collector_ack_wait_ms: int = _setting(
        "CLICKPIPE_COLLECTOR_ACK_WAIT_MS", "0",
        "0: answer 2xx once events are queued in the collector (a collector killed -9 loses what is still "
        "queued); N: answer 2xx only once Kafka acknowledged every event of the request, 503 `not_delivered` "
        "after N ms (a retry may then repeat events, which the pipeline drops)",
        unit="ms", minimum=0)
    collector_dedup_slots: int = _setting(
        "CLICKPIPE_COLLECTOR_DEDUP_SLOTS", "1048576",
        "per-worker duplicate memory, in (party, event id) slots of 8 bytes", unit="slots", minimum=1)

    dashboard_host: str = _setting(
        "CLICKPIPE_DASHBOARD_HOST", "127.0.0.1", "bind address of the live dashboard", section="Dashboard")
    dashboard_port: int = _setting("CLICKPIPE_DASHBOARD_PORT", "8095", "bind port of the live dashboard", minimum=1)
    dashboard_refresh_seconds: int = _setting(
        "CLICKPIPE_DASHBOARD_REFRESH_SECONDS", "5", "how often the page reloads its numbers", unit="seconds", minimum=1)

    superset_version: str = _setting(
        "CLICKPIPE_SUPERSET_VERSION", "5.0.0",
        "Apache Superset release installed into its own environment under the cache directory "
        "(superset/requirements-<version>.txt pins its dependencies)", section="Superset")
    superset_host: str = _setting("CLICKPIPE_SUPERSET_HOST", "127.0.0.1", "bind address of Superset")
    superset_port: int = _setting("CLICKPIPE_SUPERSET_PORT", "8088", "bind port of Superset", minimum=1)
    superset_home: Path = _setting(
        "CLICKPIPE_SUPERSET_HOME", "$CLICKPIPE_STATE_DIR/superset",
        "Superset's metadata database, generated secret key and admin credentials (owner-only)")
    superset_funnel_pages: tuple[str, ...] = _setting(
        "CLICKPIPE_SUPERSET_FUNNEL_PAGES", "/,/cart,/checkout",
        "comma-separated URL paths, in order, of the provisioned dashboard's funnel",
        parse=lambda raw: tuple(_items(raw)))
    superset_start_timeout_seconds: int = _setting(
        "CLICKPIPE_SUPERSET_START_TIMEOUT", "180", "longest `clickpipe superset` waits for Superset to answer",
        unit="seconds", minimum=1)

    pipeline_app_id: str = _setting(
        "CLICKPIPE_PIPELINE_APP_ID", "clickpipe-pipeline", "Faust app id: consumer group and changelog topic prefix",
        section="Pipeline")
    pipeline_datadir: Path = _setting(
        "CLICKPIPE_PIPELINE_DATADIR", "$CLICKPIPE_STATE_DIR/pipeline",
        "Faust and RocksDB state of a worker; each worker on a host needs its own")
    pipeline_web_port: int = _setting(
        "CLICKPIPE_PIPELINE_WEB_PORT", "6066",
        "worker web port, Prometheus metrics at /metrics; each worker on a host needs its own", minimum=1)
    pipeline_steps: tuple[str, ...] = _setting(
        "CLICKPIPE_PIPELINE_STEPS", "dedup,geo,network,useragent,urls,referrer,sessions,bots",
        "comma-separated step modules of package steps/, run in this order after decode",
        parse=lambda raw: tuple(_items(raw)))
    pipeline_stream_buffer: int = _setting(
        "CLICKPIPE_PIPELINE_STREAM_BUFFER", "4096", "Faust's stream_buffer_maxsize, per partition",
        unit="events", minimum=1)
    pipeline_commit_interval_ms: int = _setting(
        "CLICKPIPE_PIPELINE_COMMIT_INTERVAL_MS", "1000", "Kafka transaction commit interval", unit="ms", minimum=10)
    pipeline_log_json: bool = _setting(
        "CLICKPIPE_PIPELINE_LOG_JSON", "true", "log lines of the pipeline's own modules as JSON")
    session_gap_seconds: int = _setting(
        "CLICKPIPE_SESSION_GAP_SECONDS", "1800", "inactivity that ends a session", unit="seconds", minimum=1)
    session_cap_seconds: int = _setting(
        "CLICKPIPE_SESSION_CAP_SECONDS", "86400", "longest session; a longer one is split", unit="seconds", minimum=1)
    session_split_on_campaign: bool = _setting(
        "CLICKPIPE_SESSION_SPLIT_ON_CAMPAIGN", "true", "a new utm campaign starts a new session")
    session_sweep_seconds: int = _setting(
        "CLICKPIPE_SESSION_SWEEP_SECONDS", "60", "how often idle sessions are looked for", unit="seconds", minimum=1)
    dedup_memory_seconds: int = _setting(
        "CLICKPIPE_DEDUP_MEMORY_SECONDS", "3600", "how long an event id is remembered per party, in event time",
        unit="seconds", minimum=1)
    dedup_max_ids: int = _setting(
        "CLICKPIPE_DEDUP_MAX_IDS", "1000", "most event ids remembered per party, oldest forgotten first",
        unit="event ids", minimum=1)
    keep_duplicates: bool = _setting(
        "CLICKPIPE_KEEP_DUPLICATES", "false", "send duplicates to the dead letters (reason duplicate)")
    bot_churn_window_seconds: int = _setting(
        "CLICKPIPE_BOT_CHURN_WINDOW_SECONDS", "120",
        "sliding window of the party-churn rule: new parties per address that did not come back", unit="seconds",
        minimum=1)
    bot_churn_max_parties: int = _setting(
        "CLICKPIPE_BOT_CHURN_MAX_PARTIES", "30",
        "new parties seen once per IPv4 address or IPv6 /64 in one window above which they are bots (the "
        "collector puts an address's new parties on one partition: counted whole)", unit="parties", minimum=1)
    bot_churn_max_parties_per_ua: int = _setting(
        "CLICKPIPE_BOT_CHURN_MAX_PARTIES_PER_UA", "8",
        "same, per address and user agent", unit="parties", minimum=1)
    bot_page_burst: int = _setting(
        "CLICKPIPE_BOT_PAGE_BURST", "50", "page views a session may make at once (single-page-app route bursts)",
        unit="page views", minimum=1)
    bot_page_rate_per_minute: int = _setting(
        "CLICKPIPE_BOT_PAGE_RATE_PER_MINUTE", "20", "sustained page views per minute a session may make",
        unit="page views", minimum=1)
    bot_page_sustain_seconds: int = _setting(
        "CLICKPIPE_BOT_PAGE_SUSTAIN_SECONDS", "30",
        "how long a session must stay above the rate (past its burst) to be judged a bot", unit="seconds", minimum=1)
    bot_regular_intervals: int = _setting(
        "CLICKPIPE_BOT_REGULAR_INTERVALS", "8",
        "page-view intervals of a session the timing-regularity rule looks at", unit="intervals", minimum=3)
    bot_regular_max_cv_percent: int = _setting(
        "CLICKPIPE_BOT_REGULAR_MAX_CV_PERCENT", "10",
        "coefficient of variation of those intervals below which the timing is machine-like", unit="percent",
        minimum=0)
    bot_no_interaction_pages: int = _setting(
        "CLICKPIPE_BOT_NO_INTERACTION_PAGES", "6",
        "page views of a session visible for 0.5 s or more whose tag saw no pointer, touch or key at all (people "
        "click or tap their way from page to page), after which it is a bot", unit="page views", minimum=1)
    bot_pixel_only_events: int = _setting(
        "CLICKPIPE_BOT_PIXEL_ONLY_EVENTS", "12",
        "pixel hits of a session of a party never seen with JS after which it is a bot (from 3 it is weak "
        "evidence that, with a hosting network, decides)", unit="events", minimum=3)
    ip_ranges_file: Path = _setting(
        "CLICKPIPE_IP_RANGES_FILE", "$CLICKPIPE_CACHE_DIR/ip-ranges.json",
        "published crawler and cloud IP ranges, written by `clickpipe ipranges refresh`; missing: the copy "
        "shipped with clickpipe")
    geoip_city_db: Path = _setting(
        "CLICKPIPE_GEOIP_CITY_DB", "$CLICKPIPE_CACHE_DIR/geoip/GeoLite2-City.mmdb",
        "MaxMind City database (GeoLite2 or GeoIP2); missing: no geo fields")
    geoip_asn_db: Path = _setting(
        "CLICKPIPE_GEOIP_ASN_DB", "$CLICKPIPE_CACHE_DIR/geoip/GeoLite2-ASN.mmdb",
        "MaxMind ASN database (GeoLite2 or GeoIP2); missing: no AS fields")
    npm_registry: str = _setting(
        "CLICKPIPE_NPM_REGISTRY", "https://registry.npmjs.org",
        "npm registry `clickpipe geoip fetch` downloads the free city and ASN databases from",
        parse=lambda raw: raw.rstrip("/"))
    geoip_anonymous_db: Path = _setting(
        "CLICKPIPE_GEOIP_ANONYMOUS_DB", "$CLICKPIPE_CACHE_DIR/geoip/GeoIP2-Anonymous-IP.mmdb",
        "MaxMind Anonymous IP database (VPN, Tor, proxies, hosting); missing: published cloud ranges and AS "
        "names only")
    geoip_connection_type_db: Path = _setting(
        "CLICKPIPE_GEOIP_CONNECTION_TYPE_DB", "$CLICKPIPE_CACHE_DIR/geoip/GeoIP2-Connection-Type.mmdb",
        "MaxMind Connection Type database (cellular, corporate, ...); missing: no such network types")
    geoip_reload_seconds: int = _setting(
        "CLICKPIPE_GEOIP_RELOAD_SECONDS", "10", "how often the database files are checked for changes",
        unit="seconds", minimum=1)
    geo_cache_size: int = _setting(
        "CLICKPIPE_GEO_CACHE_SIZE", "50000", "LRU cache of IP lookups", unit="entries", minimum=0)
    ua_cache_size: int = _setting(
        "CLICKPIPE_UA_CACHE_SIZE", "20000", "LRU cache of parsed user agents", unit="entries", minimum=0)
    internal_hosts: tuple[str, ...] = _setting(
        "CLICKPIPE_INTERNAL_HOSTS", "",
        "comma-separated hosts whose referrers count as internal (empty: the page's own host)",
        parse=lambda raw: tuple(host.lower() for host in _items(raw)))
    rocksdb_block_cache_mb: int = _setting(
        "CLICKPIPE_ROCKSDB_BLOCK_CACHE_MB", "16", "block cache per table partition database", unit="MiB", minimum=1)
    rocksdb_write_buffer_mb: int = _setting(
        "CLICKPIPE_ROCKSDB_WRITE_BUFFER_MB", "8", "memtable size per table partition database", unit="MiB", minimum=1)
    rocksdb_max_open_files: int = _setting(
        "CLICKPIPE_ROCKSDB_MAX_OPEN_FILES", "256", "open files per table partition database (-1: no limit)",
        unit="files", minimum=-1)
    replay_dir: Path = _setting(
        "CLICKPIPE_REPLAY_DIR", "$CLICKPIPE_STATE_DIR/replay",
        "work directory of `clickpipe replay`: checkpoints and the replayed rows, which Druid's indexer reads "
        "(it must see the same path)", section="Replay")
    replay_checkpoint_events: int = _setting(
        "CLICKPIPE_REPLAY_CHECKPOINT_EVENTS", "20000",
        "events a replay processes between checkpoints (a resumed replay redoes at most this many)",
        unit="events", minimum=1)

    privacy_party_salt: str = _setting(
        "CLICKPIPE_PRIVACY_PARTY_SALT", "",
        "pseudonymity: non-empty, Druid's party dimension is an HMAC-SHA256 of the party id with this secret "
        "(empty: the party id itself); changing it splits every party in two", section="Privacy requests")
    privacy_log: Path = _setting(
        "CLICKPIPE_PRIVACY_LOG", "$CLICKPIPE_STATE_DIR/privacy-requests.jsonl",
        "log of the privacy requests carried out (time, kind, party digest, counts; never the data), 0600")
    privacy_timeout_seconds: int = _setting(
        "CLICKPIPE_PRIVACY_TIMEOUT", "900",
        "longest `clickpipe privacy erase` waits for each stage (the worker, Druid's hand-off, each reindex task)",
        unit="seconds", minimum=1)

    @property
    def collector_url(self) -> str:
        """The collector's base URL from this host (a wildcard bind address is reached on loopback)."""
        host = {"0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(self.collector_host, self.collector_host)
        return f"http://{host}:{self.collector_port}"


def _declarations() -> tuple[Setting, ...]:
    """Each field's setting, with the field's name and, unless it has its own, its type's parser."""
    types = typing.get_type_hints(Settings)
    declared = []
    for f in fields(Settings):
        s = f.metadata["setting"]
        declared.append(replace(s, name=f.name, parse=s.parse or _PARSERS[types[f.name]]))
    return tuple(declared)


SETTINGS: tuple[Setting, ...] = _declarations()
"""Every setting, in declaration order (a default refers only to settings before it)."""


def load(env: Mapping[str, str] | None = None) -> Settings:
    """Build :class:`Settings` from ``env`` (default: the process environment).

    Raises :class:`ConfigError` naming the variable when a value is unusable.
    """
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    texts: dict[str, str] = {}  # by variable: the value as text, for defaults that refer to it
    for s in SETTINGS:
        raw = env.get(s.variable)
        value = s.read(s.default_text(texts) if raw is None else raw)
        values[s.name] = value
        texts[s.variable] = str(value)
    return Settings(**values)


def _bounds(s: Setting) -> str:
    if s.minimum is not None and s.maximum is not None:
        return f"{s.minimum}–{s.maximum}"
    if s.minimum is not None:
        return f"≥ {s.minimum}"
    if s.maximum is not None:
        return f"≤ {s.maximum}"
    return ""


def reference() -> str:
    """The settings reference in Markdown, as committed in docs/settings.md.

    It depends on the declarations only (a default that refers to other settings is shown
    with the references and with what they give when those settings keep their defaults).
    """
    lines = [
        "# Settings",
        "",
        "<!-- Generated from clickpipe/config.py by `python -m clickpipe.config > docs/settings.md`;",
        "     tests/test_config.py fails while this file differs. -->",
        "",
        "Every setting is an environment variable, read once at start. A value that cannot be used",
        "stops the program with a message naming the variable. Booleans accept `true/false`, `1/0`,",
        "`yes/no`, `on/off`. In a default, `$CLICKPIPE_X` stands for the value of `CLICKPIPE_X`.",
        "In code, each setting is the attribute of `clickpipe.config.settings` in the last column.",
    ]
    defaults: dict[str, str] = {}
    for s in SETTINGS:
        defaults[s.variable] = s.default_text(defaults)
        if s.section:
            lines += ["", f"## {s.section}", "",
                      "| Variable | Default | Unit | Bounds | Meaning | Attribute |", "|---|---|---|---|---|---|"]
        default = f"`{s.default}`" if s.default else "*empty*"
        if defaults[s.variable] != s.default:
            default += f" = `{defaults[s.variable]}`"
        cells = [f"`{s.variable}`", default, s.unit, _bounds(s), s.help.replace("|", "\\|"), f"`{s.name}`"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


settings = load()

if __name__ == "__main__":
    print(reference(), end="")
