"""Patients' billing profiles, as clinical staff set them."""

from __future__ import annotations

from datetime import date
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates

from billing.domain.clinical import PAYER_CLASSES, npi_problem
from schemas.fields import Computed, Currency, identifier
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


class InsuranceSchema(Schema):
    payer_name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    member_id = fields.String(
        required=True,
        validate=validate.Length(min=1, max=40),
        metadata={"description": "The insured's id on their card (CMS-1500 box 1a)."},
    )
    group_number = fields.String(validate=validate.Length(min=1, max=40))


class ProfileRequestSchema(Schema):
    date_of_birth = fields.Date(
        metadata={"description": "Needed for a superbill, a claim or an estimate that asks it."}
    )
    address = fields.Nested(AddressSchema)
    sex = fields.String(
        validate=validate.OneOf(("F", "M")),
        metadata={"description": "As a claim form asks it (CMS-1500 box 3): F or M."},
    )
    insurance = fields.Nested(
        InsuranceSchema,
        metadata={"description": "The patient's own insurance, for a claim they file."},
    )
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


class InsuranceOutSchema(Schema):
    payer_name = fields.String(required=True, attribute="insurance_payer")
    member_id = fields.String(required=True, attribute="insurance_member_id")
    group_number = fields.String(required=True, allow_none=True, attribute="insurance_group")


class ProfileSchema(Schema):
    patient_id = typed("PatientId", fields.String(required=True))
    date_of_birth = fields.Date(required=True, allow_none=True)
    sex = fields.String(required=True, allow_none=True)
    insurance = Computed("_insurance", InsuranceOutSchema, required=True, allow_none=True)
    address = Computed("_address", AddressOutSchema, required=True, allow_none=True)
    payer_class = typed("PayerClass", fields.String(required=True))
    updated_at = fields.DateTime(required=True)

    def _insurance(self, profile: object) -> object | None:
        return profile if getattr(profile, "insurance_member_id", None) is not None else None

    def _address(self, profile: object) -> object | None:
        return profile if getattr(profile, "address_line1", None) is not None else None


class ProfilePathSchema(Schema):
    patient_id = typed("PatientId", identifier(required=True))


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


class ClaimPatientSchema(Schema):
    date_of_birth = fields.String(required=True, metadata={"format": "date"})
    sex = fields.String(required=True)


class ClaimAddressSchema(Schema):
    street = fields.String(required=True)
    city = fields.String(required=True)
    state = fields.String(required=True, allow_none=True)
    zip = fields.String(required=True)


class ClaimDiagnosesSchema(Schema):
    icd_indicator = fields.String(required=True, metadata={"description": "0: ICD-10-CM."})
    diagnoses = fields.Dict(
        keys=fields.String(),
        values=fields.String(),
        required=True,
        metadata={"description": "By pointer, A to L: the ICD-10-CM code."},
    )


class ClaimLineSchema(Schema):
    a_date_from = fields.String(required=True, metadata={"format": "date"})
    a_date_to = fields.String(required=True, metadata={"format": "date"})
    b_place_of_service = fields.String(required=True)
    c_emg = fields.String(required=True, allow_none=True)
    d_procedure = fields.String(required=True, metadata={"description": "CPT or HCPCS."})
    d_modifiers = fields.List(fields.String(), required=True)
    e_diagnosis_pointer = fields.String(required=True)
    f_charges = fields.Integer(required=True, metadata={"description": "In the minor unit."})
    g_units = fields.Integer(required=True)
    j_rendering_npi = typed("Npi", fields.String(required=True))


class ClaimTaxIdSchema(Schema):
    tax_id = fields.String(required=True)
    type = fields.String(required=True, metadata={"description": "EIN or SSN."})


class ClaimSignedSchema(Schema):
    signed = fields.String(required=True)
    date = fields.String(required=True, metadata={"format": "date"})


class ClaimFacilitySchema(Schema):
    name = fields.String(required=True)
    address = fields.String(required=True)


class ClaimBillingSchema(Schema):
    name = fields.String(required=True)
    address = fields.String(required=True)
    phone = fields.String(required=True)


def _box(field: fields.Field[Any], number: str) -> fields.Field[Any]:
    field.data_key = number
    field.attribute = number
    return field


class ClaimBoxesSchema(Schema):
    """The CMS-1500 (02/12) boxes, named by their numbers."""

    box_1 = _box(
        fields.String(
            required=True,
            metadata={"description": "Program: medicare, medicaid, group_health_plan or other."},
        ),
        "1",
    )
    box_1a = _box(
        fields.String(required=True, metadata={"description": "Insured's id number."}), "1a"
    )
    box_2 = _box(
        fields.String(required=True, metadata={"description": "Patient's name, LAST, FIRST."}), "2"
    )
    box_3 = _box(fields.Nested(ClaimPatientSchema, required=True), "3")
    box_4 = _box(fields.String(required=True, metadata={"description": "Insured's name."}), "4")
    box_5 = _box(fields.Nested(ClaimAddressSchema, required=True), "5")
    box_6 = _box(
        fields.String(
            required=True, metadata={"description": "Patient's relationship to the insured."}
        ),
        "6",
    )
    box_7 = _box(fields.Nested(ClaimAddressSchema, required=True), "7")
    box_11 = _box(
        fields.String(
            required=True, allow_none=True, metadata={"description": "Insured's group number."}
        ),
        "11",
    )
    box_11c = _box(
        fields.String(required=True, metadata={"description": "Insurance plan's name."}), "11c"
    )
    box_12 = _box(fields.String(required=True), "12")
    box_13 = _box(fields.String(required=True), "13")
    box_21 = _box(fields.Nested(ClaimDiagnosesSchema, required=True), "21")
    box_24 = _box(fields.List(fields.Nested(ClaimLineSchema), required=True), "24")
    box_25 = _box(fields.Nested(ClaimTaxIdSchema, required=True), "25")
    box_26 = _box(typed("InvoiceNumber", fields.String(required=True)), "26")
    box_27 = _box(
        fields.Boolean(required=True, metadata={"description": "Accept assignment."}), "27"
    )
    box_28 = _box(fields.Integer(required=True, metadata={"description": "Total charge."}), "28")
    box_29 = _box(fields.Integer(required=True, metadata={"description": "Amount paid."}), "29")
    box_31 = _box(fields.Nested(ClaimSignedSchema, required=True), "31")
    box_32 = _box(fields.Nested(ClaimFacilitySchema, required=True), "32")
    box_32a = _box(typed("Npi", fields.String(required=True)), "32a")
    box_33 = _box(fields.Nested(ClaimBillingSchema, required=True), "33")
    box_33a = _box(typed("Npi", fields.String(required=True)), "33a")
    box_33b = _box(
        fields.String(required=True, metadata={"description": "ZZ and the taxonomy code."}), "33b"
    )


class ClaimSchema(Schema):
    invoice_id = typed("InvoiceId", fields.String(required=True))
    form = fields.String(required=True)
    currency = Currency(required=True)
    boxes = fields.Nested(ClaimBoxesSchema, required=True)
