"""Patients' billing profiles, as clinical staff set them."""

from __future__ import annotations

from datetime import date

from marshmallow import Schema, ValidationError, fields, validate, validates

from billing.domain.clinical import PAYER_CLASSES
from schemas.fields import Computed
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
