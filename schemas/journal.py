"""The accounting journal and closing a month: queries, bodies and answers."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from schemas.fields import Currency
from schemas.reports import MonthSchema
from schemas.types import typed


class JournalQuerySchema(MonthSchema):
    format = typed(
        "JournalFormat", fields.String(validate=validate.OneOf(["json", "xero", "quickbooks"]))
    )
    currency = Currency(metadata={"description": "Only the journals in this currency."})


class CloseMonthRequestSchema(MonthSchema):
    """The month to close; it must be over, and every earlier month with money closed."""


def _money(description: str) -> fields.Integer:
    return fields.Integer(required=True, metadata={"description": description})


class JournalLineSchema(Schema):
    account = typed("JournalAccount", fields.String(required=True))
    account_name = fields.String(required=True, metadata={"description": "QuickBooks' name."})
    account_code = fields.String(required=True, metadata={"description": "Xero's code."})
    tax_rate = fields.String(required=True, metadata={"description": "Xero's tax rate."})
    description = fields.String(required=True)
    debit = _money("Minor units; 0 on a credit line.")
    credit = _money("Minor units; 0 on a debit line.")


class JournalEntrySchema(Schema):
    """One day's journal in one currency: its debits always equal its credits."""

    number = typed("JournalNumber", fields.String(required=True))
    narration = fields.String(required=True, metadata={"example": "Stripe USD 2026-10-05"})
    date = fields.Date(required=True)
    currency = Currency(required=True)
    debits = _money("The sum of the debit lines.")
    credits = _money("The sum of the credit lines.")
    lines = fields.List(fields.Nested(JournalLineSchema), required=True)


class JournalSchema(Schema):
    month = fields.String(
        required=True, metadata={"pattern": r"^\d{4}-\d{2}$", "example": "2026-10"}
    )
    status = typed("MonthStatus", fields.String(required=True))
    closed_at = fields.DateTime(required=True, allow_none=True)
    closed_by = fields.String(required=True, allow_none=True)
    time_zone = fields.String(
        required=True, metadata={"description": "Whose calendar the days are.", "example": "UTC"}
    )
    journals = fields.List(fields.Nested(JournalEntrySchema), required=True)


class ClosedMonthSchema(Schema):
    month = fields.String(
        required=True, metadata={"pattern": r"^\d{4}-\d{2}$", "example": "2026-10"}
    )
    status = typed("MonthStatus", fields.String(required=True))
    closed_at = fields.DateTime(required=True)
    closed_by = fields.String(required=True, metadata={"description": "Who closed it."})
    time_zone = fields.String(required=True, metadata={"example": "UTC"})
