"""A pay link that ran out stands its PaymentIntent down at Stripe, so a pay page left
open past its link's life cannot collect; a new link works as before."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import update

from billing.adapters import db, providers
from billing.adapters.models import PayLink, utcnow
from billing.services.integrations import expiry
from tests.stripe.collect import intents_of, open_pay_page, patient_confirms


def test_an_expired_links_payment_intent_is_cancelled_and_a_new_link_pays(
    stripe_app: Any, stripe_client: Any, staff: dict[str, str], open_invoice: Any, standin: Any
) -> None:
    invoice_id = open_invoice(card=None)
    secret = open_pay_page(stripe_client, staff, invoice_id)
    with stripe_app.app_context():
        session = db.session()
        session.execute(
            update(PayLink)
            .where(PayLink.invoice_id == invoice_id)
            .values(expires_at=utcnow() - timedelta(minutes=1))
        )
        session.commit()
        done = expiry.expire(session, providers.gateway())
    assert done.links == 1
    assert [i["status"] for i in intents_of(standin, invoice_id)] == ["canceled"]
    late = patient_confirms(standin, secret)  # the old page, left open, tries anyway
    assert "error" in late or late.get("status") != "succeeded"
    invoice = stripe_client.get(f"/v1/invoices/{invoice_id}", headers=staff).json
    assert invoice["status"] == "open" and invoice["amount_paid"] == 0

    fresh = stripe_client.post(
        f"/v1/invoices/{invoice_id}/payments",
        headers={**staff, "Idempotency-Key": "second-link"},
        json={"method": "online"},
    )
    page = stripe_client.get("/" + fresh.json["pay_url"].split("/", 3)[3])
    assert page.status_code == 200
    assert len(intents_of(standin, invoice_id)) == 2  # a new intent for the new page
