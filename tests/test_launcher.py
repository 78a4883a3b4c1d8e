"""The main job in one command: `clickpipe up` on a fresh state directory brings up the stack,
the Druid supervisors, the collector, a worker, the dashboard, Superset (--superset) and demo
traffic; events reach Druid; a worker killed with SIGKILL is started again; Ctrl-C stops
everything it started and nothing else.

Runs on its own ports and state directory (jar cache shared), so the stack the other tests
use is untouched — and checked to still be running at the end.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import requests
from private_stack import processes_of, stack_env

from clickpipe.config import load
from druid.client import DruidClient, DruidError
from stack.kafka import Kafka
from stack.process import ManagedProcess

PRIVATE = {"COLLECTOR_PORT": 18190, "DASHBOARD_PORT": 18195, "PIPELINE_WEB_PORT": 16066, "SUPERSET_PORT": 18188}


def _wait_for_line(path, text: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in path.read_text():
            return
        assert proc.poll() is None, f"clickpipe up exited early:\n{path.read_text()[-4000:]}"
        time.sleep(1)
    raise AssertionError(f"no {text!r} after {timeout}s:\n{path.read_text()[-4000:]}")


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=5).status_code == 200
    except requests.RequestException:
        return False


def _diagnosis(out, settings) -> str:
    """The launcher's output and the end of each log it wrote, for a failure message."""
    parts = [out.read_text()[-3000:]]
    for log in sorted((settings.state_dir / "logs").glob("*.log")):
        if not log.name.startswith(("druid-", "kafka", "zookeeper")):
            parts.append(f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-15:])[-3000:])
    return "\n".join(parts)


def test_up_runs_everything_and_ctrl_c_stops_only_what_it_started(stack, tmp_path):
    env = {**stack_env(tmp_path / "state", stack.cache_dir),
           **{f"CLICKPIPE_{k}": str(v) for k, v in PRIVATE.items()}, "CLICKPIPE_DRUID_START_DELAY": "PT1S"}
    settings = load(env)
    out = tmp_path / "up.log"
    with open(out, "w") as log:
        up = subprocess.Popen([sys.executable, "-m", "commands.cli", "up", "--rate", "30", "--superset"], env=env,
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_for_line(out, "clickpipe is running", up, timeout=900)  # a cold cache installs Superset
        for url in (f"http://127.0.0.1:{PRIVATE['COLLECTOR_PORT']}/readyz",
                    f"http://127.0.0.1:{PRIVATE['SUPERSET_PORT']}/health",
                    f"http://127.0.0.1:{PRIVATE['DASHBOARD_PORT']}/healthz",
                    f"http://127.0.0.1:{PRIVATE['PIPELINE_WEB_PORT']}/metrics"):
            assert requests.get(url, timeout=10).status_code == 200, url

        # Demo traffic flows collector -> Kafka -> worker -> Kafka -> Druid.
        druid = DruidClient(settings)
        events = 0
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and events == 0:
            try:
                events = druid.sql(f'SELECT COALESCE(SUM("count"), 0) AS n FROM '
                                   f'"{settings.druid_clicks_datasource}"')[0]["n"]
            except DruidError:
                pass  # the datasource appears with its first row
            time.sleep(3)
        assert events > 0, _diagnosis(out, settings)
        summary = requests.get(f"http://127.0.0.1:{PRIVATE['DASHBOARD_PORT']}/api/summary", timeout=30).json()
        assert sum(r["events"] for r in summary["traffic"]) > 0

        worker = ManagedProcess("worker-1", settings.state_dir / "run", settings.state_dir / "logs" / "worker-1.log")
        killed = worker.pid()
        os.kill(killed, signal.SIGKILL)
        _wait_for_line(out, "worker-1 exited; starting it again (1 of 5)", up, timeout=30)
        metrics = f"http://127.0.0.1:{PRIVATE['PIPELINE_WEB_PORT']}/metrics"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not _answers(metrics):
            time.sleep(1)
        assert worker.pid() not in (None, killed) and _answers(metrics), _diagnosis(out, settings)
    finally:
        up.send_signal(signal.SIGINT)
        code = up.wait(timeout=180)
    assert code == 0, out.read_text()[-4000:]
    deadline = time.monotonic() + 30
    while processes_of(str(settings.state_dir)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert processes_of(str(settings.state_dir)) == []
    assert Kafka(stack).healthy()  # the shared stack, started before, was not touched
