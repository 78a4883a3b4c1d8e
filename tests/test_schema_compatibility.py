"""Every schema change must be backward compatible with the previous committed version.

``schemas/`` is the single source of truth. For each ``*.avsc`` the previous version is read
from git: the committed (HEAD) version when the working copy differs from it, otherwise the
version before the last commit that touched the file. The current schema, as a reader, must
be able to read data written with that previous version (avro's compatibility checker). A
file with no earlier version must still parse and be compatible with itself.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import avro.schema
import pytest
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

import schemas

ROOT = Path(schemas.__file__).resolve().parent.parent
FILES = sorted(Path(schemas.SCHEMA_DIR).glob("*.avsc"))


def _git(*args: str) -> str | None:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
    return done.stdout if done.returncode == 0 else None


def previous_version(path: Path) -> str | None:
    """Text of the version this file must stay backward compatible with, or None if it has none."""
    rel = path.relative_to(ROOT).as_posix()
    committed = _git("show", f"HEAD:{rel}")
    if committed is not None and committed != path.read_text():
        return committed
    commits = (_git("log", "--format=%H", "-n", "2", "--", rel) or "").split()
    if len(commits) < 2:
        return None
    return _git("show", f"{commits[1]}:{rel}")


def check(reader_text: str, writer_text: str):
    reader, writer = avro.schema.parse(reader_text), avro.schema.parse(writer_text)
    return ReaderWriterCompatibilityChecker().get_compatibility(reader, writer)


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_schema_is_backward_compatible_with_its_previous_version(path):
    current = path.read_text()
    previous = previous_version(path) or current
    result = check(current, previous)
    assert result.compatibility is SchemaCompatibilityType.compatible, (
        f"{path.name} cannot read data written with its previous version: {result.messages}")


def test_the_checker_rejects_an_incompatible_change():
    """Guards the test above: a new field without a default is caught."""
    old = '{"type": "record", "name": "R", "fields": [{"name": "a", "type": "long"}]}'
    new = '{"type": "record", "name": "R", "fields": [{"name": "a", "type": "long"}, {"name": "b", "type": "string"}]}'
    assert check(new, old).compatibility is SchemaCompatibilityType.incompatible
    with_default = new.replace('"type": "string"}', '"type": "string", "default": ""}')
    assert check(with_default, old).compatibility is SchemaCompatibilityType.compatible


def test_every_schema_file_is_loaded_by_the_registry():
    names = {s.name for s in schemas.all_current()}
    assert {"clickpipe.RawClick", "clickpipe.EnrichedClick", "clickpipe.Session"} <= names
