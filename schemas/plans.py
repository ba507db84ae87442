"""Payment plans and the charges the scheduler makes."""

from __future__ import annotations

from datetime import date
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from billing.domain.schedules import INTERVALS, MAX_INSTALMENTS
from schemas.fields import Computed, Currency, StrictInteger, amount
from schemas.invoices import AcceptanceSchema
from schemas.types import typed


class PlanConsentSchema(AcceptanceSchema):
    """How the patient agreed to the plan's terms (the service words them: every amount
    and date, the card, how to cancel; the answer shows the words)."""

    accepted = fields.String(
        load_default="offline",
        validate=validate.OneOf(["online", "offline"]),
        metadata={"description": "offline: a form signed at the desk; online: in a browser."},
    )


# A plan's days stay within reach of the calendar's arithmetic (a 36-month plan included).
LAST_DAY = date(2100, 12, 31)
WITHIN_REACH = validate.Range(max=LAST_DAY, error="Must be no later than {max}.")


class ExplicitInstalmentSchema(Schema):
    due_at = fields.Date(
        required=True, validate=WITHIN_REACH, metadata={"description": "The clinic's day."}
    )
    amount = amount(required=True)


class PlanRequestSchema(Schema):
    """`instalments` every `interval` from `first_at`, split to the cent by the service;
    or an explicit `schedule` of days and amounts that add up to what the invoice owes."""

    payment_method = typed(
        "PaymentMethodId",
        fields.String(
            required=True,
            validate=validate.Regexp(r"^pm_[A-Za-z0-9_]{1,250}$", error="Must be a pm_... id."),
            metadata={"description": "A card saved for the invoice's patient."},
        ),
    )
    instalments = StrictInteger(validate=validate.Range(min=1, max=MAX_INSTALMENTS))
    interval = typed("PlanInterval", fields.String(validate=validate.OneOf(INTERVALS)))
    first_at = fields.Date(
        validate=WITHIN_REACH,
        metadata={
            "description": "The clinic's day of the first instalment (today or later); a "
            "monthly plan keeps its day of the month (the 31st: each month's last day)."
        },
    )
    schedule = fields.List(
        fields.Nested(ExplicitInstalmentSchema),
        validate=validate.Length(min=1, max=MAX_INSTALMENTS),
    )
    consent = fields.Nested(PlanConsentSchema, load_default=dict)

    @validates_schema
    def _one_way(self, data: dict[str, Any], **_kwargs: Any) -> None:
        split = [name for name in ("instalments", "interval", "first_at") if name in data]
        if "schedule" in data and split:
            raise ValidationError("Send schedule, or instalments/interval/first_at.", split[0])
        if "schedule" not in data:
            for name in ("instalments", "interval", "first_at"):
                if name not in data:
                    raise ValidationError("Missing data for required field.", name)


class PlanCancelSchema(Schema):
    reason = fields.String(validate=validate.Length(min=1, max=500))


class InstalmentSchema(Schema):
    id = typed("ScheduledChargeId", fields.String(required=True))
    number = fields.Integer(required=True)
    due_at = fields.Date(
        required=True, attribute="due_on", metadata={"description": "The clinic's day."}
    )
    amount = fields.Integer(required=True)
    amount_paid = fields.Integer(required=True)
    status = typed("ScheduledChargeStatus", fields.String(required=True))
    attempts = fields.Integer(required=True)
    next_attempt_at = fields.DateTime(required=True, allow_none=True)
    failure_code = fields.String(required=True, allow_none=True)
    paid_at = fields.DateTime(required=True, allow_none=True)


class PlanConsentShownSchema(Schema):
    text = fields.String(required=True, attribute="consent_text")
    accepted = fields.String(required=True, attribute="consent_accepted")
    agreed_at = fields.DateTime(required=True)
    ip_address = fields.String(required=True, allow_none=True)
    user_agent = fields.String(required=True, allow_none=True)


class PlanCardSchema(Schema):
    id = typed("PaymentMethodId", fields.String(required=True))
    brand = fields.String(required=True, allow_none=True)
    last4 = fields.String(required=True, allow_none=True)


class PlanSchema(Schema):
    """An invoice's payment plan: its instalments, each charged to the card on its day."""

    id = typed("PlanId", fields.String(required=True))
    invoice_id = typed("InvoiceId", fields.String(required=True))
    patient_id = typed("PatientId", fields.String(required=True))
    status = typed("PlanStatus", fields.String(required=True))
    interval = fields.String(required=True, metadata={"description": "Or custom."})
    currency = Currency(required=True)
    amount = fields.Integer(required=True, metadata={"description": "What it was made for."})
    amount_paid = fields.Integer(
        required=True, metadata={"description": "What its instalments collected."}
    )
    payment_method = Computed("_card", PlanCardSchema, required=True)
    consent = Computed("_consent", PlanConsentShownSchema, required=True)
    instalments = fields.List(fields.Nested(InstalmentSchema), required=True, attribute="items")
    created_at = fields.DateTime(required=True)
    cancelled_at = fields.DateTime(required=True, allow_none=True)

    def _card(self, plan: Any) -> dict[str, Any]:
        return {"id": plan.payment_method_id, "brand": plan.card_brand, "last4": plan.card_last4}

    def _consent(self, plan: Any) -> Any:
        return plan


class ScheduledChargeSchema(Schema):
    """A charge the scheduler makes (an instalment of a plan), as events show it."""

    id = typed("ScheduledChargeId", fields.String(required=True))
    kind = typed("ScheduledChargeKind", fields.String(required=True))
    invoice_id = typed("InvoiceId", fields.String(required=True))
    plan_id = typed("PlanId", fields.String(required=True, allow_none=True))
    number = fields.Integer(required=True, allow_none=True)
    due_at = fields.Date(required=True, attribute="due_on")
    amount = fields.Integer(required=True)
    currency = Currency(required=True)
    status = typed("ScheduledChargeStatus", fields.String(required=True))
    attempts = fields.Integer(required=True)
    declines = fields.Integer(required=True)
    next_attempt_at = fields.DateTime(required=True, allow_none=True)
    failure_code = fields.String(required=True, allow_none=True)
    last_payment_id = typed("PaymentId", fields.String(required=True, allow_none=True))


class AutopayRequestSchema(Schema):
    """AutoPay on (to a saved card, by default the patient's default card, with the
    patient's consent recorded) or off."""

    enabled = fields.Boolean(required=True)
    payment_method = typed(
        "PaymentMethodId",
        fields.String(
            validate=validate.Regexp(r"^pm_[A-Za-z0-9_]{1,250}$", error="Must be a pm_... id."),
            metadata={"description": "A card saved for the patient; by default their default."},
        ),
    )
    consent = fields.Nested(PlanConsentSchema, load_default=dict)


class AutopayConsentSchema(Schema):
    text = fields.String(required=True, allow_none=True, attribute="consent_text")
    accepted = fields.String(required=True, allow_none=True, attribute="consent_accepted")
    agreed_at = fields.DateTime(required=True, allow_none=True)


class AutopaySchema(Schema):
    """Whether the patient's open balances are charged automatically, and to which card."""

    patient_id = typed("PatientId", fields.String(required=True))
    enabled = fields.Boolean(required=True)
    source = typed("AutopaySource", fields.String(required=True))
    payment_method = fields.Nested(PlanCardSchema, required=True, allow_none=True, attribute="card")
    consent = fields.Nested(
        AutopayConsentSchema, required=True, allow_none=True, attribute="setting"
    )
