"""The audit trail: who changed what, and when."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from billing.domain.access import ACTOR_TYPES
from schemas.fields import UtcDateTime
from schemas.types import typed

# A detail is text, a number, a yes/no, or a list of records (an exemption per patient).
DETAIL_VALUES: list[dict[str, Any]] = [
    {"type": "string"},
    {"type": "integer"},
    {"type": "boolean"},
    {"type": "array", "items": {"type": "object", "additionalProperties": {"type": "string"}}},
]


class AuditEventSchema(Schema):
    """One change: who made it, what it was, when, and the request that made it."""

    id = fields.Integer(
        required=True, metadata={"description": "Ascending; pass as `starting_after`."}
    )
    occurred_at = fields.DateTime(required=True)
    actor_type = typed(
        "ActorType", fields.String(required=True, validate=validate.OneOf(ACTOR_TYPES))
    )
    actor = fields.String(
        required=True,
        metadata={"description": "The key's name, the finance user's email, cli:<user>, ..."},
    )
    action = fields.String(required=True, metadata={"example": "invoice.voided"})
    object_type = fields.String(required=True, metadata={"example": "invoice"})
    object_id = fields.String(required=True)
    request_id = fields.String(required=True, allow_none=True)
    details = fields.Dict(
        keys=fields.String(),
        required=True,
        metadata={
            "description": "What changed: amounts in minor units beside their currency, ids, "
            "reasons; which keys depend on the action.",
            # Null is a value of each kind (`nullable` only means something beside a type).
            "additionalProperties": {
                "anyOf": [{**kind, "nullable": True} for kind in DETAIL_VALUES]
            },
        },
    )


class AuditEventListSchema(Schema):
    data = fields.List(fields.Nested(AuditEventSchema), required=True)
    has_more = fields.Boolean(required=True)


class AuditQuerySchema(Schema):
    action = fields.String(
        validate=validate.Length(min=1, max=64),
        metadata={"description": "One action (`invoice.voided`), or all of a kind (`invoice.`)."},
    )
    actor = fields.String(validate=validate.Length(min=1, max=254))
    object_id = fields.String(validate=validate.Length(min=1, max=64))
    occurred_gte = UtcDateTime()
    occurred_lt = UtcDateTime()
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))
    starting_after = fields.Integer(validate=validate.Range(min=1, max=2**63 - 1))

    @validates_schema
    def _ordered(self, data: dict[str, Any], **_: Any) -> None:
        if "occurred_gte" in data and "occurred_lt" in data:
            if data["occurred_lt"] <= data["occurred_gte"]:
                raise ValidationError("Must be after `occurred_gte`.", "occurred_lt")
