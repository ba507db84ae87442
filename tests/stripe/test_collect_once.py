"""An invoice is collected at most once: the pay page, the front desk and a void never race
into a second charge, and money that arrives anyway goes back, once, in view of finance."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import func, select

from billing.adapters import db
from billing.adapters.models import Refund
from billing.services.access import keys
from billing.services.payments import charges as payments
from billing.services.payments import online
from tests.fixtures_stripe import eventually, intents_at_stripe
from tests.stripe.collect import (
    charge_card_on_file,
    collected_at_stripe,
    ledger_of,
    open_pay_page,
    patient_confirms,
    refunds_of,
    stripe_get,
)
from tests.stripe.events import deliver, make_event


def invoice(client, staff, invoice_id):
    return client.get(f"/v1/invoices/{invoice_id}", headers=staff).json


def test_desk_charge_cancels_the_open_pay_page(stripe_client, staff, open_invoice, standin):
    invoice_id = open_invoice()
    secret = open_pay_page(stripe_client, staff, invoice_id)

    charged = charge_card_on_file(stripe_client, staff, invoice_id, "desk-1")
    assert charged.status_code == 201, charged.json
    assert charged.json["status"] == "succeeded"
    pay_page_intent = stripe_get(standin, f"/v1/payment_intents/{secret.split('_secret_')[0]}")
    assert pay_page_intent["status"] == "canceled"

    presses_pay = patient_confirms(standin, secret)  # the page was left open
    assert "error" in presses_pay
    after = invoice(stripe_client, staff, invoice_id)
    assert (after["status"], after["amount_paid"]) == ("paid", after["total"])
    assert collected_at_stripe(standin, invoice_id) == (after["total"], 0)


def test_pay_page_works_again_after_a_declined_desk_charge(
    stripe_client, staff, open_invoice, standin
):
    invoice_id = open_invoice(card="4000000000000341")  # declined when charged
    first_page = open_pay_page(stripe_client, staff, invoice_id)
    declined = charge_card_on_file(stripe_client, staff, invoice_id, "desk-1")
    assert declined.status_code == 402, declined.json
    assert "error" in patient_confirms(standin, first_page)  # cancelled by the desk's attempt

    second_page = open_pay_page(stripe_client, staff, invoice_id)
    assert second_page != first_page
    assert patient_confirms(standin, second_page)["status"] == "succeeded"
    after = eventually(
        lambda: (found := invoice(stripe_client, staff, invoice_id))["status"] == "paid" and found
    )
    assert after["amount_paid"] == after["total"]
    assert collected_at_stripe(standin, invoice_id) == (after["total"], 0)


def test_void_cancels_the_open_pay_page(stripe_client, staff, open_invoice, standin):
    invoice_id = open_invoice(card=None)
    secret = open_pay_page(stripe_client, staff, invoice_id)

    voided = stripe_client.post(f"/v1/invoices/{invoice_id}/void", headers=staff)
    assert voided.status_code == 200, voided.json
    assert "error" in patient_confirms(standin, secret)
    after = invoice(stripe_client, staff, invoice_id)
    assert (after["status"], after["amount_paid"]) == ("void", 0)
    assert collected_at_stripe(standin, invoice_id) == (0, 0)


def test_patient_who_paid_first_wins_and_the_desk_is_refused(
    stripe_client, staff, open_invoice, standin
):
    invoice_id = open_invoice()
    secret = open_pay_page(stripe_client, staff, invoice_id)
    assert patient_confirms(standin, secret)["status"] == "succeeded"

    # The desk charges before Stripe's webhook has reached us: Stripe says it was paid.
    refused = charge_card_on_file(stripe_client, staff, invoice_id, "desk-late")
    assert refused.status_code == 409, refused.json
    assert refused.json["code"] == "invoice_not_payable"
    after = invoice(stripe_client, staff, invoice_id)
    assert (after["status"], after["amount_paid"]) == ("paid", after["total"])
    assert intents_at_stripe(standin, invoice_id) == 1  # the desk's charge was never sent
    again = charge_card_on_file(stripe_client, staff, invoice_id, "desk-late")
    assert (again.status_code, again.json["code"]) == (409, "invoice_not_payable")


def test_void_after_the_patient_paid_is_refused(stripe_client, staff, open_invoice, standin):
    invoice_id = open_invoice(card=None)
    secret = open_pay_page(stripe_client, staff, invoice_id)
    assert patient_confirms(standin, secret)["status"] == "succeeded"

    refused = stripe_client.post(f"/v1/invoices/{invoice_id}/void", headers=staff)
    assert refused.status_code == 409
    assert refused.json["code"] == "invoice_paid"
    assert invoice(stripe_client, staff, invoice_id)["status"] == "paid"


def finance_sees(client) -> list[dict]:
    """The overpayments of today in the reconciliation report and the month-end summary."""
    with client.application.app_context():
        _, plain = keys.create_key(
            db.session(), f"finance-{uuid.uuid4().hex[:6]}", ["reports:read"]
        )
    reader = {"Authorization": f"Bearer {plain}"}
    today = datetime.now(UTC).date().isoformat()
    report = client.get(f"/v1/reports/reconciliation?from={today}&to={today}", headers=reader)
    month = client.get(f"/v1/reports/month-end?month={today[:7]}", headers=reader)
    assert report.status_code == month.status_code == 200
    assert month.json["overpayments"] == report.json["overpayments"]
    assert month.json["discrepancies"]["overpayments"] == len(report.json["overpayments"])
    return list(report.json["overpayments"])


def test_money_collected_twice_anyway_is_refunded_once(
    stripe_client, stripe_app, staff, open_invoice, standin, monkeypatch
):
    """A race at Stripe we cannot prevent (here forced by skipping the cancel): with
    OVERPAYMENTS=refund the second charge is refunded automatically, once, however often
    Stripe reports it (tests/stripe/test_patient_credit.py: kept as credit instead)."""
    invoice_id = open_invoice()
    secret = open_pay_page(stripe_client, staff, invoice_id)
    monkeypatch.setattr(payments, "cancel_online", lambda *_args: None)
    assert charge_card_on_file(stripe_client, staff, invoice_id, "desk").status_code == 201
    monkeypatch.undo()
    monkeypatch.setitem(stripe_app.config, "OVERPAYMENTS", "refund")

    online_intent = patient_confirms(standin, secret)
    assert online_intent["status"] == "succeeded"
    event = make_event("payment_intent.succeeded", online_intent)
    for _ in range(3):  # Stripe delivers at least once; the stand-in sends its own copy too
        assert deliver(stripe_client, event).status_code == 200
    assert (
        deliver(stripe_client, make_event("payment_intent.succeeded", online_intent)).status_code
        == 200
    )

    total = invoice(stripe_client, staff, invoice_id)["total"]
    given_back = eventually(
        lambda: [r for r in refunds_of(stripe_app, invoice_id) if r.status == "succeeded"]
    )
    assert [(r.kind, r.amount) for r in given_back] == [("overpayment", total)]
    after = invoice(stripe_client, staff, invoice_id)
    assert after["status"] == "paid"  # the patient paid once; the second charge went back
    money = ledger_of(stripe_app, invoice_id)
    assert (money.paid, money.refunded) == (2 * total, total)
    assert collected_at_stripe(standin, invoice_id) == (2 * total, total)
    shown = finance_sees(stripe_client)
    assert [(r["invoice_id"], r["excess"], r["outstanding"]) for r in shown] == [
        (invoice_id, total, 0)
    ]

    # What is left to refund is the one charge the clinic kept, not both.
    too_much = stripe_client.post(
        f"/v1/invoices/{invoice_id}/refunds",
        headers={**staff, "Idempotency-Key": "r-all"},
        json={"amount": total + 1, "reason": "session cancelled"},
    )
    assert too_much.status_code == 422
    full = stripe_client.post(
        f"/v1/invoices/{invoice_id}/refunds",
        headers={**staff, "Idempotency-Key": "r-full"},
        json={"amount": total, "reason": "session cancelled"},
    )
    assert full.status_code == 201, full.json
    assert invoice(stripe_client, staff, invoice_id)["status"] == "refunded"
    assert collected_at_stripe(standin, invoice_id) == (2 * total, 2 * total)


def test_payment_on_a_void_invoice_is_refunded_in_full(
    stripe_client, stripe_app, staff, open_invoice, standin, monkeypatch
):
    invoice_id = open_invoice(card=None)
    secret = open_pay_page(stripe_client, staff, invoice_id)
    monkeypatch.setattr(online, "_has_live_intent", lambda *_args: False)  # the race
    assert stripe_client.post(f"/v1/invoices/{invoice_id}/void", headers=staff).status_code == 200
    monkeypatch.undo()
    monkeypatch.setitem(stripe_app.config, "OVERPAYMENTS", "refund")

    paid = patient_confirms(standin, secret)
    assert paid["status"] == "succeeded"
    assert deliver(stripe_client, make_event("payment_intent.succeeded", paid)).status_code == 200

    # The stand-in's own copy of the event may be the one that gives the money back.
    after = eventually(
        lambda: (found := invoice(stripe_client, staff, invoice_id))["amount_refunded"] and found
    )
    assert after["status"] == "void"
    assert (after["amount_paid"], after["amount_refunded"]) == (after["total"], after["total"])
    assert collected_at_stripe(standin, invoice_id) == (after["total"], after["total"])
    with stripe_app.app_context():
        count = db.session().scalar(
            select(func.count()).select_from(Refund).where(Refund.invoice_id == invoice_id)
        )
    assert count == 1
    [shown] = finance_sees(stripe_client)
    assert (shown["status"], shown["excess"], shown["given_back"]) == (
        "void",
        after["total"],
        after["total"],
    )
