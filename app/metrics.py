"""Prometheus metrics of a pipeline worker, served at ``/metrics`` on the worker's web port."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

PREFIX = "clickpipe_pipeline"


class Metrics:
    """One registry per app, so tests can build several apps in one process."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.records_in = Counter(f"{PREFIX}_records_in", "Records read, by topic", ["topic"], registry=r)
        self.records_out = Counter(f"{PREFIX}_records_out", "Records written, by topic", ["topic"], registry=r)
        self.dropped = Counter(f"{PREFIX}_dropped", "Raw records not in the enriched stream, by reason", ["reason"],
                               registry=r)
        self.bots = Counter(f"{PREFIX}_bots", "Clicks flagged as bots, by rule", ["reason"], registry=r)
        self.sessions_closed = Counter(f"{PREFIX}_sessions_closed", "Sessions emitted, by close reason", ["reason"],
                                       registry=r)
        self.send_errors = Counter(f"{PREFIX}_send_errors", "Records the producer failed to deliver", ["topic"],
                                   registry=r)
        self.step_seconds = Histogram(f"{PREFIX}_step_seconds", "Time in one step (sampled events)", ["step"],
                                      buckets=(1e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 1e-3, 1e-2),
                                      registry=r)
        self.consumer_lag = Gauge(f"{PREFIX}_consumer_lag", "Raw records not yet processed, by partition",
                                  ["partition"], registry=r)
        self.sweep_ticks = Counter(f"{PREFIX}_sweep_ticks", "Sweep messages sent for idle state", ["kind"],
                                   registry=r)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
