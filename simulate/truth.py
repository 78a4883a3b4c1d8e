"""The ground-truth file: what a simulation sent and what the pipeline should make of it.

JSON lines, UTF-8:

1. ``{"run": {...}}`` first: ``run_id`` (prefix of every event id), ``seed``, ``rate``,
   ``duration_s``, ``session_gap_s`` and ``session_sweep_s`` the plan respected,
   ``started_ms`` (wall clock when sending began), ``collector`` (URL), ``party_cookie``;
2. one ``{"party": {...}}`` per simulated client once it has finished: ``key``, ``kind``
   (one of :data:`simulate.plan.KINDS`), ``bot`` (the truth: the expected verdict of each of its
   sessions), ``cookies`` (whether it kept the party cookie), ``ip``, ``ips`` (every address it
   sent from), ``user_agent``, ``sessions`` (the
   expected sessions: lists of event ids the collector accepted, each list one session),
   ``resent`` (accepted copies of already-sent events: duplicates the pipeline must drop)
   and ``failed`` (events the collector did not accept; they are in no session);
3. ``{"summary": {...}}`` last, when the run ended normally: totals and the achieved rate.

A file without a summary (an interrupted run) can still be evaluated: every party line is
complete in itself.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO


class TruthError(ValueError):
    """The ground-truth file is missing or not in the format above; the message says where."""


class TruthWriter:
    """Appends lines to the ground-truth file; safe to call from several threads."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._file: TextIO = open(self.path, "w", encoding="utf-8")
        self._lock = threading.Lock()

    def _write(self, obj: dict) -> None:
        with self._lock:
            self._file.write(json.dumps(obj, separators=(",", ":"), ensure_ascii=False) + "\n")

    def run(self, info: dict[str, Any]) -> None:
        self._write({"run": info})

    def party(self, info: dict[str, Any]) -> None:
        self._write({"party": info})

    def summary(self, info: dict[str, Any]) -> None:
        self._write({"summary": info})

    def close(self) -> None:
        with self._lock:
            self._file.close()


@dataclass
class GroundTruth:
    run: dict[str, Any]
    parties: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] | None = None

    def accepted_ids(self) -> set[str]:
        return {e for p in self.parties for s in p["sessions"] for e in s}


_PARTY_KEYS = ("key", "kind", "bot", "cookies", "sessions")


def read(path: Path) -> GroundTruth:
    """Parse a ground-truth file; :class:`TruthError` if it cannot be read or is malformed."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise TruthError(f"cannot read ground truth {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise TruthError(f"{path} is not UTF-8 text") from None
    truth: GroundTruth | None = None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            raise TruthError(f"{path}:{number}: not JSON") from None
        if not isinstance(obj, dict) or len(obj) != 1:
            raise TruthError(f"{path}:{number}: expected an object with one key (run, party or summary)")
        (kind, value), = obj.items()
        if truth is None:
            if kind != "run" or not isinstance(value, dict) or "run_id" not in value or "started_ms" not in value:
                raise TruthError(f"{path}:{number}: the first line must be the run line with run_id and started_ms")
            truth = GroundTruth(run=value)
        elif kind == "party":
            if not isinstance(value, dict) or any(k not in value for k in _PARTY_KEYS):
                raise TruthError(f"{path}:{number}: a party line needs {', '.join(_PARTY_KEYS)}")
            truth.parties.append(value)
        elif kind == "summary":
            truth.summary = value
        else:
            raise TruthError(f"{path}:{number}: unexpected line kind {kind!r}")
    if truth is None:
        raise TruthError(f"{path} is empty: no run line")
    return truth
