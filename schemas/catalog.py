"""The price catalogue and new price versions."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validates_schema

from billing.domain.money import STRIPE_MINIMUM_CHARGE, Money
from billing.domain.pricing import (
    DESCRIPTIONS,
    IM_GROUP,
    PATIENTS_PER_SESSION,
    SESSION_TYPES,
    session_price,
)
from schemas.fields import Computed, Currency, amount
from schemas.types import typed


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

    def _group_amount(self, price: object) -> int:
        return session_price(IM_GROUP, price.iv_individual).amount  # type: ignore[attr-defined]


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
    effective_at = fields.AwareDateTime(
        metadata={"description": "When the price takes effect; omitted means now."}
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
