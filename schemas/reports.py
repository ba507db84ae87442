"""Report queries: a period of whole days (UTC), as JSON or CSV."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

MAX_DAYS = 400


class PeriodQuerySchema(Schema):
    start = fields.Date(required=True, data_key="from", metadata={"example": "2026-11-01"})
    end = fields.Date(required=True, data_key="to", metadata={"description": "included"})
    format = fields.String(validate=validate.OneOf(["json", "csv"]))

    @validates_schema
    def _ordered(self, data: dict[str, Any], **_: Any) -> None:
        if "start" in data and "end" in data:
            if data["end"] < data["start"]:
                raise ValidationError("Must not be before `from`.", "to")
            if (data["end"] - data["start"]).days > MAX_DAYS:
                raise ValidationError(f"A period spans at most {MAX_DAYS} days.", "to")


class MonthQuerySchema(Schema):
    month = fields.String(
        required=True,
        validate=validate.Regexp(r"^\d{4}-(0[1-9]|1[0-2])$", error="Use YYYY-MM."),
        metadata={"example": "2026-11"},
    )
