"""POST /v1/quotes and GET /v1/quotes/{id}, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from flask import Flask

from tests.conftest import in_days


@pytest.fixture
def headers(make_key):
    return make_key("quotes:write", "catalog:write")


def test_group_booking_is_quoted_at_half_price_per_patient(client, headers, booking) -> None:
    response = client.post("/v1/quotes", json=booking(), headers=headers)
    assert response.status_code == 201, response.json
    quote = response.json
    assert quote["id"].startswith("qt_")
    assert quote["session_type"] == "im_group"
    assert [line["amount"] for line in quote["lines"]] == [25000, 25000]
    assert [line["patient_id"] for line in quote["lines"]] == ["P-1001", "P-1002"]
    assert quote["lines"][0]["description"] == "Group IM ketamine session"
    assert quote["total"] == 50000
    assert quote["price_version"] == 1
    assert quote["currency"] == "usd"


def test_iv_booking_is_quoted_at_the_base_price(client, headers, booking) -> None:
    patients = [{"patient_id": "P-2001", "name": "New Patient"}]
    response = client.post(
        "/v1/quotes", json=booking(session_type="iv_individual", patients=patients), headers=headers
    )
    assert response.status_code == 201, response.json
    assert response.json["total"] == 50000
    assert response.json["lines"][0]["description"] == "Individual IV ketamine session"


def test_quote_keeps_the_exemption_for_the_audit_trail(client, headers, booking) -> None:
    quote = client.post("/v1/quotes", json=booking(), headers=headers).json
    read_back = client.get(f"/v1/quotes/{quote['id']}", headers=headers).json
    assert read_back["lines"][1]["iv_exemption"] == {
        "reason": "difficult_venous_access",
        "approved_by": "Dr. Lee",
    }
    assert read_back["lines"][0]["iv_exemption"] is None


def test_quote_read_back_equals_the_created_quote(client, headers, booking) -> None:
    created = client.post("/v1/quotes", json=booking(), headers=headers).json
    read_back = client.get(f"/v1/quotes/{created['id']}", headers=headers)
    assert read_back.status_code == 200
    assert read_back.json == created


def test_created_quote_is_written_as_its_read_back_byte_for_byte(client, headers, booking) -> None:
    patients = [
        {"patient_id": "P-3001", "name": 'José Ñúñez \u00e9 \\ "quoted"', "prior_iv_sessions": 2},
        {"patient_id": "P-3002", "name": "Ana Ruiz", "prior_iv_sessions": 1},
    ]
    created = client.post("/v1/quotes", json=booking(patients=patients), headers=headers)
    assert created.status_code == 201, created.json
    read_back = client.get(f"/v1/quotes/{created.json['id']}", headers=headers)
    assert created.get_data() == read_back.get_data()
    assert b"Jos\\u00e9" in created.get_data()  # escaped, as Flask writes it


def test_quote_expires_after_the_configured_ttl(app: Flask, client, headers, booking) -> None:
    app.config["QUOTE_TTL_HOURS"] = 2
    quote = client.post("/v1/quotes", json=booking(), headers=headers).json
    created = datetime.fromisoformat(quote["created_at"])
    assert datetime.fromisoformat(quote["expires_at"]) - created == timedelta(hours=2)


def test_timestamps_are_rfc3339_with_offset(client, headers, booking) -> None:
    quote = client.post("/v1/quotes", json=booking(), headers=headers).json
    for field in ("created_at", "expires_at", "scheduled_at"):
        assert datetime.fromisoformat(quote[field]).utcoffset() == timedelta(0)


def test_new_patient_in_a_group_is_refused(client, headers, booking) -> None:
    patients = [
        {"patient_id": "P-1001", "name": "Ana Ruiz", "prior_iv_sessions": 2},
        {"patient_id": "P-3001", "name": "Cleo New"},
    ]
    response = client.post("/v1/quotes", json=booking(patients=patients), headers=headers)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert response.json["code"] == "first_session_must_be_iv"
    assert "patients.1" in response.json["errors"]


@pytest.mark.parametrize("count", [1, 6])
def test_group_size_outside_two_to_five_is_refused(client, headers, booking, count) -> None:
    patients = [
        {"patient_id": f"P-{i}", "name": "Someone", "prior_iv_sessions": 1} for i in range(count)
    ]
    response = client.post("/v1/quotes", json=booking(patients=patients), headers=headers)
    assert response.status_code == 422
    assert response.json["code"] == "invalid_group_size"
    assert "patients" in response.json["errors"]


def test_iv_with_two_patients_is_refused(client, headers, booking) -> None:
    response = client.post(
        "/v1/quotes", json=booking(session_type="iv_individual"), headers=headers
    )
    assert response.status_code == 422
    assert response.json["code"] == "invalid_group_size"


def test_currency_without_a_price_list_is_refused(client, headers, booking) -> None:
    response = client.post("/v1/quotes", json=booking(currency="eur"), headers=headers)
    assert response.status_code == 422
    assert response.json["code"] == "currency_not_offered"
    assert "currency" in response.json["errors"]


def test_refused_booking_creates_no_quote(app: Flask, client, headers, booking) -> None:
    from sqlalchemy import func, select

    from billing.adapters import db
    from billing.adapters.models import Quote

    client.post("/v1/quotes", json=booking(patients=[]), headers=headers)
    with app.app_context():
        assert db.session().scalar(select(func.count()).select_from(Quote)) == 0


def test_unknown_quote_is_404(client, headers) -> None:
    response = client.get("/v1/quotes/qt_nope", headers=headers)
    assert response.status_code == 404
    assert response.json["code"] == "quote_not_found"


def test_quote_uses_price_in_force_and_keeps_its_version(client, headers, booking) -> None:
    first = client.post("/v1/quotes", json=booking(), headers=headers).json
    change = client.post(
        "/v1/catalog/prices",
        json={"iv_individual_amount": 60001, "currency": "usd"},
        headers=headers,
    )
    assert change.status_code == 201, change.json
    second = client.post("/v1/quotes", json=booking(), headers=headers).json
    assert second["price_version"] == first["price_version"] + 1
    assert [line["amount"] for line in second["lines"]] == [30001, 30001]
    kept = client.get(f"/v1/quotes/{first['id']}", headers=headers).json
    assert kept["price_version"] == first["price_version"]
    assert kept["total"] == 50000


def test_announced_price_does_not_apply_before_it_takes_effect(client, headers, booking) -> None:
    client.post(
        "/v1/catalog/prices",
        json={"iv_individual_amount": 90000, "currency": "usd", "effective_at": in_days(30)},
        headers=headers,
    )
    quote = client.post("/v1/quotes", json=booking(), headers=headers).json
    assert quote["total"] == 50000


def test_blank_approving_clinician_or_patient_name_is_refused(client, headers, booking) -> None:
    payload = booking()
    payload["patients"][1]["iv_exemption"]["approved_by"] = "   "
    blank_clinician = client.post("/v1/quotes", json=payload, headers=headers)
    assert blank_clinician.status_code == 422
    assert "patients.1.iv_exemption.approved_by" in blank_clinician.json["errors"]

    payload = booking()
    payload["patients"][0]["name"] = " \t "
    blank_name = client.post("/v1/quotes", json=payload, headers=headers)
    assert blank_name.status_code == 422
    assert "patients.0.name" in blank_name.json["errors"]

    payload = booking()
    payload["patients"][1]["iv_exemption"]["approved_by"] = "  Dr. Lee  "
    kept = client.post("/v1/quotes", json=payload, headers=headers)
    assert kept.status_code == 201, kept.json
    assert kept.json["lines"][1]["iv_exemption"]["approved_by"] == "Dr. Lee"
