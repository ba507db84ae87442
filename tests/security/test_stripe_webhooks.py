"""Stripe's webhooks, signed or not, are trusted only for what matches: a PaymentIntent is
applied to a payment only if it is the one made for it, in its currency, for its amount;
anything else is kept for finance and alerted, and nothing is marked paid. A signature
dated outside Stripe's 300 s tolerance, in either direction, is refused."""

from __future__ import annotations

import time
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from billing.adapters import db
from billing.adapters.models import AuditEvent, LedgerEntry
from billing.services.access.staff import create_staff_user
from tests.api.test_finance_sessions import EMAIL, HTTPS, PASSWORD, sign_in
from tests.stripe.events import deliver, encode, make_event, post_raw, sign, stripe_id
from tests.stripe.test_webhooks import awaiting_three_d_secure, get_invoice, intent_object


def kept_for_finance(app: Flask, payment_id: str) -> list[dict[str, Any]]:
    import json

    with app.app_context():
        rows = db.session().scalars(
            select(AuditEvent).where(
                AuditEvent.action == "stripe.mismatch", AuditEvent.object_id == payment_id
            )
        )
        return [json.loads(row.details) for row in rows]


def charges(app: Flask, invoice_id: str) -> int:
    with app.app_context():
        return len(
            db.session()
            .scalars(
                select(LedgerEntry).where(
                    LedgerEntry.invoice_id == invoice_id, LedgerEntry.kind == "charge"
                )
            )
            .all()
        )


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"currency": "jpy"}, "currency"),  # 50000 jpy is not $500.00
        ({"amount": 100, "amount_received": 100}, "amount"),  # $499.00 missing
        ({"amount_received": 100}, "amount"),
        ({"id": "pi_someone_elses"}, "intent"),  # another intent naming our payment
    ],
)
def test_a_signed_success_that_does_not_match_the_payment_marks_nothing_paid(
    stripe_app: Flask,
    stripe_client: Any,
    staff: dict[str, str],
    open_invoice: Any,
    caplog: Any,
    change: dict[str, Any],
    reason: str,
) -> None:
    import logging

    caplog.set_level(logging.ERROR, logger="billing.payments")
    invoice_id, payment = awaiting_three_d_secure(stripe_client, staff, open_invoice, stripe_app)
    intent = intent_object(
        str(payment.stripe_payment_intent_id), stripe_id("ch"), {"payment_id": payment.id}
    )
    answer = deliver(stripe_client, make_event("payment_intent.succeeded", {**intent, **change}))
    assert answer.status_code == 200  # acknowledged: Stripe must not keep retrying it

    invoice = get_invoice(stripe_client, staff, invoice_id)
    assert (invoice["status"], invoice["amount_paid"]) != ("paid", 50000)
    assert invoice["amount_paid"] == 0 and charges(stripe_app, invoice_id) == 0
    (kept,) = kept_for_finance(stripe_app, payment.id)
    assert kept["reason"] == reason and kept["expected_amount"] == 50000
    assert any("stripe mismatch" in r.getMessage() for r in caplog.records)
    # Finance sees it on the dashboard.
    with stripe_app.app_context():
        create_staff_user(db.session(), EMAIL, PASSWORD)
    client = stripe_app.test_client()
    assert sign_in(client) == 303
    page = client.get("/finance", **HTTPS).get_data(as_text=True)
    assert "Stripe reports that did not match" in page and invoice_id in page


def test_the_matching_success_still_pays(
    stripe_app: Flask, stripe_client: Any, staff: dict[str, str], open_invoice: Any
) -> None:
    invoice_id, payment = awaiting_three_d_secure(stripe_client, staff, open_invoice, stripe_app)
    intent = intent_object(
        str(payment.stripe_payment_intent_id), stripe_id("ch"), {"payment_id": payment.id}
    )
    assert deliver(stripe_client, make_event("payment_intent.succeeded", intent)).status_code == 200
    assert get_invoice(stripe_client, staff, invoice_id)["status"] == "paid"
    assert kept_for_finance(stripe_app, payment.id) == []


def test_a_failure_of_another_intent_cannot_fail_our_payment(
    stripe_app: Flask, stripe_client: Any, staff: dict[str, str], open_invoice: Any
) -> None:
    invoice_id, payment = awaiting_three_d_secure(stripe_client, staff, open_invoice, stripe_app)
    other = intent_object(
        "pi_someone_elses", None, {"payment_id": payment.id}, status="requires_payment_method"
    )
    failed = make_event("payment_intent.payment_failed", other)
    assert deliver(stripe_client, failed).status_code == 200
    assert get_invoice(stripe_client, staff, invoice_id)["status"] == "processing"
    assert kept_for_finance(stripe_app, payment.id) == []  # no money moved: nothing to review


@pytest.mark.parametrize("seconds", [-301, 301, 3600])
def test_a_signature_dated_outside_the_tolerance_either_way_is_refused(
    stripe_client: Any, seconds: int
) -> None:
    body = encode(make_event("payment_intent.succeeded", {"id": "pi_x", "object": "x"}))
    answer = post_raw(stripe_client, body, sign(body, timestamp=int(time.time()) + seconds))
    assert answer.status_code == 400
    assert answer.json["code"] == "invalid_signature"
