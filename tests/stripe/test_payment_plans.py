"""Payment plans against the Stripe stand-in: instalments charged off-session on their
days (the clinic's clock, across DST and month ends), each once, whatever runs them."""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

import pytest
import time_machine

from tests.stripe.plans import (
    card_of,
    charged_on_each_day,
    charges_sent,
    event_types,
    items,
    local,
    make_plan,
    plan_of,
    run_at,
)

NEW_YORK = "America/New_York"

ON_POSTGRESQL = pytest.mark.parametrize(  # the logic is the database's either way; once
    "stripe_app", [pytest.param("postgresql", marks=pytest.mark.postgresql)], indirect=True
)


@ON_POSTGRESQL
def test_a_year_of_monthly_instalments_is_charged_on_each_day_once(
    stripe_app, stripe_client, staff, open_invoice, proxy
) -> None:
    """Jan 31 2028 on: the month's last day where it is shorter (Feb 29 in a leap year),
    at 9:00 New York time whether DST is on (Mar 12 to Nov 5) or off."""
    stripe_app.config["CLINIC_ZONE"] = ZoneInfo(NEW_YORK)
    invoice_id = open_invoice("pm_card_visa")
    with time_machine.travel(local(NEW_YORK, 2028, 1, 10, 12), tick=True):
        plan = make_plan(
            stripe_client,
            staff,
            invoice_id,
            instalments=12,
            interval="month",
            first_at="2028-01-31",
        )
    days = [i["due_at"] for i in plan["instalments"]]
    assert days == [
        "2028-01-31",
        "2028-02-29",
        "2028-03-31",
        "2028-04-30",
        "2028-05-31",
        "2028-06-30",
        "2028-07-31",
        "2028-08-31",
        "2028-09-30",
        "2028-10-31",
        "2028-11-30",
        "2028-12-31",
    ]
    amounts = [i["amount"] for i in plan["instalments"]]
    assert sum(amounts) == 50000 and set(amounts) == {4167, 4166}
    assert "4242" in plan["consent"]["text"] and "$41.67 on 31 Jan 2028" in plan["consent"]["text"]
    proxy.requests.clear()
    charged_on_each_day(stripe_app, proxy, NEW_YORK, days)
    plan = plan_of(stripe_client, staff, invoice_id)
    assert plan["status"] == "completed"
    assert [i["status"] for i in plan["instalments"]] == ["paid"] * 12
    assert plan["amount_paid"] == 50000
    invoice = stripe_client.get(f"/v1/invoices/{invoice_id}", headers=staff).json
    assert invoice["status"] == "paid" and invoice["balance_due"] == 0
    keys = charges_sent(proxy)
    assert len(set(keys)) == 12  # one key per instalment's attempt
    assert event_types(stripe_app, "plan.").count("plan.instalment_paid") == 12
    assert "plan.completed" in event_types(stripe_app, "plan.")


def test_two_runners_at_once_charge_each_instalment_once(
    stripe_app, stripe_client, staff, open_invoice, proxy
) -> None:
    import threading

    invoices = [open_invoice("pm_card_visa") for _ in range(3)]
    with time_machine.travel(local("UTC", 2027, 3, 1, 10), tick=True):
        for invoice_id in invoices:
            make_plan(
                stripe_client,
                staff,
                invoice_id,
                instalments=2,
                interval="two_weeks",
                first_at="2027-03-02",
            )
    proxy.requests.clear()
    runners = [
        threading.Thread(target=run_at, args=(stripe_app, local("UTC", 2027, 3, 2, 9, 30)))
        for _ in range(3)
    ]
    for runner in runners:
        runner.start()
    for runner in runners:
        runner.join()
    assert len(charges_sent(proxy)) == 3
    run_at(stripe_app, local("UTC", 2027, 3, 2, 10))
    assert len(charges_sent(proxy)) == 3  # nothing more is due that day
    run_at(stripe_app, local("UTC", 2027, 3, 16, 9, 30))
    assert len(charges_sent(proxy)) == 6
    for invoice_id in invoices:
        invoice = stripe_client.get(f"/v1/invoices/{invoice_id}", headers=staff).json
        assert invoice["status"] == "paid"
        assert [i.status for i in items(stripe_app, invoice_id)] == ["paid", "paid"]


def test_an_instalment_paid_by_link_first_is_not_charged(
    stripe_app, stripe_client, staff, open_invoice, proxy
) -> None:
    """Money paid outside the plan settles its earliest instalments; a fully paid bill
    closes the plan."""
    invoice_id = open_invoice("pm_card_visa")
    with time_machine.travel(local("UTC", 2027, 5, 1, 10), tick=True):
        make_plan(
            stripe_client, staff, invoice_id, instalments=2, interval="week", first_at="2027-05-03"
        )
        desk = stripe_client.post(
            f"/v1/invoices/{invoice_id}/payments",
            headers={**staff, "Idempotency-Key": "desk-1"},
            json={"method": "cash", "amount": 25000},
        )
        assert desk.status_code == 201, desk.json
    proxy.requests.clear()
    run_at(stripe_app, local("UTC", 2027, 5, 3, 9, 30))
    assert charges_sent(proxy) == []
    assert [i.status for i in items(stripe_app, invoice_id)] == ["covered", "scheduled"]
    run_at(stripe_app, local("UTC", 2027, 5, 10, 9, 30))
    assert len(charges_sent(proxy)) == 1
    plan = plan_of(stripe_client, staff, invoice_id)
    assert plan["status"] == "completed" and plan["amount_paid"] == 25000


def test_a_cancelled_plan_charges_nothing_more_and_keeps_what_was_paid(
    stripe_app, stripe_client, staff, open_invoice, proxy
) -> None:
    invoice_id = open_invoice("pm_card_visa")
    with time_machine.travel(local("UTC", 2027, 6, 1, 10), tick=True):
        make_plan(
            stripe_client, staff, invoice_id, instalments=3, interval="month", first_at="2027-06-01"
        )
    run_at(stripe_app, local("UTC", 2027, 6, 1, 10, 5))
    cancelled = stripe_client.delete(f"/v1/invoices/{invoice_id}/plan", headers=staff)
    assert cancelled.status_code == 200, cancelled.json
    assert cancelled.json["status"] == "cancelled"
    assert [i["status"] for i in cancelled.json["instalments"]] == [
        "paid",
        "cancelled",
        "cancelled",
    ]
    proxy.requests.clear()
    run_at(stripe_app, local("UTC", 2027, 7, 1, 9, 30))
    assert charges_sent(proxy) == []
    invoice = stripe_client.get(f"/v1/invoices/{invoice_id}", headers=staff).json
    assert invoice["plan"] is None
    assert invoice["amount_paid"] == 16667 and invoice["balance_due"] == 50000 - 16667
    again = stripe_client.delete(f"/v1/invoices/{invoice_id}/plan", headers=staff)
    assert again.status_code == 404 and again.json["code"] == "plan_not_found"


@ON_POSTGRESQL
def test_a_new_plan_replaces_the_old_for_what_is_owed_now(
    stripe_app, stripe_client, staff, open_invoice
) -> None:
    invoice_id = open_invoice("pm_card_visa")
    with time_machine.travel(local("UTC", 2027, 6, 1, 8), tick=True):
        make_plan(
            stripe_client, staff, invoice_id, instalments=2, interval="month", first_at="2027-06-01"
        )
    run_at(stripe_app, local("UTC", 2027, 6, 1, 9, 5))
    with time_machine.travel(local("UTC", 2027, 6, 10, 8), tick=True):
        replaced = make_plan(
            stripe_client, staff, invoice_id, instalments=5, interval="week", first_at="2027-06-14"
        )
    assert replaced["amount"] == 25000
    assert [i["amount"] for i in replaced["instalments"]] == [5000] * 5
    statuses = [(i.plan_id == replaced["id"], i.status) for i in items(stripe_app, invoice_id)]
    assert statuses[:2] == [(False, "paid"), (False, "cancelled")]


def test_a_plan_is_refused_clearly(stripe_app, stripe_client, staff, open_invoice) -> None:
    invoice_id = open_invoice("pm_card_visa")
    path = f"/v1/invoices/{invoice_id}/plan"
    patient_id = stripe_client.get(f"/v1/invoices/{invoice_id}", headers=staff).json["patient_id"]
    card = card_of(stripe_client, staff, patient_id)
    today = date.today().isoformat()
    cases = [
        (
            {"payment_method": "pm_nope", "instalments": 2, "interval": "month", "first_at": today},
            422,
            "unknown_payment_method",
            "payment_method",
        ),
        (
            {
                "payment_method": card,
                "instalments": 2,
                "interval": "month",
                "first_at": "2020-01-01",
            },
            422,
            "date_in_past",
            "first_at",
        ),
        (
            {"payment_method": card, "schedule": [{"due_at": today, "amount": 100}]},
            422,
            "schedule_does_not_add_up",
            "schedule",
        ),
        (
            {"payment_method": card, "instalments": 2, "interval": "fortnight", "first_at": today},
            422,
            "validation_error",
            "interval",
        ),
        (
            {"payment_method": card, "instalments": 2, "interval": "month"},
            422,
            "validation_error",
            "first_at",
        ),
    ]
    for body, status, code, field in cases:
        response = stripe_client.post(path, headers=staff, json=body)
        assert response.status_code == status, (body, response.json)
        assert response.json["code"] == code, (body, response.json)
        assert field in str(response.json.get("errors") or response.json), response.json
    assert stripe_client.get(f"/v1/invoices/{invoice_id}", headers=staff).json["plan"] is None


@ON_POSTGRESQL
def test_the_plan_is_shown_on_the_pay_page_and_the_receipt(
    stripe_app, stripe_client, staff, open_invoice, proxy
) -> None:
    import io

    from pypdf import PdfReader

    from tests.stripe.collect import pay_link

    invoice_id = open_invoice("pm_card_visa")
    with time_machine.travel(local("UTC", 2027, 9, 1, 8), tick=True):
        make_plan(
            stripe_client, staff, invoice_id, instalments=2, interval="month", first_at="2027-09-01"
        )
    run_at(stripe_app, local("UTC", 2027, 9, 1, 9, 5))
    page = stripe_client.get(pay_link(stripe_client, staff, invoice_id)).get_data(as_text=True)
    assert "Payment plan" in page and "Visa ending 4242" in page
    assert "1 Sep 2027" in page and "1 Oct 2027" in page and "$250.00 paid so far" in page
    receipt = stripe_client.get(f"/v1/invoices/{invoice_id}/receipt.pdf", headers=staff)
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(receipt.data)).pages)
    assert "Payment plan: 2 instalments" in text and "1 Oct 2027" in text
    # The pay page's PaymentIntent stands aside for the next instalment, charged once.
    proxy.requests.clear()
    run_at(stripe_app, local("UTC", 2027, 10, 1, 9, 5))
    assert len(charges_sent(proxy)) == 1
    assert plan_of(stripe_client, staff, invoice_id)["status"] == "completed"


@ON_POSTGRESQL
@pytest.mark.parametrize(
    ("mode", "at_first", "after_one"),
    [("when_paid", 0, 0), ("at_once", 6, 6), ("as_paid", 0, 3)],
)
def test_a_package_on_a_plan_gives_its_credits_as_the_clinic_decides(
    stripe_app, stripe_client, staff, mode, at_first, after_one
) -> None:
    from billing.adapters import db
    from billing.services.access import keys

    stripe_app.config["PLAN_PACKAGE_CREDITS"] = mode
    with stripe_app.app_context():
        _, plain = keys.create_key(db.session(), "catalogue", ["catalog:write"])
    catalogue = {"Authorization": f"Bearer {plain}"}
    made = stripe_client.post(
        "/v1/catalog/packages",
        headers=catalogue,
        json={
            "code": "SIX",
            "name": "Induction",
            "iv_credits": 6,
            "amount": 300000,
            "currency": "usd",
            "valid_days": 365,
        },
    )
    assert made.status_code == 201, made.json
    sold = stripe_client.post(
        "/v1/patients/P-5001/packages", headers=staff, json={"code": "SIX", "name": "Ana Ruiz"}
    ).json
    saved = stripe_client.post(
        "/v1/patients/P-5001/payment-methods",
        headers=staff,
        json={"payment_method": "pm_card_visa"},
    )
    assert saved.status_code == 201, saved.json

    def available():
        return stripe_client.get("/v1/patients/P-5001/credits", headers=staff).json["available"]

    with time_machine.travel(local("UTC", 2027, 2, 1, 8), tick=True):
        make_plan(
            stripe_client,
            staff,
            sold["invoice_id"],
            instalments=2,
            interval="month",
            first_at="2027-02-01",
        )
        assert available() == at_first
        if at_first:  # credits of a package on a plan pay a session like any
            booked = stripe_client.post(
                "/v1/quotes",
                headers=staff,
                json={
                    "booking_id": f"BK-5001-{mode}",
                    "session_type": "iv_individual",
                    "scheduled_at": "2027-02-10T15:00:00Z",
                    "currency": "usd",
                    "patients": [
                        {
                            "patient_id": "P-5001",
                            "name": "Ana Ruiz",
                            "prior_iv_sessions": 2,
                            "pay_with": "credits",
                        }
                    ],
                },
            )
            assert booked.status_code == 201, booked.json
            assert booked.json["total"] == 0
            assert available() == at_first - 1
    run_at(stripe_app, local("UTC", 2027, 2, 1, 9, 5))
    with time_machine.travel(local("UTC", 2027, 2, 2, 9), tick=True):
        assert available() == after_one  # the quote's hold lapsed with the quote
    run_at(stripe_app, local("UTC", 2027, 3, 1, 9, 5))
    with time_machine.travel(local("UTC", 2027, 3, 2, 9), tick=True):
        assert available() == 6  # all paid: all of them, whatever the setting


@pytest.mark.parametrize("broker", ["up", "away"])
@ON_POSTGRESQL
def test_beat_hands_each_due_instalment_to_a_worker_or_charges_it_itself(
    stripe_app, stripe_client, staff, open_invoice, proxy, monkeypatch, broker
) -> None:
    from billing import tasks

    handed: list[str] = []

    def apply_async(args, retry=False):
        if broker == "away":
            raise ConnectionError("the broker is away")
        handed.append(args[0])
        tasks.charge_scheduled.run(args[0])  # the worker that receives it

    monkeypatch.setattr(tasks.charge_scheduled, "apply_async", apply_async)
    invoices = [open_invoice("pm_card_visa") for _ in range(2)]
    with time_machine.travel(local("UTC", 2027, 8, 2, 8), tick=True):
        for invoice_id in invoices:
            make_plan(
                stripe_client,
                staff,
                invoice_id,
                instalments=2,
                interval="week",
                first_at="2027-08-02",
            )
    proxy.requests.clear()
    with time_machine.travel(local("UTC", 2027, 8, 2, 9, 5), tick=True):
        with stripe_app.app_context():
            tasks.run_schedule.run()
    assert len(charges_sent(proxy)) == 2
    assert len(handed) == (2 if broker == "up" else 0)
    for invoice_id in invoices:
        assert [i.status for i in items(stripe_app, invoice_id)] == ["paid", "scheduled"]
