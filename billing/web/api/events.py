"""The event feed, and sending an event again to webhook endpoints."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from billing.adapters import db
from billing.services.integrations import events, webhooks
from billing.web.api.blueprint import Blueprint
from billing.web.api.common import BEARER
from billing.web.api.spec import WITH_A_BODY, problems
from billing.web.auth import current_key, requires
from schemas.events import (
    EventListSchema,
    EventQuerySchema,
    EventSchema,
    RedeliverRequestSchema,
    RedeliveryListSchema,
)

blp = Blueprint("events", __name__, url_prefix="/v1/events", description="Events")


def as_event(event: Any) -> dict[str, Any]:
    return {
        "public_id": event.public_id,
        "type": event.type,
        "created_at": event.created_at,
        "data": events.object_of(event),
    }


@blp.route("")
class EventsView(MethodView):
    @requires("events:read")
    @blp.doc(security=BEARER)
    @blp.arguments(EventQuerySchema(), location="query")
    @blp.response(200, EventListSchema())
    @problems(blp, 404, 422)
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """Every event in order, oldest first; pass the last one you have as `starting_after`."""
        page = events.list_events(db.session(), **query)
        return {"data": [as_event(e) for e in page.data], "has_more": page.has_more}


@blp.route("/<event_id>")
class EventView(MethodView):
    @requires("events:read")
    @blp.doc(security=BEARER)
    @blp.response(200, EventSchema())
    @problems(blp, 404)
    def get(self, event_id: str) -> dict[str, Any]:
        """One event."""
        return as_event(events.get_event(db.session(), event_id))


@blp.route("/<event_id>/redeliver")
class RedeliverView(MethodView):
    @requires("webhooks:write")
    @blp.doc(security=BEARER)
    @blp.arguments(RedeliverRequestSchema())
    @blp.response(202, RedeliveryListSchema())
    @problems(blp, *WITH_A_BODY, 404, 409)
    def post(self, body: dict[str, Any], event_id: str) -> dict[str, Any]:
        """Send an event again, now (needs events:read too): to one of your endpoints, or to
        every one of them that wants its type."""
        made = webhooks.redeliver(db.session(), current_key(), event_id, body.get("endpoint_id"))
        return {"data": [delivery_view(v) for v in made], "has_more": False}


def delivery_view(view: webhooks.DeliveryView) -> dict[str, Any]:
    delivery = view.delivery
    return {
        "id": delivery.id,
        "event_id": view.event.public_id,
        "event_type": view.event.type,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "next_attempt_at": delivery.next_attempt_at if delivery.status == "pending" else None,
        "last_status_code": delivery.last_status_code,
        "last_error": delivery.last_error,
        "delivered_at": delivery.delivered_at,
        "created_at": delivery.created_at,
        "log": view.log,
    }
