"""`clickpipe stack down` stops everything it started, and `up` afterwards reuses the data.

Runs a second, private stack (own state directory and ports, shared jar cache) through the
real command line, so stopping it cannot disturb the stack the other tests use.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer

from clickpipe.config import load
from druid.client import DruidClient

PORTS = {
    "KAFKA_PORT": 19092, "KAFKA_CONTROLLER_PORT": 19093, "ZOOKEEPER_PORT": 12181, "DERBY_PORT": 11527,
    "DRUID_COORDINATOR_PORT": 18081, "DRUID_BROKER_PORT": 18082, "DRUID_HISTORICAL_PORT": 18083,
    "DRUID_INDEXER_PORT": 18091, "DRUID_ROUTER_PORT": 18888,
}


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


@pytest.fixture
def private_stack(stack, tmp_path):
    """Environment and settings of a second stack; always brought down at the end."""
    env = {**os.environ, **{f"CLICKPIPE_{k}": str(v) for k, v in PORTS.items()},
           "CLICKPIPE_STATE_DIR": str(tmp_path / "state"), "CLICKPIPE_CACHE_DIR": str(stack.cache_dir),
           "CLICKPIPE_PARTITIONS": "2"}
    settings = load(env)

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "clickpipe.cli", "stack", *args], env=env,
                              capture_output=True, text=True, timeout=600)

    yield settings, cli
    cli("down")


def test_down_leaves_no_process_and_up_reuses_data(private_stack):
    settings, cli = private_stack
    state = str(settings.state_dir)

    first = cli("up")
    assert first.returncode == 0, first.stdout + first.stderr
    assert len(processes_of(state)) == 7  # kafka, zookeeper and five Druid services

    topic = f"lifecycle-{uuid.uuid4().hex[:8]}"
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap})
    for i in range(50):
        producer.produce(topic, key=str(i), value=str(i).encode())
    assert producer.flush(30) == 0
    druid = DruidClient(settings)
    spec = {"type": "kafka", "suspended": True, "spec": {
        "dataSchema": {"dataSource": topic, "timestampSpec": {"column": "ts", "format": "millis"},
                       "dimensionsSpec": {"dimensions": []}, "granularitySpec": {"rollup": False}},
        "ioConfig": {"topic": topic, "inputFormat": {"type": "json"},
                     "consumerProperties": {"bootstrap.servers": settings.kafka_bootstrap}},
        "tuningConfig": {"type": "kafka"}}}
    druid.submit_supervisor(spec)

    down = cli("down")
    assert down.returncode == 0, down.stderr
    deadline = time.monotonic() + 30
    while processes_of(state) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert processes_of(state) == []
    status = cli("status")
    assert status.returncode == 3 and status.stdout.count(" down") == 7, status.stdout

    again = cli("up")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "created topics" not in again.stdout  # the pipeline topics survived
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": topic,
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    values = set()
    deadline = time.monotonic() + 60
    while len(values) < 50 and time.monotonic() < deadline:
        msg = consumer.poll(1.0)
        if msg is not None and not msg.error():
            values.add(int(msg.value()))
    consumer.close()
    assert values == set(range(50))
    assert topic in druid.supervisor_ids()  # Druid's metadata store (Derby) kept the supervisor
