"""Stripe's webhook endpoint: verified against the raw body, answered fast."""

from __future__ import annotations

from flask import Blueprint, g, request

from billing.adapters import db
from billing.adapters.providers import gateway
from billing.services.access import audit
from billing.services.payments import stripe_events as webhooks
from billing.web.auth import public

blp = Blueprint("stripe_webhooks", __name__)


@blp.post("/v1/stripe/webhooks")
@public("Stripe's signature over the raw body, checked before anything is read")
def receive() -> tuple[dict[str, object], int]:
    """Store and apply one Stripe event; duplicates are acknowledged and ignored."""
    stripe = gateway()
    audit.act_as(audit.Actor("stripe", "webhook", g.get("request_id")))
    event = stripe.parse_event(request.get_data(), request.headers.get("Stripe-Signature"))
    applied = webhooks.record_stripe_event(db.session(), stripe, event)
    return {"received": True, "duplicate": not applied}, 200
