"""Packages in the catalogue, those sold to patients, their credits and refunds of them."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from billing.domain.money import STRIPE_MINIMUM_CHARGE, Money
from schemas.fields import Currency, Name, StrictInteger, Text, amount, identifier
from schemas.invoices import InvoiceSchema, RefundSchema
from schemas.types import typed


class PackageRequestSchema(Schema):
    """A package of IV credits; a code given again makes its next version."""

    code = fields.String(
        required=True,
        validate=validate.Regexp(r"^[A-Za-z0-9_-]{2,40}$", error="2-40 letters, digits, _ or -."),
        metadata={"example": "INDUCTION6", "description": "Matched without regard to case."},
    )
    name = Name(required=True, metadata={"example": "Induction series: 6 IV infusions"})
    iv_credits = StrictInteger(
        required=True,
        validate=validate.Range(min=1, max=100),
        metadata={"description": "Each pays one IV session or two group IM seats."},
    )
    amount = amount(required=True, metadata={"example": 270000})
    currency = Currency(required=True, metadata={"example": "usd"})
    valid_days = StrictInteger(
        required=True,
        validate=validate.Range(min=1, max=1096),
        metadata={"description": "How long the credits last, from the day it is paid."},
    )

    @validates_schema
    def _chargeable(self, data: dict[str, Any], **_: Any) -> None:
        if "amount" in data and "currency" in data:
            minimum = Money(STRIPE_MINIMUM_CHARGE.get(data["currency"], 1), data["currency"])
            if Money(data["amount"], data["currency"]) < minimum:
                raise ValidationError(
                    f"Must be at least Stripe's minimum charge, {minimum.format()}.", "amount"
                )


class PackageSchema(Schema):
    id = typed("PackageId", fields.String(required=True))
    code = fields.String(required=True)
    version = fields.Integer(required=True)
    name = fields.String(required=True)
    iv_credits = fields.Integer(required=True)
    amount = fields.Integer(required=True)
    currency = Currency(required=True)
    valid_days = fields.Integer(required=True)
    created_at = fields.DateTime(required=True)
    retired_at = fields.DateTime(
        required=True,
        allow_none=True,
        metadata={"description": "When a newer version replaced it."},
    )


class PackageListSchema(Schema):
    data = fields.List(fields.Nested(PackageSchema), required=True)
    has_more = fields.Boolean(required=True)


class SellPackageRequestSchema(Schema):
    code = fields.String(
        required=True,
        validate=validate.Regexp(r"^[A-Za-z0-9_-]{2,40}$", error="2-40 letters, digits, _ or -."),
    )
    name = Name(metadata={"description": "For the invoice; omitted: as the last quote had it."})
    email = fields.Email(validate=validate.Length(max=254))


class CreditBalanceSchema(Schema):
    """A package's credits, in IV credits (0.5 is a group seat); they always add up to
    `total`."""

    total = fields.Float(required=True)
    available = fields.Float(required=True)
    reserved = fields.Float(required=True, metadata={"description": "Held by quotes."})
    used = fields.Float(required=True)
    refunded = fields.Float(required=True)
    expired = fields.Float(required=True)
    withdrawn = fields.Float(
        required=True,
        metadata={"description": "Its money left by another way than a refund of credits."},
    )


class PatientPackageSchema(Schema):
    """A package sold to a patient: its invoice, and its credits once that is paid."""

    id = typed("PatientPackageId", fields.String(required=True))
    patient_id = typed("PatientId", fields.String(required=True))
    code = fields.String(required=True)
    name = fields.String(required=True)
    status = typed("PackageStatus", fields.String(required=True))
    iv_credits = fields.Float(required=True)
    amount = fields.Integer(required=True)
    currency = Currency(required=True)
    invoice_id = typed("InvoiceId", fields.String(required=True))
    invoice = fields.Nested(InvoiceSchema, required=True)
    sold_at = fields.DateTime(required=True)
    paid_at = fields.DateTime(required=True, allow_none=True)
    expires_at = fields.DateTime(required=True, allow_none=True)
    credits = fields.Nested(CreditBalanceSchema, required=True)


class CreditMovementSchema(Schema):
    """One change of the balance; their `credits` add up to what is available."""

    kind = typed("CreditMovementKind", fields.String(required=True))
    at = fields.DateTime(required=True)
    credits = fields.Float(required=True, metadata={"description": "+ in, - out; used: 0."})
    patient_package_id = typed("PatientPackageId", fields.String(required=True))
    quote_id = typed("QuoteId", fields.String(required=True, allow_none=True))
    invoice_id = typed("InvoiceId", fields.String(required=True, allow_none=True))
    amount = fields.Integer(
        required=True, allow_none=True, metadata={"description": "refunded: the money."}
    )
    currency = Currency(required=True, allow_none=True)


class CreditsSchema(Schema):
    patient_id = typed("PatientId", fields.String(required=True))
    as_of = fields.DateTime(required=True)
    available = fields.Float(required=True, metadata={"description": "IV credits to use now."})
    reserved = fields.Float(required=True)
    next_expiry = fields.DateTime(
        required=True,
        allow_none=True,
        metadata={"description": "When the soonest of the available credits expire."},
    )
    packages = fields.List(fields.Nested(PatientPackageSchema), required=True)
    movements = fields.List(fields.Nested(CreditMovementSchema), required=True)


class PatientPackagePathSchema(Schema):
    patient_id = typed("PatientId", identifier(required=True))
    package_id = fields.String(required=True, validate=validate.Length(min=1, max=64))


class CreditRefundRequestSchema(Schema):
    reason = Text(500, required=True, metadata={"example": "moving away"})


class CreditRefundSchema(Schema):
    """Unused credits given back as their share of what the package was paid."""

    id = typed("CreditRefundId", fields.String(required=True))
    patient_package_id = typed("PatientPackageId", fields.String(required=True))
    credits = fields.Float(required=True)
    amount = fields.Integer(required=True)
    currency = Currency(required=True)
    reason = fields.String(required=True)
    refund = fields.Nested(
        RefundSchema,
        required=True,
        allow_none=True,
        metadata={"description": "The refund at Stripe; null until it has been sent."},
    )
    created_at = fields.DateTime(required=True)
