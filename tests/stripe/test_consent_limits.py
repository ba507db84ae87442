"""A patient's limits on their consent to a saved card, against the Stripe stand-in on
SQLite and PostgreSQL: a charge above the most per charge, one taking the year's charges
above the most per year, and any after the consent's last day are refused (409
`consent_limit`, saying which) before Stripe is asked; within them the card is charged."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

from tests.fixtures_stripe import card_payment_method
from tests.stripe.collect import charge_card_on_file


def save_with_limits(
    client: Any, staff: dict[str, str], standin: Any, patient: str, **limits: Any
) -> None:
    answer = client.post(
        f"/v1/patients/{patient}/payment-methods",
        headers=staff,
        json={
            "payment_method": card_payment_method(standin.url, "4242424242424242"),
            "consent": {
                "text": "Charge this card for my sessions, at most as set below.",
                "agreed_at": "2026-12-01T10:00:00Z",
                **limits,
            },
        },
    )
    assert answer.status_code == 201, answer.json


def test_charges_beyond_the_consents_limits_are_refused_before_stripe_is_asked(
    stripe_client: Any,
    staff: dict[str, str],
    open_invoice: Callable[..., str],
    standin: Any,
    proxy: Any,
) -> None:
    first = open_invoice(None, patient_id="P-CAP")
    save_with_limits(stripe_client, staff, standin, "P-CAP", max_per_charge=40000)
    proxy.requests.clear()
    refused = charge_card_on_file(stripe_client, staff, first, "cap-1")  # 500.00 > 400.00
    assert refused.status_code == 409 and refused.json["code"] == "consent_limit"
    assert refused.json["limit"] == "max_per_charge" and refused.json["max"] == "40000"
    assert proxy.calls("POST", "/v1/payment_intents") == []  # Stripe never asked
    part = stripe_client.post(
        f"/v1/invoices/{first}/payments",
        headers={**staff, "Idempotency-Key": "cap-2"},
        json={"method": "card_on_file", "amount": 30000},
    )
    assert part.status_code == 201, part.json  # within the limit: charged


def test_the_year_limit_counts_what_the_card_was_charged_this_year(
    stripe_client: Any, staff: dict[str, str], open_invoice: Callable[..., str], standin: Any
) -> None:
    first = open_invoice(None, patient_id="P-YEAR", booking_id="BK-Y1")
    second = open_invoice(None, patient_id="P-YEAR", booking_id="BK-Y2")
    save_with_limits(stripe_client, staff, standin, "P-YEAR", max_per_year=80000)
    assert charge_card_on_file(stripe_client, staff, first, "y-1").status_code == 201
    refused = charge_card_on_file(stripe_client, staff, second, "y-2")  # 500 + 500 > 800
    assert refused.status_code == 409 and refused.json["limit"] == "max_per_year"
    assert refused.json["charged_this_year"] == "50000"


def test_a_consent_past_its_last_day_charges_nothing(
    stripe_client: Any, staff: dict[str, str], open_invoice: Callable[..., str], standin: Any
) -> None:
    invoice_id = open_invoice(None, patient_id="P-OLD")
    yesterday = (date.today() - timedelta(days=1)).isoformat()
    save_with_limits(stripe_client, staff, standin, "P-OLD", expires_on=yesterday)
    refused = charge_card_on_file(stripe_client, staff, invoice_id, "old-1")
    assert refused.status_code == 409 and refused.json["limit"] == "expires_on"
