"""Money moving is heard by other systems: an event for each payment outcome, the invoice
paid, a refund, a dispute, each once, with the resource as the API shows it."""

from __future__ import annotations

from typing import Any

from flask import Flask

from billing.adapters import db
from billing.services.access import keys
from tests.integrations.feed import wait_until_settled
from tests.stripe.events import deliver, make_event, stripe_id
from tests.stripe.test_webhooks import dispute_object, paid_invoice, pay


def feed_of(app: Flask, client: Any, invoice_id: str) -> list[dict[str, Any]]:
    """The types of the events about one invoice and its payments and refunds, in order."""
    with app.app_context():
        _, plain = keys.create_key(db.session(), f"reader-{stripe_id('k')}", ["events:read"])
    wait_until_settled(app)
    events = client.get("/v1/events?limit=500", headers={"Authorization": f"Bearer {plain}"})
    return [
        e
        for e in events.json["data"]
        if invoice_id in (e["data"]["object"].get("id"), e["data"]["object"].get("invoice_id"))
    ]


def test_a_payment_a_refund_and_a_dispute_are_each_an_event(
    stripe_app: Flask, stripe_client: Any, staff: dict[str, str], open_invoice: Any
) -> None:
    invoice_id, payment = paid_invoice(stripe_client, staff, open_invoice, stripe_app)
    refund = stripe_client.post(
        f"/v1/invoices/{invoice_id}/refunds",
        headers={**staff, "Idempotency-Key": "ev-refund"},
        json={"amount": 5000, "reason": "shortened"},
    )
    assert refund.status_code == 201
    dispute = dispute_object(
        stripe_id("dp"), str(payment.stripe_charge_id), str(payment.stripe_payment_intent_id)
    )
    dispute["metadata"] = {"invoice_ref": invoice_id}
    for _ in range(2):  # Stripe delivers twice: still one event
        assert (
            deliver(stripe_client, make_event("charge.dispute.created", dispute)).status_code == 200
        )

    events = feed_of(stripe_app, stripe_client, invoice_id)
    assert [e["type"] for e in events] == [
        "invoice.created",
        "payment.succeeded",
        "invoice.paid",
        "refund.succeeded",
        "dispute.created",
    ]
    by_type = {e["type"]: e["data"]["object"] for e in events}
    assert by_type["payment.succeeded"]["id"] == payment.id
    assert by_type["payment.succeeded"]["invoice_status"] == "paid"
    assert by_type["invoice.paid"]["amount_paid"] == by_type["invoice.paid"]["total"]
    assert by_type["refund.succeeded"] == refund.json
    assert by_type["dispute.created"]["amount"] == dispute["amount"]


def test_a_declined_and_a_held_card_on_file_are_events_too(
    stripe_app: Flask, stripe_client: Any, staff: dict[str, str], open_invoice: Any
) -> None:
    declined = open_invoice("4000000000000341")
    assert pay(stripe_client, staff, declined).status_code == 402
    held = open_invoice("4000002760003184")
    assert pay(stripe_client, staff, held).json["status"] == "requires_action"
    assert [e["type"] for e in feed_of(stripe_app, stripe_client, declined)] == [
        "invoice.created",
        "payment.failed",
    ]
    [_, requires] = feed_of(stripe_app, stripe_client, held)
    assert requires["type"] == "payment.requires_action"
    assert requires["data"]["object"]["next_action"]["type"] == "authenticate"
