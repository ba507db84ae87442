"""Report queries: a period of whole days or a month of the clinic's calendar, as JSON or
CSV."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from schemas.fields import Currency
from schemas.types import typed

MAX_DAYS = 400
# Years a report can ask about: wide enough for any clinic's records, and far from the
# ends of the calendar, where a day's arithmetic (a period's slack, a month's end) breaks.
FIRST_YEAR, LAST_YEAR = 1970, 9998


def _format() -> fields.String:
    """JSON unless `format=csv` (or an Accept header preferring text/csv)."""
    return typed("ReportFormat", fields.String(validate=validate.OneOf(["json", "csv"])))


class FormatQuerySchema(Schema):
    format = _format()


class PeriodQuerySchema(Schema):
    start = fields.Date(required=True, data_key="from", metadata={"example": "2026-11-01"})
    end = fields.Date(required=True, data_key="to", metadata={"description": "included"})
    format = _format()

    @validates_schema
    def _ordered(self, data: dict[str, Any], **_: Any) -> None:
        for key, name in (("start", "from"), ("end", "to")):
            if key in data and not FIRST_YEAR <= data[key].year <= LAST_YEAR:
                raise ValidationError(f"Use a year from {FIRST_YEAR} to {LAST_YEAR}.", name)
        if "start" in data and "end" in data:
            if data["end"] < data["start"]:
                raise ValidationError("Must not be before `from`.", "to")
            if (data["end"] - data["start"]).days > MAX_DAYS:
                raise ValidationError(f"A period spans at most {MAX_DAYS} days.", "to")


class MonthSchema(Schema):
    """A month of the clinic's calendar (CLINIC_TIMEZONE)."""

    month = fields.String(
        required=True,
        validate=validate.Regexp(r"^\d{4}-(0[1-9]|1[0-2])$", error="Use YYYY-MM."),
        metadata={"example": "2026-11"},
    )

    @validates_schema
    def _supported(self, data: dict[str, Any], **_: Any) -> None:
        if "month" in data and not FIRST_YEAR <= int(data["month"][:4]) <= LAST_YEAR:
            raise ValidationError(f"Use a year from {FIRST_YEAR} to {LAST_YEAR}.", "month")


class MonthQuerySchema(MonthSchema):
    format = _format()


# The reports' bodies, as the OpenAPI document describes them. The views build the JSON
# themselves (a year of pairs is too many rows to pass through a schema); these say what
# it holds, and the contract tests hold the two together.

PAIR_STATUSES = (
    "matched",
    "missing_in_stripe",
    "missing_in_ledger",
    "mismatched",
    "outside_stripe",
)


def _money(description: str) -> fields.Integer:
    return fields.Integer(required=True, metadata={"description": description})


def _by_currency(schema: type[Schema], description: str) -> fields.Dict:
    return fields.Dict(
        keys=fields.String(metadata={"example": "usd"}),
        values=fields.Nested(schema),
        required=True,
        metadata={"description": description},
    )


class PairSchema(Schema):
    """A ledger entry and the Stripe balance transaction naming the same object; either
    side is null when it is missing. Money received at the desk (`outside_stripe`) has
    no Stripe side."""

    status = fields.String(required=True, validate=validate.OneOf(PAIR_STATUSES))
    ledger_entry_id = fields.Integer(required=True, allow_none=True)
    invoice_id = typed("InvoiceId", fields.String(required=True, allow_none=True))
    invoice_number = typed("InvoiceNumber", fields.String(required=True, allow_none=True))
    kind = typed("LedgerKind", fields.String(required=True, allow_none=True))
    ledger_amount = fields.Integer(
        required=True,
        allow_none=True,
        metadata={"description": "Signed: refunds, disputes and reversals negative."},
    )
    ledger_currency = Currency(required=True, allow_none=True)
    occurred_at = fields.DateTime(required=True, allow_none=True)
    stripe_transaction_id = fields.String(required=True, allow_none=True)
    stripe_source = fields.String(required=True, allow_none=True)
    stripe_type = fields.String(required=True, allow_none=True)
    stripe_amount = fields.Integer(required=True, allow_none=True)
    stripe_fee = fields.Integer(required=True, allow_none=True)
    stripe_net = fields.Integer(required=True, allow_none=True)
    stripe_currency = Currency(required=True, allow_none=True)
    stripe_created = fields.DateTime(required=True, allow_none=True)


class StripeMoneySchema(Schema):
    gross = _money("Charges.")
    refunds = _money("Refunds, less those that failed, as a positive amount.")
    disputes = _money("Disputes, as a positive amount.")
    fees = _money("Stripe's fees.")
    net = _money("What reaches the bank: gross less refunds, disputes and fees.")


class DaySchema(StripeMoneySchema):
    day = fields.Date(required=True)
    currency = Currency(required=True)


class PayoutSchema(StripeMoneySchema):
    payout_id = fields.String(required=True)
    payout_amount = fields.Integer(required=True)
    arrival_date = fields.DateTime(required=True, allow_none=True)
    status = typed("PayoutStatus", fields.String(required=True))
    currency = Currency(required=True)


class SessionTypeRevenueSchema(Schema):
    session_type = typed("InvoiceSessionType", fields.String(required=True))
    currency = Currency(required=True)
    gross = _money("Charges, and money received at the desk less reversals.")
    refunds = _money("Refunds, less those that failed.")
    revenue = _money("Charges less refunds.")
    sessions = fields.Integer(required=True, metadata={"description": "Sessions paid."})


class OverpaymentSchema(Schema):
    invoice_id = typed("InvoiceId", fields.String(required=True))
    invoice_number = typed("InvoiceNumber", fields.String(required=True))
    status = typed("InvoiceStatus", fields.String(required=True))
    currency = Currency(required=True)
    total = fields.Integer(required=True)
    collected = fields.Integer(required=True)
    excess = _money("Collected beyond what the invoice owes.")
    given_back = _money("Already refunded to the card.")
    kept_as_credit = _money("Kept as the patient's credit instead (OVERPAYMENTS=credit).")
    outstanding = _money("Still to give back.")
    last_charge_at = fields.DateTime(required=True)


class LedgerMoneySchema(Schema):
    gross = _money("Charges through Stripe.")
    refunds = _money("Refunds, less those that failed.")
    disputes = _money("Disputes.")
    received = _money(
        "Received at the desk outside Stripe (cash, checks, another terminal), less reversals."
    )


class PairCountsSchema(Schema):
    matched = fields.Integer(required=True)
    missing_in_stripe = fields.Integer(required=True)
    missing_in_ledger = fields.Integer(required=True)
    mismatched = fields.Integer(required=True)
    outside_stripe = fields.Integer(required=True)
    overpayments = fields.Integer(required=True)


class ReconciliationTotalsSchema(Schema):
    currencies = fields.List(fields.String(), required=True)
    ledger = _by_currency(LedgerMoneySchema, "Our ledger's sums, per currency.")
    stripe = _by_currency(StripeMoneySchema, "Stripe's sums, per currency.")
    counts = fields.Nested(PairCountsSchema, required=True)


class ReconciliationSchema(Schema):
    matched = fields.List(fields.Nested(PairSchema), required=True)
    missing_in_stripe = fields.List(fields.Nested(PairSchema), required=True)
    missing_in_ledger = fields.List(fields.Nested(PairSchema), required=True)
    mismatched = fields.List(fields.Nested(PairSchema), required=True)
    outside_stripe = fields.List(
        fields.Nested(PairSchema),
        required=True,
        metadata={"description": "Money received at the desk and its reversals."},
    )
    by_day = fields.List(fields.Nested(DaySchema), required=True)
    by_payout = fields.List(fields.Nested(PayoutSchema), required=True)
    by_session_type = fields.List(fields.Nested(SessionTypeRevenueSchema), required=True)
    overpayments = fields.List(fields.Nested(OverpaymentSchema), required=True)
    totals = fields.Nested(ReconciliationTotalsSchema, required=True)


class AgingBucketSchema(Schema):
    count = fields.Integer(required=True)
    totals = fields.Dict(
        keys=fields.String(),
        values=fields.Integer(),
        required=True,
        metadata={"description": "What the bucket's invoices owe, per currency."},
    )


class AgingBucketsSchema(Schema):
    days_0_30 = fields.Nested(AgingBucketSchema, required=True, data_key="0-30")
    days_31_60 = fields.Nested(AgingBucketSchema, required=True, data_key="31-60")
    days_61_90 = fields.Nested(AgingBucketSchema, required=True, data_key="61-90")
    days_over_90 = fields.Nested(AgingBucketSchema, required=True, data_key="90+")


class AgingInvoiceSchema(Schema):
    id = typed("InvoiceId", fields.String(required=True))
    number = typed("InvoiceNumber", fields.String(required=True))
    patient_id = typed("PatientId", fields.String(required=True))
    total = fields.Integer(required=True)
    balance_due = _money(
        "What it still owes: the total less credit notes, write-offs and what was paid."
    )
    currency = Currency(required=True)
    status = typed("InvoiceStatus", fields.String(required=True))
    created_at = fields.DateTime(required=True)
    age_days = fields.Integer(required=True)
    bucket = fields.String(
        required=True, validate=validate.OneOf(("0-30", "31-60", "61-90", "90+"))
    )


class AgingCreditSchema(Schema):
    patient_id = typed("PatientId", fields.String(required=True))
    currency = Currency(required=True)
    credit = _money("Money of the patient's that no invoice owes: the clinic owes it.")


class AgingSchema(Schema):
    as_of = fields.DateTime(required=True)
    buckets = fields.Nested(AgingBucketsSchema, required=True)
    invoices = fields.List(fields.Nested(AgingInvoiceSchema), required=True)
    credits = fields.List(
        fields.Nested(AgingCreditSchema),
        required=True,
        metadata={"description": "Patients' credit balances, apart from what is owed."},
    )


class RefundRowSchema(Schema):
    stripe_refund_id = fields.String(required=True)
    amount = fields.Integer(
        required=True,
        metadata={
            "description": "Minor units refunded; negative on the row of a refund that "
            "failed after it was counted (its money came back, as Stripe's refund_failure)."
        },
    )
    currency = Currency(required=True)
    occurred_at = fields.DateTime(required=True)
    invoice_id = typed("InvoiceId", fields.String(required=True))
    invoice_number = typed("InvoiceNumber", fields.String(required=True))
    refund_id = typed("RefundId", fields.String(required=True, allow_none=True))
    reason = fields.String(required=True, allow_none=True)


class DisputeRowSchema(Schema):
    stripe_dispute_id = fields.String(required=True)
    kind = typed(
        "LedgerKind",
        fields.String(
            required=True,
            metadata={
                "description": "dispute: a card's (the invoice stays paid); bank_return: a "
                "bank debit that came back after it succeeded (owed again)."
            },
        ),
    )
    amount = fields.Integer(required=True)
    currency = Currency(required=True)
    occurred_at = fields.DateTime(required=True)
    invoice_id = typed("InvoiceId", fields.String(required=True))
    invoice_number = typed("InvoiceNumber", fields.String(required=True))


class RefundsDisputesSchema(Schema):
    refunds = fields.List(fields.Nested(RefundRowSchema), required=True)
    disputes = fields.List(fields.Nested(DisputeRowSchema), required=True)


class MonthCurrencySchema(Schema):
    billed = _money("Invoiced in the month (not void).")
    collected = _money("Collected, in our ledger: charged through Stripe and received at the desk.")
    received_outside_stripe = _money(
        "Of that, received at the desk outside Stripe (cash, checks, another terminal), "
        "less reversals."
    )
    refunded = _money("Refunded, in our ledger.")
    disputed = _money("Disputed, in our ledger.")
    stripe_fees = _money("Stripe's fees.")
    net = _money("What Stripe paid out for the month.")
    open_amount = _money("Still owed at the month's end.")
    credits_redeemed = fields.Float(
        required=True, metadata={"description": "IV credits that paid sessions in the month."}
    )
    credit_redemption_value = _money(
        "What those credits are worth: their share of what their packages were paid."
    )
    deferred_revenue = _money(
        "Paid package credits not yet used, refunded or expired, at the month's end."
    )
    membership_revenue = _money(
        "Membership fees earned in the month: each paid period's share of its days in it."
    )
    membership_deferred = _money(
        "Membership fees paid for days after the month's end (earned as those days pass)."
    )
    credit_notes = _money("Taken off invoices by credit notes made in the month.")
    written_off = _money("Written off in the month: owed, and never to be collected.")
    credit_kept = _money("Paid beyond what invoices owe and kept as patients' credit in the month.")
    credit_granted = _money("Goodwill credit staff granted patients in the month (no money).")
    credit_applied = _money("Patients' credit that paid invoices in the month.")
    credit_held = _money("Patients' credit not yet applied at the month's end.")


class RevenueRowSchema(Schema):
    """One session type's revenue in a currency, with package sales on a line of their
    own (`package`), discounts and credit redemptions apart."""

    session_type = typed("InvoiceSessionType", fields.String(required=True))
    currency = Currency(required=True)
    collected = _money("Money charged less refunds (for package: package sales).")
    discounts = _money("Sliding-scale and promotion discounts on the month's invoices.")
    credits_redeemed = fields.Float(
        required=True, metadata={"description": "IV credits that paid sessions instead."}
    )


class DiscrepancyCountsSchema(Schema):
    missing_in_stripe = fields.Integer(required=True)
    missing_in_ledger = fields.Integer(required=True)
    mismatched = fields.Integer(required=True)
    overpayments = fields.Integer(required=True)


class MonthEndSchema(Schema):
    month = fields.String(
        required=True, metadata={"pattern": r"^\d{4}-\d{2}$", "example": "2026-11"}
    )
    invoices_issued = fields.Integer(required=True)
    open_invoices = fields.Integer(required=True)
    currencies = _by_currency(MonthCurrencySchema, "The month's money, per currency.")
    discrepancies = fields.Nested(DiscrepancyCountsSchema, required=True)
    overpayments = fields.List(fields.Nested(OverpaymentSchema), required=True)
    by_session_type = fields.List(fields.Nested(SessionTypeRevenueSchema), required=True)
    revenue = fields.List(
        fields.Nested(RevenueRowSchema),
        required=True,
        metadata={"description": "Package sales, credit redemptions and discounts apart."},
    )


class DunningRowSchema(Schema):
    id = typed("ScheduledChargeId", fields.String(required=True))
    kind = typed("ScheduledChargeKind", fields.String(required=True))
    invoice_id = typed("InvoiceId", fields.String(required=True))
    invoice_number = typed("InvoiceNumber", fields.String(required=True))
    patient_id = typed("PatientId", fields.String(required=True))
    plan_id = typed("PlanId", fields.String(required=True, allow_none=True))
    number = fields.Integer(required=True, allow_none=True)
    due_at = fields.Date(required=True)
    amount = fields.Integer(required=True)
    amount_paid = fields.Integer(required=True)
    currency = Currency(required=True)
    status = typed("ScheduledChargeStatus", fields.String(required=True))
    declines = fields.Integer(required=True)
    failure_code = fields.String(required=True, allow_none=True)
    next_attempt_at = fields.DateTime(required=True, allow_none=True)
    updated_at = fields.DateTime(required=True)


class DunningCountSchema(Schema):
    count = fields.Integer(required=True)
    amount = fields.Integer(required=True)


class DunningStatesSchema(Schema):
    in_retry = fields.Nested(DunningCountSchema, required=True)
    recovered = fields.Nested(DunningCountSchema, required=True)
    given_up = fields.Nested(DunningCountSchema, required=True)


class DunningSchema(Schema):
    """Declined scheduled charges: in retry now, recovered and given up in the period."""

    in_retry = fields.List(fields.Nested(DunningRowSchema), required=True)
    recovered = fields.List(fields.Nested(DunningRowSchema), required=True)
    given_up = fields.List(fields.Nested(DunningRowSchema), required=True)
    totals = fields.Dict(
        keys=fields.String(),
        values=fields.Nested(DunningStatesSchema),
        required=True,
        metadata={
            "description": "Per currency: what is in retry (still owed), recovered (collected) "
            "and given up (still owed)."
        },
    )
