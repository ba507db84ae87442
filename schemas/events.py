"""Events for other systems, the webhook endpoints that hear them, and their deliveries."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates

from billing.domain.events import EVENT_TYPES
from schemas.bookings import BookingSchema
from schemas.invoices import InvoiceSchema, PaymentSchema, RefundSchema
from schemas.quotes import QuoteSchema
from schemas.types import typed


class EventSchema(Schema):
    """A change, with the resource as the API showed it right after the change."""

    id = typed("EventId", fields.String(attribute="public_id", required=True))
    type = typed("EventType", fields.String(required=True))
    created_at = fields.DateTime(required=True)
    data = fields.Dict(
        keys=fields.String(),
        required=True,
        metadata={
            "description": "`object`: the quote, invoice, payment, refund, dispute or "
            "webhook endpoint, as its own endpoint shows it.",
            "additionalProperties": {"type": "object"},
        },
    )


class EventListSchema(Schema):
    data = fields.List(fields.Nested(EventSchema), required=True)
    has_more = fields.Boolean(required=True)


class EventQuerySchema(Schema):
    type = typed("EventType", fields.String(validate=validate.OneOf(EVENT_TYPES)))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))
    starting_after = typed(
        "EventId",
        fields.String(
            validate=validate.Regexp(r"^evt_[0-9a-f]{24}$", error="Must be an evt_... id."),
            metadata={"description": "The last event you have: the feed goes on after it."},
        ),
    )


class RedeliverRequestSchema(Schema):
    endpoint_id = typed(
        "WebhookEndpointId",
        fields.String(
            validate=validate.Regexp(r"^we_[0-9a-f]{24}$", error="Must be a we_... id."),
            metadata={"description": "Only to this endpoint; by default every one that wants it."},
        ),
    )


class WebhookEndpointRequestSchema(Schema):
    url = fields.String(
        required=True,
        validate=validate.Length(max=2048),
        metadata={"format": "uri", "example": "https://booking.example-clinic.com/billing-events"},
    )
    events = fields.List(
        fields.String(validate=validate.OneOf((*EVENT_TYPES, "*"))),
        required=True,
        validate=validate.Length(min=1, max=len(EVENT_TYPES) + 1),
        metadata={"description": 'The event types to hear, or ["*"] for all.'},
    )
    description = fields.String(validate=validate.Length(max=200))

    @validates("events")
    def _no_repeats(self, value: list[str], **_: Any) -> None:
        if len(set(value)) != len(value):
            raise ValidationError("Name each event type once.")


class WebhookEndpointSchema(Schema):
    id = typed("WebhookEndpointId", fields.String(required=True))
    url = fields.String(required=True, metadata={"format": "uri"})
    description = fields.String(required=True, allow_none=True)
    events = fields.List(fields.String(), attribute="types", required=True)
    status = typed("WebhookEndpointStatus", fields.String(required=True))
    created_at = fields.DateTime(required=True)
    failing_since = fields.DateTime(required=True, allow_none=True)
    disabled_at = fields.DateTime(required=True, allow_none=True)
    disabled_reason = fields.String(required=True, allow_none=True)


class NewWebhookEndpointSchema(WebhookEndpointSchema):
    secret = fields.String(
        required=True,
        metadata={"description": "Shown once: verify `Billing-Signature` with it."},
    )


class WebhookEndpointListSchema(Schema):
    data = fields.List(fields.Nested(WebhookEndpointSchema), required=True)
    has_more = fields.Boolean(required=True)


class AttemptSchema(Schema):
    attempted_at = fields.DateTime(required=True)
    status_code = fields.Integer(required=True, allow_none=True)
    error = fields.String(required=True, allow_none=True)
    duration_ms = fields.Integer(required=True)


class DeliverySchema(Schema):
    """One event owed to one endpoint: where it stands, and every POST made for it."""

    id = typed("DeliveryId", fields.String(required=True))
    event_id = typed("EventId", fields.String(required=True))
    event_type = typed("EventType", fields.String(required=True))
    status = typed("DeliveryStatus", fields.String(required=True))
    attempts = fields.Integer(required=True)
    next_attempt_at = fields.DateTime(required=True, allow_none=True)
    last_status_code = fields.Integer(required=True, allow_none=True)
    last_error = fields.String(required=True, allow_none=True)
    delivered_at = fields.DateTime(required=True, allow_none=True)
    created_at = fields.DateTime(required=True)
    log = fields.List(fields.Nested(AttemptSchema), required=True)


class DeliveryListSchema(Schema):
    data = fields.List(fields.Nested(DeliverySchema), required=True)
    has_more = fields.Boolean(required=True)


class DeliveryQuerySchema(Schema):
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))
    starting_after = typed(
        "DeliveryId",
        fields.String(
            validate=validate.Regexp(r"^whd_[0-9a-f]{24}$", error="Must be a whd_... id.")
        ),
    )


class RedeliveryListSchema(Schema):
    data = fields.List(fields.Nested(DeliverySchema), required=True)
    has_more = fields.Boolean(required=True)


class DisputeSchema(Schema):
    """A patient's bank disputing a charge: its amount is held from what can be refunded."""

    id = fields.String(required=True, metadata={"description": "Stripe's dispute id (dp_...)."})
    invoice_id = typed("InvoiceId", fields.String(required=True))
    amount = fields.Integer(required=True)
    currency = fields.String(required=True)
    created_at = fields.DateTime(required=True)


SNAPSHOTS: dict[str, Schema] = {
    "quote": QuoteSchema(),
    "invoice": InvoiceSchema(),
    "payment": PaymentSchema(),
    "refund": RefundSchema(),
    "dispute": DisputeSchema(),
    "webhook_endpoint": WebhookEndpointSchema(),
    "booking": BookingSchema(),
}


def snapshot(kind: str, obj: Any) -> dict[str, Any]:
    """The resource as its own endpoint shows it, for an event's `data.object`."""
    dumped: dict[str, Any] = SNAPSHOTS[kind].dump(obj)
    return dumped
