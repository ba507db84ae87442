"""What the pay page tells a patient after they press Pay: decided from the PaymentIntent
their browser just confirmed (asking Stripe when our webhook has not arrived), never from
an older attempt; "not charged" only when Stripe says that PaymentIntent did not succeed."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from billing.adapters import db
from billing.adapters.models import Payment
from tests.fixtures_stripe import eventually
from tests.stripe.collect import open_pay_page, patient_confirms, pay_link

NOT_CHARGED = "This card was not charged"
WAITING = "waiting for the card network"


def online_payment(app: Any, invoice_id: str) -> Payment:
    with app.app_context():
        payment = (
            db.session()
            .scalars(
                select(Payment).where(Payment.invoice_id == invoice_id, Payment.method == "online")
            )
            .one()
        )
        db.session().expunge(payment)
        return payment


def page(client: Any, path: str) -> str:
    answer = client.get(path)
    assert answer.status_code == 200
    return str(answer.get_data(as_text=True))


def test_back_from_paying_after_an_earlier_decline_shows_the_receipt_not_a_failure(
    stripe_client, staff, open_invoice, standin
) -> None:
    invoice_id = open_invoice(card=None)
    secret = open_pay_page(stripe_client, staff, invoice_id)
    path = pay_link(stripe_client, staff, invoice_id)
    assert "error" in patient_confirms(standin, secret, "4000000000000341")
    app = stripe_client.application
    eventually(lambda: online_payment(app, invoice_id).status == "failed")  # its webhook landed

    paid = patient_confirms(standin, secret, "4242424242424242")  # same PaymentIntent
    assert paid["status"] == "succeeded"
    # Straight back, before Stripe's payment_intent.succeeded webhook (about 1 s later).
    html = page(stripe_client, f"{path}?submitted=1&payment_intent={paid['id']}")
    assert NOT_CHARGED not in html and "Paid — thank you" in html
    invoice = stripe_client.get(f"/v1/invoices/{invoice_id}", headers=staff).json
    assert (invoice["status"], invoice["amount_paid"]) == ("paid", 50000)


def test_the_declined_payment_named_on_return_is_not_charged_and_the_form_is_back(
    stripe_client, staff, open_invoice, standin
) -> None:
    invoice_id = open_invoice(card=None)
    secret = open_pay_page(stripe_client, staff, invoice_id)
    path = pay_link(stripe_client, staff, invoice_id)
    patient_confirms(standin, secret, "4000000000000341")
    intent_id = secret.split("_secret_")[0]
    html = page(stripe_client, f"{path}?submitted=1&payment_intent={intent_id}")
    assert NOT_CHARGED in html and 'id="payment-form"' in html and WAITING not in html


def test_submitted_with_nothing_tried_or_an_unknown_payment_is_just_the_form(
    stripe_client, staff, open_invoice, standin
) -> None:
    invoice_id = open_invoice(card=None)
    other = open_invoice(card=None)
    other_intent = open_pay_page(stripe_client, staff, other).split("_secret_")[0]
    path = pay_link(stripe_client, staff, invoice_id)
    for query in (
        "?submitted=1",
        f"?submitted=1&payment_intent={other_intent}",  # another invoice's
        "?submitted=1&payment_intent=pi_no_such_intent",
        "?submitted=1&payment_intent=<script>",
    ):
        html = page(stripe_client, path + query)
        assert 'id="payment-form"' in html, query
        assert NOT_CHARGED not in html and WAITING not in html, query


def test_while_stripe_cannot_say_the_page_waits_on_that_payment_then_stops_refreshing(
    stripe_client, staff, open_invoice, standin, proxy
) -> None:
    invoice_id = open_invoice(card=None)
    secret = open_pay_page(stripe_client, staff, invoice_id)
    path = pay_link(stripe_client, staff, invoice_id)
    intent_id = secret.split("_secret_")[0]
    proxy.fault = "down"  # Stripe out of reach: nothing is known of the payment
    html = page(stripe_client, f"{path}?submitted=1&payment_intent={intent_id}")
    assert "Payment in progress" in html and 'class="message neutral"' in html
    assert f'content="2; url={path}?submitted=2&amp;payment_intent={intent_id}"' in html
    given_up = page(stripe_client, f"{path}?submitted=60&payment_intent={intent_id}")
    assert "We have not heard back" in given_up and 'http-equiv="refresh"' not in given_up
    proxy.fault = None
    # Stripe answers again: the PaymentIntent was never confirmed, so the form is back.
    back = page(stripe_client, f"{path}?submitted=61&payment_intent={intent_id}")
    assert 'id="payment-form"' in back and "do not pay again" not in back


def test_a_cancelled_invoice_does_not_tell_the_patient_nothing_is_owed(
    stripe_client, staff, open_invoice
) -> None:
    """An invoice voided on another path than the API (a booking re-quoted, credits used)
    may have a replacement: the page says where to look, never "nothing is owed"."""
    from billing.adapters.models import Invoice

    invoice_id = open_invoice(card=None)
    path = pay_link(stripe_client, staff, invoice_id)
    with stripe_client.application.app_context():
        db.session().get(Invoice, invoice_id).status = "void"
        db.session().commit()
    html = page(stripe_client, path)
    assert "was cancelled" in html and "new payment link" in html
    assert "nothing is owed" not in html


def test_the_browser_asks_for_an_icon_and_gets_one(stripe_client) -> None:
    answer = stripe_client.get("/favicon.ico")
    assert answer.status_code == 200
    assert answer.mimetype == "image/vnd.microsoft.icon"
    assert answer.data[:4] == b"\x00\x00\x01\x00"  # an ICO file
