"""Prometheus metrics of the collector.

Under gunicorn every worker is a process; ``collector/gunicorn.conf.py`` points
prometheus_client's multiprocess mode (its ``PROMETHEUS_MULTIPROC_DIR`` variable, read by
the library itself at import) at a fresh directory so ``/metrics`` sums all workers.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

ACCEPTED = Counter("clickpipe_collector_accepted_events", "Events accepted and queued for Kafka.", ["source"])
REJECTED = Counter("clickpipe_collector_rejected_events", "Events or requests refused, by reason.", ["reason"])
DUPLICATES = Counter("clickpipe_collector_duplicate_events", "Accepted events flagged as duplicates.")
QUEUE_DEPTH = Gauge(
    "clickpipe_collector_queue_depth",
    "Accepted events waiting for Kafka: in batches, or in messages not yet acknowledged.",
    multiprocess_mode="livesum",
)
PRODUCE_LATENCY = Histogram(
    "clickpipe_collector_produce_latency_seconds",
    "Per raw-topic message: from its first event's acceptance to the broker's acknowledgement.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
DELIVERY_FAILURES = Counter("clickpipe_collector_delivery_failures", "Events in messages Kafka finally refused.")
COOKIE_DOMAIN_MISMATCH = Counter(
    "clickpipe_collector_cookie_domain_mismatch",
    "Requests whose host is outside the configured cookie domain (host-only cookie set instead).",
)


def exposition() -> tuple[bytes, str]:
    """The current metrics in the Prometheus text format, and its content type."""
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return generate_latest(registry), CONTENT_TYPE_LATEST
