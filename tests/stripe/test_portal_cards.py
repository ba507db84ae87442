"""Saved cards and AutoPay in the patient portal, against the Stripe stand-in: a patient
makes a card their default, removes a card nothing else charges, is asked for another
card before removing one a payment plan charges (the API says so too: 409 `card_in_use`),
and turns AutoPay off; another family's cards are a 404 on every URL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
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


def test_a_plans_card_moves_to_another_with_consent_and_the_old_card_can_go(
    stripe_client: Any,
    staff: dict[str, str],
    open_invoice: Callable[..., str],
    standin: Any,
) -> None:
    from sqlalchemy import select

    from billing.adapters import db
    from billing.adapters.schedule_models import PaymentPlan, ScheduledCharge

    app = stripe_client.application
    planned = open_invoice("pm_card_visa", patient_id="P-MOVE", booking_id="BK-M1", email=EMAIL)
    later = (datetime.now(UTC).date() + timedelta(days=3)).isoformat()
    plan = make_plan(stripe_client, staff, planned, instalments=3, interval="month", first_at=later)
    old = plan["payment_method"]["id"]
    spare = save_card(stripe_client, staff, standin.url, "P-MOVE", "5555555555554444")
    portal = portal_client(app, EMAIL)
    page = portal.get("/account/patients/P-MOVE/cards")
    text = page.get_data(as_text=True)
    assert "Charge the payment plan of invoice" in text and "Use that card instead" in text
    csrf = csrf_of(page)

    unticked = portal.post(
        f"/account/patients/P-MOVE/cards/{old}/move", data={"csrf": csrf, "to": spare["id"]}
    )
    assert unticked.status_code == 422  # no consent, nothing moves
    moved = portal.post(
        f"/account/patients/P-MOVE/cards/{old}/move",
        data={"csrf": csrf, "to": spare["id"], "agree": "yes"},
    )
    assert moved.status_code == 303
    with app.app_context():
        stored = db.session().get_one(PaymentPlan, plan["id"])
        assert stored.payment_method_id == spare["id"] and stored.card_last4 == "4444"
        assert "ending 4444" in stored.consent_text and stored.consent_accepted == "online"
        waiting = (
            db.session()
            .scalars(
                select(ScheduledCharge.payment_method_id).where(
                    ScheduledCharge.plan_id == plan["id"], ScheduledCharge.status == "scheduled"
                )
            )
            .all()
        )
        assert waiting and set(waiting) == {spare["id"]}
    gone = portal.post(f"/account/patients/P-MOVE/cards/{old}/remove", data={"csrf": csrf})
    assert gone.status_code == 303  # nothing charges it now
    elsewhere = portal.post(
        f"/account/patients/P-OTHER/cards/{old}/move",
        data={"csrf": csrf, "to": spare["id"], "agree": "yes"},
    )
    assert elsewhere.status_code == 404


def test_a_memberships_card_moves_too_and_its_waiting_fee_follows(
    stripe_client: Any, standin: Any
) -> None:
    from billing.adapters import db
    from billing.adapters.membership_models import Membership
    from billing.domain.access import SCOPES
    from billing.services.access import keys
    from tests.stripe.test_memberships import join, offer

    app = stripe_client.application
    with app.app_context():
        _, plain = keys.create_key(db.session(), "manager", sorted(SCOPES))
    manager = {"Authorization": f"Bearer {plain}"}
    offer(stripe_client, manager, percent_off=10)
    later = (datetime.now(UTC) + timedelta(days=5)).date().isoformat()
    joined = join(
        stripe_client, manager, standin.url, "P-MEM", email="mia@example.org", starts_at=later
    )
    old = joined["payment_method"]["id"]
    spare = save_card(stripe_client, manager, standin.url, "P-MEM", "5555555555554444")
    quoted = stripe_client.post(  # a bill with her address: it reaches her in the portal
        "/v1/quotes",
        headers=manager,
        json={
            "booking_id": "BK-MIA",
            "session_type": "iv_individual",
            "scheduled_at": (datetime.now(UTC) + timedelta(days=9)).isoformat(),
            "currency": "usd",
            "patients": [{"patient_id": "P-MEM", "name": "Mia", "email": "mia@example.org"}],
        },
    ).json
    billed = stripe_client.post("/v1/invoices", headers=manager, json={"quote_id": quoted["id"]})
    assert billed.status_code == 201, billed.json
    portal = portal_client(app, "mia@example.org")
    page = portal.get("/account/patients/P-MEM/cards")
    assert "Charge the membership Maintenance to another card" in page.get_data(as_text=True)
    moved = portal.post(
        f"/account/patients/P-MEM/cards/{old}/move",
        data={"csrf": csrf_of(page), "to": spare["id"], "agree": "yes"},
    )
    assert moved.status_code == 303
    with app.app_context():
        member = db.session().get_one(Membership, joined["id"])
        assert member.payment_method_id == spare["id"] and "ending 4444" in member.consent_text
    shown = stripe_client.get(f"/v1/memberships/{joined['id']}", headers=manager).json
    assert shown["payment_method"]["id"] == spare["id"]
