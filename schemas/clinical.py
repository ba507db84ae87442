"""Patients' billing profiles, as clinical staff set them."""

from __future__ import annotations

from datetime import date

from marshmallow import Schema, ValidationError, fields, validate, validates

from billing.domain.clinical import PAYER_CLASSES, npi_problem
from schemas.fields import Computed, Currency
from schemas.types import typed


class AddressSchema(Schema):
    line1 = fields.String(required=True, validate=validate.Length(min=1, max=200))
    line2 = fields.String(validate=validate.Length(max=200))
    city = fields.String(required=True, validate=validate.Length(min=1, max=100))
    state = fields.String(
        validate=validate.Length(min=1, max=50),
        metadata={"description": "A US state's two letters, or a region elsewhere."},
    )
    postal_code = fields.String(required=True, validate=validate.Length(min=1, max=20))
    country = fields.String(
        load_default="US",
        validate=validate.Regexp(r"^[A-Z]{2}$", error="Two capital letters (ISO 3166)."),
    )


class ProfileRequestSchema(Schema):
    date_of_birth = fields.Date(
        metadata={"description": "Needed for a superbill, a claim or an estimate that asks it."}
    )
    address = fields.Nested(AddressSchema)
    payer_class = typed(
        "PayerClass",
        fields.String(
            load_default="self_pay",
            validate=validate.OneOf(PAYER_CLASSES),
            metadata={"description": "Who pays: self-pay by default."},
        ),
    )

    @validates("date_of_birth")
    def _born(self, value: date, **_kwargs: object) -> None:
        if value > date.today() or value.year < 1900:
            raise ValidationError("A date of birth between 1900 and today.")


class AddressOutSchema(Schema):
    line1 = fields.String(required=True, attribute="address_line1")
    line2 = fields.String(required=True, allow_none=True, attribute="address_line2")
    city = fields.String(required=True)
    state = fields.String(required=True, allow_none=True)
    postal_code = fields.String(required=True)
    country = fields.String(required=True, allow_none=True)


class ProfileSchema(Schema):
    patient_id = typed("PatientId", fields.String(required=True))
    date_of_birth = fields.Date(required=True, allow_none=True)
    address = Computed("_address", AddressOutSchema, required=True, allow_none=True)
    payer_class = typed("PayerClass", fields.String(required=True))
    updated_at = fields.DateTime(required=True)

    def _address(self, profile: object) -> object | None:
        return profile if getattr(profile, "address_line1", None) is not None else None


class ProfilePathSchema(Schema):
    patient_id = typed(
        "PatientId",
        fields.String(required=True, validate=validate.Length(min=1, max=64)),
    )


class ClinicianSchema(Schema):
    npi = typed("Npi", fields.String(required=True))
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    credentials = fields.String(
        allow_none=True,
        validate=validate.Length(max=50),
        metadata={"description": "Such as MD, DO, NP, LCSW."},
    )
    created_at = fields.DateTime(dump_only=True)

    @validates("npi")
    def _npi(self, npi: str, **_kwargs: object) -> None:
        problem = npi_problem(npi)
        if problem:
            raise ValidationError(problem)


class ClinicianListSchema(Schema):
    data = fields.List(fields.Nested(ClinicianSchema), required=True)


class SuperbillAddressSchema(Schema):
    line1 = fields.String(required=True)
    line2 = fields.String(required=True, allow_none=True)
    city = fields.String(required=True)
    state = fields.String(required=True, allow_none=True)
    postal_code = fields.String(required=True)
    country = fields.String(required=True, allow_none=True)


class SuperbillPatientSchema(Schema):
    patient_id = typed("PatientId", fields.String(required=True))
    name = fields.String(required=True)
    date_of_birth = fields.String(required=True, metadata={"format": "date"})
    address = fields.Nested(SuperbillAddressSchema, required=True)
    payer_class = typed("PayerClass", fields.String(required=True))


class BillingProviderSchema(Schema):
    name = fields.String(required=True)
    npi = typed("Npi", fields.String(required=True))
    tin = fields.String(required=True)
    taxonomy = fields.String(required=True)
    address = fields.String(required=True)
    phone = fields.String(required=True)


class RenderingProviderSchema(Schema):
    name = fields.String(required=True)
    npi = typed("Npi", fields.String(required=True))
    credentials = fields.String(required=True, allow_none=True)


class DiagnosisSchema(Schema):
    pointer = fields.String(
        required=True, metadata={"description": "A to L, as on CMS-1500 box 21."}
    )
    code = fields.String(required=True, metadata={"description": "ICD-10-CM."})
    description = fields.String(required=True)


class SuperbillLineSchema(Schema):
    code = fields.String(required=True, metadata={"description": "CPT or HCPCS."})
    description = fields.String(required=True)
    modifiers = fields.List(fields.String(), required=True)
    units = fields.Integer(required=True)
    charge = fields.Integer(required=True, metadata={"description": "In the minor unit."})
    diagnosis_pointers = fields.String(required=True, metadata={"description": "Such as AB."})


class SuperbillSchema(Schema):
    invoice_id = typed("InvoiceId", fields.String(required=True))
    invoice_number = typed("InvoiceNumber", fields.String(required=True))
    currency = Currency(required=True)
    date_of_service = fields.String(required=True, metadata={"format": "date"})
    place_of_service = fields.String(
        required=True,
        metadata={"description": "CMS place of service code: 11 office, 02/10 telehealth."},
    )
    patient = fields.Nested(SuperbillPatientSchema, required=True)
    billing_provider = fields.Nested(BillingProviderSchema, required=True)
    rendering_provider = fields.Nested(RenderingProviderSchema, required=True)
    diagnoses = fields.List(fields.Nested(DiagnosisSchema), required=True)
    lines = fields.List(fields.Nested(SuperbillLineSchema), required=True)
    total_charges = fields.Integer(required=True)
    amount_paid = fields.Integer(required=True)
    balance_due = fields.Integer(required=True)
    signature = fields.String(required=True)


class SuperbillPathSchema(Schema):
    invoice_id = typed(
        "InvoiceId", fields.String(required=True, validate=validate.Length(min=1, max=64))
    )
