"""A second, private Kafka + Druid stack for tests that must not disturb the shared one:
its own ports and state directory, the shared jar cache, always brought down at the end."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PORTS = {
    "KAFKA_PORT": 19092, "KAFKA_CONTROLLER_PORT": 19093, "ZOOKEEPER_PORT": 12181, "DERBY_PORT": 11527,
    "DRUID_COORDINATOR_PORT": 18081, "DRUID_BROKER_PORT": 18082, "DRUID_HISTORICAL_PORT": 18083,
    "DRUID_INDEXER_PORT": 18091, "DRUID_ROUTER_PORT": 18888,
}


def stack_env(state_dir: Path, cache_dir: Path) -> dict[str, str]:
    """The process environment of a private stack living in ``state_dir``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLICKPIPE_")}
    env.update({f"CLICKPIPE_{k}": str(v) for k, v in PORTS.items()})
    env.update({"CLICKPIPE_STATE_DIR": str(state_dir), "CLICKPIPE_CACHE_DIR": str(cache_dir),
                "CLICKPIPE_PARTITIONS": "2"})
    return env


def stack_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """``clickpipe stack <args>`` in ``env``."""
    return subprocess.run([sys.executable, "-m", "commands.cli", "stack", *args], env=env,
                          capture_output=True, text=True, timeout=600)


def processes_of(state_dir: str) -> list[int]:
    """Pids of processes started for the stack or pipeline living in ``state_dir``: they name it
    on their command line or inherit it in CLICKPIPE_STATE_DIR."""
    marker = f"CLICKPIPE_STATE_DIR={state_dir}".encode()
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if state_dir.encode() in cmdline or marker in environ:
            pids.append(int(proc.name))
    return pids
