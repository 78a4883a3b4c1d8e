"""How a party id appears where it is stored by key: Druid's ``party`` dimension and erasure records.

- :func:`party_key` is the value of the ``party`` dimension of both Druid datasources: the
  party id itself, or, where pseudonymity is configured (``CLICKPIPE_PRIVACY_PARTY_SALT``),
  an HMAC-SHA256 of it with that secret. The worker computes it for every row it writes and
  ``clickpipe privacy`` computes it to find a party's rows, so both must use the same salt.
- :func:`digest` names a party in the erased list and the request log: a SHA-256 of the id,
  independent of the salt (an erasure must outlive a change of salt) and not the id itself.
"""

from __future__ import annotations

import hashlib
import hmac

_DIGEST_PREFIX = b"clickpipe-party\x00"


def party_key(party_id: str, salt: str) -> str:
    """Druid's ``party`` value for ``party_id``: the id unless ``salt`` is set, else 64 hex digits."""
    if not salt:
        return party_id
    return hmac.new(salt.encode(), party_id.encode(), hashlib.sha256).hexdigest()


def digest(party_id: str) -> str:
    """The 64-hex-digit name of ``party_id`` in erasure records."""
    return hashlib.sha256(_DIGEST_PREFIX + party_id.encode()).hexdigest()
