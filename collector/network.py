"""Who sent the request: client IP behind trusted proxies, and IP anonymisation."""

from __future__ import annotations

import ipaddress


def client_ip(remote_addr: str | None, forwarded_for: str | None, trusted_hops: int) -> str | None:
    """The client address, trusting only the last ``trusted_hops`` proxies.

    Each trusted proxy appends the address it received the request from to
    ``X-Forwarded-For``, so with N trusted proxies the client is the N-th entry from the
    right; anything further left was written by the client and may be forged. With zero
    hops (the default) the header is ignored and the socket peer is the client. If the
    header is absent, too short or not an address, the nearest trustworthy address is used.
    """
    if trusted_hops <= 0 or not forwarded_for:
        return remote_addr
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    if not hops:
        return remote_addr
    candidate = hops[-trusted_hops] if len(hops) >= trusted_hops else hops[0]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return remote_addr


def anonymize(ip: str | None) -> str | None:
    """Zero the host part: IPv4 keeps its /24, IPv6 its /48 (the usual analytics practice).

    Unparseable input becomes ``None`` rather than being passed on as is.
    """
    if ip is None:
        return None
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None
    prefix = 24 if addr.version == 4 else 48
    return str(ipaddress.ip_network(f"{addr}/{prefix}", strict=False).network_address)
