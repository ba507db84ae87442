"""Invoices, payments, refunds and saved cards."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from billing.statuses import INVOICE_STATUSES
from schemas.fields import amount, identifier


class InvoiceRequestSchema(Schema):
    quote_id = fields.String(required=True, validate=validate.Length(min=1, max=64))


class InvoiceLineSchema(Schema):
    description = fields.String()
    session_type = fields.String()
    amount = fields.Integer()


class InvoiceSchema(Schema):
    """One patient's bill; `amount_paid` and `amount_refunded` come from the ledger."""

    id = fields.String()
    number = fields.String(metadata={"example": "2026-000123"})
    status = fields.String(metadata={"enum": list(INVOICE_STATUSES)})
    quote_id = fields.String()
    booking_id = fields.String()
    patient_id = fields.String()
    patient_name = fields.String()
    session_type = fields.String()
    scheduled_at = fields.DateTime()
    currency = fields.String()
    total = fields.Integer()
    amount_paid = fields.Integer()
    amount_refunded = fields.Integer()
    lines = fields.List(fields.Nested(InvoiceLineSchema))
    created_at = fields.DateTime()
    voided_at = fields.DateTime(allow_none=True)
    disputed_at = fields.DateTime(allow_none=True)


class InvoiceListSchema(Schema):
    data = fields.List(fields.Nested(InvoiceSchema))
    has_more = fields.Boolean()


class InvoiceQuerySchema(Schema):
    status = fields.String(validate=validate.OneOf(INVOICE_STATUSES))
    patient_id = identifier()
    booking_id = identifier()
    created_gte = fields.AwareDateTime()
    created_lt = fields.AwareDateTime()
    # Query strings carry text: a plain Integer parses "50"; the range keeps it sane.
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))
    starting_after = fields.String(validate=validate.Length(min=1, max=64))


class InvoicePathSchema(Schema):
    invoice_id = fields.String(required=True)


class PaymentRequestSchema(Schema):
    method = fields.String(required=True, validate=validate.OneOf(["card_on_file", "online"]))


class NextActionSchema(Schema):
    type = fields.String(metadata={"example": "authenticate"})
    client_secret = fields.String()


class PaymentSchema(Schema):
    """One attempt to collect an invoice."""

    id = fields.String()
    invoice_id = fields.String()
    method = fields.String()
    status = fields.String(
        metadata={
            "enum": [
                "pending",
                "unknown",
                "requires_action",
                "processing",
                "awaiting_patient",
                "succeeded",
                "failed",
                "canceled",
            ]
        }
    )
    amount = fields.Integer()
    currency = fields.String()
    card_brand = fields.String(allow_none=True)
    card_last4 = fields.String(allow_none=True)
    failure_code = fields.String(allow_none=True)
    failure_message = fields.String(allow_none=True)
    next_action = fields.Method("_next_action", allow_none=True)
    invoice_status = fields.String(attribute="invoice.status")
    created_at = fields.DateTime()
    paid_at = fields.DateTime(allow_none=True)
    pay_url = fields.String(metadata={"description": "method online: the patient's pay link"})
    pay_url_expires_at = fields.DateTime()

    def _next_action(self, payment: object) -> dict[str, str] | None:
        if getattr(payment, "status", None) != "requires_action":
            return None
        return {"type": "authenticate", "client_secret": getattr(payment, "client_secret", "")}


class RefundRequestSchema(Schema):
    amount = amount(required=True, metadata={"example": 10000})
    reason = fields.String(required=True, validate=validate.Length(min=1, max=500))


class RefundSchema(Schema):
    id = fields.String()
    invoice_id = fields.String()
    payment_id = fields.String()
    amount = fields.Integer()
    currency = fields.String()
    reason = fields.String()
    kind = fields.String(
        metadata={
            "enum": ["requested", "overpayment", "external"],
            "description": "requested by staff; overpayment: money collected beyond the "
            "invoice, given back automatically; external: made in Stripe's dashboard",
        }
    )
    status = fields.String(metadata={"enum": ["pending", "unknown", "succeeded", "failed"]})
    failure_code = fields.String(allow_none=True)
    failure_message = fields.String(allow_none=True)
    invoice_status = fields.String(attribute="invoice.status")
    created_at = fields.DateTime()


class PatientPathSchema(Schema):
    patient_id = identifier(required=True)


class SetupIntentSchema(Schema):
    patient_id = fields.String()
    client_secret = fields.String()


class PaymentMethodRequestSchema(Schema):
    payment_method = fields.String(
        required=True,
        validate=validate.Regexp(r"^pm_[A-Za-z0-9_]{1,250}$", error="Must be a pm_... id."),
        metadata={"example": "pm_card_visa"},
    )


class CardSchema(Schema):
    """A saved card: never more than brand, last four digits and expiry."""

    id = fields.String()
    brand = fields.String()
    last4 = fields.String()
    exp_month = fields.Integer()
    exp_year = fields.Integer()
    default = fields.Boolean()


class CardListSchema(Schema):
    data = fields.List(fields.Nested(CardSchema))
    has_more = fields.Boolean()
