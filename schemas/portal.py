"""The patient portal's API: a sign-in link staff send a patient; patients' requests for
their credit back, which staff answer."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from schemas.fields import Currency, Text
from schemas.types import typed


class PortalLinkSchema(Schema):
    sent_to = fields.String(
        required=True,
        metadata={"description": "The address the link went to, partly hidden (r***@example.org)."},
    )
    expires_at = fields.DateTime(
        required=True, metadata={"description": "When the link stops working."}
    )


REQUEST_STATUSES = ("open", "refunded", "declined")


class CreditBackRequestSchema(Schema):
    id = typed("CreditBackRequestId", fields.String(required=True))
    patient_id = typed("PatientId", fields.String(required=True))
    currency = Currency(required=True)
    amount = fields.Integer(
        required=True, metadata={"description": "The patient's credit when they asked."}
    )
    status = typed(
        "CreditBackRequestStatus",
        fields.String(required=True, validate=validate.OneOf(REQUEST_STATUSES)),
    )
    refund_id = typed("RefundId", fields.String(required=True, allow_none=True))
    note = fields.String(required=True, allow_none=True)
    created_at = fields.DateTime(required=True)
    closed_at = fields.DateTime(required=True, allow_none=True)


class CreditBackRequestListSchema(Schema):
    data = fields.List(fields.Nested(CreditBackRequestSchema), required=True)
    has_more = fields.Boolean(
        required=True,
        metadata={
            "description": "More follow: ask again with the last one's id as `starting_after`."
        },
    )


class CreditBackRequestQuerySchema(Schema):
    status = typed(
        "CreditBackRequestStatus", fields.String(validate=validate.OneOf(REQUEST_STATUSES))
    )
    limit = fields.Integer(load_default=200, validate=validate.Range(min=1, max=200))
    starting_after = typed(
        "CreditBackRequestId",
        fields.String(
            validate=validate.Regexp(r"^crq_[0-9a-f]{24}$", error="Must be a crq_... id."),
            metadata={"description": "The last request of the page before."},
        ),
    )


class CreditBackRequestPathSchema(Schema):
    request_id = typed(
        "CreditBackRequestId",
        fields.String(
            required=True,
            validate=validate.Regexp(r"^crq_[0-9a-f]{24}$", error="Must be a crq_... id."),
        ),
    )


class DeclineRequestSchema(Schema):
    note = Text(500, required=True, metadata={"example": "the credit pays next week's session"})
