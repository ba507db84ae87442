"""The pay page in a browser never tells the patient the opposite of what happened:
a good card after an earlier decline ends on the receipt, an unanswered 3-D Secure step
returns to the form once Stripe says nothing is on its way, and a return link with nothing
tried is just the form."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from billing.adapters import db
from billing.adapters.models import Payment
from tests.e2e.test_pay_in_browser import (
    charges,
    enter_card,
    online_intent,
    pay_url,
    status_of,
)
from tests.fixtures_stripe import eventually, intents_at_stripe

pytestmark = pytest.mark.parametrize("stripe_app", ["sqlite"], indirect=True)
NOT_CHARGED = "This card was not charged"


def online_status(app, invoice_id: str) -> str | None:
    with app.app_context():
        return db.session().scalar(
            select(Payment.status).where(
                Payment.invoice_id == invoice_id, Payment.method == "online"
            )
        )


def test_a_good_card_after_a_decline_and_a_pause_ends_on_the_receipt(
    stripe_client, staff, open_invoice, phone, screenshot, standin
) -> None:
    invoice_id = open_invoice(card=None)
    phone.goto(pay_url(stripe_client, staff, invoice_id))
    enter_card(phone, "4000000000000341")
    phone.get_by_role("button", name="Pay $500.00").click()
    phone.get_by_role("alert").filter(has_text="declined").wait_for()
    # The decline's webhook lands (the payment is "failed" with us), and the patient pauses.
    eventually(lambda: online_status(stripe_client.application, invoice_id) == "failed")
    phone.wait_for_timeout(2000)

    enter_card(phone, "4242 4242 4242 4242")  # typed with spaces, as people do
    phone.get_by_role("button", name="Pay $500.00").click()
    phone.wait_for_url("**submitted=1*")
    landed = phone.content()
    screenshot(phone, "landed")
    assert NOT_CHARGED not in landed
    phone.get_by_text("Paid — thank you").wait_for()
    assert status_of(stripe_client, staff, invoice_id) == "paid"
    assert charges(stripe_client.application, invoice_id) == 1
    assert intents_at_stripe(standin, invoice_id) == 1


def test_an_unanswered_authentication_returns_to_the_form_and_another_card_pays(
    stripe_client, staff, open_invoice, phone, screenshot
) -> None:
    invoice_id = open_invoice(card=None)
    url = pay_url(stripe_client, staff, invoice_id)
    phone.goto(url)
    enter_card(phone, "4000002500003155")
    phone.get_by_role("button", name="Pay $500.00").click()
    phone.get_by_role("button", name="Complete authentication").wait_for()
    # The bank's step is left unanswered; the patient comes back by the return link, at
    # once and again after what would be two minutes of waiting-page refreshes.
    intent_id = online_intent(stripe_client, invoice_id)
    for submitted in (1, 61):
        phone.goto(f"{url}?submitted={submitted}&payment_intent={intent_id}")
        pay = phone.get_by_role("button", name="Pay $500.00")
        pay.wait_for()
        html = phone.content()
        assert "do not pay again" not in html and "waiting for the card network" not in html
        assert NOT_CHARGED in html
    screenshot(phone, "back-to-the-form")
    invoice = stripe_client.get(f"/v1/invoices/{invoice_id}", headers=staff).json
    assert (invoice["status"], invoice["amount_paid"]) == ("open", 0)

    enter_card(phone, "4242424242424242")
    phone.get_by_role("button", name="Pay $500.00").click()
    phone.get_by_text("Paid — thank you").wait_for()
    assert charges(stripe_client.application, invoice_id) == 1


def test_the_return_link_with_nothing_tried_is_just_the_form(
    stripe_client, staff, open_invoice, phone
) -> None:
    url = pay_url(stripe_client, staff, open_invoice(card=None))
    phone.goto(f"{url}?submitted=1")
    phone.get_by_role("button", name="Pay $500.00").wait_for()
    html = phone.content()
    assert NOT_CHARGED not in html and "waiting for the card network" not in html
