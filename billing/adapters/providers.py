"""The app's one Stripe gateway, built from config; None when Stripe is not configured."""

from __future__ import annotations

from flask import Flask, current_app

from billing.adapters.stripe_gateway import StripeGateway
from billing.domain.errors import ServiceUnavailable


def init_app(app: Flask) -> None:
    key = app.config["STRIPE_SECRET_KEY"]
    app.extensions["billing.stripe"] = (
        StripeGateway(
            key,
            webhook_secret=app.config["STRIPE_WEBHOOK_SECRET"],
            api_base=app.config["STRIPE_API_BASE"] or None,
            timeout_seconds=app.config["STRIPE_TIMEOUT_SECONDS"],
            max_network_retries=app.config["STRIPE_MAX_NETWORK_RETRIES"],
        )
        if key
        else None
    )


def gateway() -> StripeGateway:
    """The configured gateway, or a clear 503 when no Stripe key is set."""
    configured: StripeGateway | None = current_app.extensions.get("billing.stripe")
    if configured is None:
        raise ServiceUnavailable(
            "stripe_not_configured", "Payments are unavailable: no STRIPE_SECRET_KEY is set."
        )
    return configured


def gateway_or_none() -> StripeGateway | None:
    """The configured gateway, or None (for jobs that can do without Stripe)."""
    configured: StripeGateway | None = current_app.extensions.get("billing.stripe")
    return configured
