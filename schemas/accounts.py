"""A patient's account: what they owe and the credit they hold, per currency."""

from __future__ import annotations

from marshmallow import Schema, fields

from schemas.fields import Currency, Text, amount
from schemas.invoices import InvoiceSchema
from schemas.memberships import MembershipSchema
from schemas.types import typed


class AccountBalanceSchema(Schema):
    currency = Currency(required=True)
    owed = fields.Integer(
        required=True, metadata={"description": "The open invoices' balance due, summed."}
    )
    credit = fields.Integer(
        required=True, metadata={"description": "Money of the patient's that no invoice owes."}
    )
    balance = fields.Integer(
        required=True,
        metadata={"description": "owed less credit: negative when the clinic owes the patient."},
    )


class AccountMovementSchema(Schema):
    id = typed("AccountMovementId", fields.String(required=True))
    kind = typed("AccountMovementKind", fields.String(required=True))
    amount = fields.Integer(
        required=True, metadata={"description": "Into the credit (positive) or out of it."}
    )
    currency = Currency(required=True)
    invoice_id = typed("InvoiceId", fields.String(required=True, allow_none=True))
    payment_id = typed("PaymentId", fields.String(required=True, allow_none=True))
    adjustment_id = typed("AdjustmentId", fields.String(required=True, allow_none=True))
    refund_id = typed("RefundId", fields.String(required=True, allow_none=True))
    note = fields.String(required=True)
    approved_by = fields.String(
        required=True, allow_none=True, metadata={"description": "goodwill: who approved it."}
    )
    created_at = fields.DateTime(required=True)


class AccountSchema(Schema):
    """What the patient owes and holds; credit pays their oldest open invoices within a
    minute, or staff apply it (`account_credit`)."""

    patient_id = typed("PatientId", fields.String(required=True))
    balances = fields.List(fields.Nested(AccountBalanceSchema), required=True)
    open_invoices = fields.List(fields.Nested(InvoiceSchema), required=True)
    movements = fields.List(
        fields.Nested(AccountMovementSchema),
        required=True,
        metadata={"description": "The latest 100 movements of credit, newest first."},
    )
    memberships = fields.List(
        fields.Nested(MembershipSchema),
        required=True,
        metadata={"description": "The patient's memberships that are not cancelled."},
    )


class AccountRefundRequestSchema(Schema):
    amount = amount(required=True, metadata={"example": 5000})
    currency = Currency(required=True)
    reason = Text(500, required=True, metadata={"example": "the patient asked for it back"})


class GoodwillRequestSchema(Schema):
    """Credit staff grant a patient that no money paid: a service recovery."""

    amount = amount(required=True, metadata={"example": 5000})
    currency = Currency(required=True)
    reason = Text(500, required=True, metadata={"example": "the session started an hour late"})
    approved_by = Text(200, required=True, metadata={"example": "M. Chen, practice manager"})
