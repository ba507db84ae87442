"""Quote request (from booking systems) and quote response."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates, validates_schema

from billing.domain.policy import CancellationPolicy
from billing.domain.pricing import CREDITS, PAY_WITH, SESSION_TYPES
from schemas.catalog import CancellationPolicySchema
from schemas.discounts import DiscountSchema, SlidingScaleRequestSchema, discounts_of
from schemas.fields import Computed, Currency, Name, StrictInteger, UtcDateTime, identifier
from schemas.types import typed

# A booking further away than this, either way, is a typo in a date.
SCHEDULE_HORIZON = timedelta(days=366)


class IvExemptionSchema(Schema):
    """A clinician's approval for a patient to start without an IV session."""

    reason = fields.String(
        required=True,
        validate=validate.Regexp(
            r"^[a-z][a-z0-9_]{2,63}$", error="Must be a snake_case reason code."
        ),
        metadata={"example": "difficult_venous_access"},
    )
    approved_by = Name(
        required=True,
        metadata={"example": "Dr. Lee", "description": "the approving clinician; not blank"},
    )


class BookingPatientSchema(Schema):
    patient_id = typed("PatientId", identifier(required=True))
    name = Name(required=True)
    email = fields.Email(validate=validate.Length(max=254))
    prior_iv_sessions = StrictInteger(
        validate=validate.Range(min=0, max=1000),
        metadata={"description": "IV sessions completed before this service existed."},
    )
    iv_exemption = fields.Nested(IvExemptionSchema)
    discount = fields.Nested(SlidingScaleRequestSchema)
    pay_with = fields.String(
        validate=validate.OneOf(PAY_WITH),
        metadata={
            "description": "card (the default): the line is invoiced to be paid; credits: "
            "the patient's package credits pay it (an IV session takes 1 IV credit, a group "
            "seat half of one), held from now until the quote expires."
        },
    )

    @validates_schema
    def _credits_are_not_discounted(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("pay_with") == CREDITS and "discount" in data:
            raise ValidationError("A line paid with credits costs nothing to discount.", "discount")


class QuoteRequestSchema(Schema):
    """A booking to price, as the booking system sends it."""

    booking_id = typed("BookingId", identifier(required=True))
    session_type = typed(
        "SessionType", fields.String(required=True, validate=validate.OneOf(SESSION_TYPES))
    )
    scheduled_at = UtcDateTime(required=True, metadata={"example": "2026-12-03T15:00:00-08:00"})
    currency = Currency(required=True, metadata={"example": "usd"})
    patients = fields.List(
        fields.Nested(BookingPatientSchema),
        required=True,
        validate=validate.Length(max=50, error="At most {max} patients."),
    )
    promotion_code = fields.String(
        validate=validate.Regexp(
            r"^[A-Za-z0-9_-]{2,40}$", error="Must be 2-40 letters, digits, _ or -."
        ),
        metadata={"example": "WINTER25"},
    )

    @validates("scheduled_at")
    def _within_horizon(self, value: datetime, **_: Any) -> None:
        if abs(value - datetime.now(UTC)) > SCHEDULE_HORIZON:
            raise ValidationError("Must be within a year of today.")


class QuoteLineSchema(Schema):
    patient_id = typed("PatientId", fields.String(required=True))
    patient_name = fields.String(required=True)
    description = fields.String(required=True)
    amount = fields.Integer(
        required=True, metadata={"description": "What the patient pays, after discounts."}
    )
    base_amount = fields.Integer(
        required=True,
        allow_none=True,
        metadata={"description": "The session price before discounts (null: none apply)."},
    )
    discounts = Computed("_discounts", DiscountSchema, many=True, required=True)
    iv_exemption = fields.Nested(IvExemptionSchema, required=True, allow_none=True)
    credits_used = fields.Float(
        required=True,
        metadata={"description": "IV credits that pay the line (0.5 for a group seat)."},
    )
    deposit = fields.Integer(
        required=True,
        metadata={
            "description": "What of `amount` the patient pays when booking, as the price "
            "version's cancellation policy asks (0: no deposit); part of the invoice."
        },
    )

    def _discounts(self, line: Any) -> list[dict[str, Any]]:
        return discounts_of(line)


class QuoteSchema(Schema):
    """A binding price for a booking, valid until `expires_at`."""

    id = typed("QuoteId", fields.String(required=True))
    booking_id = typed("BookingId", fields.String(required=True))
    session_type = typed("SessionType", fields.String(required=True))
    currency = Currency(required=True)
    price_version = fields.Integer(required=True)
    scheduled_at = fields.DateTime(required=True)
    created_at = fields.DateTime(required=True)
    expires_at = fields.DateTime(required=True)
    lines = fields.List(fields.Nested(QuoteLineSchema), required=True)
    total = fields.Integer(required=True)
    promotion_code = fields.String(required=True, allow_none=True)
    cancellation_policy = fields.Nested(
        CancellationPolicySchema,
        required=True,
        metadata={"description": "The policy the quote locked, to tell the patient."},
    )


def dump_new_quote(quote: dict[str, Any]) -> dict[str, Any]:
    """`QuoteSchema().dump(quote)` of a quote just made (plain data), written out.

    On the everyday quote's path marshmallow's dump was a tenth of the request's CPU; this
    is a few dict literals. tests/unit/test_quote_dump.py holds it equal to the schema's
    dump, field for field, on generated quotes: a field added to the schema fails it until
    it is added here too."""
    promotion_code = quote["promotion_code"]
    return {
        "id": quote["id"],
        "booking_id": quote["booking_id"],
        "session_type": quote["session_type"],
        "currency": quote["currency"],
        "price_version": quote["price_version"],
        "scheduled_at": quote["scheduled_at"].isoformat(),
        "created_at": quote["created_at"].isoformat(),
        "expires_at": quote["expires_at"].isoformat(),
        "lines": [
            {
                "patient_id": line["patient_id"],
                "patient_name": line["patient_name"],
                "description": line["description"],
                "amount": line["amount"],
                "base_amount": line["base_amount"],
                "discounts": discounts_of(line),
                "iv_exemption": _dumped_exemption(line["iv_exemption"]),
                "credits_used": float(line["credits_used"]),
                "deposit": line["deposit"],
            }
            for line in quote["lines"]
        ],
        "total": quote["total"],
        "promotion_code": promotion_code,
        "cancellation_policy": _dumped_policy(quote["cancellation_policy"]),
    }


def _dumped_exemption(exemption: dict[str, str] | None) -> dict[str, str] | None:
    if exemption is None:
        return None
    return {"reason": exemption["reason"], "approved_by": exemption["approved_by"]}


@lru_cache(maxsize=64)
def _dumped_policy(policy: CancellationPolicy) -> dict[str, Any]:
    """A price version's policy, dumped once (policies are frozen); read, never changed."""
    dumped: dict[str, Any] = CancellationPolicySchema().dump(policy)
    return dumped


class QuotePathSchema(Schema):
    quote_id = fields.String(required=True)
