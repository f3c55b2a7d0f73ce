"""The ``Tusd-Signature`` header of webhook deliveries.

``Tusd-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>``
(the Stripe scheme): a receiver recomputes the HMAC over the timestamp and the
exact bytes received, compares in constant time, and rejects old timestamps
to limit replays. ``t`` is the time of each delivery attempt.
"""

from __future__ import annotations

import hashlib
import hmac

HEADER = "Tusd-Signature"


def signature(secret: str, body: bytes, timestamp: int) -> str:
    """The header value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: str, header: str, body: bytes, now: float, tolerance: float = 300.0) -> bool:
    """True if ``header`` signs ``body`` with ``secret`` and its ``t`` is within ``tolerance`` of ``now``."""
    fields: dict[str, list[str]] = {}
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        fields.setdefault(key, []).append(value)
    try:
        timestamp = int(fields["t"][0])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance:
        return False
    expected = signature(secret, body, timestamp).split("v1=", 1)[1]
    return any(hmac.compare_digest(expected, given) for given in fields.get("v1", []))
