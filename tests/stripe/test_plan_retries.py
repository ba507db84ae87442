"""Declined instalments against the Stripe stand-in: retried on the clinic's schedule
when a retry may succeed (1, 3, 5 and 7 days after the first decline, at 9:00 of its
clock, never the same day or outside 8:00-21:00), given up at once when it cannot, and
finance and the patient told."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest
import time_machine
from sqlalchemy import select

from billing.adapters import db
from billing.adapters.models import AuditEvent
from tests.stripe.collect import collected_at_stripe
from tests.stripe.plans import (
    card_of,
    charges_sent,
    decline,
    emails_of,
    event_types,
    items,
    local,
    make_plan,
    plan_of,
    run_at,
)

ZONE = "America/Los_Angeles"

ON_POSTGRESQL = pytest.mark.parametrize(  # the logic is the database's either way; once
    "stripe_app", [pytest.param("postgresql", marks=pytest.mark.postgresql)], indirect=True
)


def planned(stripe_app, stripe_client, staff, open_invoice, card="pm_card_visa"):
    """An invoice of $500 in two monthly instalments from 1 Mar 2027, Los Angeles time."""
    stripe_app.config["CLINIC_ZONE"] = ZoneInfo(ZONE)
    invoice_id = open_invoice(card, email="patient@example.com")
    with time_machine.travel(local(ZONE, 2027, 2, 20, 12), tick=True):
        make_plan(
            stripe_client, staff, invoice_id, instalments=2, interval="month", first_at="2027-03-01"
        )
    patient_id = stripe_client.get(f"/v1/invoices/{invoice_id}", headers=staff).json["patient_id"]
    return invoice_id, card_of(stripe_client, staff, patient_id)


def dunning(client, staff):
    report = client.get("/v1/reports/dunning?from=2027-03-01&to=2027-03-31", headers=staff)
    assert report.status_code == 200, report.json
    return report.json


def audit_actions(app, object_id):
    with app.app_context():
        return [
            a.action
            for a in db.session().scalars(
                select(AuditEvent).where(AuditEvent.object_id == object_id).order_by(AuditEvent.id)
            )
        ]


def test_insufficient_funds_is_retried_next_day_and_recovered(
    stripe_app, stripe_client, staff, open_invoice, standin, proxy
) -> None:
    invoice_id, card = planned(stripe_app, stripe_client, staff, open_invoice)
    decline(standin.url, card, "insufficient_funds")
    proxy.requests.clear()
    run_at(stripe_app, local(ZONE, 2027, 3, 1, 9, 1))
    [first, _] = items(stripe_app, invoice_id)
    assert first.status == "retrying" and first.failure_code == "insufficient_funds"
    assert first.next_attempt_at == local(ZONE, 2027, 3, 2, 9)  # the next day, at 9:00
    run_at(stripe_app, local(ZONE, 2027, 3, 1, 20, 59))  # the same day: not again
    run_at(stripe_app, local(ZONE, 2027, 3, 2, 7, 59))  # before the clinic's hours
    assert len(charges_sent(proxy)) == 1
    run_at(stripe_app, local(ZONE, 2027, 3, 2, 9, 1))  # declined again: next on day 3
    [first, _] = items(stripe_app, invoice_id)
    assert first.declines == 2 and first.next_attempt_at == local(ZONE, 2027, 3, 4, 9)
    decline(standin.url, card, "")  # money in the account again
    run_at(stripe_app, local(ZONE, 2027, 3, 4, 9, 1))
    [first, second] = items(stripe_app, invoice_id)
    assert (first.status, first.amount_paid, first.attempts) == ("paid", 25000, 3)
    assert second.status == "scheduled"
    assert len(charges_sent(proxy)) == 3
    assert collected_at_stripe(standin, invoice_id) == (25000, 0)
    assert event_types(stripe_app, "payment.retry").count("payment.retry_scheduled") == 2
    assert "schedule.recovered" in audit_actions(stripe_app, first.id)
    assert plan_of(stripe_client, staff, invoice_id)["status"] == "active"
    report = dunning(stripe_client, staff)
    assert [row["id"] for row in report["recovered"]] == [first.id]
    assert report["in_retry"] == report["given_up"] == []
    assert report["totals"]["usd"]["recovered"] == {"count": 1, "amount": 25000}


@ON_POSTGRESQL
def test_retries_used_up_make_the_plan_past_due_and_tell_everyone(
    stripe_app, stripe_client, staff, open_invoice, standin, proxy
) -> None:
    invoice_id, card = planned(stripe_app, stripe_client, staff, open_invoice)
    decline(standin.url, card, "insufficient_funds")
    proxy.requests.clear()
    for day in (1, 2, 4, 6, 8):  # the due day, then 1, 3, 5 and 7 days after
        run_at(stripe_app, local(ZONE, 2027, 3, day, 12))
    run_at(stripe_app, local(ZONE, 2027, 3, 9, 12))
    assert len(charges_sent(proxy)) == 5
    [first, second] = items(stripe_app, invoice_id)
    assert (first.status, first.declines) == ("failed", 5)
    assert second.status == "scheduled"  # the next instalment is still tried on its day
    plan = plan_of(stripe_client, staff, invoice_id)
    assert plan["status"] == "past_due"
    assert "payment.retries_exhausted" in event_types(stripe_app, "payment.retries")
    assert "plan.past_due" in event_types(stripe_app, "plan.")
    assert emails_of(stripe_app, invoice_id) == ["plan_past_due"]  # none per retry
    assert collected_at_stripe(standin, invoice_id) == (0, 0)
    report = dunning(stripe_client, staff)
    assert [(row["id"], row["failure_code"]) for row in report["given_up"]] == [
        (first.id, "insufficient_funds")
    ]
    assert report["totals"]["usd"]["given_up"] == {"count": 1, "amount": 25000}
    sheet = stripe_client.get(
        "/v1/reports/dunning?from=2027-03-01&to=2027-03-31&format=csv", headers=staff
    )
    assert sheet.mimetype == "text/csv"
    [header, line] = sheet.get_data(as_text=True).strip().splitlines()
    assert header.startswith("state,id,invoice_number") and line.startswith("given_up,")


@ON_POSTGRESQL
def test_a_lost_card_is_never_retried(
    stripe_app, stripe_client, staff, open_invoice, standin, proxy
) -> None:
    invoice_id, card = planned(stripe_app, stripe_client, staff, open_invoice)
    decline(standin.url, card, "lost_card")
    proxy.requests.clear()
    run_at(stripe_app, local(ZONE, 2027, 3, 1, 9, 5))
    for day in (2, 4, 6, 8):
        run_at(stripe_app, local(ZONE, 2027, 3, day, 12))
    assert len(charges_sent(proxy)) == 1
    [first, _] = items(stripe_app, invoice_id)
    assert (first.status, first.failure_code) == ("failed", "lost_card")
    assert plan_of(stripe_client, staff, invoice_id)["status"] == "past_due"
    payment = stripe_client.get(f"/v1/invoices/{invoice_id}", headers=staff).json
    assert payment["balance_due"] == 50000


@ON_POSTGRESQL
def test_a_bank_asking_for_the_patient_gets_a_pay_link_not_a_retry(
    stripe_app, stripe_client, staff, open_invoice, proxy
) -> None:
    invoice_id, _ = planned(stripe_app, stripe_client, staff, open_invoice, "4000002760003184")
    proxy.requests.clear()
    run_at(stripe_app, local(ZONE, 2027, 3, 1, 9, 5))
    run_at(stripe_app, local(ZONE, 2027, 3, 2, 12))
    assert len(charges_sent(proxy)) == 1
    [first, _] = items(stripe_app, invoice_id)
    assert first.status == "action_needed"
    assert "action_needed" in emails_of(stripe_app, invoice_id)


@ON_POSTGRESQL
def test_a_plan_past_due_is_active_again_once_the_missed_instalment_is_paid(
    stripe_app, stripe_client, staff, open_invoice, standin
) -> None:
    invoice_id, card = planned(stripe_app, stripe_client, staff, open_invoice)
    decline(standin.url, card, "stolen_card")
    run_at(stripe_app, local(ZONE, 2027, 3, 1, 9, 5))
    assert plan_of(stripe_client, staff, invoice_id)["status"] == "past_due"
    assert emails_of(stripe_app, invoice_id) == ["plan_past_due"]  # not one per decline
    with time_machine.travel(local(ZONE, 2027, 3, 2, 10), tick=True):
        desk = stripe_client.post(
            f"/v1/invoices/{invoice_id}/payments",
            headers={**staff, "Idempotency-Key": "desk-missed"},
            json={"method": "cash", "amount": 25000},
        )
        assert desk.status_code == 201, desk.json
    run_at(stripe_app, local(ZONE, 2027, 3, 2, 10, 5))
    plan = plan_of(stripe_client, staff, invoice_id)
    assert plan["status"] == "active"
    assert [i["status"] for i in plan["instalments"]] == ["covered", "scheduled"]


@ON_POSTGRESQL
def test_a_few_cents_left_of_an_instalment_go_onto_the_next(
    stripe_app, stripe_client, staff, open_invoice, proxy
) -> None:
    """No card can be charged 30 cents: they are added to the next instalment."""
    invoice_id, _ = planned(stripe_app, stripe_client, staff, open_invoice)
    with time_machine.travel(local(ZONE, 2027, 2, 25, 10), tick=True):
        desk = stripe_client.post(
            f"/v1/invoices/{invoice_id}/payments",
            headers={**staff, "Idempotency-Key": "desk-most"},
            json={"method": "cash", "amount": 24970},
        )
        assert desk.status_code == 201, desk.json
    proxy.requests.clear()
    run_at(stripe_app, local(ZONE, 2027, 3, 1, 9, 5))
    assert charges_sent(proxy) == []
    [first, second] = items(stripe_app, invoice_id)
    assert (first.status, first.amount) == ("covered", 24970)
    assert second.amount == 25030
    run_at(stripe_app, local(ZONE, 2027, 4, 1, 9, 5))
    assert stripe_client.get(f"/v1/invoices/{invoice_id}", headers=staff).json["status"] == "paid"


def test_an_instalment_cancelled_after_a_runner_took_it_is_not_charged(
    stripe_app, stripe_client, staff, open_invoice, proxy
) -> None:
    """The race of a cancel and a runner, made to happen: the runner has taken the
    instalment when the cancel lands; the charge is refused before Stripe is called."""
    from sqlalchemy import update

    from billing.adapters.providers import gateway
    from billing.adapters.schedule_models import ScheduledCharge
    from billing.domain.errors import Conflict
    from billing.services.idempotency import IdempotencyRequest
    from billing.services.payments import charges, schedule

    invoice_id, card = planned(stripe_app, stripe_client, staff, open_invoice)
    [first, _] = items(stripe_app, invoice_id)
    proxy.requests.clear()
    with time_machine.travel(local(ZONE, 2027, 3, 1, 9, 5), tick=True):
        with stripe_app.app_context():
            session = db.session()
            attempt = schedule.take(session, first.id, local(ZONE, 2027, 3, 1, 9, 5))
            assert attempt == 1
            session.execute(
                update(ScheduledCharge)
                .where(ScheduledCharge.id == first.id)
                .values(status="cancelled")
            )
            session.commit()
            key = f"schedule:{first.id}:1"
            request = IdempotencyRequest(first.api_key_id, key, key)
            with pytest.raises(Conflict) as refused:
                charges.pay_scheduled(
                    session,
                    gateway(),
                    invoice_id,
                    request,
                    25000,
                    charges.Scheduled(first.id, 1, (card, "visa", "4242")),
                )
            session.rollback()
            assert refused.value.code == "schedule_item_cancelled"
    assert charges_sent(proxy) == []
