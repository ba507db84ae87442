"""Strict fields shared by the schemas."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

from billing.domain.money import CURRENCY_EXPONENTS, MAX_AMOUNT

IDENTIFIER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}$")
# C0 and C1 control characters (line breaks and tabs among them): never in a name, which
# goes onto invoices, receipts, CSV exports and the audit trail.
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Times the service stores and compares: far enough out for any booking or report, and
# inside what Python's datetime can shift by a time zone or a day without overflowing.
EARLIEST, LATEST = datetime(1900, 1, 1, tzinfo=UTC), datetime(9000, 1, 1, tzinfo=UTC)


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


class UtcDateTime(fields.AwareDateTime):
    """An RFC 3339 time with its offset, loaded as UTC; one outside 1900-9000 (which no
    clinic books, and which a shift by an offset or a day could overflow) is refused."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        moment = super()._deserialize(value, attr, data, **kwargs)
        try:
            moment = moment.astimezone(UTC)
        except OverflowError:
            raise ValidationError("Must be between the years 1900 and 9000.") from None
        if not EARLIEST <= moment < LATEST:
            raise ValidationError("Must be between the years 1900 and 9000.")
        return moment


class Name(fields.String):
    """A person's name: surrounding spaces dropped, and never blank."""

    def __init__(self, **kwargs: Any) -> None:
        metadata = {"pattern": r"\S", "maxLength": 200, **kwargs.pop("metadata", {})}
        super().__init__(metadata=metadata, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        name = super()._deserialize(value, attr, data, **kwargs).strip()
        if not name:
            raise ValidationError("Must not be blank.")
        if CONTROL.search(name):
            raise ValidationError("Must not contain control characters such as line breaks.")
        if len(name) > 200:
            raise ValidationError("Must be at most 200 characters.")
        return name


class Text(fields.String):
    """One line of text a person typed (a reference, a reason): 1 to `max_length`
    characters, none of them a control character such as a line break."""

    def __init__(self, max_length: int, **kwargs: Any) -> None:
        metadata = {
            "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*$",
            "minLength": 1,
            "maxLength": max_length,
            **kwargs.pop("metadata", {}),
        }
        super().__init__(metadata=metadata, **kwargs)
        self.max_length = max_length

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if not text:
            raise ValidationError("Must not be empty.")
        if CONTROL.search(text):
            raise ValidationError("Must not contain control characters such as line breaks.")
        if len(text) > self.max_length:
            raise ValidationError(f"Must be at most {self.max_length} characters.")
        return text


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


class EmptyBodySchema(Schema):
    """The body of a request that takes none: it may be left out or be `{}`; any field sent
    is refused (422), as on every other request, so a typo never passes silently."""
