"""Saved cards and AutoPay in the patient portal, against the Stripe stand-in: a patient
makes a card their default, removes a card nothing else charges, is asked for another
card before removing one a payment plan charges (the API says so too: 409 `card_in_use`),
and turns AutoPay off; another family's cards are a 404 on every URL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from tests.fixtures_stripe import save_card
from tests.stripe.plans import make_plan
from tests.stripe.test_portal_statements import portal_client

EMAIL = "cato@example.org"


def csrf_of(page: Any) -> str:
    import re

    found = re.search(r'name="csrf" value="([^"]+)"', page.get_data(as_text=True))
    assert found is not None
    return found.group(1)


def test_a_patient_manages_their_cards_and_turns_autopay_off(
    stripe_client: Any,
    staff: dict[str, str],
    open_invoice: Callable[..., str],
    standin: Any,
) -> None:
    app = stripe_client.application
    planned = open_invoice("pm_card_visa", patient_id="P-CATO", booking_id="BK-C1", email=EMAIL)
    spare = save_card(stripe_client, staff, standin.url, "P-CATO", "5555555555554444")
    today = datetime.now(UTC).date().isoformat()
    plan = make_plan(stripe_client, staff, planned, instalments=2, interval="month", first_at=today)
    on = stripe_client.put(
        "/v1/patients/P-CATO/autopay",
        json={"enabled": True, "payment_method": spare["id"]},
        headers=staff,
    )
    assert on.status_code == 200, on.json
    open_invoice(None, patient_id="P-OTHER", booking_id="BK-O1", email="other@example.org")

    portal = portal_client(app, EMAIL)
    page = portal.get("/account/patients/P-CATO/cards")
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    number = stripe_client.get(f"/v1/invoices/{planned}", headers=staff).json["number"]
    assert "ending 4242" in text and "ending 4444" in text
    assert f"Used by the payment plan of invoice {number}." in text
    assert "Used by AutoPay." in text
    assert "AutoPay is on: open bills are charged to your Visa ending 4444" in text
    csrf = csrf_of(page)
    visa = plan["payment_method"]["id"]

    refused = portal.post(f"/account/patients/P-CATO/cards/{visa}/remove", data={"csrf": csrf})
    assert refused.status_code == 409
    assert "choose another card for it first" in refused.get_data(as_text=True)
    api = stripe_client.delete(f"/v1/patients/P-CATO/payment-methods/{visa}", headers=staff)
    assert api.status_code == 409 and api.json["code"] == "card_in_use"

    made = portal.post(f"/account/patients/P-CATO/cards/{visa}/default", data={"csrf": csrf})
    assert made.status_code == 303  # the card saved last was the default until now
    cards = stripe_client.get("/v1/patients/P-CATO/payment-methods", headers=staff).json["data"]
    assert [c["id"] for c in cards if c["default"]] == [visa]

    off = portal.post("/account/patients/P-CATO/autopay/off", data={"csrf": csrf})
    assert off.status_code == 303
    assert stripe_client.get("/v1/patients/P-CATO/autopay", headers=staff).json["enabled"] is False
    assert "AutoPay is off" in portal.get(off.headers["Location"]).get_data(as_text=True)

    gone = portal.post(f"/account/patients/P-CATO/cards/{spare['id']}/remove", data={"csrf": csrf})
    assert gone.status_code == 303  # AutoPay no longer charges it
    left = stripe_client.get("/v1/patients/P-CATO/payment-methods", headers=staff).json["data"]
    assert [c["id"] for c in left] == [visa]

    for url in (  # another family's patient: nothing here, whatever the action
        "/account/patients/P-OTHER/cards",
    ):
        assert portal.get(url).status_code == 404
    for url in (
        f"/account/patients/P-OTHER/cards/{visa}/default",
        f"/account/patients/P-OTHER/cards/{visa}/remove",
        "/account/patients/P-OTHER/autopay/off",
    ):
        assert portal.post(url, data={"csrf": csrf}).status_code == 404
