"""Deposits at booking, on SQLite and PostgreSQL: the price version asks one (of new
patients, of everyone, or of patients who missed sessions), the quote states it per
patient, the invoice keeps it and says what of it is still to pay, and it is collected
like any payment."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import in_days, in_hours


@pytest.fixture
def desk(make_key) -> dict[str, str]:
    return make_key(
        "quotes:write", "invoices:write", "invoices:read", "payments:record", "bookings:write"
    )


def new_prices(client, make_key, deposit: dict[str, Any]) -> Any:
    return client.post(
        "/v1/catalog/prices",
        json={
            "iv_individual_amount": 50000,
            "currency": "usd",
            "cancellation_policy": {
                "notice_hours": 48,
                "late_cancellation_fee": {"percent": 50},
                "no_show_fee": {"percent": 0},
                "deposit": deposit,
            },
        },
        headers=make_key("catalog:write"),
    )


def quote(client, desk, booking, patient: str, prior: int, when: str | None = None) -> Any:
    made = client.post(
        "/v1/quotes",
        json=booking(
            session_type="iv_individual",
            booking_id=f"BK-{patient}-{prior}-{when or 'soon'}"[:64],
            scheduled_at=when or in_days(5),
            patients=[{"patient_id": patient, "name": "Mo Reyes", "prior_iv_sessions": prior}],
        ),
        headers=desk,
    )
    assert made.status_code == 201, made.json
    return made.json


def test_new_patients_pay_a_deposit_stated_by_the_quote_and_kept_by_the_invoice(
    client, desk, booking, make_key
) -> None:
    priced = new_prices(client, make_key, {"percent": 20, "applies_to": "new_patients"})
    assert priced.status_code == 201, priced.json
    assert priced.json["cancellation_policy"]["deposit"] == {
        "percent": 20,
        "amount": None,
        "applies_to": "new_patients",
        "no_shows": 1,
    }
    first = quote(client, desk, booking, "P-9501", prior=0)
    assert first["lines"][0]["deposit"] == 10000
    assert first["cancellation_policy"]["deposit"]["percent"] == 20
    returning = quote(client, desk, booking, "P-9502", prior=3)
    assert returning["lines"][0]["deposit"] == 0
    assert client.get(f"/v1/quotes/{first['id']}", headers=desk).json["lines"][0]["deposit"] == (
        10000
    )

    invoiced = client.post("/v1/invoices", json={"quote_id": first["id"]}, headers=desk)
    bill = invoiced.json["data"][0]
    assert (bill["deposit"], bill["deposit_due"], bill["balance_due"]) == (10000, 10000, 50000)
    paid = client.post(
        f"/v1/invoices/{bill['id']}/payments",
        json={"method": "cash", "amount": bill["deposit_due"]},
        headers={**desk, "Idempotency-Key": "deposit"},
    )
    assert paid.status_code == 201, paid.json
    after = client.get(f"/v1/invoices/{bill['id']}", headers=desk).json
    assert (after["status"], after["deposit_due"], after["balance_due"]) == (
        "partially_paid",
        0,
        40000,
    )


def test_patients_who_missed_a_session_this_year_pay_a_fixed_deposit(
    client, desk, booking, make_key
) -> None:
    priced = new_prices(client, make_key, {"amount": 7500, "applies_to": "no_shows", "no_shows": 1})
    assert priced.status_code == 201, priced.json
    missed = quote(client, desk, booking, "P-9601", prior=2, when=in_hours(-2))
    assert missed["lines"][0]["deposit"] == 0  # no no-show yet
    assert (
        client.post("/v1/invoices", json={"quote_id": missed["id"]}, headers=desk).status_code
        == 201
    )
    marked = client.post(
        f"/v1/bookings/{missed['booking_id']}/attendance",
        json={"patients": [{"patient_id": "P-9601", "status": "no_show"}]},
        headers={**desk, "Idempotency-Key": "no-show"},
    )
    assert marked.status_code == 200, marked.json
    again = quote(client, desk, booking, "P-9601", prior=2)
    assert again["lines"][0]["deposit"] == 7500
    other = quote(client, desk, booking, "P-9602", prior=2)
    assert other["lines"][0]["deposit"] == 0


def test_a_deposit_is_one_of_percent_or_amount_and_only_no_shows_count_them(
    client, make_key
) -> None:
    both = new_prices(client, make_key, {"percent": 20, "amount": 100, "applies_to": "everyone"})
    assert both.status_code == 422, both.json
    assert any("deposit" in field for field in both.json["errors"]), both.json
    stray = new_prices(client, make_key, {"percent": 20, "applies_to": "everyone", "no_shows": 2})
    assert stray.status_code == 422
    unknown = new_prices(client, make_key, {"percent": 20, "applies_to": "friends"})
    assert unknown.status_code == 422
