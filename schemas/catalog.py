"""The price catalogue and new price versions."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from billing.domain.money import STRIPE_MINIMUM_CHARGE, Money
from billing.domain.policy import DEPOSIT_FOR, CancellationPolicy, DepositRule, Fee
from billing.domain.pricing import (
    DESCRIPTIONS,
    IM_GROUP,
    PATIENTS_PER_SESSION,
    SESSION_TYPES,
    session_price,
)
from schemas.fields import Computed, Currency, StrictInteger, UtcDateTime, amount
from schemas.types import typed


class FeeSchema(Schema):
    """A fee: a percentage of the line, or a fixed amount; never more than the line."""

    percent = fields.Integer(
        required=True, allow_none=True, metadata={"description": "Of the line, 0 to 100."}
    )
    amount = fields.Integer(
        required=True, allow_none=True, metadata={"description": "In the minor unit."}
    )


class DepositSchema(Schema):
    """Part of a session's price paid when booking: a percentage of the line or an amount."""

    percent = fields.Integer(
        attribute="fee.percent",
        required=True,
        allow_none=True,
        metadata={"description": "Of the line."},
    )
    amount = fields.Integer(
        attribute="fee.amount",
        required=True,
        allow_none=True,
        metadata={"description": "In the minor unit; never more than the line."},
    )
    applies_to = typed("DepositFor", fields.String(required=True))
    no_shows = fields.Integer(
        required=True,
        metadata={"description": "applies_to no_shows: this many no-shows in 12 months or more."},
    )


class CancellationPolicySchema(Schema):
    """What cancelling late or missing a session costs, as this price version sets it,
    and the deposit it asks when booking (null: none)."""

    notice_hours = fields.Integer(
        required=True,
        metadata={"description": "Cancelled by the patient with less notice than this is late."},
    )
    late_cancellation_fee = fields.Nested(FeeSchema, attribute="late_cancellation", required=True)
    no_show_fee = fields.Nested(FeeSchema, attribute="no_show", required=True)
    deposit = fields.Nested(DepositSchema, required=True, allow_none=True)


class FeeRequestSchema(Schema):
    """Exactly one of `percent` (of the line) and `amount` (minor units)."""

    percent = StrictInteger(validate=validate.Range(min=0, max=100))
    amount = amount()

    @validates_schema
    def _one_of(self, data: dict[str, Any], **_: Any) -> None:
        if len(data) != 1:
            raise ValidationError("Give exactly one of `percent` and `amount`.", "percent")

    @post_load
    def _fee(self, data: dict[str, Any], **_: Any) -> Fee:
        return Fee(percent=data.get("percent"), amount=data.get("amount"))


class DepositRequestSchema(Schema):
    """Exactly one of `percent` (of the line) and `amount` (minor units), and who is asked:
    `everyone`, `new_patients` (no IV session before) or `no_shows` (at least `no_shows`
    no-shows in the last 12 months, 1 by default)."""

    percent = StrictInteger(validate=validate.Range(min=1, max=100))
    amount = amount()
    applies_to = typed(
        "DepositFor", fields.String(required=True, validate=validate.OneOf(DEPOSIT_FOR))
    )
    no_shows = StrictInteger(validate=validate.Range(min=1, max=100))

    @validates_schema
    def _one_of(self, data: dict[str, Any], **_: Any) -> None:
        if ("percent" in data) == ("amount" in data):
            raise ValidationError("Give exactly one of `percent` and `amount`.", "percent")
        if "no_shows" in data and data.get("applies_to") != "no_shows":
            raise ValidationError("Only a deposit for no_shows counts them.", "no_shows")

    @post_load
    def _rule(self, data: dict[str, Any], **_: Any) -> DepositRule:
        return DepositRule(
            Fee(percent=data.get("percent"), amount=data.get("amount")),
            data["applies_to"],
            data.get("no_shows", 1),
        )


class CancellationPolicyRequestSchema(Schema):
    notice_hours = StrictInteger(required=True, validate=validate.Range(min=0, max=24 * 30))
    late_cancellation_fee = fields.Nested(FeeRequestSchema, required=True)
    no_show_fee = fields.Nested(FeeRequestSchema, required=True)
    deposit = fields.Nested(
        DepositRequestSchema,
        metadata={"description": "Omitted: no deposit is asked when booking."},
    )

    @post_load
    def _policy(self, data: dict[str, Any], **_: Any) -> CancellationPolicy:
        return CancellationPolicy(
            notice_hours=data["notice_hours"],
            late_cancellation=data["late_cancellation_fee"],
            no_show=data["no_show_fee"],
            deposit=data.get("deposit"),
        )


class CatalogSessionTypeSchema(Schema):
    """A session type and how many patients it takes."""

    session_type = typed("SessionType", fields.String(required=True))
    description = fields.String(required=True)
    patients_min = fields.Integer(required=True)
    patients_max = fields.Integer(required=True)


class PriceVersionSchema(Schema):
    """One price version: P for IV individual, and the group IM price derived from it."""

    price_version = fields.Integer(attribute="version", required=True)
    currency = Currency(required=True)
    iv_individual_amount = fields.Integer(required=True)
    im_group_amount = fields.Method("_group_amount", required=True, metadata={"type": "integer"})
    effective_at = fields.DateTime(required=True)
    created_at = fields.DateTime(required=True)
    cancellation_policy = fields.Nested(CancellationPolicySchema, attribute="policy", required=True)

    def _group_amount(self, price: object) -> int:
        return session_price(IM_GROUP, price.iv_individual).amount  # type: ignore[attr-defined]  # a Price


class CatalogSchema(Schema):
    """Session types and, per currency, the price in force and any announced change."""

    session_types = Computed("_session_types", CatalogSessionTypeSchema, many=True, required=True)
    prices = fields.List(fields.Nested(PriceVersionSchema), attribute="current", required=True)
    upcoming = fields.List(fields.Nested(PriceVersionSchema), required=True)

    def _session_types(self, _catalog: object) -> list[dict[str, object]]:
        return [
            {
                "session_type": session_type,
                "description": DESCRIPTIONS[session_type],
                "patients_min": PATIENTS_PER_SESSION[session_type][0],
                "patients_max": PATIENTS_PER_SESSION[session_type][1],
            }
            for session_type in SESSION_TYPES
        ]


class PriceVersionRequestSchema(Schema):
    """A new IV individual price P; the group price follows from it."""

    iv_individual_amount = amount(required=True, metadata={"example": 52000})
    currency = Currency(required=True, metadata={"example": "usd"})
    effective_at = UtcDateTime(
        metadata={"description": "When the price takes effect; omitted means now."}
    )
    cancellation_policy = fields.Nested(
        CancellationPolicyRequestSchema,
        metadata={
            "description": "Omitted: the policy of the currency's latest version (for a new "
            "currency 48 hours' notice, a 50% late-cancellation fee, no no-show fee)."
        },
    )

    @validates_schema
    def _chargeable(self, data: dict[str, Any], **_: Any) -> None:
        """Stripe refuses charges below its minimum: so is a price whose group half is."""
        if "iv_individual_amount" not in data or "currency" not in data:
            return
        price = Money(data["iv_individual_amount"], data["currency"])
        minimum = Money(STRIPE_MINIMUM_CHARGE.get(price.currency, 1), price.currency)
        if session_price(IM_GROUP, price) < minimum:
            raise ValidationError(
                f"The group price (half of this) would be below Stripe's minimum charge of "
                f"{minimum.format()}; the price must be at least {(minimum * 2).amount - 1}.",
                "iv_individual_amount",
            )


class PromotionRequestSchema(Schema):
    """A promotion code: `percent_off`, or `amount_off` in `currency`, between two times."""

    code = fields.String(
        required=True,
        validate=validate.Regexp(r"^[A-Za-z0-9_-]{2,40}$", error="2-40 letters, digits, _ or -."),
        metadata={"example": "WINTER25", "description": "Matched without regard to case."},
    )
    percent_off = StrictInteger(validate=validate.Range(min=1, max=100))
    amount_off = amount()
    currency = Currency()
    starts_at = UtcDateTime(required=True)
    ends_at = UtcDateTime(required=True)
    max_redemptions = StrictInteger(validate=validate.Range(min=1, max=1_000_000))
    max_per_patient = StrictInteger(validate=validate.Range(min=1, max=1000))

    @validates_schema
    def _terms(self, data: dict[str, Any], **_: Any) -> None:
        if ("percent_off" in data) == ("amount_off" in data):
            raise ValidationError(
                "Give exactly one of `percent_off` and `amount_off`.", "percent_off"
            )
        if "amount_off" in data and "currency" not in data:
            raise ValidationError("An amount off needs its currency.", "currency")
        if "percent_off" in data and "currency" in data:
            raise ValidationError(
                "A percentage applies in any currency: no `currency`.", "currency"
            )
        if "starts_at" in data and "ends_at" in data and data["ends_at"] <= data["starts_at"]:
            raise ValidationError("Must be after `starts_at`.", "ends_at")


class PromotionSchema(Schema):
    id = typed("PromotionId", fields.String(required=True))
    code = fields.String(required=True)
    percent_off = fields.Integer(required=True, allow_none=True)
    amount_off = fields.Integer(required=True, allow_none=True)
    currency = Currency(required=True, allow_none=True)
    starts_at = fields.DateTime(required=True)
    ends_at = fields.DateTime(required=True)
    max_redemptions = fields.Integer(required=True, allow_none=True)
    max_per_patient = fields.Integer(required=True, allow_none=True)
    created_at = fields.DateTime(required=True)


class PromotionListSchema(Schema):
    data = fields.List(fields.Nested(PromotionSchema), required=True)
    has_more = fields.Boolean(required=True)
