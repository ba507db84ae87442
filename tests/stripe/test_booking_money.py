"""The booking lifecycle's money, against the Stripe stand-in: a paid session cancelled is
refunded in full, once; a fee is charged only to a card saved with consent to fees (never
an HSA/FSA card), otherwise it waits on a pay link; a saved card can be removed."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from pypdf import PdfReader
from sqlalchemy import func, select

from billing.adapters import db
from billing.adapters.models import PayLink
from billing.services.access import keys
from tests.conftest import in_days
from tests.fixtures_stripe import card_payment_method
from tests.stripe.collect import collected_at_stripe, intents_of

CONSENT = {
    "text": "Save this card for future visits and fees at Example Clinic.",
    "agreed_at": "2026-11-30T17:00:00+00:00",
}


@pytest.fixture
def desk(stripe_app: Flask) -> dict[str, str]:
    with stripe_app.app_context():
        _, plain = keys.create_key(
            db.session(),
            "front-desk",
            ["quotes:write", "invoices:read", "invoices:write", "payments:write", "bookings:write"],
        )
    return {"Authorization": f"Bearer {plain}"}


def _book(client: Any, desk: dict[str, str], patient_id: str, when: str) -> dict[str, Any]:
    quote = client.post(
        "/v1/quotes",
        headers=desk,
        json={
            "booking_id": f"BK-{patient_id}",
            "session_type": "iv_individual",
            "scheduled_at": when,
            "currency": "usd",
            "patients": [{"patient_id": patient_id, "name": "Test Patient"}],
        },
    ).json
    invoiced = client.post("/v1/invoices", headers=desk, json={"quote_id": quote["id"]})
    assert invoiced.status_code == 201, invoiced.json
    return dict(invoiced.json["data"][0])


def _save(client: Any, desk: dict[str, str], patient_id: str, card: str, **extra: Any) -> Any:
    saved = client.post(
        f"/v1/patients/{patient_id}/payment-methods",
        headers=desk,
        json={"payment_method": card, **extra},
    )
    assert saved.status_code == 201, saved.json
    return saved.json


def _cancel(client: Any, desk: dict[str, str], patient_id: str, key: str, by: str) -> Any:
    return client.post(
        f"/v1/bookings/BK-{patient_id}/cancellations",
        headers={**desk, "Idempotency-Key": key},
        json={"by": by},
    )


def test_a_paid_session_cancelled_by_the_clinic_is_refunded_in_full_once(
    stripe_client, desk, proxy, standin
) -> None:
    invoice = _book(stripe_client, desk, "P-2001", in_days(1))
    _save(stripe_client, desk, "P-2001", "pm_card_visa")
    paid = stripe_client.post(
        f"/v1/invoices/{invoice['id']}/payments",
        headers={**desk, "Idempotency-Key": "pay-2001"},
        json={"method": "card_on_file"},
    )
    assert paid.status_code == 201 and paid.json["status"] == "succeeded", paid.json

    cancelled = _cancel(stripe_client, desk, "P-2001", "cancel-2001", "clinic")
    assert cancelled.status_code == 200, cancelled.json
    assert cancelled.json["fees"] == []
    replayed = _cancel(stripe_client, desk, "P-2001", "cancel-2001", "clinic")
    assert replayed.status_code == 200
    again = _cancel(stripe_client, desk, "P-2001", "cancel-2001-b", "clinic")
    assert again.status_code == 409 and again.json["code"] == "already_cancelled"

    after = stripe_client.get(f"/v1/invoices/{invoice['id']}", headers=desk).json
    assert after["status"] == "refunded" and after["amount_refunded"] == 50000
    assert collected_at_stripe(standin, invoice["id"]) == (50000, 50000)
    assert len(proxy.calls("POST", "/v1/refunds")) == 1


def test_a_late_fee_is_charged_to_a_card_saved_with_consent(stripe_client, desk) -> None:
    invoice = _book(stripe_client, desk, "P-2002", in_days(1))
    card = _save(stripe_client, desk, "P-2002", "pm_card_visa", consent=CONSENT)
    assert card["consent"]["text"] == CONSENT["text"]
    assert datetime.fromisoformat(card["consent"]["agreed_at"]) == datetime(
        2026, 11, 30, 17, tzinfo=UTC
    )

    cancelled = _cancel(stripe_client, desk, "P-2002", "cancel-2002", "patient")
    assert cancelled.status_code == 200, cancelled.json
    (fee,) = cancelled.json["fees"]
    assert fee["status"] == "paid" and fee["amount_paid"] == fee["total"] == 25000
    receipt = stripe_client.get(f"/v1/invoices/{fee['id']}/receipt.pdf", headers=desk)
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(receipt.data)).pages)
    assert "Late cancellation fee" in text and "FEE-LATE-CANCEL" in text
    assert "96365" not in text  # a fee is not the infusion it replaces
    assert stripe_client.get(f"/v1/invoices/{invoice['id']}", headers=desk).json["status"] == (
        "void"
    )


@pytest.mark.parametrize(
    "saved", [{}, {"consent": CONSENT, "hsa_fsa": True}], ids=["no-consent", "hsa-fsa"]
)
def test_a_fee_without_consent_or_on_an_hsa_card_waits_on_a_pay_link(
    stripe_app, stripe_client, desk, proxy, saved
) -> None:
    _book(stripe_client, desk, "P-2003", in_days(1))
    _save(stripe_client, desk, "P-2003", "pm_card_visa", **saved)
    charges_before = len(proxy.calls("POST", "/v1/payment_intents"))

    cancelled = _cancel(stripe_client, desk, "P-2003", "cancel-2003", "patient")
    (fee,) = cancelled.json["fees"]
    assert fee["status"] == "open" and fee["amount_paid"] == 0
    assert len(proxy.calls("POST", "/v1/payment_intents")) == charges_before
    with stripe_app.app_context():
        links = db.session().scalar(
            select(func.count()).select_from(PayLink).where(PayLink.invoice_id == fee["id"])
        )
    assert links == 1


def test_saved_cards_are_listed_with_their_consent_and_can_be_removed(
    stripe_client, desk, standin
) -> None:
    _book(stripe_client, desk, "P-2004", in_days(5))
    first = _save(stripe_client, desk, "P-2004", "pm_card_visa", consent=CONSENT)
    second = _save(
        stripe_client,
        desk,
        "P-2004",
        card_payment_method(standin.url, "5555555555554444"),
        hsa_fsa=True,
    )
    listed = stripe_client.get("/v1/patients/P-2004/payment-methods", headers=desk).json["data"]
    by_id = {card["id"]: card for card in listed}
    assert by_id[first["id"]]["consent"]["text"] == CONSENT["text"]
    assert by_id[second["id"]]["consent"] is None and by_id[second["id"]]["hsa_fsa"] is True
    assert by_id[second["id"]]["default"] is True

    removed = stripe_client.delete(
        f"/v1/patients/P-2004/payment-methods/{second['id']}", headers=desk
    )
    assert removed.status_code == 204
    left = stripe_client.get("/v1/patients/P-2004/payment-methods", headers=desk).json["data"]
    assert [card["id"] for card in left] == [first["id"]]
    gone = stripe_client.delete(f"/v1/patients/P-2004/payment-methods/{second['id']}", headers=desk)
    assert gone.status_code == 404 and gone.json["code"] == "payment_method_not_found"


def test_a_refund_stripe_could_not_take_is_made_later_by_the_settle_job(
    stripe_app, stripe_client, desk, proxy, standin
) -> None:
    from billing.services.bookings import lifecycle

    invoice = _book(stripe_client, desk, "P-2005", in_days(1))
    _save(stripe_client, desk, "P-2005", "pm_card_visa")
    paid = stripe_client.post(
        f"/v1/invoices/{invoice['id']}/payments",
        headers={**desk, "Idempotency-Key": "pay-2005"},
        json={"method": "card_on_file"},
    )
    assert paid.json["status"] == "succeeded", paid.json

    proxy.fault = "down"
    try:
        cancelled = _cancel(stripe_client, desk, "P-2005", "cancel-2005", "clinic")
    finally:
        proxy.fault = None
    assert cancelled.status_code == 200, cancelled.json  # the cancellation itself stands
    assert cancelled.json["patients"][0]["cancelled_at"] is not None
    assert stripe_client.get(f"/v1/invoices/{invoice['id']}", headers=desk).json["status"] == "paid"

    with stripe_app.app_context():
        settings = lifecycle.settings_from(stripe_app.config, lambda: _gateway(stripe_app))
        assert lifecycle.settle_pending(db.session(), settings) == ["BK-P-2005"]
        assert lifecycle.settle_pending(db.session(), settings) == []  # nothing left to do
    after = stripe_client.get(f"/v1/invoices/{invoice['id']}", headers=desk).json
    assert after["status"] == "refunded" and after["amount_refunded"] == 50000
    assert collected_at_stripe(standin, invoice["id"]) == (50000, 50000)


def _gateway(app: Flask) -> Any:
    return app.extensions["billing.stripe"]


def test_an_open_pay_page_stops_collecting_when_its_group_falls_below_two(
    stripe_client, desk, standin
) -> None:
    quote = stripe_client.post(
        "/v1/quotes",
        headers=desk,
        json={
            "booking_id": "BK-GROUP-HELD",
            "session_type": "im_group",
            "scheduled_at": in_days(5),
            "currency": "usd",
            "patients": [
                {"patient_id": "P-2101", "name": "Ana", "prior_iv_sessions": 1},
                {"patient_id": "P-2102", "name": "Ben", "prior_iv_sessions": 1},
            ],
        },
    ).json
    ana, _ben = stripe_client.post(
        "/v1/invoices", headers=desk, json={"quote_id": quote["id"]}
    ).json["data"]
    link = stripe_client.post(
        f"/v1/invoices/{ana['id']}/payments",
        headers={**desk, "Idempotency-Key": "link-2101"},
        json={"method": "online"},
    ).json
    page = "/" + link["pay_url"].split("/", 3)[3]
    assert stripe_client.get(page).status_code == 200  # the patient opens it: a PaymentIntent
    (intent,) = intents_of(standin, ana["id"])
    assert intent["status"] == "requires_payment_method"

    left = stripe_client.post(
        "/v1/bookings/BK-GROUP-HELD/cancellations",
        headers={**desk, "Idempotency-Key": "cancel-2102"},
        json={"by": "patient", "patient_id": "P-2102"},
    )
    assert left.json["state"] == "below_minimum"
    (intent,) = intents_of(standin, ana["id"])
    assert intent["status"] == "canceled"  # the page left open can no longer collect
    status = stripe_client.get(f"{page}/status").json
    assert status["payable"] is False and "booking has changed" in status["message"]
    reloaded = stripe_client.get(page)
    assert reloaded.status_code == 409
    assert "Your booking has changed" in reloaded.get_data(as_text=True)


def test_a_fee_that_no_longer_applies_cannot_be_paid_even_before_it_is_voided(
    stripe_app, stripe_client, desk, proxy
) -> None:
    from billing.services.bookings import lifecycle
    from tests.conftest import in_hours

    with stripe_app.app_context():
        _, finance = keys.create_key(db.session(), "prices", ["catalog:write"])
    stripe_client.post(
        "/v1/catalog/prices",
        headers={"Authorization": f"Bearer {finance}"},
        json={
            "iv_individual_amount": 50000,
            "currency": "usd",
            "cancellation_policy": {
                "notice_hours": 24,
                "late_cancellation_fee": {"percent": 50},
                "no_show_fee": {"amount": 5000},
            },
        },
    )
    _book(stripe_client, desk, "P-2006", in_hours(-1))

    def mark(status: str, key: str) -> Any:
        return stripe_client.post(
            "/v1/bookings/BK-P-2006/attendance",
            headers={**desk, "Idempotency-Key": key},
            json={"patients": [{"patient_id": "P-2006", "status": status}]},
        )

    (fee,) = mark("no_show", "missed-2006").json["fees"]
    link = stripe_client.post(
        f"/v1/invoices/{fee['id']}/payments",
        headers={**desk, "Idempotency-Key": "fee-link-2006"},
        json={"method": "online"},
    ).json
    page = "/" + link["pay_url"].split("/", 3)[3]
    assert stripe_client.get(page).status_code == 200  # the patient has the fee's page open

    proxy.fault = "down"  # the correction cannot reach Stripe to stop that page
    try:
        corrected = mark("attended", "came-2006")
    finally:
        proxy.fault = None
    assert corrected.status_code == 200, corrected.json
    assert stripe_client.get(f"/v1/invoices/{fee['id']}", headers=desk).json["status"] == "open"
    assert stripe_client.get(f"{page}/status").json["payable"] is False
    refused = stripe_client.post(
        f"/v1/invoices/{fee['id']}/payments",
        headers={**desk, "Idempotency-Key": "fee-charge-2006"},
        json={"method": "card_on_file"},
    )
    assert refused.status_code == 409 and refused.json["code"] == "fee_waived"

    with stripe_app.app_context():
        settings = lifecycle.settings_from(stripe_app.config, lambda: _gateway(stripe_app))
        assert lifecycle.settle_pending(db.session(), settings) == ["BK-P-2006"]
    assert stripe_client.get(f"/v1/invoices/{fee['id']}", headers=desk).json["status"] == "void"


def test_a_cancelled_session_paid_by_card_and_cash_refunds_the_card_and_is_void_once(
    stripe_app, stripe_client, desk, proxy, standin
) -> None:
    """The card part goes back through Stripe; the cash is the desk's to give back by hand
    (the invoice void, listed among the overpayments); the settle job then has nothing to
    do, rather than visiting the booking again on every run."""
    from billing.services.bookings import lifecycle
    from tests.stripe.test_untested_paths import key

    invoice = _book(stripe_client, desk, "P-2011", in_days(1))
    _save(stripe_client, desk, "P-2011", "pm_card_visa")
    card = stripe_client.post(
        f"/v1/invoices/{invoice['id']}/payments",
        headers={**desk, "Idempotency-Key": "pay-2011"},
        json={"method": "card_on_file", "amount": 30000},
    )
    assert card.status_code == 201, card.json
    cash = stripe_client.post(
        f"/v1/invoices/{invoice['id']}/payments",
        headers={**key(stripe_app, "payments:record"), "Idempotency-Key": "cash-2011"},
        json={"method": "cash"},
    )
    assert cash.status_code == 201 and cash.json["invoice_status"] == "paid", cash.json

    cancelled = _cancel(stripe_client, desk, "P-2011", "cancel-2011", "clinic")
    assert cancelled.status_code == 200, cancelled.json
    with stripe_app.app_context():
        settings = lifecycle.settings_from(stripe_app.config, lambda: _gateway(stripe_app))
        lifecycle.settle_pending(db.session(), settings)
        assert lifecycle.settle_pending(db.session(), settings) == []  # nothing left to do
    after = stripe_client.get(f"/v1/invoices/{invoice['id']}", headers=desk).json
    assert after["status"] == "void" and after["amount_refunded"] == 30000
    assert collected_at_stripe(standin, invoice["id"]) == (30000, 30000)
    assert len(proxy.calls("POST", "/v1/refunds")) == 1
