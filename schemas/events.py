"""Events for other systems, the webhook endpoints that hear them, and their deliveries."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates

from billing.domain.events import EVENT_TYPES
from schemas.bookings import BookingSchema
from schemas.invoices import AdjustmentSchema, InvoiceSchema, PaymentSchema, RefundSchema
from schemas.memberships import MembershipSchema
from schemas.plans import PlanSchema, ScheduledChargeSchema
from schemas.quotes import QuoteSchema
from schemas.types import typed


class EventSchema(Schema):
    """A change, with the resource as the API showed it right after the change, less what
    events leave out (`WITHHELD`)."""

    id = typed("EventId", fields.String(attribute="public_id", required=True))
    type = typed("EventType", fields.String(required=True))
    created_at = fields.DateTime(required=True)
    data = fields.Dict(
        keys=fields.String(),
        required=True,
        metadata={
            "description": "`object`: the quote, invoice, payment, refund, dispute, booking "
            "or webhook endpoint, as its own endpoint shows it, less patients' names, IV "
            "exemptions, discounts' reasons and approvers, a payment's client secret and "
            "an endpoint's URL: read those through the resource's own endpoint.",
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
    """Dumps an endpoint just made with its secret (the row keeps only the sealed one)."""

    secret = fields.String(
        required=True,
        metadata={"description": "Shown once: verify `Billing-Signature` with it."},
    )

    def get_attribute(self, obj: Any, attr: str, default: Any) -> Any:
        return super().get_attribute(obj if attr == "secret" else obj.endpoint, attr, default)


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
    "credit_note": AdjustmentSchema(),
    "refund": RefundSchema(),
    "dispute": DisputeSchema(),
    "webhook_endpoint": WebhookEndpointSchema(),
    "booking": BookingSchema(),
    "plan": PlanSchema(),
    "scheduled_charge": ScheduledChargeSchema(),
    "membership": MembershipSchema(),
}


def snapshot(kind: str, obj: Any) -> dict[str, Any]:
    """The resource as its own endpoint shows it (`event_object` makes an event's of it)."""
    dumped: dict[str, Any] = SNAPSHOTS[kind].dump(obj)
    return dumped


# What an event's `data.object` leaves out of the resource as its own endpoint shows it
# (paths; `*`: each item of a list). Every events:read key and every subscribed endpoint
# receives every event, so events carry what a booking system acts on (ids, statuses,
# amounts, times), not people's names, health information or who approved what and why;
# those stay behind their own endpoints and scopes. Per event type:
#   quote.created, quote.expired: the quote and its lines by patient id; no patient names,
#     IV exemptions (reason, approving clinician), or discounts' reasons and approvers
#   invoice.created, invoice.paid, invoice.voided: the invoice; no patient name, nor its
#     lines' discounts' reasons and approvers
#   invoice.partially_paid, invoice.written_off: the invoice, as for invoice.paid
#   credit_note.created: the credit note and its invoice; not its reason, who approved
#     it or which key made it, nor the invoice's patient name
#   credit.applied: the payment (method account_credit), as for payment.recorded
#   payment.succeeded, payment.failed, payment.requires_action, payment.processing,
#     payment.returned, payment.recorded, payment.reversed: the payment; not the client
#     secret that completes 3-D Secure, a pay link, who recorded money received at the
#     desk, nor why it was reversed
#   refund.succeeded, refund.failed: the refund as its endpoint shows it
#   dispute.created: the dispute as its endpoint shows it
#   booking.cancelled, booking.attendance_marked: the booking and its seats; its invoices
#     and fees as invoice events show them
#   plan.created, plan.instalment_paid, plan.past_due, plan.completed, plan.cancelled: the
#     plan and its instalments; not the consent (its words, the patient's address and
#     browser), which its invoice's endpoint shows
#   membership.created, membership.renewed (a period paid), membership.past_due (a
#     period's fee given up), membership.cancelled (at the period's end, now, or unpaid):
#     the membership, its benefit and periods; not the consent, as for plans
#   payment.retry_scheduled, payment.retries_exhausted: the scheduled charge (an
#     instalment, an AutoPay charge, a membership's fee): its status, attempts, decline
#     code and next attempt
#   webhook_endpoint.disabled: the endpoint's id, events and state; not its URL or
#     description (another client's endpoint is not every reader's business)
_DISCOUNT_NOTES = ("discounts.*.reason", "discounts.*.approved_by")
_INVOICE = (
    "patient_name",
    "plan.consent",
    *(f"lines.*.{path}" for path in _DISCOUNT_NOTES),
)
WITHHELD: dict[str, tuple[str, ...]] = {
    "quote": (
        "lines.*.patient_name",
        "lines.*.iv_exemption",
        *(f"lines.*.{path}" for path in _DISCOUNT_NOTES),
    ),
    "invoice": _INVOICE,
    "payment": (
        "next_action.client_secret",
        "pay_url",
        "pay_url_expires_at",
        "recorded_by",
        "reversal_reason",
    ),
    "credit_note": (
        "reason",
        "approved_by",
        "created_by",
        *(f"invoice.{path}" for path in _INVOICE),
    ),
    "refund": (),
    "dispute": (),
    "booking": (
        *(f"{part}.*.{path}" for part in ("invoices", "fees") for path in _INVOICE),
        "patients.*.fee_exempt_reason",  # says something of the patient's coverage
    ),
    "webhook_endpoint": ("url", "description"),
    "plan": ("consent",),
    "scheduled_charge": (),
    "membership": ("consent",),
}


def _tree(paths: tuple[str, ...]) -> dict[str, Any]:
    """`("lines.*.a", "lines.*.b")` as `{"lines": {"*": {"a": None, "b": None}}}`."""
    tree: dict[str, Any] = {}
    for path in paths:
        *parents, leaf = path.split(".")
        node = tree
        for name in parents:
            node = node.setdefault(name, {})
        node[leaf] = None
    return tree


_TREES = {kind: _tree(paths) for kind, paths in WITHHELD.items()}


def event_object(kind: str, shown: dict[str, Any]) -> dict[str, Any]:
    """An event's `data.object`: the resource as its endpoint shows it (`shown`, left as it
    is), less what `WITHHELD` names for its kind."""
    pruned: dict[str, Any] = _pruned(shown, _TREES[kind])
    return pruned


def _pruned(value: Any, tree: dict[str, Any]) -> Any:
    """A copy of `value` without the members `tree` names (None: the member goes)."""
    if "*" in tree:
        return [_pruned(item, tree["*"]) for item in value] if isinstance(value, list) else value
    if not tree or not isinstance(value, dict):
        return value
    return {
        key: member if key not in tree else _pruned(member, tree[key])
        for key, member in value.items()
        if key not in tree or tree[key] is not None
    }
