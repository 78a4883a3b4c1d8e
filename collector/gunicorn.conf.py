"""Gunicorn settings for the collector: ``gunicorn -c collector/gunicorn.conf.py``.

The app is ASGI (``collector.app:asgi()``), served by the worker class
:class:`collector.server.Worker`: uvicorn with uvloop and httptools, one event loop per
worker process. Chosen by benchmark (bench/collector_bench.py; numbers in
docs/benchmarks.md, "Collector"): against the threaded WSGI worker (``gthread``) it
serves several times the requests per second, since HTTP parsing is in C and there is
no thread hop per request; a slow client holds a socket, not a thread. Gunicorn stays
the process manager: worker restarts, graceful reload, SIGTERM drain.
"""

import os
import shutil
import tempfile

from clickpipe.config import settings

wsgi_app = "collector.app:asgi()"
bind = f"{settings.collector_host}:{settings.collector_port}"
workers = settings.collector_workers
worker_class = "collector.server.Worker"
keepalive = 5
# SIGTERM: stop accepting, give in-flight requests 10 s (collector/server.py), then worker_exit
# produces the batches and flushes Kafka (at most 30 s); gunicorn kills a worker only after this.
graceful_timeout = 45
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
