"""Invoices, payments, refunds and saved cards."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from billing.domain.statuses import INVOICE_STATUSES
from schemas.discounts import DiscountSchema, discounts_of
from schemas.fields import Computed, Currency, Text, UtcDateTime, amount, identifier
from schemas.types import typed


class InvoiceRequestSchema(Schema):
    quote_id = typed(
        "QuoteId", fields.String(required=True, validate=validate.Length(min=1, max=64))
    )


class InvoiceLineSchema(Schema):
    description = fields.String(required=True)
    session_type = typed("InvoiceSessionType", fields.String(required=True))
    billing_code = fields.String(
        required=True,
        allow_none=True,
        metadata={
            "description": "KET-IV, KET-IM-GROUP, FEE-LATE-CANCEL, FEE-NO-SHOW or KET-PKG "
            "(a package)."
        },
    )
    amount = fields.Integer(required=True, metadata={"description": "After discounts."})
    base_amount = fields.Integer(required=True, allow_none=True)
    discounts = Computed("_discounts", DiscountSchema, many=True, required=True)
    credits_used = fields.Float(
        required=True, metadata={"description": "IV credits that paid the line (it costs 0)."}
    )

    def _discounts(self, line: Any) -> list[dict[str, Any]]:
        return discounts_of(line)


class InvoiceSchema(Schema):
    """One patient's bill; `amount_paid` and `amount_refunded` come from the ledger."""

    id = typed("InvoiceId", fields.String(required=True))
    number = typed("InvoiceNumber", fields.String(required=True))
    status = typed("InvoiceStatus", fields.String(required=True))
    kind = typed("InvoiceKind", fields.String(required=True))
    fee_reason = typed("FeeReason", fields.String(required=True, allow_none=True))
    quote_id = typed("QuoteId", fields.String(required=True, allow_none=True))
    booking_id = typed(
        "BookingId",
        fields.String(
            required=True, allow_none=True, metadata={"description": "null for a package."}
        ),
    )
    patient_id = typed("PatientId", fields.String(required=True))
    patient_name = fields.String(required=True)
    session_type = typed("InvoiceSessionType", fields.String(required=True))
    scheduled_at = fields.DateTime(required=True)
    currency = Currency(required=True)
    total = fields.Integer(required=True)
    amount_paid = fields.Integer(required=True)
    amount_refunded = fields.Integer(required=True)
    amount_processing = fields.Integer(
        required=True,
        metadata={
            "description": "What payments Stripe is still processing would pay: a bank debit "
            "(ACH) is processing for up to four business days. Not yet paid: "
            "`balance_due` still counts it."
        },
    )
    deposit = fields.Integer(
        required=True,
        metadata={"description": "The deposit its quote asked when booking (0: none)."},
    )
    deposit_due = fields.Integer(
        required=True,
        metadata={
            "description": "What of the deposit is still to pay: collect it like any payment "
            "(`amount`), by card, pay link or at the desk."
        },
    )
    amount_credited = fields.Integer(
        required=True, metadata={"description": "What credit notes took off the total."}
    )
    amount_written_off = fields.Integer(
        required=True, metadata={"description": "What write-offs closed without collecting."}
    )
    balance_due = fields.Integer(
        required=True,
        metadata={
            "description": "What is still owed: the total less credit notes, write-offs and "
            "what was paid (the patient's credit applied counts as paid). Refunds do not "
            "reopen it; a void invoice owes nothing."
        },
    )
    lines = fields.List(fields.Nested(InvoiceLineSchema), required=True)
    plan = fields.Nested(
        "PlanSchema",
        required=True,
        allow_none=True,
        metadata={"description": "Its payment plan, if it has one (not cancelled)."},
    )
    created_at = fields.DateTime(required=True)
    voided_at = fields.DateTime(required=True, allow_none=True)
    disputed_at = fields.DateTime(required=True, allow_none=True)


class InvoiceListSchema(Schema):
    data = fields.List(fields.Nested(InvoiceSchema), required=True)
    has_more = fields.Boolean(required=True)


class InvoiceQuerySchema(Schema):
    status = typed("InvoiceStatus", fields.String(validate=validate.OneOf(INVOICE_STATUSES)))
    patient_id = typed("PatientId", identifier())
    booking_id = typed("BookingId", identifier())
    created_gte = UtcDateTime()
    created_lt = UtcDateTime()
    # Query strings carry text: a plain Integer parses "50"; the range keeps it sane.
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))
    starting_after = typed("InvoiceId", fields.String(validate=validate.Length(min=1, max=64)))


class InvoicePathSchema(Schema):
    invoice_id = fields.String(required=True)


RECEIVED_METHODS = ("cash", "check", "external")
RECORDED_METHODS = (*RECEIVED_METHODS, "account_credit", "gift_card")


class PaymentRequestSchema(Schema):
    method = typed(
        "PaymentMethod",
        fields.String(
            required=True,
            validate=validate.OneOf(["card_on_file", "bank_debit", "online", *RECORDED_METHODS]),
        ),
    )
    amount = amount(
        metadata={
            "description": "How much to collect, in minor units; by default all the invoice "
            "still owes (`balance_due`). Never more than that. For `online`, the pay page "
            "opens asking for this much (at least the clinic's PAY_PAGE_MINIMUMS for the "
            "currency); the patient may still change it. For `account_credit` and "
            "`gift_card`, by default as much of the credit or the card as pays it.",
            "example": 20000,
        }
    )
    send_email = fields.Boolean(
        load_default=False,
        metadata={"description": "method online: also email the pay link to the patient."},
    )
    reference = Text(
        100,
        metadata={
            "description": "cash, check, external: the check's number (required for a "
            "check) or the terminal's or processor's reference.",
            "example": "1042",
        },
    )
    received_at = UtcDateTime(
        metadata={
            "description": "cash, check, external: when the money came in; by "
            "default now. Never in the future."
        }
    )
    code = fields.String(
        validate=validate.Length(min=1, max=40),
        metadata={
            "description": "gift_card: the gift card's code.",
            "example": "GC-7KQ2-M9XD-4TWA",
        },
    )

    @validates_schema
    def _fields_go_with_their_method(self, data: dict[str, Any], **_: Any) -> None:
        method = data.get("method")
        if data.get("send_email") and method != "online":
            raise ValidationError("Only a pay link (method online) is emailed.", "send_email")
        for name in ("reference", "received_at"):
            if name in data and method not in RECEIVED_METHODS:
                raise ValidationError(
                    "Only money received at the desk (cash, check, external) has this.", name
                )
        if "code" in data and method != "gift_card":
            raise ValidationError("Only a gift card (method gift_card) has a code.", "code")
        received = data.get("received_at")
        if received is not None and received > datetime.now(UTC) + timedelta(minutes=5):
            raise ValidationError("Must not be in the future.", "received_at")


class NextActionSchema(Schema):
    """What the patient's browser must do: authenticate the card with `client_secret`."""

    type = fields.String(
        required=True,
        validate=validate.OneOf(["authenticate"]),
        metadata={"example": "authenticate"},
    )
    client_secret = fields.String(required=True)


class PaymentSchema(Schema):
    """One attempt to collect an invoice; an online one (a pay link) has no id until the
    patient pays."""

    id = typed("PaymentId")
    invoice_id = typed("InvoiceId", fields.String(required=True))
    method = typed("PaymentMethod", fields.String(required=True))
    status = typed("PaymentStatus", fields.String(required=True))
    amount = fields.Integer(required=True)
    currency = Currency(required=True)
    card_brand = fields.String(
        allow_none=True, metadata={"description": "The card's brand, or the bank's name."}
    )
    card_last4 = fields.String(allow_none=True)
    source = typed(
        "PaymentSource",
        fields.String(
            allow_none=True,
            metadata={
                "description": "What Stripe collected it from, once known: card or "
                "us_bank_account (a bank debit: processing for days, and it may come back "
                "after it succeeded, then `returned`)."
            },
        ),
    )
    failure_code = fields.String(allow_none=True)
    decline_code = fields.String(
        allow_none=True,
        metadata={
            "description": "A declined card's reason as the bank gave it "
            "(insufficient_funds, lost_card, ...), when Stripe said."
        },
    )
    failure_message = fields.String(allow_none=True)
    next_action = Computed("_next_action", NextActionSchema, required=True, allow_none=True)
    invoice_status = typed(
        "InvoiceStatus", fields.String(attribute="invoice.status", required=True)
    )
    created_at = fields.DateTime(required=True)
    paid_at = fields.DateTime(allow_none=True)
    reference = fields.String(
        allow_none=True, metadata={"description": "cash, check, external: as recorded."}
    )
    received_at = fields.DateTime(
        allow_none=True, metadata={"description": "cash, check, external: when it came in."}
    )
    recorded_by = fields.String(
        allow_none=True,
        metadata={"description": "cash, check, external: the key that recorded it."},
    )
    reversed_at = fields.DateTime(
        allow_none=True,
        metadata={"description": "When money recorded as received was reversed (status reversed)."},
    )
    reversal_reason = fields.String(allow_none=True)
    pay_url = fields.String(
        metadata={"description": "method online: the patient's pay link", "format": "uri"}
    )
    pay_url_expires_at = fields.DateTime()
    email_queued = fields.Boolean(
        metadata={
            "description": "send_email: the pay link is on its way to the patient's "
            "address; false when the booking gave none, or when emails cannot be sent "
            "(no PUBLIC_BASE_URL, or no SMTP_URL in production)."
        }
    )

    def _next_action(self, payment: object) -> dict[str, str] | None:
        if getattr(payment, "status", None) != "requires_action":
            return None
        return {"type": "authenticate", "client_secret": getattr(payment, "client_secret", "")}


class ReversalRequestSchema(Schema):
    reason = Text(500, required=True, metadata={"example": "check returned: insufficient funds"})


class PaymentPathSchema(Schema):
    invoice_id = fields.String(required=True)
    payment_id = typed("PaymentId", fields.String(required=True, validate=validate.Length(max=32)))


class RefundRequestSchema(Schema):
    amount = amount(required=True, metadata={"example": 10000})
    reason = Text(500, required=True, metadata={"example": "session shortened"})


class RefundSchema(Schema):
    id = typed("RefundId", fields.String(required=True))
    invoice_id = typed("InvoiceId", fields.String(required=True))
    payment_id = typed(
        "PaymentId",
        fields.String(
            required=True,
            allow_none=True,
            metadata={"description": "The payment refunded; null for one made at Stripe."},
        ),
    )
    amount = fields.Integer(required=True)
    currency = Currency(required=True)
    reason = fields.String(required=True)
    kind = typed("RefundKind", fields.String(required=True))
    status = typed("RefundStatus", fields.String(required=True))
    failure_code = fields.String(required=True, allow_none=True)
    failure_message = fields.String(required=True, allow_none=True)
    invoice_status = typed(
        "InvoiceStatus", fields.String(attribute="invoice.status", required=True)
    )
    created_at = fields.DateTime(required=True)


class PatientPathSchema(Schema):
    patient_id = typed("PatientId", identifier(required=True))


class CardPathSchema(Schema):
    patient_id = typed("PatientId", identifier(required=True))
    payment_method_id = typed(
        "PaymentMethodId",
        fields.String(
            required=True,
            validate=validate.Regexp(r"^pm_[A-Za-z0-9_]{1,250}$", error="Must be a pm_... id."),
        ),
    )


SETUP_INTENT_ID = typed(
    "SetupIntentId",
    fields.String(
        validate=validate.Regexp(r"^seti_[A-Za-z0-9_]{1,250}$", error="Must be a seti_... id.")
    ),
)


class SetupIntentSchema(Schema):
    patient_id = typed("PatientId", fields.String(required=True))
    setup_intent = typed("SetupIntentId", fields.String(required=True))
    client_secret = fields.String(required=True)


class FromAnAddress(Schema):
    """A consent given from an IP address, kept as text."""

    @post_load
    def _plain_address(self, data: dict[str, Any], **_kwargs: Any) -> dict[str, Any]:
        if "ip_address" in data:
            data["ip_address"] = str(data["ip_address"])
        return data


class ConsentSchema(FromAnAddress):
    """What the patient agreed to when the card was saved, word for word, and when; with
    the address and browser it was given from (Stripe's customer acceptance), if known."""

    text = fields.String(required=True, validate=validate.Length(min=1, max=2000))
    agreed_at = UtcDateTime(required=True)
    ip_address = fields.IP(metadata={"description": "The patient's IP address when agreeing."})
    user_agent = fields.String(
        validate=validate.Length(min=1, max=500),
        metadata={"description": "The patient's browser when agreeing."},
    )
    max_per_charge = fields.Integer(
        validate=validate.Range(min=1),
        metadata={
            "description": "The most one charge of the card may be, in the minor unit, as "
            "the patient set it: a larger charge is refused (409 consent_limit)."
        },
    )
    max_per_year = fields.Integer(
        validate=validate.Range(min=1),
        metadata={"description": "The most charged to the card in a calendar year."},
    )
    expires_on = fields.Date(
        metadata={"description": "The last day the card may be charged under this consent."}
    )


class CardRequestSchema(Schema):
    """A card set up with Stripe: the SetupIntent the patient's browser confirmed (as Stripe
    recommends), or a PaymentMethod made by Stripe.js, which is set up now."""

    setup_intent = SETUP_INTENT_ID
    payment_method = typed(
        "PaymentMethodId",
        fields.String(
            validate=validate.Regexp(r"^pm_[A-Za-z0-9_]{1,250}$", error="Must be a pm_... id."),
        ),
    )
    consent = fields.Nested(
        ConsentSchema,
        metadata={
            "description": "The patient's consent to charge this card later for visits and "
            "fees; only a card saved with consent is charged fees off-session."
        },
    )
    hsa_fsa = fields.Boolean(
        load_default=False,
        metadata={"description": "An HSA/FSA card: never charged fees automatically."},
    )

    @validates_schema
    def _one_way(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if "setup_intent" in data and "payment_method" in data:
            raise ValidationError("Send setup_intent or payment_method, not both.", "setup_intent")
        if "setup_intent" not in data and "payment_method" not in data:
            raise ValidationError("Send setup_intent (or payment_method).", "setup_intent")


class AcceptanceSchema(FromAnAddress):
    """How the patient accepted terms: `online` (their address and browser required) or
    `offline` (a form signed at the desk), and when."""

    accepted = fields.String(required=True, validate=validate.OneOf(["online", "offline"]))
    agreed_at = UtcDateTime(metadata={"description": "When it was accepted; by default now."})
    ip_address = fields.IP(metadata={"description": "online: the patient's IP address."})
    user_agent = fields.String(
        validate=validate.Length(min=1, max=500),
        metadata={"description": "online: the patient's browser."},
    )

    @validates_schema
    def _online_says_where(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if data.get("accepted") == "online":
            for name in ("ip_address", "user_agent"):
                if name not in data:
                    raise ValidationError("An online acceptance says where it came from.", name)


class MandateSchema(AcceptanceSchema):
    """The patient's authorization to debit their bank account (ACH), as Nacha's rules ask
    it kept: the words they accepted, when, and how: `online` (their address and browser
    required) or `offline` (a form signed at the desk)."""

    text = fields.String(
        required=True,
        validate=validate.Length(min=1, max=2000),
        metadata={
            "example": "I authorize Lumen Clinic to debit my account for the amounts of my "
            "invoices when they are due. I can revoke this by telling the clinic."
        },
    )


class BankAccountRequestSchema(Schema):
    """A US bank account PaymentMethod made by Stripe.js (Financial Connections), with the
    patient's mandate."""

    payment_method = typed(
        "PaymentMethodId",
        fields.String(
            required=True,
            validate=validate.Regexp(r"^pm_[A-Za-z0-9_]{1,250}$", error="Must be a pm_... id."),
        ),
    )
    mandate = fields.Nested(MandateSchema, required=True)


class BankAccountSchema(Schema):
    """A saved bank account: never more than the bank's name and the last four digits."""

    id = typed("PaymentMethodId", fields.String(required=True))
    bank_name = fields.String(required=True, metadata={"example": "STRIPE TEST BANK"})
    last4 = fields.String(required=True, metadata={"example": "6789"})
    mandate = fields.String(required=True, metadata={"description": "Stripe's mandate id."})


class CardConsentSchema(Schema):
    text = fields.String(required=True)
    agreed_at = fields.DateTime(required=True)
    ip_address = fields.String(required=True, allow_none=True)
    user_agent = fields.String(required=True, allow_none=True)
    invoice_id = typed("InvoiceId", fields.String(required=True, allow_none=True))
    setup_intent = typed("SetupIntentId", fields.String(required=True, allow_none=True))
    max_per_charge = fields.Integer(required=True, allow_none=True)
    max_per_year = fields.Integer(required=True, allow_none=True)
    expires_on = fields.Date(required=True, allow_none=True)


class CardSchema(Schema):
    """A saved card: never more than brand, last four digits and expiry."""

    id = typed("PaymentMethodId", fields.String(required=True))
    brand = fields.String(required=True, metadata={"example": "visa"})
    last4 = fields.String(required=True, metadata={"example": "4242"})
    exp_month = fields.Integer(required=True)
    exp_year = fields.Integer(required=True)
    default = fields.Boolean(required=True)
    consent = fields.Nested(CardConsentSchema, required=True, allow_none=True)
    hsa_fsa = fields.Boolean(required=True)


class CardListSchema(Schema):
    data = fields.List(fields.Nested(CardSchema), required=True)
    has_more = fields.Boolean(required=True)


class CreditNoteRequestSchema(Schema):
    amount = amount(
        required=True,
        metadata={"description": "What to take off the invoice, in minor units.", "example": 5000},
    )
    reason = Text(500, required=True, metadata={"example": "session shortened to 30 minutes"})
    approved_by = Text(200, required=True, metadata={"example": "Dr. Rivera"})


class WriteOffRequestSchema(Schema):
    amount = amount(
        metadata={
            "description": "What to write off, in minor units; by default all that is still "
            "owed (`balance_due`), never more.",
            "example": 5000,
        }
    )
    category = typed(
        "WriteOffCategory",
        fields.String(
            required=True,
            validate=validate.OneOf(("bad_debt", "small_balance", "hardship", "other")),
        ),
    )
    reason = Text(500, required=True, metadata={"example": "patient moved away; no reply"})
    approved_by = Text(200, required=True, metadata={"example": "M. Chen, finance"})


class AdjustmentSchema(Schema):
    """A credit note or a write-off of one invoice; never edited."""

    id = typed("AdjustmentId", fields.String(required=True))
    number = typed("AdjustmentNumber", fields.String(required=True))
    kind = typed("AdjustmentKind", fields.String(required=True))
    invoice_id = typed("InvoiceId", fields.String(required=True))
    amount = fields.Integer(required=True)
    currency = Currency(required=True)
    category = typed(
        "WriteOffCategory",
        fields.String(required=True, allow_none=True, metadata={"description": "A write-off's."}),
    )
    reason = fields.String(required=True)
    approved_by = fields.String(required=True)
    created_by = fields.String(required=True, metadata={"description": "The key that made it."})
    refunded = fields.Integer(
        required=True,
        metadata={"description": "A credit note's: what of the money paid went back to cards."},
    )
    to_credit = fields.Integer(
        required=True,
        metadata={"description": "A credit note's: what of the money paid became credit."},
    )
    invoice = fields.Nested(InvoiceSchema, required=True)
    created_at = fields.DateTime(required=True)
