"""Inbound schemas are strict: unknown fields, wrong types and bad values are refused."""

from __future__ import annotations

from typing import Any

import pytest
from marshmallow import ValidationError

from schemas.catalog import PriceVersionRequestSchema
from schemas.quotes import QuoteRequestSchema
from tests.conftest import in_days


def valid_booking(**overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "booking_id": "BK-1",
        "session_type": "iv_individual",
        "scheduled_at": in_days(3),
        "currency": "usd",
        "patients": [{"patient_id": "P-1", "name": "Ana Ruiz"}],
    }
    payload.update(overrides)
    return payload


def errors_of(schema: Any, payload: dict[str, Any]) -> dict[str, Any]:
    with pytest.raises(ValidationError) as raised:
        schema.load(payload)
    return raised.value.messages  # type: ignore[return-value]


def test_valid_booking_loads_with_an_aware_datetime() -> None:
    loaded = QuoteRequestSchema().load(valid_booking())
    assert loaded["scheduled_at"].utcoffset() is not None


def test_unknown_top_level_field_is_refused() -> None:
    assert "sesion_type" in errors_of(QuoteRequestSchema(), valid_booking(sesion_type="x"))


def test_unknown_patient_field_is_refused() -> None:
    patients = [{"patient_id": "P-1", "name": "A", "prior_iv_session": 2}]
    messages = errors_of(QuoteRequestSchema(), valid_booking(patients=patients))
    assert "prior_iv_session" in messages["patients"][0]


@pytest.mark.parametrize("value", ["2", 2.0, True, -1, 1001])
def test_prior_iv_sessions_must_be_a_sane_integer(value: Any) -> None:
    patients = [{"patient_id": "P-1", "name": "A", "prior_iv_sessions": value}]
    messages = errors_of(QuoteRequestSchema(), valid_booking(patients=patients))
    assert "prior_iv_sessions" in messages["patients"][0]


@pytest.mark.parametrize(
    "value",
    [
        "2026-12-03T15:00:00",
        "2026-13-45T15:00:00Z",
        "tomorrow",
        1764800000,
        # An id, not the value: xdist workers must collect the same test names.
        pytest.param(in_days(400), id="more-than-a-year-ahead"),
    ],
)
def test_bad_dates_are_refused(value: Any) -> None:
    assert "scheduled_at" in errors_of(QuoteRequestSchema(), valid_booking(scheduled_at=value))


@pytest.mark.parametrize("value", ["USD", "xyz", "us", 840, ""])
def test_bad_currencies_are_refused(value: Any) -> None:
    assert "currency" in errors_of(QuoteRequestSchema(), valid_booking(currency=value))


def test_unknown_session_type_is_refused() -> None:
    assert "session_type" in errors_of(QuoteRequestSchema(), valid_booking(session_type="iv_group"))


@pytest.mark.parametrize(
    "field", ["booking_id", "session_type", "scheduled_at", "currency", "patients"]
)
def test_required_fields_are_required(field: str) -> None:
    payload = valid_booking()
    del payload[field]
    assert field in errors_of(QuoteRequestSchema(), payload)


def test_exemption_needs_the_approving_clinician() -> None:
    patients = [
        {"patient_id": "P-1", "name": "A", "iv_exemption": {"reason": "difficult_venous_access"}}
    ]
    messages = errors_of(QuoteRequestSchema(), valid_booking(patients=patients))
    assert "approved_by" in messages["patients"][0]["iv_exemption"]


@pytest.mark.parametrize("amount", [0, -100, 10.5, "50000", 10**12, True])
def test_price_amount_must_be_positive_integer_within_bounds(amount: Any) -> None:
    messages = errors_of(
        PriceVersionRequestSchema(), {"iv_individual_amount": amount, "currency": "usd"}
    )
    assert "iv_individual_amount" in messages
