"""What every stack service has in common: a process, a port, a health check."""

from __future__ import annotations

import socket
from pathlib import Path

from clickpipe.config import Settings
from stack.process import ManagedProcess

LOG4J2_CONSOLE = """<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="WARN">
  <Appenders>
    <Console name="Console" target="SYSTEM_OUT">
      <PatternLayout pattern="%d{ISO8601} %p [%t] %c - %m%n"/>
    </Console>
  </Appenders>
  <Loggers>
    <Root level="info"><AppenderRef ref="Console"/></Root>
    <Logger name="org.apache.zookeeper" level="warn" additivity="false"><AppenderRef ref="Console"/></Logger>
    <Logger name="org.apache.kafka.clients" level="warn" additivity="false"><AppenderRef ref="Console"/></Logger>
  </Loggers>
</Configuration>
"""


def properties(values: dict[str, str]) -> str:
    """Java ``.properties`` text of ``values``, in order."""
    return "".join(f"{k}={v}\n" for k, v in values.items())


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class Service:
    """A process of the stack. Subclasses define how to configure, launch and probe it.

    ``prepare`` is idempotent and runs before every start (it rewrites configuration from
    the current settings and initialises storage only the first time).
    """

    name: str
    port: int
    host: str

    def __init__(self, settings: Settings):
        self.settings = settings
        self.state = settings.state_dir
        self.process = ManagedProcess(self.name, self.state / "run", self.state / "logs" / f"{self.name}.log")

    def prepare(self) -> None:
        raise NotImplementedError

    def command(self) -> list[str]:
        raise NotImplementedError

    def healthy(self) -> bool:
        raise NotImplementedError

    def cwd(self) -> Path:
        return self.state

    def start(self) -> int:
        if port_open(self.host, self.port):
            raise RuntimeError(
                f"{self.name}: port {self.host}:{self.port} is already in use by another program; "
                f"stop it or choose another port in the settings")
        self.prepare()
        return self.process.start(self.command(), self.cwd())
