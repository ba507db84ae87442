"""Memberships in the catalogue, a patient's membership, and what is asked of one."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from billing.domain import memberships as rules
from billing.domain.money import STRIPE_MINIMUM_CHARGE, Money
from schemas.fields import Computed, Currency, Name, StrictInteger
from schemas.fields import amount as minor_units
from schemas.plans import WITHIN_REACH, PlanCardSchema, PlanConsentSchema, PlanConsentShownSchema
from schemas.types import typed

CODE = validate.Regexp(r"^[A-Za-z0-9_-]{2,40}$", error="2-40 letters, digits, _ or -.")


class MembershipPlanRequestSchema(Schema):
    """A membership: a fee each month or year and one benefit. A code given again makes its
    next version: new members join it, members keep the version they joined."""

    code = fields.String(
        required=True,
        validate=CODE,
        metadata={"example": "MAINTAIN", "description": "Matched without regard to case."},
    )
    name = Name(required=True, metadata={"example": "Maintenance"})
    interval = typed(
        "MembershipInterval",
        fields.String(required=True, validate=validate.OneOf(rules.INTERVALS)),
    )
    amount = minor_units(required=True, metadata={"example": 9900, "description": "Each period."})
    currency = Currency(required=True, metadata={"example": "usd"})
    percent_off = StrictInteger(
        validate=validate.Range(min=1, max=90),
        metadata={"description": "Sessions cost this percent less (a member's P)."},
    )
    iv_price = minor_units(
        metadata={"description": "A member's P: an IV session's price (a group seat: half)."},
    )
    included_iv_credits = fields.Float(
        validate=validate.Range(min=0.5, max=100),
        metadata={
            "description": "IV credits each period includes (0.5 is a group seat), usable "
            "until the period ends."
        },
    )

    @validates_schema
    def _sound(self, data: dict[str, Any], **_: Any) -> None:
        given = [name for name in rules.BENEFITS if data.get(name) is not None]
        if len(given) != 1:
            raise ValidationError(
                "Name exactly one benefit: percent_off, iv_price or included_iv_credits.",
                given[1] if given else "percent_off",
            )
        if data.get("iv_price") is not None and data["iv_price"] < 100:
            raise ValidationError("Must be at least 100 (a group seat costs half).", "iv_price")
        credits = data.get("included_iv_credits")
        if credits is not None and (credits * 2) != int(credits * 2):
            raise ValidationError("Must be a whole or half credit.", "included_iv_credits")
        if "amount" in data and "currency" in data:
            minimum = Money(STRIPE_MINIMUM_CHARGE.get(data["currency"], 1), data["currency"])
            if Money(data["amount"], data["currency"]) < minimum:
                raise ValidationError(
                    f"Must be at least Stripe's minimum charge, {minimum.format()}.", "amount"
                )


def _benefit_figures(offered: Any) -> dict[str, Any]:
    value = offered.benefit_value
    return {
        "percent_off": value if offered.benefit == rules.PERCENT_OFF else None,
        "iv_price": value if offered.benefit == rules.IV_PRICE else None,
        "included_iv_credits": value / 2 if offered.benefit == rules.INCLUDED_CREDITS else None,
    }


class MembershipBenefitSchema(Schema):
    kind = typed("MembershipBenefitKind", fields.String(required=True, attribute="benefit"))
    percent_off = fields.Integer(required=True, allow_none=True)
    iv_price = fields.Integer(required=True, allow_none=True)
    included_iv_credits = fields.Float(required=True, allow_none=True)


class MembershipPlanSchema(Schema):
    id = typed("MembershipPlanId", fields.String(required=True))
    code = fields.String(required=True)
    version = fields.Integer(required=True)
    name = fields.String(required=True)
    interval = typed("MembershipInterval", fields.String(required=True))
    amount = fields.Integer(required=True)
    currency = Currency(required=True)
    benefit = Computed("_benefit", MembershipBenefitSchema, required=True)
    created_at = fields.DateTime(required=True)
    retired_at = fields.DateTime(
        required=True,
        allow_none=True,
        metadata={"description": "When a newer version replaced it."},
    )

    def _benefit(self, offered: Any) -> dict[str, Any]:
        return {"benefit": offered.benefit, **_benefit_figures(offered)}


class MembershipPlanListSchema(Schema):
    data = fields.List(fields.Nested(MembershipPlanSchema), required=True)
    has_more = fields.Boolean(required=True)


class JoinRequestSchema(Schema):
    """The patient joins the current version of a membership, charged to a saved card."""

    code = fields.String(required=True, validate=CODE)
    payment_method = typed(
        "PaymentMethodId",
        fields.String(
            required=True,
            validate=validate.Regexp(r"^pm_[A-Za-z0-9_]{1,250}$", error="Must be a pm_... id."),
            metadata={"description": "A card saved for the patient."},
        ),
    )
    starts_at = fields.Date(
        validate=WITHIN_REACH,
        metadata={"description": "The clinic's day it starts (today, by default, or later)."},
    )
    consent = fields.Nested(PlanConsentSchema, load_default=dict)
    name = Name(metadata={"description": "For its invoices; omitted: as the last quote had it."})
    email = fields.Email(validate=validate.Length(max=254))


class CancelRequestSchema(Schema):
    at = fields.String(
        load_default="period_end",
        validate=validate.OneOf(["period_end", "now"]),
        metadata={
            "description": "period_end: its benefits hold to the end of the period paid for, "
            "and nothing more is charged; now: they end today."
        },
    )
    refund = fields.String(
        validate=validate.OneOf([rules.PRORATED, rules.NO_REFUND]),
        metadata={
            "description": "Cancelling now: prorated gives back the unused days of the period "
            "paid for (nothing when a credit it included was used or is held); none gives "
            "nothing back. By default prorated for a membership made with "
            "MEMBERSHIP_PRORATION=on, else none."
        },
    )
    reason = fields.String(validate=validate.Length(min=1, max=300))


class PauseRequestSchema(Schema):
    resumes_at = fields.Date(
        required=True,
        validate=WITHIN_REACH,
        metadata={
            "description": "The clinic's day it resumes: no charges and no benefits from the "
            "end of the period paid for until then; periods start again from that day."
        },
    )


class MembershipPeriodSchema(Schema):
    number = fields.Integer(required=True)
    starts_at = fields.Date(required=True, attribute="starts_on")
    ends_at = fields.Date(required=True, metadata={"description": "Its last day (the clinic's)."})
    amount = fields.Integer(required=True)
    invoice_id = typed("InvoiceId", fields.String(required=True))
    included_iv_credits = fields.Float(required=True)


class MembershipSchema(Schema):
    """A patient's membership: its version's fee and benefit, its periods, and what it
    charges next."""

    id = typed("MembershipId", fields.String(required=True))
    patient_id = typed("PatientId", fields.String(required=True))
    status = typed("MembershipStatus", fields.String(required=True))
    code = fields.String(required=True, attribute="plan.code")
    name = fields.String(required=True, attribute="plan.name")
    version = fields.Integer(required=True, attribute="plan.version")
    interval = typed("MembershipInterval", fields.String(required=True, attribute="plan.interval"))
    amount = fields.Integer(required=True, attribute="plan.amount")
    currency = Currency(required=True, attribute="plan.currency")
    benefit = Computed("_benefit", MembershipBenefitSchema, required=True)
    prorated = fields.Boolean(required=True)
    starts_at = fields.Date(required=True, attribute="starts_on")
    ends_at = fields.Date(
        required=True,
        allow_none=True,
        attribute="ends_on",
        metadata={"description": "Its last day, once cancelled (or cancelling)."},
    )
    paused_from = fields.Date(required=True, allow_none=True)
    resumes_at = fields.Date(required=True, allow_none=True, attribute="resumes_on")
    next_charge_at = fields.Method(
        "_next_charge",
        required=True,
        allow_none=True,
        metadata={
            "type": "string",
            "format": "date",
            "nullable": True,
            "description": "The clinic's day its next period begins and is charged (none "
            "once it is cancelled or ending).",
        },
    )
    payment_method = Computed("_card", PlanCardSchema, required=True)
    consent = Computed("_consent", PlanConsentShownSchema, required=True)
    periods = Computed("_periods", MembershipPeriodSchema, many=True, required=True)
    cancelled_at = fields.DateTime(required=True, allow_none=True)
    created_at = fields.DateTime(required=True)

    def _benefit(self, membership: Any) -> dict[str, Any]:
        return {"benefit": membership.plan.benefit, **_benefit_figures(membership.plan)}

    def _next_charge(self, membership: Any) -> str | None:
        day = rules.next_charge_on(membership)
        return None if day is None else day.isoformat()

    def _card(self, membership: Any) -> dict[str, Any]:
        return {
            "id": membership.payment_method_id,
            "brand": membership.card_brand,
            "last4": membership.card_last4,
        }

    def _consent(self, membership: Any) -> Any:
        return membership

    def _periods(self, membership: Any) -> list[dict[str, Any]]:
        return [
            {
                "number": p.number,
                "starts_on": p.starts_on,
                "ends_at": p.ends_on - timedelta(days=1),
                "amount": p.amount,
                "invoice_id": p.invoice_id,
                "included_iv_credits": p.half_credits / 2,
            }
            for p in membership.periods
        ]


class MembershipListSchema(Schema):
    data = fields.List(fields.Nested(MembershipSchema), required=True)
    has_more = fields.Boolean(required=True)


class MembershipPathSchema(Schema):
    membership_id = fields.String(required=True, validate=validate.Length(max=64))
