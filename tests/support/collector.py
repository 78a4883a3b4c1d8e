"""A real collector process (gunicorn with the repository's config), for the tests that go
through HTTP into Kafka."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from tests.support import ROOT
from tests.support.net import free_port


class CollectorProcess:
    """A real collector (gunicorn with the repository's config) on a free port, configured by
    ``env`` (``CLICKPIPE_*`` on top of this process's environment)."""

    def __init__(self, env: dict[str, str]):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full_env = {**os.environ, **env, "CLICKPIPE_COLLECTOR_PORT": str(self.port)}
        full_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.log = tempfile.NamedTemporaryFile(prefix="collector-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "collector/gunicorn.conf.py"],
            cwd=ROOT,
            env=full_env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: kill_9 takes the workers too
        )

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"collector exited {self.proc.returncode}:\n{self.output()}")
            try:
                if requests.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:  # refused, or too slow under load: try again
                pass
            time.sleep(0.3)
        raise RuntimeError(f"collector not ready after {timeout}s:\n{self.output()}")

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")[-4000:]

    def access_log(self) -> list[str]:
        """gunicorn's access log lines, if it was started with ``--access-logfile -``."""
        return [line for line in Path(self.log.name).read_text(errors="replace").splitlines() if '" 20' in line]

    def kill_9(self) -> None:
        """SIGKILL the master and its workers at once, as an OOM kill or a lost host would."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode
