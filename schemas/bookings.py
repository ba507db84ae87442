"""A booking after the quote: attendance, cancellations, and what the booking shows."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates

from billing.domain.clinical import (
    MAX_DIAGNOSES,
    diagnosis_problem,
    normal_diagnosis,
    npi_problem,
)
from billing.domain.policy import ATTENDANCE, CANCELLED_BY
from schemas.catalog import CancellationPolicySchema
from schemas.fields import Computed, Currency, UtcDateTime, identifier
from schemas.invoices import InvoiceSchema
from schemas.types import typed


class AttendanceMarkSchema(Schema):
    patient_id = typed("PatientId", identifier(required=True))
    status = typed("Attendance", fields.String(required=True, validate=validate.OneOf(ATTENDANCE)))
    diagnosis_codes = fields.List(
        fields.String(validate=validate.Length(min=3, max=8)),
        validate=validate.Length(min=1, max=MAX_DIAGNOSES),
        metadata={
            "description": "The visit's ICD-10-CM codes, the primary first (scope "
            "clinical:write too). Kept for superbills and claims only."
        },
    )
    rendering_provider = typed(
        "Npi",
        fields.String(
            metadata={
                "description": "The NPI of the clinician who rendered the session (scope "
                "clinical:write too); listed with POST /v1/catalog/providers."
            },
        ),
    )

    @validates("diagnosis_codes")
    def _codes(self, codes: list[str], **_kwargs: object) -> None:
        problems = [
            problem for code in codes if (problem := diagnosis_problem(normal_diagnosis(code)))
        ]
        if problems:
            raise ValidationError(problems)

    @post_load
    def _normal(self, data: dict[str, Any], **_kwargs: object) -> dict[str, Any]:
        if "diagnosis_codes" in data:
            data["diagnosis_codes"] = [normal_diagnosis(c) for c in data["diagnosis_codes"]]
        if data.get("status") == "no_show" and (
            "diagnosis_codes" in data or "rendering_provider" in data
        ):
            raise ValidationError(
                "A visit that did not happen has no diagnoses or clinician.", "diagnosis_codes"
            )
        return data

    @validates("rendering_provider")
    def _npi(self, npi: str, **_kwargs: object) -> None:
        problem = npi_problem(npi)
        if problem:
            raise ValidationError(problem)


class AttendanceRequestSchema(Schema):
    """Attended or no-show, per patient; marking again with the other status corrects it."""

    patients = fields.List(
        fields.Nested(AttendanceMarkSchema),
        required=True,
        validate=validate.Length(min=1, max=5, error="One to {max} patients."),
    )

    @validates("patients")
    def _distinct(self, value: list[dict[str, Any]], **_: Any) -> None:
        ids = [mark.get("patient_id") for mark in value]
        if len(set(ids)) != len(ids):
            raise ValidationError("Each patient at most once.")


class CancellationRequestSchema(Schema):
    """One patient's place (`patient_id`), or the whole booking without it."""

    patient_id = typed("PatientId", identifier())
    by = typed("CancelledBy", fields.String(required=True, validate=validate.OneOf(CANCELLED_BY)))
    cancelled_at = UtcDateTime(
        metadata={"description": "When the patient or clinic called it off; omitted means now."}
    )


class SeatSchema(Schema):
    """One patient's place in the booking's current quote."""

    patient_id = typed("PatientId", fields.String(required=True))
    invoice_id = typed("InvoiceId", fields.String(required=True))
    attendance = typed("Attendance", fields.String(required=True, allow_none=True))
    attendance_marked_at = fields.DateTime(required=True, allow_none=True)
    cancelled_at = fields.DateTime(required=True, allow_none=True)
    cancelled_by = typed("CancelledBy", fields.String(required=True, allow_none=True))
    cancellation_late = fields.Boolean(required=True, allow_none=True)
    fee_invoice_id = typed("InvoiceId", fields.String(required=True, allow_none=True))
    fee_exempt_reason = fields.String(
        required=True,
        allow_none=True,
        metadata={
            "description": "Why the policy's fee was not charged: the patient's payer class "
            "is exempt (FEE_EXEMPT_PAYER_CLASSES)."
        },
    )


class BookingSchema(Schema):
    """A booking once invoiced: its state, patients, invoices and fees."""

    booking_id = typed("BookingId", fields.String(required=True))
    state = typed("BookingState", fields.String(required=True))
    quote_id = typed("QuoteId", fields.String(required=True))
    session_type = typed("SessionType", fields.String(required=True))
    currency = Currency(required=True)
    scheduled_at = fields.DateTime(required=True)
    cancellation_policy = Computed("_policy", CancellationPolicySchema, required=True)
    patients = fields.List(fields.Nested(SeatSchema), attribute="seats", required=True)
    invoices = fields.List(
        fields.Nested(InvoiceSchema),
        required=True,
        metadata={"description": "Session invoices, those of superseded quotes included."},
    )
    fees = fields.List(fields.Nested(InvoiceSchema), required=True)

    def _policy(self, view: Any) -> Any:
        return view.booking.quote.cancellation_policy
