"""Gunicorn settings for the dashboard: ``gunicorn --config python:dashboard.gunicorn_conf``.

One process with a few threads: every request is a handful of Druid queries, which wait
on the network, not on Python.
"""

from clickpipe.config import settings

wsgi_app = "dashboard.app:create()"
bind = f"{settings.dashboard_host}:{settings.dashboard_port}"
workers = 1
worker_class = "gthread"
threads = 4
timeout = 60
