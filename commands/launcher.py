"""`clickpipe up` / `clickpipe down`: the whole pipeline on local defaults, in one command.

`up` starts, in order and only what is not already running: the stack (Kafka + Druid) and
its topics, the Druid supervisors, the collector (gunicorn), N Faust workers, the dashboard
and the demo traffic generator. It records what *it* started in ``run/launched`` so `down`
(or Ctrl-C in the foreground) stops exactly that and nothing else: a stack that was already
up before `up` is left running.

In the foreground `up` also watches what it started: a worker that exits is started again
(a worker rebuilds its tables from Kafka after a crash, so this is its designed recovery),
at most ``WORKER_RESTARTS`` times; any other part exiting stops everything, loudly.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import requests

from clickpipe.config import Settings
from stack.manager import StackError, StackManager
from stack.process import ManagedProcess

WORKER_RESTARTS = 5  # per worker and run of `clickpipe up`


@dataclass
class Component:
    """A Python process of the pipeline; ready when ``ready_url`` answers 200 (None: once started)."""

    name: str
    command: list[str]
    ready_url: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    restart: bool = False  # started again if it exits while `up` runs in the foreground


class Launcher:
    def __init__(self, settings: Settings, workers: int = 1, simulate: bool = True,
                 rate: float = 20.0, echo=print, superset: bool = False):
        self.settings = settings
        self.echo = echo
        self.stack = StackManager(settings, echo=echo)
        self.run_dir = settings.state_dir / "run"
        self.record = self.run_dir / "launched"
        self.options = (workers, simulate, rate)
        self.superset = superset
        self.components: list[Component] = []

    def _components(self, workers: int, simulate: bool, rate: float) -> list[Component]:
        s = self.settings
        cli = [sys.executable, "-m", "commands.cli"]
        collector_url = s.collector_url
        # The demo traffic comes from 127.0.0.1 and names its simulated client in
        # X-Forwarded-For, as a proxy would: only then trust one hop.
        collector_env = {"CLICKPIPE_COLLECTOR_TRUSTED_HOPS": "1"} if simulate else {}
        parts = [Component("collector", cli + ["collector"], f"{collector_url}/readyz", env=collector_env)]
        geo_env = self._geo_env()
        for n in range(workers):
            port = s.pipeline_web_port + n
            parts.append(Component(
                f"worker-{n + 1}", cli + ["worker"], f"http://127.0.0.1:{port}/metrics",
                env={"CLICKPIPE_PIPELINE_DATADIR": str(s.state_dir / f"pipeline-{n + 1}"),
                     "CLICKPIPE_PIPELINE_WEB_PORT": str(port), **geo_env}, restart=True))
        parts.append(Component("dashboard", cli + ["dashboard"],
                               f"http://{s.dashboard_host}:{s.dashboard_port}/healthz"))
        if self.superset:
            parts.append(Component("superset", cli + ["superset", "serve"],
                                   f"http://{s.superset_host}:{s.superset_port}/health"))
        if simulate:
            parts.append(Component("simulate", cli + ["simulate", "--url", collector_url, "--rate", str(rate),
                                                      "--duration", str(365 * 24 * 3600)]))
        return parts

    def _geo_env(self) -> dict[str, str]:
        """Point workers at the free databases of `clickpipe geoip fetch`, else at MaxMind's test
        databases, when no GeoIP database is configured."""
        s = self.settings
        if s.geoip_city_db.exists() and s.geoip_asn_db.exists():
            return {}
        from app.geofetch import installed

        free = installed(s.cache_dir)
        if {"dbip-city", "asn"} <= free.keys():
            self.echo(f"[up] no GeoIP database at {s.geoip_city_db}: using the free databases in "
                      f"{free['dbip-city'].parent} (IP Geolocation by DB-IP, https://db-ip.com)")
            return {"CLICKPIPE_GEOIP_CITY_DB": str(free["dbip-city"]), "CLICKPIPE_GEOIP_ASN_DB": str(free["asn"])}
        from app.geodata import test_database_env

        env = test_database_env(s.cache_dir)
        self.echo(f"[up] no GeoIP database at {s.geoip_city_db}: using MaxMind's test databases "
                  f"({env['CLICKPIPE_GEOIP_CITY_DB']}), which know only a few networks; "
                  f"`clickpipe geoip fetch` downloads free ones")
        return env

    def _process(self, name: str) -> ManagedProcess:
        return ManagedProcess(name, self.run_dir, self.settings.state_dir / "logs" / f"{name}.log")

    def _launched(self) -> list[str]:
        return self.record.read_text().split() if self.record.exists() else []

    def _remember(self, name: str) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with open(self.record, "a") as f:
            f.write(name + "\n")

    def up(self) -> None:
        """Start what is not running and wait for each part to be ready; raises StackError naming it."""
        if not any(svc.process.pid() for svc in self.stack.services):
            self._remember("stack")
        self.stack.up()
        self.stack.create_topics()
        self._apply_druid()
        if self.superset:
            self._provision_superset()
        self.components = self._components(*self.options)
        for comp in self.components:
            proc = self._process(comp.name)
            if proc.pid() is None:
                self.echo(f"[up] starting {comp.name}")
                self._start(comp, proc)
                self._remember(comp.name)
            self._wait(comp, proc)
        s = self.settings
        self.echo("\n".join([
            "",
            "clickpipe is running:",
            f"  collector   {s.collector_url}/  (tag: /tag.js, metrics: /metrics)",
            f"  dashboard   http://{s.dashboard_host}:{s.dashboard_port}/",
            f"  Druid       {s.druid_router_url}/  (SQL: {s.druid_broker_url}/druid/v2/sql)",
            *([f"  Superset    http://{s.superset_host}:{s.superset_port}/superset/dashboard/click-stream/  "
               f"(admin credentials: {s.superset_home / 'admin-credentials.json'})"] if self.superset else []),
            f"  logs        {s.state_dir / 'logs'}",
            "Stop with Ctrl-C (foreground) or `clickpipe down`.",
        ]))

    def _start(self, comp: Component, proc: ManagedProcess) -> None:
        proc.start(comp.command, Path.cwd(), env={**os.environ, **comp.env})

    def _apply_druid(self) -> None:
        from druid import supervisors
        from druid.client import DruidClient, DruidError

        try:
            for row in supervisors.apply(DruidClient(self.settings), self.settings):
                self.echo(f"[up] Druid supervisor {row['supervisor']}: {row['outcome']}")
        except DruidError as exc:
            raise StackError(f"applying the Druid supervisors failed: {exc}") from exc

    def _provision_superset(self) -> None:
        """Install (first time) and provision Superset before its server starts; the credentials
        are printed once, when generated."""
        from superset_setup.home import Home
        from superset_setup.install import SupersetError
        from superset_setup.provision import provision

        try:
            credentials = provision(self.settings, self.echo)
        except SupersetError as exc:
            raise StackError(f"provisioning Superset failed: {exc}") from exc
        if credentials.created:
            self.echo(f"[up] Superset admin {credentials.username!r}, password {credentials.password!r} "
                      f"(shown once; kept owner-only in {Home(self.settings).credentials_file})")

    def _wait(self, comp: Component, proc: ManagedProcess, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.pid() is None:
                raise StackError(f"{comp.name} exited during start-up; see its log {proc.log_file}\n"
                                 f"--- last lines ---\n{proc.log_tail()}")
            if comp.ready_url is None:
                return
            try:
                if requests.get(comp.ready_url, timeout=2).status_code == 200:
                    self.echo(f"[up] {comp.name} ready")
                    return
            except requests.RequestException:
                pass
            time.sleep(1)
        raise StackError(f"{comp.name} not ready after {timeout:.0f}s; see its log {proc.log_file}")

    def down(self) -> list[str]:
        """Stop what `up` started (newest first), the stack only if `up` started it."""
        launched = self._launched()
        stopped = []
        for name in reversed(launched):
            if name != "stack" and self._process(name).stop():
                stopped.append(name)
                self.echo(f"[down] stopped {name}")
        if "stack" in launched:
            stopped += self.stack.down()
        self.record.unlink(missing_ok=True)
        return stopped

    def foreground(self) -> int:
        """`up`, then wait for Ctrl-C/SIGTERM (or a part dying) and `down`."""
        stop = {"signal": None}

        def handler(signum, _frame):
            stop["signal"] = signum

        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)
        restarts: Counter[str] = Counter()
        try:
            self.up()
            while stop["signal"] is None:
                dead = [c for c in self.components if self._process(c.name).pid() is None]
                fatal = [c.name for c in dead if not c.restart or restarts[c.name] >= WORKER_RESTARTS]
                if fatal:
                    self.echo(f"[up] {', '.join(fatal)} stopped unexpectedly; see their logs in "
                              f"{self.settings.state_dir / 'logs'}")
                    return 1
                for comp in dead:
                    restarts[comp.name] += 1
                    proc = self._process(comp.name)
                    self.echo(f"[up] {comp.name} exited; starting it again ({restarts[comp.name]} of "
                              f"{WORKER_RESTARTS}); see its log {proc.log_file}")
                    self._start(comp, proc)
                time.sleep(1)
            return 0
        finally:
            self.echo("[down] stopping what `clickpipe up` started")
            self.down()
