"""Gunicorn settings for the collector: ``gunicorn -c collector/gunicorn.conf.py``.

Worker class ``sync``, chosen by benchmark (bench/collector_bench.py; docs/benchmarks.md,
"Collector"): on the pixel endpoint it beat ``gthread`` in each of three runs (by 1-20 %).
Each request is short and CPU-bound (parse, validate, Avro-encode, hand to librdkafka,
whose network work runs in its own threads), so gthread's extra hand-offs between its
poller and thread pool cost more than its keep-alive saves. The price of ``sync``: no
keep-alive, and a slow client holds a worker, so in production put a buffering reverse
proxy (nginx) in front, which also terminates TLS and keeps browser connections alive;
set COLLECTOR_TRUSTED_HOPS=1 then. ``-k gthread`` on the command line still works (the
thread count comes from COLLECTOR_THREADS).
"""

import os
import shutil
import tempfile

from clickpipe.config import settings

wsgi_app = "collector.app:wsgi()"
bind = f"{settings.collector_host}:{settings.collector_port}"
workers = settings.collector_workers
worker_class = "sync"
threads = settings.collector_threads
keepalive = 5  # used by gthread only
# Pixel URLs carry whole page URLs and referrers; gunicorn's default of 4094 is too short.
limit_request_line = 8190
# SIGTERM: stop accepting, finish in-flight requests, then worker_exit flushes Kafka.
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
    server.log.info("worker %s flushed Kafka producer (%d messages left)", worker.pid, left)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    if _own_metrics_dir:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
