"""Signing what we send to client systems, as Stripe signs its webhooks: the header
`Billing-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`."""

from __future__ import annotations

import hashlib
import hmac
import secrets

HEADER = "Billing-Signature"
TOLERANCE_SECONDS = 300


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The header's value for `body` sent at `timestamp`."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def verify(secret: str, body: bytes, header: str, now: int) -> bool:
    """What a receiver does: the signature matches and is at most five minutes old."""
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    timestamp = parts.get("t", "")
    if not timestamp.isdigit() or abs(now - int(timestamp)) > TOLERANCE_SECONDS:
        return False
    expected = sign(secret, body, int(timestamp)).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))
