"""Refunds: partial, several, never more than was paid."""

from __future__ import annotations


def pay(client, staff, invoice_id):
    response = client.post(
        f"/v1/invoices/{invoice_id}/payments",
        headers={**staff, "Idempotency-Key": f"pay-{invoice_id}"},
        json={"method": "card_on_file"},
    )
    assert response.status_code == 201, response.json
    return response.json


def refund(client, staff, invoice_id, amount, key):
    return client.post(
        f"/v1/invoices/{invoice_id}/refunds",
        headers={**staff, "Idempotency-Key": key},
        json={"amount": amount, "reason": "session rescheduled"},
    )


def invoice_of(client, staff, invoice_id):
    return client.get(f"/v1/invoices/{invoice_id}", headers=staff).json


def test_partial_refunds_add_up_to_a_full_refund(stripe_client, staff, open_invoice) -> None:
    invoice_id = open_invoice()
    pay(stripe_client, staff, invoice_id)
    first = refund(stripe_client, staff, invoice_id, 10000, "r1")
    assert first.status_code == 201, first.json
    assert first.json["status"] == "succeeded"
    assert invoice_of(stripe_client, staff, invoice_id)["status"] == "partially_refunded"
    second = refund(stripe_client, staff, invoice_id, 40000, "r2")
    assert second.status_code == 201, second.json
    invoice = invoice_of(stripe_client, staff, invoice_id)
    assert invoice["status"] == "refunded"
    assert invoice["amount_refunded"] == 50000


def test_refund_beyond_what_was_paid_is_refused(stripe_client, staff, open_invoice, proxy) -> None:
    invoice_id = open_invoice()
    pay(stripe_client, staff, invoice_id)
    refund(stripe_client, staff, invoice_id, 30000, "r1")
    too_much = refund(stripe_client, staff, invoice_id, 20001, "r2")
    assert too_much.status_code == 422
    assert too_much.json["code"] == "refund_exceeds_paid"
    assert "amount" in too_much.json["errors"]
    assert len(proxy.calls("POST", "/v1/refunds")) == 1
    assert invoice_of(stripe_client, staff, invoice_id)["amount_refunded"] == 30000


def test_unpaid_invoice_cannot_be_refunded(stripe_client, staff, open_invoice) -> None:
    response = refund(stripe_client, staff, open_invoice(), 100, "r1")
    assert response.status_code == 409
    assert response.json["code"] == "invoice_not_paid"


def test_refund_replay_returns_the_same_refund(stripe_client, staff, open_invoice, proxy) -> None:
    invoice_id = open_invoice()
    pay(stripe_client, staff, invoice_id)
    first = refund(stripe_client, staff, invoice_id, 5000, "same")
    again = refund(stripe_client, staff, invoice_id, 5000, "same")
    assert again.json == first.json
    assert len(proxy.calls("POST", "/v1/refunds")) == 1


def test_refund_reason_stays_with_us(stripe_client, staff, open_invoice, proxy) -> None:
    invoice_id = open_invoice()
    pay(stripe_client, staff, invoice_id)
    refund(stripe_client, staff, invoice_id, 5000, "r1")
    sent = proxy.calls("POST", "/v1/refunds")[0].body
    assert "rescheduled" not in sent
