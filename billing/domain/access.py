"""Who may call what: the scopes an API key can carry, and how a key is made and known.

A key is shown once and only its SHA-256 hash is stored, so a leaked table opens nothing.
"""

from __future__ import annotations

import hashlib
import secrets

SCOPES = frozenset(
    {
        "quotes:write",
        "invoices:read",
        "invoices:write",
        "payments:write",
        "payments:record",
        "invoices:adjust",
        "refunds:write",
        "reports:read",
        "catalog:write",
        "audit:read",
        "events:read",
        "webhooks:write",
        "books:close",
        "bookings:write",
        # Patients' billing profiles (date of birth, address, payer class): health
        # information, kept apart from billing scopes.
        "clinical:read",
        "clinical:write",
    }
)
ANY_KEY = "*"  # any valid key may call the endpoint
# Who did something, in the audit trail.
ACTOR_TYPES = ("api_key", "staff", "operator", "patient", "stripe", "system", "anonymous")


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def generate_key() -> str:
    """A new high-entropy key; only its hash is ever stored."""
    return "ck_" + secrets.token_urlsafe(32)
