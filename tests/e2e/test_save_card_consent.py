"""The pay page's "save this card" box, in a real browser against the Stripe stand-in:
unticked (the default) nothing is kept; ticked, the card is kept with the exact words the
patient agreed to, and a later late-cancellation fee is charged to it off-session."""

from __future__ import annotations

from typing import Any

import pytest

from billing.adapters import db
from billing.services.access import keys
from tests.conftest import in_days
from tests.e2e.test_pay_in_browser import enter_card, pay_url, status_of
from tests.fixtures_stripe import eventually

pytestmark = pytest.mark.parametrize("stripe_app", ["sqlite"], indirect=True)


@pytest.fixture
def desk(stripe_app) -> dict[str, str]:
    with stripe_app.app_context():
        _, plain = keys.create_key(
            db.session(),
            "front-desk",
            ["quotes:write", "invoices:read", "invoices:write", "payments:write", "bookings:write"],
        )
    return {"Authorization": f"Bearer {plain}"}


def cards_of(client: Any, desk: dict[str, str], patient_id: str) -> list[dict[str, Any]]:
    listed = client.get(f"/v1/patients/{patient_id}/payment-methods", headers=desk)
    assert listed.status_code == 200, listed.json
    return list(listed.json["data"])


def pay_in_browser(phone: Any, url: str, tick: bool) -> str:
    phone.goto(url)
    box = phone.get_by_role("checkbox")
    assert box.is_visible() and not box.is_checked()  # unticked unless the patient ticks it
    label = phone.locator("label[for=save-card]").inner_text()
    assert "Save this card for future visits and fees at Example Clinic" in label
    if tick:
        box.check()
    enter_card(phone, "4242424242424242")
    phone.get_by_role("button", name="Pay $500.00").click()
    phone.wait_for_url("**submitted=1*")
    return str(label)


def test_an_unticked_box_keeps_no_card(stripe_client, staff, desk, open_invoice, phone) -> None:
    invoice_id = open_invoice(card=None, patient_id="P-5001")
    pay_in_browser(phone, pay_url(stripe_client, staff, invoice_id), tick=False)
    eventually(lambda: status_of(stripe_client, staff, invoice_id) == "paid")
    assert cards_of(stripe_client, desk, "P-5001") == []


def test_a_ticked_box_keeps_the_card_with_its_consent_for_fees(
    stripe_client, staff, desk, open_invoice, phone, screenshot
) -> None:
    invoice_id = open_invoice(card=None, patient_id="P-5002")
    label = pay_in_browser(phone, pay_url(stripe_client, staff, invoice_id), tick=True)
    eventually(lambda: status_of(stripe_client, staff, invoice_id) == "paid")
    screenshot(phone, "saved-card-receipt")

    (card,) = eventually(lambda: cards_of(stripe_client, desk, "P-5002"))
    assert card["last4"] == "4242" and card["default"] is True
    assert card["consent"]["text"] == label.strip()
    assert card["consent"]["invoice_id"] == invoice_id
    # Kept as Stripe's customer acceptance: the address and browser it was given from.
    assert card["consent"]["ip_address"] == "127.0.0.1"
    assert "Chrome" in card["consent"]["user_agent"]

    # A later booking cancelled late: the fee goes to the card saved with consent.
    quote = stripe_client.post(
        "/v1/quotes",
        headers=desk,
        json={
            "booking_id": "BK-LATER",
            "session_type": "iv_individual",
            "scheduled_at": in_days(1),
            "currency": "usd",
            "patients": [{"patient_id": "P-5002", "name": "Test Patient"}],
        },
    ).json
    assert (
        stripe_client.post("/v1/invoices", headers=desk, json={"quote_id": quote["id"]}).status_code
        == 201
    )
    cancelled = stripe_client.post(
        "/v1/bookings/BK-LATER/cancellations",
        headers={**desk, "Idempotency-Key": "late-5002"},
        json={"by": "patient"},
    )
    assert cancelled.status_code == 200, cancelled.json
    (fee,) = cancelled.json["fees"]
    assert fee["status"] == "paid" and fee["amount_paid"] == 25000
