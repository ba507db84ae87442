"""Types the OpenAPI document describes once, as components every schema refers to by name:
the ids and the closed sets of values (session types, statuses, methods, error codes)."""

from __future__ import annotations

from typing import Any

from marshmallow import fields

from billing.domain.access import ACTOR_TYPES
from billing.domain.errors import HTTP_CODES
from billing.domain.events import DELIVERY_STATUSES, ENDPOINT_STATUSES, EVENT_TYPES
from billing.domain.journal import ACCOUNT_KEYS
from billing.domain.memberships import BENEFITS as MEMBERSHIP_BENEFITS
from billing.domain.memberships import INTERVALS as MEMBERSHIP_INTERVALS
from billing.domain.memberships import STATUSES as MEMBERSHIP_STATUSES
from billing.domain.money import CURRENCY_EXPONENTS
from billing.domain.policy import (
    ATTENDANCE,
    BOOKING_STATES,
    CANCELLED_BY,
    DEPOSIT_FOR,
    FEE_REASONS,
    GIFT_CARD,
    INVOICE_KINDS,
    MEMBERSHIP,
    PACKAGE,
)
from billing.domain.pricing import SESSION_TYPES
from billing.domain.schedules import INTERVALS, ITEM_STATUSES, PLAN_STATUSES
from billing.domain.statuses import INVOICE_STATUSES, PAYMENT_STATUSES, REFUND_STATUSES
from schemas.fields import IDENTIFIER

# The codes of the service's own refusals. A card decline (402) carries Stripe's decline
# code and a refund Stripe refused (422) Stripe's reason, so the `code` of a problem is
# one of these or another string.
ERROR_CODES = (
    *HTTP_CODES.values(),
    "http_error",
    "internal_error",
    "database_unavailable",
    "nul_character",
    "invalid_unicode",
    "malformed_json",
    "missing_api_key",
    "invalid_api_key",
    "insufficient_scope",
    "invalid_idempotency_key",
    "idempotency_key_required",
    "idempotency_key_reused",
    "idempotency_request_in_progress",
    "currency_not_offered",
    "effective_at_in_past",
    "price_version_conflict",
    "invalid_group_size",
    "first_session_must_be_iv",
    "duplicate_patient",
    "quote_not_found",
    "quote_expired",
    "invoice_not_found",
    "invoice_not_payable",
    "invoice_not_paid",
    "invoice_paid",
    "no_card_on_file",
    "no_bank_account",
    "plan_not_found",
    "membership_not_found",
    "membership_exists",
    "no_email",
    "card_in_use",
    "refund_request_not_found",
    "refund_request_closed",
    "email_not_configured",
    "membership_not_active",
    "membership_credits",
    "refund_membership",
    "resumes_before_pause",
    "unknown_payment_method",
    "hsa_fsa_card_for_fee",
    "schedule_does_not_add_up",
    "date_in_past",
    "dates_out_of_order",
    "instalment_too_small",
    "schedule_item_cancelled",
    "patient_not_billed",
    "not_a_bank_account",
    "bank_debit_usd_only",
    "payment_in_progress",
    "card_declined",
    "not_sent",
    "refund_exceeds_paid",
    "refund_failed",
    "refund_outside_stripe",
    "amount_exceeds_balance",
    "amount_too_small",
    "remainder_too_small",
    "reference_required",
    "received_before_invoice",
    "payment_not_found",
    "payment_not_reversible",
    "stripe_invalid_request",
    "stripe_error",
    "stripe_misconfigured",
    "stripe_not_configured",
    "stripe_rate_limited",
    "stripe_request_in_progress",
    "stripe_unavailable",
    "event_not_found",
    "webhook_endpoint_not_found",
    "webhook_endpoint_disabled",
    "event_not_subscribed",
    "delivery_not_found",
    "unsafe_webhook_url",
    "month_not_over",
    "earlier_month_open",
    "booking_not_found",
    "patient_not_in_booking",
    "booking_below_minimum",
    "booking_cancelled",
    "booking_attended",
    "quote_superseded",
    "already_cancelled",
    "attendance_marked",
    "patient_cancelled",
    "session_started",
    "session_not_started",
    "cancelled_at_in_future",
    "payment_method_not_found",
    "authentication_required",
    "patient_not_found",
    "setup_intent_not_found",
    "setup_intent_not_succeeded",
    "fee_waived",
    "cancelled_at_before_booking",
    "patient_required",
    "patient_not_in_quote",
    "no_open_dispute",
    "profile_not_found",
    "provider_exists",
    "provider_not_found",
    "superbill_incomplete",
    "no_superbill",
    "claim_incomplete",
    "consent_limit",
    "bill_in_dispute",
    "discount_above_maximum",
    "discount_too_large",
    "promotion_invalid",
    "promotion_not_applicable",
    "promotion_exhausted",
    "promotion_exists",
    "requested_at_in_future",
    "estimate_not_found",
    "package_not_found",
    "patient_name_required",
    "insufficient_credits",
    "no_unused_credits",
    "refund_package_credits",
    "package_not_applicable",
    "no_credit",
    "amount_exceeds_credit",
    "amount_exceeds_invoice",
    "invoice_not_adjustable",
    "refund_in_progress",
    "gift_card_not_found",
    "gift_card_not_paid",
    "gift_card_expired",
    "gift_card_used",
    "gift_card_not_applicable",
    "amount_exceeds_gift_card",
    "code_required",
    "expires_in_past",
)


def _our_id(prefix: str, what: str, pattern: str = "") -> dict[str, Any]:
    return {
        "type": "string",
        "pattern": f"^{pattern or prefix}_[0-9a-f]{{24}}$",
        "description": f"{what}: `{prefix}_` and 24 hexadecimal digits.",
        "example": f"{prefix}_3f2a9c0e7b1d4a5f6e8c9b0a",
    }


def _caller_id(what: str, example: str) -> dict[str, Any]:
    return {
        "type": "string",
        "pattern": IDENTIFIER.pattern,
        "maxLength": 64,
        "description": f"{what}: 1-64 letters, digits and . _ : - (starting alphanumeric).",
        "example": example,
    }


def _closed(*values: str, description: str) -> dict[str, Any]:
    return {"type": "string", "enum": list(values), "description": description}


TYPES: dict[str, dict[str, Any]] = {
    "QuoteId": _our_id("qt", "A quote's id"),
    "InvoiceId": _our_id("in", "An invoice's id"),
    "PaymentId": _our_id("pay", "A payment's id"),
    "AdjustmentId": _our_id(
        "cn", "A credit note's id (`cn_`), or a write-off's (`wo_`)", "(cn|wo)"
    ),
    "RefundId": _our_id("rf", "A refund's id (`rfo_` for an overpayment given back)", "rfo?"),
    "EventId": _our_id("evt", "An event's id"),
    "PlanId": _our_id("plan", "A payment plan's id"),
    "ScheduledChargeId": _our_id(
        "sch", "A scheduled charge's id (an instalment, an AutoPay charge, a membership's fee)"
    ),
    "MembershipPlanId": _our_id("msp", "A version of a catalogue membership"),
    "MembershipId": _our_id("mem", "A patient's membership"),
    "EstimateId": _our_id("est", "A Good Faith Estimate's id"),
    "BillDisputeId": _our_id("bd", "A patient's dispute of a bill"),
    "PromotionId": _our_id("promo", "A promotion code's id"),
    "PackageId": _our_id("pkg", "A version of a catalogue package"),
    "PatientPackageId": _our_id("pp", "A package sold to a patient"),
    "CreditRefundId": _our_id("crf", "A refund of a package's unused credits"),
    "CreditBackRequestId": _our_id("crq", "A patient's request for their credit back"),
    "WebhookEndpointId": _our_id("we", "A webhook endpoint's id"),
    "DeliveryId": _our_id("whd", "A webhook delivery's id"),
    "CreditBackRequestStatus": _closed(
        "open",
        "refunded",
        "declined",
        description="A request for credit back: open; refunded (the credit refunded to a "
        "card); declined (the credit stays the patient's).",
    ),
    "Npi": {
        "type": "string",
        "pattern": r"^\d{10}$",
        "description": "A National Provider Identifier: ten digits, the last a check digit.",
        "example": "1234567893",
    },
    "PayerClass": _closed(
        "self_pay",
        "medicare",
        "medicaid",
        "commercial",
        description="Who pays the patient's bills: self_pay, medicare, medicaid or commercial "
        "insurance.",
    ),
    "InvoiceNumber": {
        "type": "string",
        "pattern": r"^\d{4}-\d{6}$",
        "description": "The invoice's number for people: the year and a sequence without gaps.",
        "example": "2026-000123",
    },
    "AdjustmentNumber": {
        "type": "string",
        "pattern": r"^\d{4}-\d{6}-(CN|WO)\d+$",
        "description": "A credit note's or write-off's number: its invoice's, then CN or WO and "
        "its sequence on that invoice.",
        "example": "2026-000123-CN1",
    },
    "AccountMovementId": _our_id("mv", "A movement of a patient's credit"),
    "GiftCardId": _our_id("gc", "A gift card's id (not its code)"),
    "BookingId": _caller_id("The booking system's id of the booking", "BK-2026-0412"),
    "PatientId": _caller_id("The booking system's id of the patient", "P-1001"),
    "PaymentMethodId": {
        "type": "string",
        "pattern": r"^pm_[A-Za-z0-9_]{1,250}$",
        "description": "A Stripe PaymentMethod (a card), made in the patient's browser.",
        "example": "pm_card_visa",
    },
    "SetupIntentId": {
        "type": "string",
        "pattern": r"^seti_[A-Za-z0-9_]{1,250}$",
        "description": "A Stripe SetupIntent: a card set up with the bank for later charges.",
        "example": "seti_1Q2w3E4r5T6y",
    },
    "Currency": _closed(
        *sorted(CURRENCY_EXPONENTS),
        description="A lower-case ISO 4217 code, as Stripe writes it; amounts are in its "
        "minor unit (cents for usd, yen for jpy).",
    ),
    "SessionType": _closed(
        *SESSION_TYPES,
        description="iv_individual: one patient, the base price P; im_group: 2 to 5 "
        "patients, P / 2 each.",
    ),
    "InvoiceSessionType": _closed(
        *SESSION_TYPES,
        PACKAGE,
        GIFT_CARD,
        MEMBERSHIP,
        description="The session an invoice is for, or package: a package of credits sold, "
        "gift_card: a gift card sold, or membership: a period of a membership.",
    ),
    "PackageStatus": _closed(
        "awaiting_payment",
        "on_plan",
        "active",
        "expired",
        "void",
        "withdrawn",
        description="awaiting_payment: its invoice is not paid yet, so its credits cannot be "
        "used; on_plan: a payment plan is paying its invoice and the clinic lets its credits "
        "be used meanwhile (PLAN_PACKAGE_CREDITS at_once or as_paid); active; expired: past "
        "its validity; void: its invoice was voided unpaid; "
        "withdrawn: money left its invoice other than by a refund of credits (a refund made "
        "at Stripe, a dispute), so its credits not used or held were withdrawn.",
    ),
    "CreditMovementKind": _closed(
        "purchased",
        "reserved",
        "used",
        "returned",
        "released",
        "refunded",
        "expired",
        "withdrawn",
        description="purchased: the package was paid; reserved: a quote holds credits; used: "
        "its invoice took them; returned: the place was cancelled in time or re-quoted; "
        "released: the quote expired uninvoiced; refunded: given back as money; expired; "
        "withdrawn: the package's money left by another way (a refund at Stripe, a dispute).",
    ),
    "InvoiceStatus": _closed(
        *INVOICE_STATUSES,
        description="open -> processing -> paid -> partially_refunded -> refunded, or "
        "open -> void; partially_paid once part of it is paid, processing while a charge of "
        "it is in flight; written_off once a write-off closed what was still owed. Forward "
        "as money arrives; back only when money counted turns out not to be there (a refund "
        "that failed, a check that bounced). A credit note that leaves nothing owed makes "
        "it paid.",
    ),
    "InvoiceKind": _closed(
        *INVOICE_KINDS,
        description="session: a patient's session of a booking; fee: a late-cancellation or "
        "no-show fee; package: a package of credits sold to a patient; gift_card: a gift "
        "card sold; membership: a period of a patient's membership.",
    ),
    "FeeReason": _closed(*FEE_REASONS, description="Why a fee invoice was made."),
    "Attendance": _closed(*ATTENDANCE, description="Whether the patient came to the session."),
    "CancelledBy": _closed(*CANCELLED_BY, description="Who cancelled a place in a booking."),
    "BookingState": _closed(
        *BOOKING_STATES,
        description="active; below_minimum: a group left with fewer than 2 patients, its "
        "invoices held until it is re-quoted or cancelled; cancelled: nobody is left.",
    ),
    "PaymentMethod": _closed(
        "card_on_file",
        "bank_debit",
        "online",
        "cash",
        "check",
        "external",
        "account_credit",
        "gift_card",
        "balance",
        description="card_on_file: charge the saved card now; bank_debit: debit the saved "
        "US bank account (ACH, under its mandate; processing for days); online: a pay "
        "link for the "
        "patient; cash, check, external (another terminal or processor): money the front "
        "desk received outside Stripe, recorded as it arrived (scope payments:record); "
        "account_credit: the patient's credit applied to the invoice; gift_card: a gift "
        "card's code (scope payments:record); balance: the patient paid several bills at "
        "once in the portal, with this (oldest) bill's payment for the sum, and the other "
        "bills paid from the credit its excess became (never asked for through the API).",
    ),
    "PaymentStatus": _closed(*PAYMENT_STATUSES, description="Where one payment attempt is."),
    "PaymentSource": _closed(
        "card",
        "us_bank_account",
        description="What Stripe collected a payment from: a card, or a US bank account "
        "(ACH Direct Debit).",
    ),
    "RefundStatus": _closed(*REFUND_STATUSES, description="Where one refund is."),
    "PlanStatus": _closed(
        *PLAN_STATUSES,
        description="active; past_due once an instalment was given up (retries used up, or "
        "a decline no retry can change); completed once the invoice owes nothing more; "
        "cancelled by staff, replaced by a new plan, or its invoice voided or written off.",
    ),
    "ScheduledChargeKind": _closed(
        "instalment",
        "autopay",
        "membership",
        description="What the scheduler charges: an instalment of a plan, an open balance "
        "under AutoPay, or a membership's period.",
    ),
    "MembershipInterval": _closed(
        *MEMBERSHIP_INTERVALS, description="How often a membership's fee is charged."
    ),
    "MembershipStatus": _closed(
        *MEMBERSHIP_STATUSES,
        description="active: charged each period, its benefit applies; past_due: a period's "
        "fee was given up (no benefit until it is paid; unpaid at the period's end, the "
        "membership is cancelled); paused: no charges and no benefit until it resumes; "
        "cancelled.",
    ),
    "MembershipBenefitKind": _closed(
        *MEMBERSHIP_BENEFITS,
        description="percent_off: sessions cost that percent less; iv_price: a member's P "
        "(a group seat: exactly half); included_iv_credits: IV credits each period, usable "
        "until it ends.",
    ),
    "AutopaySource": _closed(
        "patient",
        "clinic",
        description="patient: the patient's own setting; clinic: the clinic's AUTOPAY, for a "
        "patient who set nothing (on for a card saved with consent).",
    ),
    "PlanInterval": _closed(*INTERVALS, description="How far apart the instalments fall."),
    "ScheduledChargeStatus": _closed(
        *ITEM_STATUSES,
        description="scheduled: waiting for its day; charging: being charged now; "
        "retrying: declined, tried again at next_attempt_at; paid; covered: the invoice "
        "owed nothing more of it (paid otherwise); action_needed: the bank wants the "
        "patient to authenticate (they were emailed a pay link); failed: given up; "
        "cancelled.",
    ),
    "RefundKind": _closed(
        "requested",
        "overpayment",
        "external",
        description="requested by staff; overpayment: money collected beyond the invoice, "
        "given back automatically; external: made in Stripe's dashboard.",
    ),
    "LedgerKind": _closed(
        "charge",
        "refund",
        "refund_failure",
        "dispute",
        "received",
        "reversal",
        "bank_return",
        "to_credit",
        "from_credit",
        "gift_card",
        description="Which way a ledger entry moved money; refund_failure: a refund that "
        "failed after it was counted, its money back (Stripe's balance transaction of the "
        "same type); received: money the desk received outside Stripe (cash, a check, "
        "another terminal); reversal: money received that never arrived (a bounced check); "
        "bank_return: a bank debit (ACH) that came back after it succeeded (Stripe's "
        "dispute of it), owed again; "
        "to_credit: money paid beyond what the invoice owes, kept as the patient's credit; "
        "from_credit: the patient's credit applied to the invoice; gift_card: a gift card "
        "paid part of the invoice.",
    ),
    "DepositFor": _closed(
        *DEPOSIT_FOR,
        description="Who is asked for a deposit when booking: everyone; new_patients (no IV "
        "session before); no_shows (that many no-shows in the last 12 months).",
    ),
    "GiftCardStatus": _closed(
        "awaiting_payment",
        "active",
        "used",
        "expired",
        "refunded",
        description="awaiting_payment: its invoice is not paid yet; active: it can be spent; "
        "used: nothing is left; expired; refunded: what was left went back to its buyer.",
    ),
    "AdjustmentKind": _closed(
        "credit_note",
        "write_off",
        description="credit_note: lowers what an invoice owes (money paid beyond it goes "
        "back or to the patient's credit); write_off: a balance the clinic will not collect.",
    ),
    "WriteOffCategory": _closed(
        "bad_debt",
        "small_balance",
        "hardship",
        "other",
        description="Why a balance was written off.",
    ),
    "AccountMovementKind": _closed(
        "overpayment",
        "credit_note",
        "applied",
        "taken_back",
        "refunded",
        "restored",
        "goodwill",
        description="overpayment: paid beyond an invoice, kept as credit; credit_note: a "
        "credit note's money kept as credit; applied: credit that paid an invoice; "
        "taken_back: credit that came from a payment that never arrived (a bounced check); "
        "refunded: credit given back to the card it came from; restored: that refund "
        "failed, and the credit is back; goodwill: credit staff granted that no money "
        "paid (never refunded to a card).",
    ),
    "ReportFormat": _closed("json", "csv", description="A report as JSON or as CSV."),
    "PayoutStatus": _closed(
        "paid",
        "pending",
        "in_transit",
        "canceled",
        "failed",
        description="A Stripe payout's status, as Stripe gives it.",
    ),
    "EventType": _closed(
        *EVENT_TYPES,
        description="What changed; more types may come, so ignore the ones you do not know.",
    ),
    "DeliveryStatus": _closed(
        *DELIVERY_STATUSES,
        description="pending: waiting for its (next) attempt; delivering: being sent; "
        "succeeded: the endpoint answered 2xx; failed: given up after 3 days; abandoned: "
        "its endpoint was disabled or deleted.",
    ),
    "WebhookEndpointStatus": _closed(
        *ENDPOINT_STATUSES,
        description="disabled: it failed for 3 days (or was deleted); nothing more is sent.",
    ),
    "JournalFormat": _closed(
        "json",
        "xero",
        "quickbooks",
        description="The journal as JSON, or as the CSV that Xero's manual-journal import or "
        "QuickBooks Online's journal-entry import reads.",
    ),
    "MonthStatus": _closed(
        "open",
        "closed",
        description="open: its journal follows the books; closed: its journal is as it was "
        "when finance closed the month, and what comes later goes to the first open month.",
    ),
    "JournalAccount": _closed(
        *ACCOUNT_KEYS,
        description="The account a journal line posts to; JOURNAL_ACCOUNTS names each one.",
    ),
    "JournalNumber": {
        "type": "string",
        "pattern": r"^\d{8}-[A-Z]{3}$",
        "description": "One journal (a day in one currency): the day and the currency.",
        "example": "20261005-USD",
    },
    "ActorType": _closed(
        *ACTOR_TYPES,
        description="Who made a change: an API key, a finance user, an operator at the "
        "command line, a patient on the pay page, Stripe's webhook, or the service itself.",
    ),
    "ErrorCode": _closed(
        *ERROR_CODES,
        description="The service's stable codes; a card decline carries Stripe's decline "
        "code instead, and new codes may come, so treat an unknown one like its status.",
    ),
}


def typed(name: str, field: fields.String | None = None, open_set: bool = False) -> fields.String:
    """`field` (a plain String by default), described in the OpenAPI document as the
    component `name` of TYPES; with `open_set`, other strings may come too."""
    if name not in TYPES:
        raise KeyError(f"no type {name!r} in schemas.types.TYPES")
    field = field if field is not None else fields.String()
    field.metadata = {**field.metadata, "x-type": name}
    if open_set:
        field.metadata["x-open-set"] = True
    return field
