"""The HTTP API: thin flask-smorest views over the services."""

from __future__ import annotations

from flask import Flask

from billing.web.api import (
    accounts,
    audit,
    bookings,
    books,
    catalog,
    clinical,
    docs,
    estimates,
    events,
    health,
    invoices,
    memberships,
    packages,
    payments,
    quotes,
    reports,
    webhook_endpoints,
    webhooks,
)
from billing.web.api.spec import BillingApi
from billing.web.limits import API_BLUEPRINTS


def init_app(app: Flask) -> BillingApi:
    api = BillingApi(app)
    api.spec.components.security_scheme(
        "bearerAuth", {"type": "http", "scheme": "bearer", "description": "An API key."}
    )
    for blueprint in (
        catalog.blp,
        quotes.blp,
        invoices.blp,
        bookings.blp,
        estimates.blp,
        payments.blp,
        accounts.blp,
        clinical.blp,
        packages.blp,
        memberships.blp,
        reports.blp,
        books.blp,
        audit.blp,
        events.blp,
        webhook_endpoints.blp,
    ):
        API_BLUEPRINTS.add(blueprint.name)  # API_RATE_LIMIT: limits.check_api_limit
        api.register_blueprint(blueprint)
    health.init_app(app)
    app.register_blueprint(docs.blp)
    app.register_blueprint(webhooks.blp)
    return api
