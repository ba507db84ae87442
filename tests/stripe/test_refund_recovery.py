"""Refunds recover: a failed call never strands money, a rejection fails at once, a crashed
worker's refund is settled, and disputed money cannot be refunded as well."""

from __future__ import annotations

import time
from datetime import timedelta

from sqlalchemy import select, update

from billing.adapters import db
from billing.adapters.models import Payment, Refund, utcnow
from billing.services.payments import refunds
from tests.stripe.collect import charge_card_on_file, collected_at_stripe, refunds_of
from tests.stripe.events import deliver, make_event, stripe_id


def paid(client, staff, open_invoice) -> tuple[str, int]:
    invoice_id = open_invoice()
    charged = charge_card_on_file(client, staff, invoice_id, f"pay-{invoice_id}")
    assert charged.status_code == 201, charged.json
    return invoice_id, charged.json["amount"]


def refund(client, staff, invoice_id, amount, key):
    return client.post(
        f"/v1/invoices/{invoice_id}/refunds",
        headers={**staff, "Idempotency-Key": key},
        json={"amount": amount, "reason": "session cancelled"},
    )


def reconcile(app) -> str:
    result = app.test_cli_runner().invoke(
        args=["payments", "reconcile-pending", "--older-than", "0"]
    )
    assert result.exit_code == 0, result.output
    return result.output


def age(app, refund_id: str, minutes: int) -> None:
    """As if `minutes` had passed since the refund was last touched."""
    with app.app_context():
        session = db.session()
        session.execute(
            update(Refund)
            .where(Refund.id == refund_id)
            .values(updated_at=utcnow() - timedelta(minutes=minutes))
        )
        session.commit()


def test_refund_lost_while_stripe_was_down_does_not_hold_its_amount(
    stripe_client, staff, open_invoice, proxy, standin
):
    invoice_id, total = paid(stripe_client, staff, open_invoice)
    proxy.fault = "down"
    lost = refund(stripe_client, staff, invoice_id, total // 2, "r-lost")
    assert lost.status_code == 503, lost.json
    proxy.fault = None

    # Right away the lost call might still land at Stripe, so its amount stays held, and
    # the refusal says why.
    held = refund(stripe_client, staff, invoice_id, total, "r-early")
    assert held.status_code == 422
    assert "held by refunds Stripe has not confirmed" in held.json["detail"]
    [lost_row] = refunds_of(stripe_client.application, invoice_id)
    age(stripe_client.application, lost_row.id, minutes=3)

    full = refund(stripe_client, staff, invoice_id, total, "r-new")
    assert full.status_code == 201, full.json
    settled = {r.id: r.status for r in refunds_of(stripe_client.application, invoice_id)}
    assert sorted(settled.values()) == ["failed", "succeeded"]  # the lost one never reached Stripe
    assert collected_at_stripe(standin, invoice_id) == (total, total)
    replayed = refund(stripe_client, staff, invoice_id, total // 2, "r-lost")
    assert (replayed.status_code, replayed.json["code"]) == (422, "not_sent")


def test_refund_stripe_rejects_fails_at_once_and_frees_its_amount(
    stripe_client, staff, open_invoice, proxy, standin
):
    invoice_id, total = paid(stripe_client, staff, open_invoice)
    proxy.fault = "reject"
    rejected = refund(stripe_client, staff, invoice_id, total, "r-1")
    proxy.fault = None
    assert rejected.status_code == 422, rejected.json
    assert rejected.json["code"] == "stripe_invalid_request"
    [row] = refunds_of(stripe_client.application, invoice_id)
    assert row.status == "failed"

    again = refund(stripe_client, staff, invoice_id, total, "r-2")
    assert again.status_code == 201, again.json
    assert collected_at_stripe(standin, invoice_id) == (total, total)


def test_refund_whose_reply_was_lost_is_found_at_stripe_not_made_twice(
    stripe_client, staff, open_invoice, proxy, standin
):
    invoice_id, total = paid(stripe_client, staff, open_invoice)
    # Stripe makes it 6 s late; we time out after 2 s and look before it lands (4 s of
    # slack for a loaded machine).
    proxy.fault, proxy.delay = "slow", 6.0
    timed_out = refund(stripe_client, staff, invoice_id, 10000, "r-slow")
    assert timed_out.status_code == 503
    proxy.fault = None
    reconcile(stripe_client.application)  # too soon to tell: the call may still land
    [row] = refunds_of(stripe_client.application, invoice_id)
    assert row.status == "unknown"
    time.sleep(proxy.delay)  # it lands at Stripe
    output = reconcile(stripe_client.application)
    assert "1 refund(s) settled" in output

    [row] = refunds_of(stripe_client.application, invoice_id)
    assert row.status == "succeeded"
    assert collected_at_stripe(standin, invoice_id) == (total, 10000)
    invoice = stripe_client.get(f"/v1/invoices/{invoice_id}", headers=staff).json
    assert (invoice["status"], invoice["amount_refunded"]) == ("partially_refunded", 10000)
    assert refund(stripe_client, staff, invoice_id, total - 10000, "r-rest").status_code == 201


def test_refund_of_a_crashed_worker_is_settled_by_its_replay(
    stripe_client, staff, open_invoice, proxy, standin, monkeypatch
):
    invoice_id, total = paid(stripe_client, staff, open_invoice)

    def crash(*_args, **_kwargs):
        raise RuntimeError("worker killed before calling Stripe")

    monkeypatch.setattr(refunds, "send", crash)
    assert refund(stripe_client, staff, invoice_id, total, "r-crash").status_code == 500
    monkeypatch.undo()
    [row] = refunds_of(stripe_client.application, invoice_id)
    assert row.status == "pending"
    age(stripe_client.application, row.id, minutes=5)

    replayed = refund(stripe_client, staff, invoice_id, total, "r-crash")
    assert replayed.status_code == 201, replayed.json
    assert replayed.json["status"] == "succeeded"
    assert collected_at_stripe(standin, invoice_id) == (total, total)


def test_refund_of_a_crashed_worker_is_settled_by_recovery(
    stripe_client, staff, open_invoice, proxy, standin, monkeypatch
):
    invoice_id, total = paid(stripe_client, staff, open_invoice)

    def crash(*_args, **_kwargs):
        raise RuntimeError("worker killed after Stripe answered")

    monkeypatch.setattr(refunds, "apply_refund", crash)
    assert refund(stripe_client, staff, invoice_id, 20000, "r-crash").status_code == 500
    monkeypatch.undo()
    reconcile(stripe_client.application)

    [row] = refunds_of(stripe_client.application, invoice_id)
    assert row.status == "succeeded"
    assert len(proxy.calls("POST", "/v1/refunds")) == 1
    assert collected_at_stripe(standin, invoice_id) == (total, 20000)


def test_disputed_money_cannot_be_refunded_too(stripe_client, staff, open_invoice):
    invoice_id, total = paid(stripe_client, staff, open_invoice)
    with stripe_client.application.app_context():
        payment = (
            db.session().scalars(select(Payment).where(Payment.invoice_id == invoice_id)).one()
        )
        charge_id, intent_id = payment.stripe_charge_id, payment.stripe_payment_intent_id
    dispute = {
        "id": stripe_id("dp"),
        "object": "dispute",
        "amount": total - 10000,
        "charge": charge_id,
        "payment_intent": intent_id,
        "status": "needs_response",
    }
    assert deliver(stripe_client, make_event("charge.dispute.created", dispute)).status_code == 200

    refused = refund(stripe_client, staff, invoice_id, total, "r-all")
    assert refused.status_code == 422
    assert refused.json["code"] == "refund_exceeds_paid"
    assert "At most 10000" in refused.json["detail"]
    assert refund(stripe_client, staff, invoice_id, 10000, "r-rest").status_code == 201
