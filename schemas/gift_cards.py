"""Gift cards: sold as an invoice, spent by code."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from billing.domain.money import STRIPE_MINIMUM_CHARGE, Money
from schemas.fields import Currency, Name, UtcDateTime, amount, identifier
from schemas.invoices import InvoiceSchema
from schemas.types import typed


class GiftCardRequestSchema(Schema):
    amount = amount(
        required=True, metadata={"description": "Its value, in minor units.", "example": 10000}
    )
    currency = Currency(required=True)
    purchaser_patient_id = typed("PatientId", identifier(required=True))
    name = Name(
        metadata={"description": "The buyer's, for the invoice; required for a new patient."}
    )
    email = fields.Email(validate=validate.Length(max=254))
    expires_at = UtcDateTime(
        metadata={
            "description": "When it stops being usable; none by default (many places do not "
            "allow gift cards to expire: set it only where the law allows)."
        }
    )

    @validates_schema
    def _payable_by_card(self, data: dict[str, Any], **_: Any) -> None:
        least = STRIPE_MINIMUM_CHARGE.get(data.get("currency", ""), 0)
        if data.get("amount", least) < least:
            shown = Money(least, data["currency"]).format()
            raise ValidationError(f"At least {shown}, the least a card can pay.", "amount")


class GiftCardPathSchema(Schema):
    code = fields.String(
        required=True,
        validate=validate.Regexp(r"^[A-Za-z0-9 -]{12,24}$", error="A gift card's code."),
        metadata={"example": "GC-7KQ2-M9XD-4TWA"},
    )


class GiftCardSchema(Schema):
    """A gift card: what is left on it, and whether it can be spent."""

    id = typed("GiftCardId", fields.String(required=True))
    code = fields.String(
        allow_none=True,
        metadata={
            "description": "Only in the answer that sold it: the code is not kept, and "
            "cannot be shown again. Give it to the buyer.",
            "example": "GC-7KQ2-M9XD-4TWA",
        },
    )
    last4 = fields.String(required=True, metadata={"description": "The code's last four."})
    status = typed("GiftCardStatus", fields.String(required=True))
    amount = fields.Integer(required=True)
    balance = fields.Integer(required=True, metadata={"description": "What is left to spend."})
    currency = Currency(required=True)
    purchaser_patient_id = typed("PatientId", fields.String(required=True))
    invoice_id = typed("InvoiceId", fields.String(required=True))
    invoice = fields.Nested(InvoiceSchema, required=True)
    expires_at = fields.DateTime(required=True, allow_none=True)
    created_at = fields.DateTime(required=True)
