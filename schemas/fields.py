"""Strict fields shared by the schemas."""

from __future__ import annotations

import re
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

from billing.domain.money import CURRENCY_EXPONENTS, MAX_AMOUNT

IDENTIFIER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}$")


class StrictInteger(fields.Integer):
    """An integer in the JSON: no strings, no floats, no booleans."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strict=True, **kwargs)

    def _validated(self, value: Any) -> int:
        if isinstance(value, bool):
            raise self.make_error("invalid")
        return super()._validated(value)


class Currency(fields.String):
    """A lower-case ISO 4217 code the clinic bills in, as Stripe writes it (`usd`)."""

    def __init__(self, **kwargs: Any) -> None:
        # Described once in the OpenAPI document, as schemas.types.TYPES["Currency"].
        metadata = {"x-type": "Currency", **kwargs.pop("metadata", {})}
        super().__init__(metadata=metadata, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        code = super()._deserialize(value, attr, data, **kwargs)
        if code not in CURRENCY_EXPONENTS:
            hint = " (use lower case)" if code.lower() in CURRENCY_EXPONENTS else ""
            raise ValidationError(f"Unknown or unsupported currency {code!r}{hint}.")
        return code


def amount(**kwargs: Any) -> StrictInteger:
    """A positive amount in the currency's minor unit, within sane bounds."""
    return StrictInteger(
        validate=validate.Range(
            min=1, max=MAX_AMOUNT, error="Must be an integer of minor units from {min} to {max}."
        ),
        **kwargs,
    )


def identifier(**kwargs: Any) -> fields.String:
    """A caller's id such as `BK-2026-0412`: 1-64 letters, digits and ._:-"""
    return fields.String(
        validate=validate.Regexp(
            IDENTIFIER, error="Must be 1-64 letters, digits or . _ : - (starting alphanumeric)."
        ),
        **kwargs,
    )


class Name(fields.String):
    """A person's name: surrounding spaces dropped, and never blank."""

    def __init__(self, **kwargs: Any) -> None:
        metadata = {"pattern": r"\S", "maxLength": 200, **kwargs.pop("metadata", {})}
        super().__init__(metadata=metadata, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        name = super()._deserialize(value, attr, data, **kwargs).strip()
        if not name:
            raise ValidationError("Must not be blank.")
        if len(name) > 200:
            raise ValidationError("Must be at most 200 characters.")
        return name


class Computed(fields.Nested):
    """A nested object (or, with many=True, a list of them) that a method of the schema
    computes from the object dumped; the OpenAPI document describes it as `nested`."""

    _CHECK_ATTRIBUTE = False

    def __init__(self, method: str, nested: type[Schema], **kwargs: Any) -> None:
        super().__init__(nested, dump_only=True, **kwargs)
        self.method = method

    # Nested renames Field's `value` to `nested_obj`: no signature satisfies both.
    def _serialize(self, nested_obj: Any, attr: Any, obj: Any, **kwargs: Any) -> Any:  # type: ignore[override]  # computed first
        computed = getattr(self.parent, self.method)(obj)
        return super()._serialize(computed, attr, obj, **kwargs)  # type: ignore[no-untyped-call]  # untyped upstream
