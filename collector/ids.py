"""Identifiers: what a valid client-supplied id looks like, and how the collector makes new ones."""

from __future__ import annotations

import itertools
import os
import re
import secrets

# Covers the tag's base64url ids, UUIDs and Divolte's "0:<base36 time>:<base64url>" ids,
# and nothing that could smuggle separators or markup into downstream systems.
_ID = re.compile(r"[A-Za-z0-9_.:-]{8,128}")


def new_id() -> str:
    """A fresh random id: 128 bits from the OS CSPRNG, base64url without padding (22 chars).

    Unguessable: used for party ids, which the cookie carries as the visitor's identity.
    """
    return secrets.token_urlsafe(16)

_prefix: str
_sequence: itertools.count[int]


def _reset_sequence() -> None:
    global _prefix, _sequence
    _prefix = secrets.token_urlsafe(9) + "."
    _sequence = itertools.count()


_reset_sequence()
# A forked worker must not repeat its parent's sequence.
os.register_at_fork(after_in_child=_reset_sequence)


def sequence_id() -> str:
    """A unique id for an event its sender gave none: per-process random prefix + counter.

    No system call per id (``new_id`` costs one), which matters on the pixel path. Unique
    but predictable within a process: never use it where guessing it would grant anything.
    """
    return f"{_prefix}{next(_sequence):x}"


def is_valid_id(value: object) -> bool:
    """True if ``value`` is a string of 8–128 characters from ``[A-Za-z0-9_.:-]``."""
    return isinstance(value, str) and _ID.fullmatch(value) is not None
