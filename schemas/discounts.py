"""Discounts: as a booking system asks for them, and as quotes, invoices and receipts
show them."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

from billing.domain.discounts import MEMBER_PRICE, PROMOTION, SLIDING_SCALE
from schemas.fields import Name, StrictInteger


class SlidingScaleRequestSchema(Schema):
    """A staff-approved hardship discount on one patient's line."""

    percent = StrictInteger(
        required=True,
        validate=validate.Range(min=1, max=100),
        metadata={"description": "At most MAX_DISCOUNT_PERCENT (50 unless configured)."},
    )
    reason = fields.String(required=True, validate=validate.Length(min=1, max=200))
    approved_by = Name(required=True, metadata={"example": "Jo Park, practice manager"})


class DiscountSchema(Schema):
    """One discount on a line: a membership's member price, the sliding scale, or a
    promotion code's share (taken in that order)."""

    kind = fields.String(
        required=True, validate=validate.OneOf([MEMBER_PRICE, SLIDING_SCALE, PROMOTION])
    )
    description = fields.String(required=True)
    amount = fields.Integer(required=True, metadata={"description": "Taken off the line."})
    percent = fields.Integer(required=True, allow_none=True)
    code = fields.String(
        required=True,
        allow_none=True,
        metadata={"description": "The promotion code; for a member price, the membership's id."},
    )
    reason = fields.String(required=True, allow_none=True)
    approved_by = fields.String(required=True, allow_none=True)


def _value(line: Any, name: str) -> Any:
    return line.get(name) if isinstance(line, dict) else getattr(line, name, None)


def discounts_of(line: Any) -> list[dict[str, Any]]:
    """A quote's or an invoice's line's discounts, in the order they were taken."""
    found = []
    if _value(line, "member_saving"):
        found.append(
            {
                "kind": MEMBER_PRICE,
                "description": "Member price",
                "amount": _value(line, "member_saving"),
                "percent": None,
                "code": _value(line, "membership_id"),
                "reason": None,
                "approved_by": None,
            }
        )
    if _value(line, "sliding_amount"):
        percent = _value(line, "sliding_percent")
        found.append(
            {
                "kind": SLIDING_SCALE,
                "description": f"Sliding-scale discount ({percent}%)",
                "amount": _value(line, "sliding_amount"),
                "percent": percent,
                "code": None,
                "reason": _value(line, "sliding_reason"),
                "approved_by": _value(line, "sliding_approved_by"),
            }
        )
    if _value(line, "promotion_amount"):
        code = _value(line, "promotion_code")
        found.append(
            {
                "kind": PROMOTION,
                "description": f"Promotion {code}",
                "amount": _value(line, "promotion_amount"),
                "percent": None,
                "code": code,
                "reason": None,
                "approved_by": None,
            }
        )
    return found
