"""The app's one Stripe gateway, built from config; None when Stripe is not configured."""

from __future__ import annotations

import logging

from flask import Flask, current_app

from billing.adapters.stripe_gateway import SDK_API_VERSION, StripeGateway
from billing.domain.errors import ServiceUnavailable

log = logging.getLogger("billing.stripe")


def init_app(app: Flask) -> None:
    """The gateway, pinned to STRIPE_API_VERSION (by default the SDK's own), said once."""
    key = app.config["STRIPE_SECRET_KEY"]
    gateway = (
        StripeGateway(
            key,
            webhook_secret=app.config["STRIPE_WEBHOOK_SECRET"],
            api_base=app.config["STRIPE_API_BASE"] or None,
            timeout_seconds=app.config["STRIPE_TIMEOUT_SECONDS"],
            max_network_retries=app.config["STRIPE_MAX_NETWORK_RETRIES"],
            api_version=app.config["STRIPE_API_VERSION"] or None,
        )
        if key
        else None
    )
    app.extensions["billing.stripe"] = gateway
    app.config["STRIPE_API_VERSION"] = gateway.api_version if gateway else ""
    if gateway is None:
        return
    if gateway.api_version == SDK_API_VERSION:
        log.info("stripe: API version %s (the installed stripe-python's)", gateway.api_version)
    else:
        log.warning(
            "stripe: API version %s, but the installed stripe-python was generated for %s: "
            "its types describe %s's requests. Upgrade stripe-python and the version together.",
            gateway.api_version,
            SDK_API_VERSION,
            SDK_API_VERSION,
        )


def gateway_if_configured() -> StripeGateway | None:
    """The configured gateway, or None when no Stripe key is set."""
    configured: StripeGateway | None = current_app.extensions.get("billing.stripe")
    return configured


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
