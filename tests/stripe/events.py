"""Stripe's webhook events, built and signed here exactly as Stripe signs them."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from typing import Any

from tests.fixtures_stripe import WEBHOOK_SECRET

WEBHOOK_PATH = "/v1/stripe/webhooks"


def stripe_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def sign(body: bytes, timestamp: int | None = None, secret: str = WEBHOOK_SECRET) -> str:
    """A `Stripe-Signature` header for `body`: HMAC-SHA256 of "<t>.<body>"."""
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def make_event(
    event_type: str, obj: dict[str, Any], created: int | None = None, event_id: str | None = None
) -> dict[str, Any]:
    return {
        "id": event_id or stripe_id("evt"),
        "object": "event",
        "type": event_type,
        "created": int(time.time()) if created is None else created,
        "data": {"object": obj},
        "api_version": "2026-10-28.endive",
        "livemode": False,
    }


def encode(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode()


def post_raw(client: Any, body: bytes, signature: str | None) -> Any:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["Stripe-Signature"] = signature
    return client.post(WEBHOOK_PATH, data=body, headers=headers)


def deliver(client: Any, event: dict[str, Any]) -> Any:
    """Post an event signed now, as Stripe would deliver it."""
    body = encode(event)
    return post_raw(client, body, sign(body))
