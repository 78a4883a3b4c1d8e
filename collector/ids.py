"""Identifiers: what a valid client-supplied id looks like, and how the collector makes new ones."""

from __future__ import annotations

import re
import secrets

# Covers the tag's base64url ids, UUIDs and Divolte's "0:<base36 time>:<base64url>" ids,
# and nothing that could smuggle separators or markup into downstream systems.
_ID = re.compile(r"[A-Za-z0-9_.:-]{8,128}")


def new_id() -> str:
    """A fresh random id: 128 bits from the OS CSPRNG, base64url without padding (22 chars)."""
    return secrets.token_urlsafe(16)


def is_valid_id(value: object) -> bool:
    """True if ``value`` is a string of 8–128 characters from ``[A-Za-z0-9_.:-]``."""
    return isinstance(value, str) and _ID.fullmatch(value) is not None
