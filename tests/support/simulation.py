"""A private deployment for simulations: real collector and worker on private topics, and
optionally private Druid datasources on them.

Used by the simulation's integration test and by bench/accuracy.py. The processes are
:class:`tests.support.collector.CollectorProcess` and :class:`tests.support.pipeline.Run`'s worker;
the datasources are :func:`tests.support.druid.private_env`'s.
"""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from clickpipe.config import load
from druid import supervisors
from tests.support import ROOT
from tests.support.collector import CollectorProcess
from tests.support.druid import private_druid, private_env
from tests.support.pipeline import Run


@dataclass
class Deployment:
    url: str  # the collector
    run: Run  # topics and worker
    env: dict[str, str]  # CLICKPIPE_* shared by collector, worker, simulate and evaluate

    def clickpipe(self, *args: str, timeout: float) -> subprocess.CompletedProcess:
        """Run the ``clickpipe`` command with this deployment's settings."""
        return subprocess.run([sys.executable, "-m", "commands.cli", *args], cwd=ROOT, env={**os.environ, **self.env},
                              capture_output=True, text=True, timeout=timeout)


@contextmanager
def deployment(bootstrap: str, workdir: Path, geo_env: dict[str, str], gap_s: int, sweep_s: int,
               partitions: int = 4, druid: bool = False) -> Iterator[Deployment]:
    """Private topics, one worker with session gap ``gap_s`` and sweep ``sweep_s``, one collector
    trusting one X-Forwarded-For hop, and with ``druid`` private datasources (clicks, sessions,
    bot sessions) ingesting the outputs; everything stopped, the supervisors terminated, the
    datasources dropped and the topics deleted afterwards."""
    env = {**geo_env, "CLICKPIPE_KAFKA_BOOTSTRAP": bootstrap, "CLICKPIPE_SESSION_GAP_SECONDS": str(gap_s),
           "CLICKPIPE_SESSION_SWEEP_SECONDS": str(sweep_s), "CLICKPIPE_COLLECTOR_TRUSTED_HOPS": "1"}
    run = Run(bootstrap, workdir, partitions=partitions, env=env)
    env.update({"CLICKPIPE_TOPIC_RAW": run.topics["raw"], "CLICKPIPE_TOPIC_ENRICHED": run.topics["enriched"],
                "CLICKPIPE_TOPIC_SESSIONS": run.topics["sessions"],
                "CLICKPIPE_TOPIC_DEAD_LETTERS": run.topics["dead-letters"],
                "CLICKPIPE_TOPIC_VERDICTS": run.topics["verdicts"]})
    if druid:
        names = private_env("sim", TOPIC_ENRICHED=run.topics["enriched"], TOPIC_SESSIONS=run.topics["sessions"],
                            TOPIC_VERDICTS=run.topics["verdicts"])
        env.update({k: v for k, v in names.items() if k.startswith("CLICKPIPE_DRUID_")})
    collector = None
    with run, ExitStack() as cleanup:
        try:
            if druid:
                cfg = load(env)
                client = cleanup.enter_context(private_druid(cfg, create_topics=False))
                supervisors.apply(client, cfg)
            run.wait_ready(run.start_worker())
            collector = CollectorProcess(env)
            collector.wait_ready()
            env["CLICKPIPE_COLLECTOR_PORT"] = str(collector.port)
            yield Deployment(collector.url, run, env)
        finally:
            if collector is not None:
                collector.stop()
