"""Webhook endpoints of client systems: register, list, read, remove, and the delivery log."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask.views import MethodView

from billing.adapters import db
from billing.adapters.outbox import WebhookEndpoint
from billing.adapters.webhook_sender import networks
from billing.services.integrations import webhooks
from billing.services.integrations.settings import secret_box
from billing.web.api.blueprint import Blueprint
from billing.web.api.common import BEARER
from billing.web.api.events import delivery_view
from billing.web.api.spec import WITH_A_BODY, problems
from billing.web.auth import current_key, requires
from schemas.events import (
    DeliveryListSchema,
    DeliveryQuerySchema,
    NewWebhookEndpointSchema,
    WebhookEndpointListSchema,
    WebhookEndpointRequestSchema,
    WebhookEndpointSchema,
)

blp = Blueprint(
    "webhook_endpoints", __name__, url_prefix="/v1/webhook-endpoints", description="Webhooks"
)


@blp.route("")
class EndpointsView(MethodView):
    @requires("webhooks:write")
    @blp.doc(security=BEARER)
    @blp.arguments(WebhookEndpointRequestSchema())
    @blp.response(201, NewWebhookEndpointSchema())
    @problems(blp, *WITH_A_BODY)
    def post(self, body: dict[str, Any]) -> webhooks.NewEndpoint:
        """Register an endpoint (needs events:read too); its signing secret is in this
        answer and never again."""
        config = current_app.config
        return webhooks.create_endpoint(
            db.session(),
            current_key(),
            body["url"],
            body["events"],
            networks(config["WEBHOOK_ALLOWED_NETWORKS"]),
            secret_box(config),
            body.get("description"),
        )

    @requires("webhooks:write")
    @blp.doc(security=BEARER)
    @blp.response(200, WebhookEndpointListSchema())
    @problems(blp)
    def get(self) -> dict[str, Any]:
        """Your client system's endpoints, newest first."""
        return {"data": webhooks.list_endpoints(db.session(), current_key()), "has_more": False}


@blp.route("/<endpoint_id>")
class EndpointView(MethodView):
    @requires("webhooks:write")
    @blp.doc(security=BEARER)
    @blp.response(200, WebhookEndpointSchema())
    @problems(blp, 404)
    def get(self, endpoint_id: str) -> WebhookEndpoint:
        """One endpoint, and whether it is failing."""
        return webhooks.get_endpoint(db.session(), current_key(), endpoint_id)

    @requires("webhooks:write")
    @blp.doc(security=BEARER)
    @blp.response(200, WebhookEndpointSchema())
    @problems(blp, 404)
    def delete(self, endpoint_id: str) -> WebhookEndpoint:
        """Stop sending to an endpoint; what it was still owed is abandoned."""
        return webhooks.delete_endpoint(db.session(), current_key(), endpoint_id)


@blp.route("/<endpoint_id>/deliveries")
class DeliveriesView(MethodView):
    @requires("webhooks:write")
    @blp.doc(security=BEARER)
    @blp.arguments(DeliveryQuerySchema(), location="query")
    @blp.response(200, DeliveryListSchema())
    @problems(blp, 404, 422)
    def get(self, query: dict[str, Any], endpoint_id: str) -> dict[str, Any]:
        """The delivery log: each event sent, newest first, with every attempt's answer."""
        views, more = webhooks.list_deliveries(db.session(), current_key(), endpoint_id, **query)
        return {"data": [delivery_view(v) for v in views], "has_more": more}
