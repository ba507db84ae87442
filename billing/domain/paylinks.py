"""Pay-link tokens: the link's id and expiry, signed with the app's secret (HMAC-SHA256).

A token proves only that we issued it; whether its link still stands (not revoked,
invoice not void) is the database's to say.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True, slots=True)
class TokenClaims:
    link_id: str
    expires_at: datetime


class InvalidToken(Exception):
    """Tampered with, malformed, or not ours."""


class ExpiredToken(Exception):
    """Ours, but past its expiry."""


def _signature(secret: str, payload: str) -> str:
    digest = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def sign(secret: str, link_id: str, expires_at: datetime) -> str:
    """`<link id>.<expiry, unix seconds>.<signature>`: the same link always gives the same token."""
    payload = f"{link_id}.{int(expires_at.timestamp())}"
    return f"{payload}.{_signature(secret, payload)}"


def verify(secrets: Sequence[str], token: str, now: datetime) -> TokenClaims:
    """The token's claims if any of `secrets` signed it (the current key first, then the
    ones it replaced, so links sent before a rotation keep working); raises InvalidToken
    or ExpiredToken."""
    parts = token.split(".")
    if len(parts) != 3 or not parts[1].isdigit() or len(token) > 200:
        raise InvalidToken("malformed")
    link_id, expiry, signature = parts
    payload = f"{link_id}.{expiry}"
    if not any(
        hmac.compare_digest(signature.encode(), _signature(s, payload).encode())
        for s in secrets
        if s
    ):
        raise InvalidToken("bad signature")
    expires_at = datetime.fromtimestamp(int(expiry), UTC)
    if now >= expires_at:
        raise ExpiredToken(link_id)
    return TokenClaims(link_id=link_id, expires_at=expires_at)
