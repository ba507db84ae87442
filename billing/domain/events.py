"""The events other systems hear, and where a webhook delivery of one stands."""

from __future__ import annotations

EVENT_TYPES = (
    "quote.created",
    "quote.expired",
    "invoice.created",
    "invoice.partially_paid",
    "invoice.paid",
    "invoice.voided",
    "invoice.written_off",
    "credit_note.created",
    "payment.recorded",
    "payment.reversed",
    "credit.applied",
    "payment.succeeded",
    "payment.failed",
    "payment.requires_action",
    "payment.processing",
    "payment.returned",
    "refund.succeeded",
    "refund.failed",
    "dispute.created",
    "plan.created",
    "plan.instalment_paid",
    "plan.past_due",
    "plan.completed",
    "plan.cancelled",
    "membership.created",
    "membership.renewed",
    "membership.past_due",
    "membership.cancelled",
    "payment.retry_scheduled",
    "payment.retries_exhausted",
    "booking.cancelled",
    "booking.attendance_marked",
    "webhook_endpoint.disabled",
)
# A payment's status that other systems hear about, and the event they hear.
PAYMENT_EVENTS = {
    "succeeded": "payment.succeeded",
    "failed": "payment.failed",
    "requires_action": "payment.requires_action",
    "processing": "payment.processing",
    "returned": "payment.returned",
}
REFUND_EVENTS = {"succeeded": "refund.succeeded", "failed": "refund.failed"}

PENDING, DELIVERING, DELIVERED, FAILED, ABANDONED = (
    "pending",
    "delivering",
    "succeeded",
    "failed",
    "abandoned",
)
DELIVERY_STATUSES = (PENDING, DELIVERING, DELIVERED, FAILED, ABANDONED)
ENABLED, DISABLED = "enabled", "disabled"
ENDPOINT_STATUSES = (ENABLED, DISABLED)


def retry_delay_seconds(base_seconds: float, attempts: int) -> float:
    """After the `attempts`-th failure: base, then doubling (60 s, 2 min, 4 min, ...)."""
    return float(base_seconds * 2 ** max(0, attempts - 1))
