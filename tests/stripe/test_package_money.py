"""A package's money against the Stripe stand-in: paid by card, its credits count; its
unused credits are refunded pro rata to what was paid, once per request, and however the
refunds fall they add up to no more than was paid (exactly that, once every credit is
back); its invoice is never refunded around its credits."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from sqlalchemy import func, select, update

from billing.adapters import db
from billing.adapters.models import ApiKey, Refund, utcnow
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
    # The month's journal posts the sale as sessions owed (it answered 500 before).
    with stripe_app.app_context():
        _, reports = keys.create_key(db.session(), "books", ["reports:read"])
    month = datetime.now(ZoneInfo(stripe_app.config["CLINIC_TIMEZONE"])).strftime("%Y-%m")
    journal = client.get(
        f"/v1/reports/journal?month={month}", headers={"Authorization": f"Bearer {reports}"}
    )
    assert journal.status_code == 200, journal.json
    lines = [line for entry in journal.json["journals"] for line in entry["lines"]]
    assert {"account": "Prepaid Packages", "credit": 100000} in [
        {"account": line["account_name"], "credit": line["credit"]} for line in lines
    ]

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


class _DiesAtStripe:
    """The gateway of a process that dies as it asks Stripe for the refund."""

    def __init__(self, real: Any) -> None:
        self.real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def refund(self, **_: Any) -> Any:
        raise RuntimeError("the worker was killed")


def test_a_refund_of_credits_left_half_way_is_finished_by_reconcile_pending(
    stripe_client, desk, standin, stripe_app
) -> None:
    from datetime import timedelta

    from billing.adapters.credit_models import CreditRefund
    from billing.adapters.providers import gateway
    from billing.services.idempotency import IdempotencyRequest
    from billing.services.packages import packages
    from billing.services.payments import recovery

    client = stripe_client
    client.post(
        "/v1/catalog/packages",
        headers=desk,
        json={
            "code": "TWO",
            "name": "Two",
            "iv_credits": 2,
            "amount": 100000,
            "currency": "usd",
            "valid_days": 30,
        },
    )
    sold = client.post(
        "/v1/patients/P-4001/packages", headers=desk, json={"code": "TWO", "name": "Ana Ruiz"}
    ).json
    client.post(
        "/v1/patients/P-4001/payment-methods", headers=desk, json={"payment_method": "pm_card_visa"}
    )
    paid = client.post(
        f"/v1/invoices/{sold['invoice_id']}/payments",
        headers={**desk, "Idempotency-Key": "pay-two"},
        json={"method": "card_on_file"},
    )
    assert paid.json["status"] == "succeeded", paid.json
    with stripe_app.app_context():
        session = db.session()
        key_id = session.scalar(select(func.min(ApiKey.id)))
        with pytest.raises(RuntimeError):
            packages.refund_unused(
                session,
                _DiesAtStripe(gateway()),
                "P-4001",
                sold["id"],
                "moving away",
                IdempotencyRequest(key_id, "half-way", "half-way"),
            )
        session.rollback()
    assert _credits(client, desk)["available"] == 0  # held by the refund in flight
    assert collected_at_stripe(standin, sold["invoice_id"]) == (100000, 0)

    with stripe_app.app_context():
        session = db.session()
        recovery.reconcile_pending(session, gateway(), older_than=timedelta(0))
        (made,) = session.scalars(select(CreditRefund)).all()
        assert made.refund_id is not None  # linked to the refund it recorded
        linked = session.get(Refund, made.refund_id)
        assert linked is not None and linked.status == "pending"  # it may yet land at Stripe
    assert _credits(client, desk)["available"] == 0
    assert collected_at_stripe(standin, sold["invoice_id"]) == (100000, 0)

    # Too old to land at Stripe any more (3 minutes later): it was never made.
    with stripe_app.app_context():
        session = db.session()
        stale = utcnow() - timedelta(minutes=3)
        session.execute(update(Refund).where(Refund.id == made.refund_id).values(updated_at=stale))
        session.commit()
        recovery.reconcile_pending(session, gateway(), older_than=timedelta(0))
        status = session.get(Refund, made.refund_id, populate_existing=True).status
    refunded_at_stripe = collected_at_stripe(standin, sold["invoice_id"])[1]
    now = _credits(client, desk)
    # Never the money without the credits, nor both.
    if status == "succeeded":
        assert refunded_at_stripe == made.amount == 100000 and now["available"] == 0
    else:
        assert status == "failed" and refunded_at_stripe == 0 and now["available"] == 2
