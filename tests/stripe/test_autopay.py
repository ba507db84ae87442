"""AutoPay against the Stripe stand-in: a patient's open balances charged to their card
when attendance is marked and nightly once the visit has passed, once each; never for a
patient who turned it off, nor a fee to an HSA/FSA card."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import select

from billing.adapters import db
from billing.adapters.models import AuditEvent, Payment
from billing.services.access import keys
from tests.fixtures_stripe import card_payment_method
from tests.stripe.plans import card_of, charges_sent, items, run_at

ON_POSTGRESQL = pytest.mark.parametrize(  # the logic is the database's either way; once
    "stripe_app", [pytest.param("postgresql", marks=pytest.mark.postgresql)], indirect=True
)


@pytest.fixture
def desk(stripe_app):
    with stripe_app.app_context():
        _, plain = keys.create_key(
            db.session(),
            "desk-autopay",
            ["invoices:read", "payments:write", "bookings:write", "quotes:write"],
        )
    return {"Authorization": f"Bearer {plain}"}


def autopay(client, headers, patient_id, **body):
    answer = client.put(f"/v1/patients/{patient_id}/autopay", headers=headers, json=body)
    assert answer.status_code == 200, answer.json
    return answer.json


def session_day(stripe_client, staff, invoice_id):
    scheduled = stripe_client.get(f"/v1/invoices/{invoice_id}", headers=staff).json["scheduled_at"]
    return datetime.fromisoformat(scheduled).astimezone(UTC)


def test_attendance_marked_charges_the_card_once(
    stripe_app, stripe_client, staff, desk, open_invoice, proxy
) -> None:
    invoice_id = open_invoice("pm_card_visa", patient_id="P-6001")
    on = autopay(stripe_client, desk, "P-6001", enabled=True)
    assert on["enabled"] and on["source"] == "patient"
    assert on["payment_method"]["last4"] == "4242"
    assert "for the balance of my invoices when a visit is marked done" in on["consent"]["text"]
    visit = session_day(stripe_client, staff, invoice_id)
    proxy.requests.clear()
    with time_machine.travel(visit + timedelta(minutes=50), tick=True):
        marked = stripe_client.post(
            "/v1/bookings/BK-P-6001/attendance",
            headers={**desk, "Idempotency-Key": "attended-6001"},
            json={"patients": [{"patient_id": "P-6001", "status": "attended"}]},
        )
        assert marked.status_code == 200, marked.json
    assert charges_sent(proxy) == []  # charged by the scheduler, not in the request
    clock = visit + timedelta(hours=1)
    if not 8 <= clock.hour < 21:  # the clinic's hours (UTC here)
        clock = clock.replace(hour=9) + timedelta(days=1 if clock.hour >= 21 else 0)
    run_at(stripe_app, clock)
    run_at(stripe_app, clock + timedelta(minutes=1))
    assert len(charges_sent(proxy)) == 1
    invoice = stripe_client.get(f"/v1/invoices/{invoice_id}", headers=staff).json
    assert invoice["status"] == "paid"
    [item] = items(stripe_app, invoice_id)
    assert (item.kind, item.reason, item.status) == ("autopay", "attended", "paid")
    with stripe_app.app_context():
        payment = (
            db.session().scalars(select(Payment).where(Payment.invoice_id == invoice_id)).one()
        )
        assert payment.scheduled_charge_id == item.id
        audited = (
            db.session()
            .scalars(
                select(AuditEvent).where(
                    AuditEvent.object_id == payment.id, AuditEvent.action == "payment.succeeded"
                )
            )
            .one()
        )
        assert item.id in audited.details  # the schedule that caused it


@ON_POSTGRESQL
def test_nightly_charges_past_visits_of_patients_on_autopay_only(
    stripe_app, stripe_client, staff, desk, open_invoice, proxy
) -> None:
    stripe_app.config["AUTOPAY"] = "on"  # the clinic's: cards saved with consent
    consented = open_invoice(patient_id="P-6002", card=None)
    stripe_client.post(
        "/v1/patients/P-6002/payment-methods",
        headers=staff,
        json={
            "payment_method": "pm_card_visa",
            "consent": {"text": "Charge this card later.", "agreed_at": "2026-12-01T10:00:00Z"},
        },
    )
    no_consent = open_invoice("pm_card_visa", patient_id="P-6003")
    turned_off = open_invoice(patient_id="P-6004", card=None)
    stripe_client.post(
        "/v1/patients/P-6004/payment-methods",
        headers=staff,
        json={
            "payment_method": "pm_card_mastercard",
            "consent": {"text": "Charge this card later.", "agreed_at": "2026-12-01T10:00:00Z"},
        },
    )
    assert autopay(stripe_client, desk, "P-6004", enabled=False)["enabled"] is False
    assert (
        stripe_client.get("/v1/patients/P-6002/autopay", headers=staff).json["source"] == "clinic"
    )
    night = (session_day(stripe_client, staff, consented) + timedelta(days=1)).replace(
        hour=20, minute=1
    )
    proxy.requests.clear()
    run_at(stripe_app, night - timedelta(hours=2))  # not the AutoPay hour: nothing queued
    assert charges_sent(proxy) == []
    run_at(stripe_app, night)
    run_at(stripe_app, night + timedelta(minutes=5))
    assert len(charges_sent(proxy)) == 1
    assert stripe_client.get(f"/v1/invoices/{consented}", headers=staff).json["status"] == "paid"
    for unpaid in (no_consent, turned_off):
        assert stripe_client.get(f"/v1/invoices/{unpaid}", headers=staff).json["status"] == "open"
        assert items(stripe_app, unpaid) == []


@ON_POSTGRESQL
def test_autopay_names_a_saved_card_only(stripe_client, desk, open_invoice, standin) -> None:
    open_invoice("pm_card_visa", patient_id="P-6005")
    other = card_payment_method(standin.url, "4242424242424242")
    refused = stripe_client.put(
        "/v1/patients/P-6005/autopay",
        headers=desk,
        json={"enabled": True, "payment_method": other},
    )
    assert refused.status_code == 422 and refused.json["code"] == "unknown_payment_method"
    assert "payment_method" in refused.json["errors"]
    unknown = stripe_client.put("/v1/patients/P-9999/autopay", headers=desk, json={"enabled": True})
    assert unknown.status_code == 404


def test_a_fee_is_never_charged_to_an_hsa_card(
    stripe_app, stripe_client, staff, desk, open_invoice, standin
) -> None:
    from billing.services.payments import autopay as service

    invoice_id = open_invoice(card=None, patient_id="P-6006")
    saved = stripe_client.post(
        "/v1/patients/P-6006/payment-methods",
        headers=staff,
        json={"payment_method": "pm_card_visa", "hsa_fsa": True},
    )
    assert saved.status_code == 201, saved.json
    autopay(
        stripe_client,
        desk,
        "P-6006",
        enabled=True,
        payment_method=card_of(stripe_client, staff, "P-6006"),
    )
    with stripe_app.app_context():
        session = db.session()
        from billing.adapters.models import Invoice

        invoice = session.get(Invoice, invoice_id)
        invoice.kind = "fee"  # as a no-show fee's invoice is
        session.commit()
        assert service.queue(session, [invoice_id], service.NIGHTLY) == 0
        invoice = session.get(Invoice, invoice_id)
        invoice.kind = "session"
        session.commit()
        assert service.queue(session, [invoice_id], service.NIGHTLY) == 1
        assert service.queue(session, [invoice_id], service.NIGHTLY) == 0  # once per bill
        session.commit()


@ON_POSTGRESQL
def test_autopay_turned_off_after_a_charge_was_queued_charges_nothing(
    stripe_app, stripe_client, staff, desk, open_invoice, proxy
) -> None:
    from billing.services.payments import autopay as service

    invoice_id = open_invoice("pm_card_visa", patient_id="P-6007")
    autopay(stripe_client, desk, "P-6007", enabled=True)
    with stripe_app.app_context():
        assert service.queue(db.session(), [invoice_id], service.NIGHTLY) == 1
        db.session().commit()
    autopay(stripe_client, desk, "P-6007", enabled=False)
    proxy.requests.clear()
    run_at(stripe_app, datetime.now(UTC).replace(hour=12) + timedelta(days=1))
    assert charges_sent(proxy) == []
    [item] = items(stripe_app, invoice_id)
    assert item.status == "cancelled"


@ON_POSTGRESQL
def test_a_plan_made_for_a_bill_autopay_queued_takes_it_over(
    stripe_app, stripe_client, staff, desk, open_invoice, proxy
) -> None:
    from billing.services.payments import autopay as service
    from tests.stripe.plans import local, make_plan

    invoice_id = open_invoice("pm_card_visa", patient_id="P-6008")
    autopay(stripe_client, desk, "P-6008", enabled=True)
    with stripe_app.app_context():
        assert service.queue(db.session(), [invoice_id], service.NIGHTLY) == 1
        db.session().commit()
    with time_machine.travel(local("UTC", 2027, 5, 3, 8), tick=True):
        make_plan(
            stripe_client, staff, invoice_id, instalments=2, interval="month", first_at="2027-05-03"
        )
    proxy.requests.clear()
    run_at(stripe_app, local("UTC", 2027, 5, 3, 9, 5))
    assert len(charges_sent(proxy)) == 1  # the first instalment, not the whole bill
    kinds = sorted((i.kind, i.status) for i in items(stripe_app, invoice_id))
    assert kinds == [("autopay", "cancelled"), ("instalment", "paid"), ("instalment", "scheduled")]
    invoice = stripe_client.get(f"/v1/invoices/{invoice_id}", headers=staff).json
    assert invoice["amount_paid"] == 25000


def test_a_card_removed_after_autopay_queued_its_charge_is_given_up_and_told(
    stripe_app, stripe_client, staff, desk, open_invoice, proxy
) -> None:
    from billing.services.payments import autopay as service

    invoice_id = open_invoice("pm_card_visa", patient_id="P-6009", email="p6009@example.com")
    autopay(stripe_client, desk, "P-6009", enabled=True)
    card = card_of(stripe_client, staff, "P-6009")
    with stripe_app.app_context():
        assert service.queue(db.session(), [invoice_id], service.NIGHTLY) == 1
        db.session().commit()
    removed = stripe_client.delete(f"/v1/patients/P-6009/payment-methods/{card}", headers=staff)
    assert removed.status_code in (200, 204), removed.get_data(as_text=True)
    proxy.requests.clear()
    run_at(stripe_app, datetime.now(UTC).replace(hour=12) + timedelta(days=1))
    assert charges_sent(proxy) == []
    [item] = items(stripe_app, invoice_id)
    assert (item.status, item.failure_code) == ("failed", "no_card_on_file")
    from tests.stripe.plans import emails_of

    assert "action_needed" in emails_of(stripe_app, invoice_id)
