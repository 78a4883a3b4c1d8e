"""Identifiers: what a valid client-supplied id looks like, and how the collector makes new ones."""

from __future__ import annotations

import itertools
import os
import re
import secrets

from clickpipe.topics import partition_for

# Covers the tag's base64url ids, UUIDs and Divolte's "0:<base36 time>:<base64url>" ids,
# and nothing that could smuggle separators or markup into downstream systems.
_ID = re.compile(r"[A-Za-z0-9_.:-]{8,128}")


def new_id() -> str:
    """A fresh random id: 128 bits from the OS CSPRNG, base64url without padding (22 chars).

    Unguessable: used for party ids, which the cookie carries as the visitor's identity.
    """
    return secrets.token_urlsafe(16)

def new_party_id(address: str | None, partitions: int) -> str:
    """A fresh party id (:func:`new_id`) that lands on the raw-topic partition of ``address``.

    The raw topic is keyed by party id. Issuing every new party of one address (an IPv4
    address or IPv6 /64, :func:`steps.signals.address_key`) on that address's partition puts
    them all in one worker's per-address state, so the party-churn rule counts an address's new
    parties whole, whatever the partition count. Costs about ``partitions`` draws; the id is
    as random as any other (only its partition is chosen).
    """
    if not address or partitions <= 1:
        return new_id()
    target = partition_for(address.encode(), partitions)
    candidate = new_id()
    for _ in range(64 * partitions):  # 1 - (1 - 1/p)^(64 p): never in practice
        if partition_for(candidate.encode(), partitions) == target:
            break
        candidate = new_id()
    return candidate


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
