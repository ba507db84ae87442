"""The problem+json error body (RFC 9457), for the OpenAPI document."""

from __future__ import annotations

from marshmallow import Schema, fields

from schemas.types import typed


class ProblemSchema(Schema):
    """Every error the service answers: RFC 9457 problem details plus a stable `code`."""

    type = fields.String(
        required=True,
        metadata={
            "description": "A URI reference naming the problem: /problems/<code>.",
            "format": "uri-reference",
        },
    )
    title = fields.String(required=True, metadata={"description": "The status, in words."})
    status = fields.Integer(required=True, metadata={"description": "The HTTP status."})
    detail = fields.String(
        required=True, metadata={"description": "What went wrong and what to do, for people."}
    )
    code = typed(
        "ErrorCode",
        fields.String(
            required=True,
            metadata={
                "description": "Stable and machine-readable: branch on this, not on `detail`."
            },
        ),
        open_set=True,
    )
    errors = fields.Dict(
        keys=fields.String(),
        values=fields.List(fields.String()),
        metadata={
            "description": "The fields that were wrong (dotted paths) and what was wrong.",
            "example": {"patients.1": ["A new patient's first session must be IV."]},
        },
    )
    request_id = fields.String(metadata={"description": "Quote it when reporting a problem."})
    payment_id = typed(
        "PaymentId",
        fields.String(
            metadata={"description": "Payment refusals: the payment this answer is about."}
        ),
    )
    invoice_id = typed(
        "InvoiceId",
        fields.String(
            metadata={"description": "Payment and refund refusals: the invoice concerned."}
        ),
    )
    refund_id = typed(
        "RefundId",
        fields.String(
            metadata={"description": "Refund refusals: the refund this answer is about."}
        ),
    )
    dispute_id = fields.String(
        metadata={"description": "bill_in_dispute: the patient's open dispute of the bill."}
    )
    limit = fields.String(
        metadata={
            "description": "consent_limit: which of the consent's limits the charge passes "
            "(max_per_charge, max_per_year or expires_on)."
        }
    )
    max = fields.String(metadata={"description": "consent_limit: the limit, in the minor unit."})
    charged_this_year = fields.String(
        metadata={"description": "consent_limit (max_per_year): charged this calendar year."}
    )
    expires_on = fields.String(
        metadata={"description": "consent_limit (expires_on): the consent's last day."}
    )
