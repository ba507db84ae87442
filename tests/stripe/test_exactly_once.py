"""Never twice: concurrent replays, Stripe faults and crashes end in one PaymentIntent."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import func, select

from billing.adapters import db
from billing.adapters.models import LedgerEntry
from billing.services.payments import charges as payments
from tests.fixtures_stripe import intents_at_stripe


def ledger_rows(app, kind: str) -> int:
    with app.app_context():
        statement = select(func.count()).select_from(LedgerEntry).where(LedgerEntry.kind == kind)
        return int(db.session().scalar(statement) or 0)


def concurrently(app, count: int, send) -> list:
    barrier = threading.Barrier(count)
    responses: list = [None] * count

    def run(index: int) -> None:
        client = app.test_client()
        barrier.wait()
        responses[index] = send(client)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return responses


def without_request_id(response) -> dict:
    return {k: v for k, v in response.json.items() if k != "request_id"}


def pay(client, staff, invoice_id, key="pay-1"):
    return client.post(
        f"/v1/invoices/{invoice_id}/payments",
        headers={**staff, "Idempotency-Key": key},
        json={"method": "card_on_file"},
    )


@pytest.mark.postgresql
@pytest.mark.parametrize("stripe_app", ["postgresql"], indirect=True)
def test_fifty_concurrent_payments_make_one_payment_intent(stripe_app, staff, open_invoice, proxy):
    invoice_id = open_invoice()
    responses = concurrently(stripe_app, 50, lambda client: pay(client, staff, invoice_id))
    assert {r.status_code for r in responses} == {201}
    assert len({str(without_request_id(r)) for r in responses}) == 1
    assert len(proxy.calls("POST", "/v1/payment_intents")) == 1
    assert ledger_rows(stripe_app, "charge") == 1


@pytest.mark.postgresql
@pytest.mark.parametrize("stripe_app", ["postgresql"], indirect=True)
def test_fifty_concurrent_refunds_make_one_refund(stripe_app, staff, open_invoice, proxy):
    invoice_id = open_invoice()
    assert pay(stripe_app.test_client(), staff, invoice_id).status_code == 201

    def refund(client):
        return client.post(
            f"/v1/invoices/{invoice_id}/refunds",
            headers={**staff, "Idempotency-Key": "refund-once"},
            json={"amount": 12500, "reason": "one refund"},
        )

    responses = concurrently(stripe_app, 50, refund)
    assert {r.status_code for r in responses} == {201}
    assert len({str(without_request_id(r)) for r in responses}) == 1
    assert len(proxy.calls("POST", "/v1/refunds")) == 1
    assert ledger_rows(stripe_app, "refund") == 1


@pytest.mark.parametrize(
    ("fault", "code", "status"),
    [
        ("down", "stripe_unavailable", 503),
        ("slow", "stripe_unavailable", 503),
        ("error500", "stripe_error", 502),
    ],
)
def test_stripe_fault_is_clear_and_a_retry_succeeds_once(
    stripe_client, staff, open_invoice, proxy, standin, fault, code, status
):
    invoice_id = open_invoice()
    proxy.fault, proxy.delay = fault, 5.0  # the app's timeout is 4 s
    failed = pay(stripe_client, staff, invoice_id, key="retry-me")
    assert failed.status_code == status, failed.json
    assert failed.json["code"] == code
    invoice = stripe_client.get(f"/v1/invoices/{invoice_id}", headers=staff).json
    assert invoice["status"] != "paid" and invoice["amount_paid"] == 0

    proxy.fault = None
    time.sleep(proxy.delay if fault == "slow" else 0)  # "later": the slow call has landed
    retried = pay(stripe_client, staff, invoice_id, key="retry-me")
    assert retried.status_code == 201, retried.json
    assert retried.json["status"] == "succeeded"
    assert stripe_client.get(f"/v1/invoices/{invoice_id}", headers=staff).json["status"] == "paid"
    assert ledger_rows(stripe_client.application, "charge") == 1
    assert intents_at_stripe(standin, invoice_id) == 1
    keys = {r.idempotency_key for r in proxy.calls("POST", "/v1/payment_intents")}
    assert len(keys) == 1  # a re-send carries the same idempotency key


def test_crash_after_stripe_answered_is_recovered_without_a_second_charge(
    stripe_client, staff, open_invoice, proxy, standin, monkeypatch
):
    invoice_id = open_invoice()
    real_apply = payments.apply_intent

    def crash(*_args, **_kwargs):
        raise RuntimeError("process died before committing Stripe's answer")

    monkeypatch.setattr(payments, "apply_intent", crash)
    crashed = pay(stripe_client, staff, invoice_id)
    assert crashed.status_code == 500
    monkeypatch.setattr(payments, "apply_intent", real_apply)

    app = stripe_client.application
    runner = app.test_cli_runner()
    result = runner.invoke(args=["payments", "reconcile-pending", "--older-than", "0"])
    assert result.exit_code == 0, result.output
    invoice = stripe_client.get(f"/v1/invoices/{invoice_id}", headers=staff).json
    assert invoice["status"] == "paid"
    # Recovery re-sent the create with the same key, and Stripe answered with the first intent.
    sent = proxy.calls("POST", "/v1/payment_intents")
    assert len(sent) == 2 and len({r.idempotency_key for r in sent}) == 1
    assert intents_at_stripe(standin, invoice_id) == 1
    assert ledger_rows(app, "charge") == 1
