"""Good Faith Estimates, the report of bills above them, and disputes of a bill."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from schemas.fields import Currency, UtcDateTime, identifier
from schemas.types import typed


class EstimateCourseSchema(Schema):
    """Which estimate: the patient (of a group quote) and the course it covers."""

    patient_id = typed(
        "PatientId",
        identifier(metadata={"description": "Which patient of a group quote; optional for one."}),
    )
    sessions = fields.Integer(
        load_default=1,
        validate=validate.Range(min=1, max=52),
        metadata={"description": "A planned course: how many sessions (default 1)."},
    )
    months = fields.Integer(
        load_default=0,
        validate=validate.Range(min=0, max=12),
        metadata={"description": "Over how many months the course runs (up to 12)."},
    )
    requested = fields.Boolean(
        load_default=False,
        metadata={"description": "The patient asked for it: due in 3 business days."},
    )
    package = fields.String(
        validate=validate.Regexp(r"^[A-Za-z0-9_-]{2,40}$", error="2-40 letters, digits, _ or -."),
        metadata={
            "description": "A planned course from this package (its code): the sessions its "
            "credits pay at its price, and any more of `sessions` at the session's."
        },
    )

    @validates_schema
    def _course(self, data: dict[str, Any], **_: Any) -> None:
        sessions, months = data.get("sessions", 1), data.get("months", 0)
        if "package" in data:
            if months < 1:
                raise ValidationError("A course from a package runs over 1 to 12 months.", "months")
            return
        if sessions > 1 and months < 1:
            raise ValidationError("A course of sessions runs over 1 to 12 months.", "months")
        if sessions == 1 and months:
            raise ValidationError("One session runs over no months; give sessions.", "months")


class EstimateRequestSchema(EstimateCourseSchema):
    """Issue the estimate (once; asked again, the same one)."""

    requested_at = UtcDateTime(
        metadata={"description": "When the patient asked (with `requested`); default now."}
    )


class EstimateQuerySchema(EstimateCourseSchema):
    """Read the estimate issued, as JSON or as the PDF the patient keeps."""

    format = fields.String(validate=validate.OneOf(["json", "pdf"]))


class EstimateItemSchema(Schema):
    description = fields.String(required=True)
    codes = fields.List(
        fields.String(),
        required=True,
        metadata={"description": "Service and supply codes (HCPCS/CPT), as configured."},
    )
    quantity = fields.Integer(required=True)
    unit_amount = fields.Integer(required=True)
    amount = fields.Integer(required=True)


class ProviderSchema(Schema):
    name = fields.String(required=True)
    npi = fields.String(
        required=True,
        allow_none=True,
        metadata={"description": "The convening provider's NPI (CLINIC_NPI when given)."},
    )
    tax_id = fields.String(required=True)
    address = fields.String(required=True)
    phone = fields.String(required=True)
    email = fields.String(required=True)


class EstimatePatientSchema(Schema):
    patient_id = typed("PatientId", fields.String(required=True))
    name = fields.String(required=True)
    date_of_birth = fields.Date(required=True, allow_none=True)


class EstimateSchema(Schema):
    """A Good Faith Estimate for a self-pay patient, as given (and kept)."""

    id = typed("EstimateId", fields.String(required=True))
    quote_id = typed("QuoteId", fields.String(required=True))
    booking_id = typed("BookingId", fields.String(required=True))
    patient = fields.Nested(EstimatePatientSchema, required=True)
    provider = fields.Nested(ProviderSchema, required=True)
    scheduled_at = fields.DateTime(required=True)
    sessions = fields.Integer(required=True)
    course_months = fields.Integer(required=True)
    package_code = fields.String(
        required=True, allow_none=True, metadata={"description": "The course's package, if any."}
    )
    currency = Currency(required=True)
    items = fields.List(fields.Nested(EstimateItemSchema), required=True)
    total = fields.Integer(required=True)
    issued_at = fields.DateTime(required=True)
    due_by = fields.DateTime(
        required=True,
        allow_none=True,
        metadata={"description": "The rule's deadline (null: booked under 3 business days ahead)."},
    )
    on_time = fields.Boolean(required=True)
    requested = fields.Boolean(required=True)
    dispute_threshold = fields.Integer(
        required=True, metadata={"description": "A bill this much above may be disputed."}
    )
    notice = fields.String(required=True)
    may_differ = fields.String(
        required=True, metadata={"description": "Actual items and charges may differ."}
    )
    scheduled_separately = fields.String(
        required=True,
        metadata={"description": "Items to be scheduled separately are not included."},
    )
    replaces_id = typed(
        "EstimateId",
        fields.String(
            required=True,
            allow_none=True,
            metadata={
                "description": "An updated estimate (the booking was re-quoted): the one it "
                "replaces, which stays kept as given."
            },
        ),
    )
    diagnosis_codes = fields.List(
        fields.String(),
        required=True,
        metadata={"description": "ICD-10-CM codes known when it was given (latest visit)."},
    )


class VariancePatientSchema(Schema):
    patient_id = typed("PatientId", fields.String(required=True))
    patient_name = fields.String(required=True)
    estimate_id = typed("EstimateId", fields.String(required=True))
    quote_id = typed("QuoteId", fields.String(required=True))
    issued_at = fields.DateTime(required=True)
    estimated = fields.Integer(required=True)
    billed = fields.Integer(required=True)
    over = fields.Integer(required=True)


class VarianceCurrencySchema(Schema):
    threshold = fields.Integer(required=True)
    patients = fields.List(fields.Nested(VariancePatientSchema), required=True)


class EstimateVarianceSchema(Schema):
    """Patients billed the dispute threshold or more above their estimate, per currency."""

    currencies = fields.Dict(
        keys=fields.String(metadata={"example": "usd"}),
        values=fields.Nested(VarianceCurrencySchema),
        required=True,
    )


class BillDisputeRequestSchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf(["open", "resolved"]))
    note = fields.String(validate=validate.Length(max=500))


class BillDisputeSchema(Schema):
    id = typed("BillDisputeId", fields.String(required=True))
    invoice_id = typed("InvoiceId", fields.String(required=True))
    patient_id = typed("PatientId", fields.String(required=True))
    note = fields.String(required=True, allow_none=True)
    opened_at = fields.DateTime(required=True)
    resolved_at = fields.DateTime(required=True, allow_none=True)
