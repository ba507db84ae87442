"""A package's money against the Stripe stand-in: paid by card, its credits count; its
unused credits are refunded pro rata to what was paid, once per request, and however the
refunds fall they add up to no more than was paid (exactly that, once every credit is
back); its invoice is never refunded around its credits."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from billing.adapters import db
from billing.domain.money import Money
from billing.services.access import keys
from tests.conftest import in_days
from tests.stripe.collect import collected_at_stripe, ledger_of

PATIENT = {"patient_id": "P-4001", "name": "Ana Ruiz", "prior_iv_sessions": 2}


@pytest.fixture
def desk(stripe_app: Flask) -> dict[str, str]:
    with stripe_app.app_context():
        _, plain = keys.create_key(
            db.session(),
            "front-desk",
            [
                "catalog:write",
                "quotes:write",
                "invoices:read",
                "invoices:write",
                "payments:write",
                "refunds:write",
                "bookings:write",
            ],
        )
    return {"Authorization": f"Bearer {plain}"}


def _credits(client: Any, desk: dict[str, str]) -> dict[str, Any]:
    made = client.get("/v1/patients/P-4001/credits", headers=desk)
    assert made.status_code == 200, made.json
    assert sum(m["credits"] for m in made.json["movements"]) == made.json["available"]
    return dict(made.json)


def _refund(client: Any, desk: dict[str, str], package_id: str, key: str) -> Any:
    return client.post(
        f"/v1/patients/P-4001/packages/{package_id}/refunds",
        headers={**desk, "Idempotency-Key": key},
        json={"reason": "moving away"},
    )


def test_a_package_paid_by_card_is_refunded_pro_rata_and_never_more(
    stripe_client, desk, standin, stripe_app
) -> None:
    client = stripe_client
    made = client.post(
        "/v1/catalog/packages",
        headers=desk,
        json={
            "code": "SIX",
            "name": "Induction series",
            "iv_credits": 6,
            "amount": 100000,
            "currency": "usd",
            "valid_days": 120,
        },
    )
    assert made.status_code == 201, made.json
    sold = client.post(
        "/v1/patients/P-4001/packages", headers=desk, json={"code": "SIX", "name": "Ana Ruiz"}
    ).json
    invoice_id = sold["invoice_id"]
    saved = client.post(
        "/v1/patients/P-4001/payment-methods",
        headers=desk,
        json={"payment_method": "pm_card_visa"},
    )
    assert saved.status_code == 201, saved.json
    paid = client.post(
        f"/v1/invoices/{invoice_id}/payments",
        headers={**desk, "Idempotency-Key": "pay-package"},
        json={"method": "card_on_file"},
    )
    assert paid.status_code == 201 and paid.json["status"] == "succeeded", paid.json
    assert _credits(client, desk)["available"] == 6

    around = client.post(
        f"/v1/invoices/{invoice_id}/refunds",
        headers={**desk, "Idempotency-Key": "around"},
        json={"amount": 1000, "reason": "not this way"},
    )
    assert around.status_code == 409 and around.json["code"] == "refund_package_credits"

    used = client.post(
        "/v1/quotes",
        headers=desk,
        json={
            "booking_id": "BK-PKG-1",
            "session_type": "iv_individual",
            "scheduled_at": in_days(9),
            "currency": "usd",
            "patients": [{**PATIENT, "pay_with": "credits"}],
        },
    ).json
    invoiced = client.post("/v1/invoices", headers=desk, json={"quote_id": used["id"]})
    assert invoiced.json["data"][0]["status"] == "paid"

    # $1,000.00 over 12 half-credits: four of $83.34, eight of $83.33. The refund of the
    # last ten is the end's shares.
    shares = Money(100000, "usd").allocate([1] * 12)
    first = _refund(client, desk, sold["id"], "refund-unused")
    assert first.status_code == 201, first.json
    assert (first.json["credits"], first.json["amount"]) == (5, Money.sum(shares[2:], "usd").amount)
    assert first.json["amount"] == 83332
    assert first.json["refund"]["status"] == "succeeded"
    again = _refund(client, desk, sold["id"], "refund-unused")
    assert (again.status_code, again.json["id"]) == (201, first.json["id"])
    assert collected_at_stripe(standin, invoice_id) == (100000, 83332)

    nothing = _refund(client, desk, sold["id"], "refund-more")
    assert nothing.status_code == 409 and nothing.json["code"] == "no_unused_credits"
    now = _credits(client, desk)
    assert now["available"] == 0
    package = now["packages"][0]
    assert (package["credits"]["used"], package["credits"]["refunded"]) == (1, 5)
    refunded = [m for m in now["movements"] if m["kind"] == "refunded"]
    assert [(m["credits"], m["amount"]) for m in refunded] == [(-5, 83332)]

    # The session cancelled in time: its credit is back, and refunding it gives back the
    # rest, to the cent: all that was paid, never more.
    cancelled = client.post(
        "/v1/bookings/BK-PKG-1/cancellations",
        headers={**desk, "Idempotency-Key": "cancel-pkg"},
        json={"by": "clinic"},
    )
    assert cancelled.status_code == 200, cancelled.json
    assert _credits(client, desk)["available"] == 1
    last = _refund(client, desk, sold["id"], "refund-last")
    assert last.status_code == 201, last.json
    assert last.json["amount"] == Money.sum(shares[:2], "usd").amount == 16668
    assert collected_at_stripe(standin, invoice_id) == (100000, 100000)
    money = ledger_of(stripe_app, invoice_id)
    assert (money.paid, money.refunded) == (100000, 100000)
    final = client.get(f"/v1/invoices/{invoice_id}", headers=desk).json
    assert final["status"] == "refunded"
    assert _credits(client, desk)["packages"][0]["status"] == "active"
