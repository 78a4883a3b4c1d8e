"""A replay's progress on disk, so that a replay killed at any moment resumes without doubling anything.

The work directory holds the replayed rows (``clicks.json``, ``sessions.json``: newline-
delimited JSON, as the pipeline writes them to Kafka) and ``checkpoint.json``: per partition
the next raw offset to read, the pipeline's state (parties, IPs, the event-time clock of the
sweeps), the counters, and how many
bytes of each row file that state accounts for. :meth:`Workdir.save` makes the row files
durable (fsync) before it replaces the checkpoint atomically (write, fsync, rename), so a
checkpoint never counts rows that are not on disk. :meth:`Workdir.outputs` cuts each row
file back to the length its checkpoint records: rows written after the last checkpoint are
written again, once, by the resumed replay.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import orjson

CHECKPOINT = "checkpoint.json"
# row files, named like the datasources' keys in druid/datasources.toml
OUTPUTS = ("clicks", "sessions", "bot_sessions")


@dataclass
class Progress:
    """Where a replay stands. ``phase``: ``process`` (reading the raw topic), ``ingest`` (Druid), ``done``."""

    plan: dict[str, Any]
    phase: str = "process"
    next_offsets: dict[int, int] = field(default_factory=dict)
    parties: dict[int, dict[str, Any]] = field(default_factory=dict)  # partition -> party -> state
    ips: dict[int, dict[str, Any]] = field(default_factory=dict)  # partition -> IP -> state
    watermarks: dict[int, int] = field(default_factory=dict)  # partition -> latest event time processed
    swept_at: dict[int, int] = field(default_factory=dict)  # partition -> event time of its last sweep
    sizes: dict[str, int] = field(default_factory=dict)  # row file -> bytes this progress accounts for
    counts: dict[str, float] = field(default_factory=dict)
    tasks: dict[str, str] = field(default_factory=dict)  # datasource -> id of its replacing task
    suspended: list[str] = field(default_factory=list)  # supervisors this replay suspended

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> "Progress":
        def by_partition(d: dict[str, Any]) -> dict[int, Any]:
            return {int(p): v for p, v in d.items()}
        return cls(plan=body["plan"], phase=body["phase"], next_offsets=by_partition(body["next_offsets"]),
                   parties=by_partition(body["parties"]), ips=by_partition(body["ips"]),
                   watermarks=by_partition(body["watermarks"]), swept_at=by_partition(body["swept_at"]),
                   sizes=body["sizes"],
                   counts=body["counts"], tasks=body["tasks"], suspended=body["suspended"])


class Workdir:
    """One replay's directory: its checkpoint and row files."""

    def __init__(self, path: Path):
        self.path = path.resolve()

    def make(self) -> None:
        """Create the directory, owner-only: the rows hold personal data (IPs, user agents, full URLs)."""
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)

    def remove_rows(self) -> None:
        """Delete the row files (the checkpoint stays: the replay is known to be done)."""
        for output in OUTPUTS:
            self.file(output).unlink(missing_ok=True)

    def file(self, output: str) -> Path:
        return self.path / f"{output}.json"

    def load(self) -> Progress | None:
        """The last saved progress, or None when this replay has not saved one yet."""
        try:
            return Progress.from_json(orjson.loads((self.path / CHECKPOINT).read_bytes()))
        except FileNotFoundError:
            return None

    def outputs(self, progress: Progress) -> dict[str, BinaryIO]:
        """The row files opened for appending, each cut back to the bytes ``progress`` accounts for."""
        self.make()
        files: dict[str, BinaryIO] = {}
        for output in OUTPUTS:
            size = progress.sizes.get(output, 0)
            self.file(output).touch()
            f = open(self.file(output), "r+b")
            f.truncate(size)
            f.seek(size)
            files[output] = f
        return files

    def save(self, progress: Progress, outputs: dict[str, BinaryIO] | None = None) -> None:
        """Make ``outputs`` durable, record their sizes in ``progress``, then replace the checkpoint atomically."""
        self.make()
        for output, f in (outputs or {}).items():
            f.flush()
            os.fsync(f.fileno())
            progress.sizes[output] = f.tell()
        # orjson reads the dataclass as it is (dataclasses.asdict would deep-copy every state first)
        body = orjson.dumps(progress, option=orjson.OPT_NON_STR_KEYS)
        tmp = self.path / (CHECKPOINT + ".tmp")
        with open(tmp, "wb") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path / CHECKPOINT)
        directory = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(directory)  # the rename itself survives a crash
        finally:
            os.close(directory)
