"""Recovery that scales: a payment whose outcome we lost is found by re-sending the same
create with the same idempotency key within Stripe's 24 h, by Stripe's search after that;
never by reading through every PaymentIntent, and never by charging twice."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, text, update

from billing.adapters import db
from billing.adapters.models import LedgerEntry, Payment, utcnow
from billing.services.payments import charges as payments
from tests.fixtures_stripe import intents_at_stripe
from tests.stripe.collect import charge_card_on_file


def reconcile(app) -> str:
    result = app.test_cli_runner().invoke(
        args=["payments", "reconcile-pending", "--older-than", "0"]
    )
    assert result.exit_code == 0, result.output
    return result.output


def crash_after_stripe_answered(client, staff, invoice_id, monkeypatch) -> None:
    def crash(*_args, **_kwargs):
        raise RuntimeError("worker killed before committing Stripe's answer")

    monkeypatch.setattr(payments, "apply_intent", crash)
    assert charge_card_on_file(client, staff, invoice_id, "pay-1").status_code == 500
    monkeypatch.undo()


def backdate(app, invoice_id: str, hours: int) -> None:
    with app.app_context():
        session = db.session()
        session.execute(
            update(Payment)
            .where(Payment.invoice_id == invoice_id)
            .values(created_at=utcnow() - timedelta(hours=hours))
        )
        session.commit()


def payment_of(app, invoice_id: str) -> Payment:
    with app.app_context():
        return db.session().scalars(select(Payment).where(Payment.invoice_id == invoice_id)).one()


def test_lost_answer_within_a_day_is_found_by_resending_the_same_key(
    stripe_client, staff, open_invoice, proxy, standin, monkeypatch
):
    invoice_id = open_invoice()
    crash_after_stripe_answered(stripe_client, staff, invoice_id, monkeypatch)
    reconcile(stripe_client.application)

    assert payment_of(stripe_client.application, invoice_id).status == "succeeded"
    sent = proxy.calls("POST", "/v1/payment_intents")
    assert len({r.idempotency_key for r in sent}) == 1
    assert proxy.calls("GET", "/v1/payment_intents") == []  # no scan of every intent
    assert intents_at_stripe(standin, invoice_id) == 1


def test_lost_answer_older_than_a_day_is_found_by_search(
    stripe_client, staff, open_invoice, proxy, standin, monkeypatch
):
    invoice_id = open_invoice()
    crash_after_stripe_answered(stripe_client, staff, invoice_id, monkeypatch)
    backdate(stripe_client.application, invoice_id, hours=30)  # Stripe forgot the key
    reconcile(stripe_client.application)

    assert payment_of(stripe_client.application, invoice_id).status == "succeeded"
    assert len(proxy.calls("POST", "/v1/payment_intents")) == 1  # not re-sent
    assert len(proxy.calls("GET", "/v1/payment_intents/search")) == 1
    assert stripe_client.get(f"/v1/invoices/{invoice_id}", headers=staff).json["status"] == "paid"


def test_charge_that_never_reached_stripe_a_day_ago_fails_without_charging(
    stripe_client, staff, open_invoice, proxy, standin
):
    invoice_id = open_invoice()
    proxy.fault = "down"
    assert charge_card_on_file(stripe_client, staff, invoice_id, "pay-1").status_code == 503
    proxy.fault = None
    backdate(stripe_client.application, invoice_id, hours=30)
    reconcile(stripe_client.application)

    payment = payment_of(stripe_client.application, invoice_id)
    assert (payment.status, payment.failure_code) == ("failed", "not_sent")
    assert intents_at_stripe(standin, invoice_id) == 0
    invoice = stripe_client.get(f"/v1/invoices/{invoice_id}", headers=staff).json
    assert (invoice["status"], invoice["amount_paid"]) == ("open", 0)


@pytest.mark.postgresql
@pytest.mark.parametrize("stripe_app", ["postgresql"], indirect=True)
def test_ledger_refuses_updates_and_deletes(stripe_app, stripe_client, staff, open_invoice):
    invoice_id = open_invoice()
    assert charge_card_on_file(stripe_client, staff, invoice_id, "pay-1").status_code == 201
    engine = stripe_app.extensions["billing.db"].engine
    for statement in (
        "UPDATE ledger_entries SET amount = 1",
        "DELETE FROM ledger_entries",
    ):
        with pytest.raises(Exception, match="append-only"), engine.begin() as connection:
            connection.execute(text(statement))
    with stripe_app.app_context():
        rows = db.session().scalars(select(LedgerEntry.amount)).all()
    assert rows == [50000]
