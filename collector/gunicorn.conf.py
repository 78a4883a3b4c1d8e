"""Gunicorn settings for the collector: ``gunicorn -c collector/gunicorn.conf.py``.

Worker class ``gthread``, chosen by benchmark (bench/collector_bench.py; numbers in
docs/benchmarks.md, "Collector"): against ``sync`` it served 13-27 % more pixel requests
per second with a lower p99, in both orders of running. ``sync`` closes the connection
after every response, so each beacon pays a TCP handshake, and a slow client holds a
whole worker; ``gthread`` keeps connections alive and its threads share one producer,
whose network work runs in librdkafka's own threads outside the GIL. Note that gunicorn
quietly runs ``gthread`` whenever threads > 1, so comparing with ``sync`` needs
``-k sync --threads 1``.
"""

import os
import shutil
import tempfile

from clickpipe.config import settings

wsgi_app = "collector.app:wsgi()"
bind = f"{settings.collector_host}:{settings.collector_port}"
workers = settings.collector_workers
worker_class = "gthread"
threads = settings.collector_threads
keepalive = 5
# Pixel URLs carry whole page URLs and referrers; gunicorn's default of 4094 is too short.
limit_request_line = 8190
# SIGTERM: stop accepting, finish in-flight requests, then worker_exit produces the batches and flushes Kafka.
graceful_timeout = 30
timeout = 30

# prometheus_client reads this variable at import: set it before any worker imports it,
# so /metrics sums every worker (see collector/metrics.py).
_own_metrics_dir = "PROMETHEUS_MULTIPROC_DIR" not in os.environ
if _own_metrics_dir:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="clickpipe-collector-metrics-")


def worker_exit(server, worker):
    from collector.app import shutdown

    left = shutdown()
    server.log.info("worker %s flushed Kafka producer (%d events left)", worker.pid, left)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    if _own_metrics_dir:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
