"""Start, find and stop the stack's processes by pid file.

A pid file holds the pid and the process's start time (from /proc), so a pid reused by an
unrelated process after a crash or reboot is never taken for ours and never signalled.
Each service runs in its own session (process group) so stopping it also stops anything
it forked.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path


def _start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces; fields after its closing ')' are fixed.
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":  # a zombie has exited; only its exit status is left
        return None
    return fields[19]


class ManagedProcess:
    """One long-running process identified by ``run_dir/<name>.pid``."""

    def __init__(self, name: str, run_dir: Path, log_file: Path):
        self.name = name
        self.pid_file = run_dir / f"{name}.pid"
        self.log_file = log_file

    def pid(self) -> int | None:
        """The pid if our process is alive, else None (a stale pid file is removed)."""
        try:
            pid_text, started = self.pid_file.read_text().split()
            pid = int(pid_text)
        except (OSError, ValueError):
            return None
        if _start_time(pid) == started:
            return pid
        self.pid_file.unlink(missing_ok=True)
        return None

    def start(self, command: list[str], cwd: Path, env: dict[str, str] | None = None) -> int:
        """Launch ``command`` detached, appending its output to the log file."""
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            log.write(f"\n===== {time.strftime('%Y-%m-%dT%H:%M:%S')} starting {self.name}\n".encode())
            log.flush()
            proc = subprocess.Popen(
                command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )
        self.pid_file.write_text(f"{proc.pid} {_start_time(proc.pid)}\n")
        return proc.pid

    def stop(self, timeout: float = 30.0) -> bool:
        """SIGTERM the process group, SIGKILL it after ``timeout`` s. True if it was running."""
        pid = self.pid()
        if pid is None:
            return False
        self._signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.pid() is not None:
            time.sleep(0.2)
        if self.pid() is not None:
            self._signal_group(pid, signal.SIGKILL)
            while self.pid() is not None and time.monotonic() < deadline + 10:
                time.sleep(0.1)
        self.pid_file.unlink(missing_ok=True)
        return True

    @staticmethod
    def _signal_group(pid: int, sig: int) -> None:
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            pass

    def log_tail(self, lines: int = 20) -> str:
        try:
            with open(self.log_file, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 64 * 1024))
                return "\n".join(f.read().decode(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log yet)"
