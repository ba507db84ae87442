"""Steps of collecting an invoice, as the desk, the patient's browser and Stripe take them."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from flask import Flask
from sqlalchemy import select

from billing.adapters import db
from billing.adapters.models import Payment, Refund
from billing.adapters.standin import StripeStandIn
from billing.services.invoicing import ledger
from tests.fixtures_stripe import SECRET_KEY


def pay_link(client: Any, staff: dict[str, str], invoice_id: str) -> str:
    response = client.post(
        f"/v1/invoices/{invoice_id}/payments",
        headers={**staff, "Idempotency-Key": f"link-{invoice_id}"},
        json={"method": "online"},
    )
    assert response.status_code == 201, response.json
    return "/" + response.json["pay_url"].split("/", 3)[3]


def open_pay_page(client: Any, staff: dict[str, str], invoice_id: str) -> str:
    """The patient opens the pay page; the client secret its card form now holds."""
    page = client.get(pay_link(client, staff, invoice_id))
    assert page.status_code == 200
    with client.application.app_context():
        secret = db.session().scalar(
            select(Payment.client_secret)
            .where(Payment.invoice_id == invoice_id, Payment.method == "online")
            .order_by(Payment.created_at.desc())
        )
    assert secret, "the pay page made no PaymentIntent"
    return str(secret)


def patient_confirms(
    standin: StripeStandIn, client_secret: str, number: str = "4242424242424242"
) -> dict[str, Any]:
    """What Stripe.js does when the patient presses Pay: confirm the intent with the card."""
    card = {"number": number, "exp_month": 12, "exp_year": 2034, "cvc": "123"}
    body = json.dumps({"client_secret": client_secret, "card": card}).encode()
    request = urllib.request.Request(
        f"{standin.url}/_config/bridge/confirm_card_payment", data=body, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return dict(json.loads(answer.read()))
    except urllib.error.HTTPError as error:
        return {"error": json.loads(error.read() or b"{}"), "http_status": error.code}


def charge_card_on_file(client: Any, staff: dict[str, str], invoice_id: str, key: str) -> Any:
    return client.post(
        f"/v1/invoices/{invoice_id}/payments",
        headers={**staff, "Idempotency-Key": key},
        json={"method": "card_on_file"},
    )


def stripe_get(standin: StripeStandIn, path: str) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{standin.url}{path}", headers={"Authorization": f"Bearer {SECRET_KEY}"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return dict(json.loads(answer.read()))


def intents_of(standin: StripeStandIn, invoice_id: str) -> list[dict[str, Any]]:
    """Every PaymentIntent Stripe holds for one invoice, found by the ref in its metadata."""
    query = urllib.parse.quote(f"metadata['invoice_ref']:'{invoice_id}'")
    return list(stripe_get(standin, f"/v1/payment_intents/search?query={query}")["data"])


def collected_at_stripe(standin: StripeStandIn, invoice_id: str) -> tuple[int, int]:
    """What Stripe itself holds for one invoice: (succeeded charges, refunds)."""
    mine = intents_of(standin, invoice_id)
    paid = sum(i["amount"] for i in mine if i["status"] == "succeeded")
    refunded = 0
    for intent in mine:
        if intent["status"] == "succeeded":
            listed = stripe_get(standin, f"/v1/refunds?payment_intent={intent['id']}&limit=100")
            refunded += sum(r["amount"] for r in listed["data"] if r["status"] == "succeeded")
    return paid, refunded


def ledger_of(app: Flask, invoice_id: str) -> ledger.Amounts:
    with app.app_context():
        return ledger.amounts(db.session(), invoice_id)


def refunds_of(app: Flask, invoice_id: str) -> list[Refund]:
    with app.app_context():
        return list(db.session().scalars(select(Refund).where(Refund.invoice_id == invoice_id)))
