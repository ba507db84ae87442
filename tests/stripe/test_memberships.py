"""Memberships against the Stripe stand-in: each period charged off-session on its first
day (the clinic's clock, across DST, month ends and a leap year, in two zones), once;
its benefit in quotes on the days it holds; declines retried, then past due and ended;
cancelled at the period's end or now with the unused days refunded; paused; and its fees
earned over their days in the month's journal."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from flask import Flask
from sqlalchemy import select

from billing.adapters import db, providers
from billing.adapters.membership_models import MembershipPeriod
from billing.services.payments import charges, memberships, schedule
from tests.fixtures_stripe import save_card
from tests.stripe.plans import (
    Died,
    charged_on_each_day,
    charges_sent,
    decline,
    dies_once,
    event_types,
    local,
    run_at,
)

ON_POSTGRESQL = pytest.mark.parametrize(
    "stripe_app", [pytest.param("postgresql", marks=pytest.mark.postgresql)], indirect=True
)
NEW_YORK, LONDON = "America/New_York", "Europe/London"


@pytest.fixture
def staff(stripe_app: Flask) -> dict[str, str]:
    """Every scope: the catalogue's and closing months' too."""
    from billing.domain.access import SCOPES
    from billing.services.access import keys

    with stripe_app.app_context():
        _, plain = keys.create_key(db.session(), "manager", sorted(SCOPES))
    return {"Authorization": f"Bearer {plain}"}


def offer(client: Any, staff: dict[str, str], **benefit: Any) -> dict[str, Any]:
    body = {"code": "MAINTAIN", "name": "Maintenance", "interval": "month", "amount": 9900}
    answer = client.post(
        "/v1/catalog/memberships", headers=staff, json={**body, "currency": "usd", **benefit}
    )
    assert answer.status_code == 201, answer.json
    return dict(answer.json)


def join(
    client: Any, staff: dict[str, str], standin_url: str, patient_id: str, **body: Any
) -> dict[str, Any]:
    known = {"patient_id": patient_id, "name": "Ana Member", "prior_iv_sessions": 1}
    soon = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    first = client.post(  # the patient is known to billing (quoted) before a card is saved
        "/v1/quotes",
        headers=staff,
        json={
            "booking_id": f"BK-FIRST-{patient_id}",
            "session_type": "iv_individual",
            "scheduled_at": soon,
            "currency": "usd",
            "patients": [known],
        },
    )
    assert first.status_code == 201, first.json
    card = save_card(client, staff, standin_url, patient_id, "pm_card_visa")["id"]
    answer = client.post(
        f"/v1/patients/{patient_id}/memberships",
        headers=staff,
        json={"code": "MAINTAIN", "payment_method": card, "name": "Ana Member", **body},
    )
    assert answer.status_code == 201, answer.json
    return dict(answer.json)


def membership(client: Any, staff: dict[str, str], membership_id: str) -> dict[str, Any]:
    return dict(client.get(f"/v1/memberships/{membership_id}", headers=staff).json)


def quote(
    client: Any, staff: dict[str, str], session_type: str, day: str, *patients: dict[str, Any]
) -> dict[str, Any]:
    answer = client.post(
        "/v1/quotes",
        headers=staff,
        json={
            "booking_id": f"BK-{session_type}-{day}-{len(patients)}",
            "session_type": session_type,
            "scheduled_at": f"{day}T15:00:00+00:00",
            "currency": "usd",
            "patients": list(patients),
        },
    )
    assert answer.status_code == 201, answer.json
    return dict(answer.json)


def invoice(client: Any, staff: dict[str, str], invoice_id: str) -> dict[str, Any]:
    return dict(client.get(f"/v1/invoices/{invoice_id}", headers=staff).json)


@ON_POSTGRESQL
@pytest.mark.parametrize("zone", [NEW_YORK, LONDON])
def test_a_year_of_a_monthly_membership_is_charged_on_each_first_day_once(
    stripe_app, stripe_client, staff, standin, proxy, zone
) -> None:
    """From Jan 31 2028 (a leap year): each period from the 31st, or the month's last day
    where it is shorter, charged at 9:00 of the clinic's clock whether DST is on or off."""
    stripe_app.config["CLINIC_ZONE"] = ZoneInfo(zone)
    with time_machine.travel(local(zone, 2028, 1, 10, 12), tick=True):
        offer(stripe_client, staff, percent_off=20)
        joined = join(stripe_client, staff, standin.url, "P-MEMBER", starts_at="2028-01-31")
    assert joined["status"] == "active" and joined["starts_at"] == "2028-01-31"
    assert joined["periods"] == [] and joined["next_charge_at"] == "2028-01-31"
    assert "$99.00" in joined["consent"]["text"] and "4242" in joined["consent"]["text"]
    proxy.requests.clear()
    starts = [
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
    charged_on_each_day(stripe_app, proxy, zone, starts, again=True)
    shown = membership(stripe_client, staff, joined["id"])
    assert [p["starts_at"] for p in shown["periods"]] == starts
    assert shown["next_charge_at"] == "2029-01-31"
    assert shown["periods"][1]["ends_at"] == "2028-03-30"  # the day before the next starts
    assert all(p["amount"] == 9900 for p in shown["periods"])
    assert all(
        invoice(stripe_client, staff, p["invoice_id"])["status"] == "paid" for p in shown["periods"]
    )
    assert len(set(charges_sent(proxy))) == 12
    assert event_types(stripe_app, "membership.").count("membership.renewed") == 12


@ON_POSTGRESQL
def test_a_members_sessions_cost_their_price_and_a_group_seat_exactly_half_of_it(
    stripe_app, stripe_client, staff, standin
) -> None:
    stripe_app.config["CLINIC_ZONE"] = ZoneInfo(NEW_YORK)
    with time_machine.travel(local(NEW_YORK, 2027, 3, 1, 10), tick=True):
        offer(stripe_client, staff, percent_off=15)
        join(stripe_client, staff, standin.url, "P-M1", starts_at="2027-03-05")
        # A new version is joined by new members only: P-M1 keeps 15% off.
        assert offer(stripe_client, staff, percent_off=50)["version"] == 2
        member = {"patient_id": "P-M1", "name": "Ana Member", "prior_iv_sessions": 1}
        other = {"patient_id": "P-O1", "name": "Bo Other", "prior_iv_sessions": 1}
        before = quote(stripe_client, staff, "iv_individual", "2027-03-04", member)
        iv = quote(stripe_client, staff, "iv_individual", "2027-03-10", member)
        group = quote(stripe_client, staff, "im_group", "2027-03-10", member, other)
    assert before["lines"][0]["amount"] == 50000  # not a member yet on that day
    line = iv["lines"][0]
    assert line["amount"] == 42500 and line["base_amount"] == 50000
    assert line["discounts"][0]["kind"] == "member_price"
    assert line["discounts"][0]["amount"] == 7500
    # The member's P is $425.00: their seat is exactly half, $212.50; the other pays $250.
    assert [seat["amount"] for seat in group["lines"]] == [21250, 25000]
    account = stripe_client.get("/v1/patients/P-M1/account", headers=staff).json
    assert [(m["code"], m["status"]) for m in account["memberships"]] == [("MAINTAIN", "active")]
    made = stripe_client.post("/v1/invoices", headers=staff, json={"quote_id": iv["id"]})
    assert made.status_code == 201, made.json
    shown = made.json["data"][0]
    assert shown["total"] == 42500
    assert shown["lines"][0]["discounts"][0]["kind"] == "member_price"


@ON_POSTGRESQL
def test_included_credits_pay_sessions_in_their_period_and_lapse_after_it(
    stripe_app, stripe_client, staff, standin
) -> None:
    stripe_app.config["CLINIC_ZONE"] = ZoneInfo(NEW_YORK)
    with time_machine.travel(local(NEW_YORK, 2027, 5, 3, 10), tick=True):
        offer(stripe_client, staff, included_iv_credits=1)
        joined = join(stripe_client, staff, standin.url, "P-C1")
    assert joined["periods"][0]["included_iv_credits"] == 1.0
    run_at(stripe_app, local(NEW_YORK, 2027, 5, 3, 10, 30))
    with time_machine.travel(local(NEW_YORK, 2027, 5, 4, 10), tick=True):
        credits = stripe_client.get("/v1/patients/P-C1/credits", headers=staff).json
        assert credits["available"] == 1.0, credits
        assert credits["next_expiry"].startswith("2027-06-03T04:00:00")  # the period's end
        patient = {
            "patient_id": "P-C1",
            "name": "Ana Member",
            "prior_iv_sessions": 1,
            "pay_with": "credits",
        }
        paid = quote(stripe_client, staff, "iv_individual", "2027-05-20", patient)
    assert paid["lines"][0]["credits_used"] == 1.0 and paid["total"] == 0
    run_at(stripe_app, local(NEW_YORK, 2027, 6, 3, 9, 0, 30))  # June's period: a new credit
    with time_machine.travel(local(NEW_YORK, 2027, 6, 4, 10), tick=True):
        assert (
            stripe_client.get("/v1/patients/P-C1/credits", headers=staff).json["available"] == 1.0
        )
    with time_machine.travel(local(NEW_YORK, 2027, 7, 4, 10), tick=True):  # not renewed yet
        lapsed = stripe_client.get("/v1/patients/P-C1/credits", headers=staff).json
    assert lapsed["available"] == 0.0  # June's credit, never held or used, lapsed on Jul 3


@ON_POSTGRESQL
def test_a_declined_fee_is_retried_then_the_membership_is_past_due_and_ends_unpaid(
    stripe_app, stripe_client, staff, standin, proxy
) -> None:
    stripe_app.config["CLINIC_ZONE"] = ZoneInfo(NEW_YORK)
    with time_machine.travel(local(NEW_YORK, 2027, 4, 1, 10), tick=True):
        offer(stripe_client, staff, percent_off=20)
        joined = join(stripe_client, staff, standin.url, "P-D1", starts_at="2027-04-02")
    decline(standin.url, joined["payment_method"]["id"], "insufficient_funds")
    run_at(stripe_app, local(NEW_YORK, 2027, 4, 2, 9, 0, 30))
    for day in (3, 5, 7, 9):  # 1, 3, 5 and 7 days after the first decline
        run_at(stripe_app, local(NEW_YORK, 2027, 4, day, 9, 0, 30))
    assert len(charges_sent(proxy)) == 5
    shown = membership(stripe_client, staff, joined["id"])
    assert shown["status"] == "past_due"
    assert "membership.past_due" in event_types(stripe_app, "membership.")
    member = {"patient_id": "P-D1", "name": "Ana Member", "prior_iv_sessions": 1}
    with time_machine.travel(local(NEW_YORK, 2027, 4, 10, 10), tick=True):
        priced = quote(stripe_client, staff, "iv_individual", "2027-04-20", member)
    assert priced["lines"][0]["amount"] == 50000  # no member price while past due
    run_at(stripe_app, local(NEW_YORK, 2027, 5, 2, 9, 0, 30))  # the period ended unpaid
    shown = membership(stripe_client, staff, joined["id"])
    assert shown["status"] == "cancelled" and shown["ends_at"] == "2027-05-01"
    assert len(shown["periods"]) == 1 and len(charges_sent(proxy)) == 5
    assert event_types(stripe_app, "membership.")[-1] == "membership.cancelled"
    # Its fee is no longer asked for: no pay link, reminder or credit collects it later.
    assert invoice(stripe_client, staff, shown["periods"][0]["invoice_id"])["status"] == "void"


@ON_POSTGRESQL
def test_paying_a_past_due_fee_by_link_makes_the_membership_active_again(
    stripe_app, stripe_client, staff, standin
) -> None:
    stripe_app.config["CLINIC_ZONE"] = ZoneInfo(NEW_YORK)
    with time_machine.travel(local(NEW_YORK, 2027, 4, 1, 10), tick=True):
        offer(stripe_client, staff, percent_off=20)
        joined = join(stripe_client, staff, standin.url, "P-D2", starts_at="2027-04-02")
    decline(standin.url, joined["payment_method"]["id"], "stolen_card")  # never retried
    run_at(stripe_app, local(NEW_YORK, 2027, 4, 2, 9, 0, 30))
    assert membership(stripe_client, staff, joined["id"])["status"] == "past_due"
    decline(standin.url, joined["payment_method"]["id"], "")
    invoice_id = membership(stripe_client, staff, joined["id"])["periods"][0]["invoice_id"]
    with time_machine.travel(local(NEW_YORK, 2027, 4, 3, 11), tick=True):
        paid = stripe_client.post(
            f"/v1/invoices/{invoice_id}/payments",
            headers={**staff, "Idempotency-Key": "pay-the-past-due-fee"},
            json={"method": "card_on_file"},
        )
    assert paid.status_code in (200, 201), paid.json
    assert membership(stripe_client, staff, joined["id"])["status"] == "active"


@ON_POSTGRESQL
def test_cancelled_at_the_period_end_nothing_more_is_charged_and_the_benefit_holds_until_then(
    stripe_app, stripe_client, staff, standin, proxy
) -> None:
    stripe_app.config["CLINIC_ZONE"] = ZoneInfo(NEW_YORK)
    with time_machine.travel(local(NEW_YORK, 2027, 6, 10, 10), tick=True):
        offer(stripe_client, staff, percent_off=20)
        joined = join(stripe_client, staff, standin.url, "P-E1")
    run_at(stripe_app, local(NEW_YORK, 2027, 6, 10, 10, 30))
    with time_machine.travel(local(NEW_YORK, 2027, 6, 20, 10), tick=True):
        cancelled = stripe_client.post(
            f"/v1/memberships/{joined['id']}/cancel", headers=staff, json={}
        )
        assert cancelled.status_code == 200, cancelled.json
        member = {"patient_id": "P-E1", "name": "Ana Member", "prior_iv_sessions": 1}
        within = quote(stripe_client, staff, "iv_individual", "2027-07-09", member)
        after = quote(stripe_client, staff, "iv_individual", "2027-07-10", member)
    assert cancelled.json["ends_at"] == "2027-07-09" and cancelled.json["status"] == "active"
    assert within["lines"][0]["amount"] == 40000 and after["lines"][0]["amount"] == 50000
    run_at(stripe_app, local(NEW_YORK, 2027, 7, 10, 9, 0, 30))
    run_at(stripe_app, local(NEW_YORK, 2027, 7, 11, 9, 0, 30))
    shown = membership(stripe_client, staff, joined["id"])
    assert shown["status"] == "cancelled" and len(shown["periods"]) == 1
    assert len(charges_sent(proxy)) == 1


@ON_POSTGRESQL
def test_cancelled_now_with_proration_the_unused_days_are_refunded_once(
    stripe_app, stripe_client, staff, standin, proxy
) -> None:
    """MEMBERSHIP_PRORATION=on: periods from the 1st; joining on the 11th of a 30-day
    month charges 20 days of the fee; cancelling on the 20th refunds the 10 days left."""
    stripe_app.config["CLINIC_ZONE"] = ZoneInfo(NEW_YORK)
    stripe_app.config["MEMBERSHIP_PRORATION"] = "on"
    with time_machine.travel(local(NEW_YORK, 2027, 9, 11, 10), tick=True):
        offer(stripe_client, staff, percent_off=20)
        joined = join(stripe_client, staff, standin.url, "P-R1")
    first = joined["periods"][0]
    assert (first["starts_at"], first["ends_at"], first["amount"]) == (
        "2027-09-11",
        "2027-09-30",
        6600,  # 20 of 30 days of $99.00
    )
    run_at(stripe_app, local(NEW_YORK, 2027, 9, 11, 10, 30))
    assert invoice(stripe_client, staff, first["invoice_id"])["status"] == "paid"
    with time_machine.travel(local(NEW_YORK, 2027, 9, 20, 10), tick=True):
        path = f"/v1/memberships/{joined['id']}/cancel"
        cancelled = stripe_client.post(path, headers=staff, json={"at": "now"})
        again = stripe_client.post(path, headers=staff, json={"at": "now"})
    assert cancelled.status_code == 200, cancelled.json
    assert again.status_code == 200 and again.json["status"] == "cancelled"
    refunds = proxy.calls("POST", "/v1/refunds")
    assert len(refunds) == 1  # asked twice, refunded once
    shown = invoice(stripe_client, staff, first["invoice_id"])
    assert shown["amount_refunded"] == 3300  # 10 of the 20 days held: 6600 * 10 // 20
    run_at(stripe_app, local(NEW_YORK, 2027, 10, 1, 9, 0, 30))
    assert len(charges_sent(proxy)) == 1  # no October period


@ON_POSTGRESQL
def test_a_paused_membership_charges_nothing_until_it_resumes(
    stripe_app, stripe_client, staff, standin, proxy
) -> None:
    stripe_app.config["CLINIC_ZONE"] = ZoneInfo(NEW_YORK)
    with time_machine.travel(local(NEW_YORK, 2027, 1, 5, 10), tick=True):
        offer(stripe_client, staff, percent_off=20)
        joined = join(stripe_client, staff, standin.url, "P-P1")
    run_at(stripe_app, local(NEW_YORK, 2027, 1, 5, 10, 30))
    with time_machine.travel(local(NEW_YORK, 2027, 1, 20, 10), tick=True):
        paused = stripe_client.post(
            f"/v1/memberships/{joined['id']}/pause",
            headers=staff,
            json={"resumes_at": "2027-03-15"},
        )
        too_soon = stripe_client.post(
            f"/v1/memberships/{joined['id']}/pause",
            headers=staff,
            json={"resumes_at": "2027-02-05"},
        )
    assert paused.status_code == 200 and paused.json["paused_from"] == "2027-02-05"
    assert too_soon.status_code == 422 and too_soon.json["code"] == "resumes_before_pause"
    for moment in ((2, 5), (3, 5), (3, 14)):
        run_at(stripe_app, local(NEW_YORK, 2027, *moment, 9, 0, 30))
    assert len(charges_sent(proxy)) == 1
    assert membership(stripe_client, staff, joined["id"])["status"] == "paused"
    run_at(stripe_app, local(NEW_YORK, 2027, 3, 15, 9, 0, 30))
    shown = membership(stripe_client, staff, joined["id"])
    assert shown["status"] == "active" and len(charges_sent(proxy)) == 2
    assert [p["starts_at"] for p in shown["periods"]] == ["2027-01-05", "2027-03-15"]


@ON_POSTGRESQL
def test_two_runners_at_once_open_and_charge_each_period_once(
    stripe_app, stripe_client, staff, standin, proxy
) -> None:
    stripe_app.config["CLINIC_ZONE"] = ZoneInfo(NEW_YORK)
    with time_machine.travel(local(NEW_YORK, 2027, 2, 1, 7), tick=True):
        offer(stripe_client, staff, percent_off=20)
        for n in range(6):
            join(stripe_client, staff, standin.url, f"P-T{n}", starts_at="2027-02-02")
    proxy.requests.clear()
    errors: list[BaseException] = []
    # The first runs after a month down: February's periods are begun and charged, then
    # (a run later, once February's are paid) March's.
    for minute in (0, 1):
        with time_machine.travel(local(NEW_YORK, 2027, 3, 2, 9, minute, 30), tick=True):
            barrier = threading.Barrier(2)

            def runner(barrier: threading.Barrier = barrier) -> None:
                try:
                    with stripe_app.app_context():
                        barrier.wait()
                        schedule.run_due(db.session(), providers.gateway())
                except BaseException as error:  # noqa: BLE001 - reported below
                    errors.append(error)

            threads = [threading.Thread(target=runner) for _ in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
    assert not errors, errors
    with stripe_app.app_context():
        periods = db.session().scalars(select(MembershipPeriod)).all()
        assert sorted(p.starts_on for p in periods) == sorted(
            [date(2027, 2, 2)] * 6 + [date(2027, 3, 2)] * 6
        )
    assert len(charges_sent(proxy)) == 12 and len(set(charges_sent(proxy))) == 12


@ON_POSTGRESQL
def test_the_months_journal_earns_a_fee_over_its_days_and_defers_the_rest(
    stripe_app, stripe_client, staff, standin
) -> None:
    stripe_app.config["CLINIC_ZONE"] = ZoneInfo(NEW_YORK)
    with time_machine.travel(local(NEW_YORK, 2027, 4, 21, 10), tick=True):
        offer(stripe_client, staff, percent_off=20)
        join(stripe_client, staff, standin.url, "P-J1")
    run_at(stripe_app, local(NEW_YORK, 2027, 4, 21, 10, 30))
    # Apr 21 - May 20: 30 days, 10 of them in April: $33.00 earned, $66.00 deferred.
    with time_machine.travel(local(NEW_YORK, 2027, 5, 3, 10), tick=True):
        april = stripe_client.get("/v1/reports/month-end?month=2027-04", headers=staff).json
        lines = stripe_client.get("/v1/reports/journal?month=2027-04", headers=staff).json
        closed = stripe_client.post("/v1/closed-months", headers=staff, json={"month": "2027-04"})
        assert closed.status_code in (200, 201), closed.json
    figures = april["currencies"]["usd"]
    assert figures["membership_revenue"] == 3300 and figures["membership_deferred"] == 6600
    earned = _posted(lines, "Membership fees earned")
    assert earned == {"Deferred Membership Fees": 3300, "Membership Fees": -3300}
    assert _posted(lines, "Membership fees") == {
        "Stripe Clearing": 9900,
        "Deferred Membership Fees": -9900,
    }
    with time_machine.travel(local(NEW_YORK, 2027, 6, 3, 10), tick=True):
        may = stripe_client.get("/v1/reports/journal?month=2027-05", headers=staff).json
    assert _posted(may, "Membership fees earned") == {
        "Deferred Membership Fees": 6600,
        "Membership Fees": -6600,
    }


def _posted(report: dict[str, Any], description: str) -> dict[str, int]:
    """Debits (positive) and credits (negative) per account name of lines so described."""
    sums: dict[str, int] = {}
    for journal in report["journals"]:
        for line in journal["lines"]:
            if line["description"] == description:
                name = line["account_name"]
                sums[name] = sums.get(name, 0) + line["debit"] - line["credit"]
    return sums


@ON_POSTGRESQL
@pytest.mark.parametrize(
    ("owner", "step"),
    [
        (memberships, "_open_period"),  # beginning the period: nothing kept of it
        (charges, "cancel_online"),  # the fee's payment recorded, Stripe not called
        (charges, "apply_intent"),  # Stripe charged the card; its answer lost
    ],
    ids=["opening-the-period", "before-stripe", "after-stripe-answered"],
)
def test_a_runner_dying_at_each_step_of_a_renewal_charges_the_period_once(
    stripe_app, stripe_client, staff, standin, proxy, monkeypatch, owner, step
) -> None:
    with time_machine.travel(local("UTC", 2027, 3, 1, 10), tick=True):
        offer(stripe_client, staff, percent_off=20)
        joined = join(stripe_client, staff, standin.url, "P-K1")
    run_at(stripe_app, local("UTC", 2027, 3, 1, 10, 30))  # the first period, paid
    proxy.requests.clear()
    dies_once(monkeypatch, owner, step)
    with pytest.raises(Died):
        with time_machine.travel(local("UTC", 2027, 4, 1, 9, 5), tick=True):
            stripe_app.test_cli_runner().invoke(args=["schedule", "run"], catch_exceptions=False)
    run_at(stripe_app, local("UTC", 2027, 4, 1, 9, 15))  # a lease left behind has run out
    run_at(stripe_app, local("UTC", 2027, 4, 1, 9, 16))
    shown = membership(stripe_client, staff, joined["id"])
    assert [p["starts_at"] for p in shown["periods"]] == ["2027-03-01", "2027-04-01"]
    april = invoice(stripe_client, staff, shown["periods"][1]["invoice_id"])
    assert (april["status"], april["amount_paid"]) == ("paid", 9900)
    assert len(set(charges_sent(proxy))) == 1  # one key, however often it was sent
    assert event_types(stripe_app, "membership.").count("membership.renewed") == 2


@ON_POSTGRESQL
def test_cancelling_on_a_renewal_day_before_its_run_charges_no_new_period(
    stripe_app, stripe_client, staff, standin, proxy
) -> None:
    stripe_app.config["CLINIC_ZONE"] = ZoneInfo(NEW_YORK)
    with time_machine.travel(local(NEW_YORK, 2027, 1, 5, 10), tick=True):
        offer(stripe_client, staff, percent_off=20)
        joined = join(stripe_client, staff, standin.url, "P-X1")
    run_at(stripe_app, local(NEW_YORK, 2027, 1, 5, 10, 30))
    with time_machine.travel(local(NEW_YORK, 2027, 2, 5, 7), tick=True):  # before 8:00's run
        cancelled = stripe_client.post(
            f"/v1/memberships/{joined['id']}/cancel", headers=staff, json={}
        )
    assert cancelled.status_code == 200, cancelled.json
    assert (cancelled.json["status"], cancelled.json["ends_at"]) == ("cancelled", "2027-02-04")
    run_at(stripe_app, local(NEW_YORK, 2027, 2, 5, 9, 0, 30))
    assert len(charges_sent(proxy)) == 1
    assert len(membership(stripe_client, staff, joined["id"])["periods"]) == 1


@ON_POSTGRESQL
def test_cancelling_a_paused_membership_charges_none_of_the_paused_months(
    stripe_app, stripe_client, staff, standin, proxy
) -> None:
    stripe_app.config["CLINIC_ZONE"] = ZoneInfo(NEW_YORK)
    with time_machine.travel(local(NEW_YORK, 2027, 1, 5, 10), tick=True):
        offer(stripe_client, staff, percent_off=20)
        joined = join(stripe_client, staff, standin.url, "P-X2")
        path = f"/v1/memberships/{joined['id']}"
        paused = stripe_client.post(
            f"{path}/pause", headers=staff, json={"resumes_at": "2027-06-01"}
        )
        assert paused.status_code == 200, paused.json
    run_at(stripe_app, local(NEW_YORK, 2027, 1, 5, 10, 30))
    run_at(stripe_app, local(NEW_YORK, 2027, 2, 5, 9, 0, 30))
    with time_machine.travel(local(NEW_YORK, 2027, 4, 10, 10), tick=True):
        cancelled = stripe_client.post(f"{path}/cancel", headers=staff, json={})
    assert cancelled.json["status"] == "cancelled" and cancelled.json["ends_at"] == "2027-02-04"
    for moment in ((4, 10), (5, 5), (6, 1)):
        run_at(stripe_app, local(NEW_YORK, 2027, *moment, 9, 0, 30))
    assert len(charges_sent(proxy)) == 1
    assert len(membership(stripe_client, staff, joined["id"])["periods"]) == 1


@ON_POSTGRESQL
def test_asking_again_to_cancel_now_without_a_refund_never_refunds(
    stripe_app, stripe_client, staff, standin, proxy
) -> None:
    stripe_app.config["CLINIC_ZONE"] = ZoneInfo(NEW_YORK)
    with time_machine.travel(local(NEW_YORK, 2027, 3, 3, 10), tick=True):
        offer(stripe_client, staff, percent_off=20)
        joined = join(stripe_client, staff, standin.url, "P-X3")
    run_at(stripe_app, local(NEW_YORK, 2027, 3, 3, 10, 30))
    body = {"at": "now", "refund": "none", "reason": "wants a refund later"}
    with time_machine.travel(local(NEW_YORK, 2027, 3, 10, 10), tick=True):
        path = f"/v1/memberships/{joined['id']}/cancel"
        first = stripe_client.post(path, headers=staff, json=body)
        again = stripe_client.post(path, headers=staff, json={"at": "now"})
        refund = stripe_client.post(
            f"/v1/invoices/{joined['periods'][0]['invoice_id']}/refunds",
            headers={**staff, "Idempotency-Key": "refund-a-membership-fee"},
            json={"amount": 1000, "reason": "asked"},
        )
    assert first.status_code == again.status_code == 200
    assert first.json["ends_at"] == "2027-03-10"
    assert proxy.calls("POST", "/v1/refunds") == []
    assert refund.status_code == 409 and refund.json["code"] == "refund_membership"


@ON_POSTGRESQL
def test_cancelled_now_an_unpaid_fee_is_no_longer_asked_for(
    stripe_app, stripe_client, staff, standin, proxy
) -> None:
    stripe_app.config["CLINIC_ZONE"] = ZoneInfo(NEW_YORK)
    with time_machine.travel(local(NEW_YORK, 2027, 4, 1, 10), tick=True):
        offer(stripe_client, staff, percent_off=20)
        joined = join(stripe_client, staff, standin.url, "P-X4", starts_at="2027-04-02")
    decline(standin.url, joined["payment_method"]["id"], "insufficient_funds")
    run_at(stripe_app, local(NEW_YORK, 2027, 4, 2, 9, 0, 30))  # declined: retried tomorrow
    with time_machine.travel(local(NEW_YORK, 2027, 4, 2, 12), tick=True):
        cancelled = stripe_client.post(
            f"/v1/memberships/{joined['id']}/cancel", headers=staff, json={"at": "now"}
        )
    assert cancelled.status_code == 200, cancelled.json
    fee_id = cancelled.json["periods"][0]["invoice_id"]
    assert invoice(stripe_client, staff, fee_id)["status"] == "void"
    run_at(stripe_app, local(NEW_YORK, 2027, 4, 3, 9, 0, 30))
    assert len(charges_sent(proxy)) == 1  # the retry was stopped


@ON_POSTGRESQL
def test_autopay_leaves_a_declined_membership_fee_to_its_own_retries(
    stripe_app, stripe_client, staff, standin, proxy
) -> None:
    """A patient on AutoPay whose fee was declined this morning: AutoPay's nightly run does
    not charge the fee's invoice as well; the membership's retry does, the next day."""
    stripe_app.config["CLINIC_ZONE"] = ZoneInfo(NEW_YORK)
    with time_machine.travel(local(NEW_YORK, 2027, 8, 10, 8), tick=True):
        offer(stripe_client, staff, percent_off=20)
        joined = join(stripe_client, staff, standin.url, "P-X5")
        on = stripe_client.put("/v1/patients/P-X5/autopay", headers=staff, json={"enabled": True})
        assert on.status_code == 200, on.json
    decline(standin.url, joined["payment_method"]["id"], "insufficient_funds")
    run_at(stripe_app, local(NEW_YORK, 2027, 8, 10, 9, 0, 30))
    decline(standin.url, joined["payment_method"]["id"], "")
    run_at(stripe_app, local(NEW_YORK, 2027, 8, 10, 20, 0, 30))  # AutoPay's nightly hour
    assert len(charges_sent(proxy)) == 1
    run_at(stripe_app, local(NEW_YORK, 2027, 8, 11, 9, 0, 30))
    assert len(charges_sent(proxy)) == 2
    fee = invoice(stripe_client, staff, joined["periods"][0]["invoice_id"])
    assert (fee["status"], fee["amount_paid"]) == ("paid", 9900)


@ON_POSTGRESQL
def test_a_short_first_period_still_being_retried_holds_the_next_one_back(
    stripe_app, stripe_client, staff, standin, proxy
) -> None:
    """MEMBERSHIP_PRORATION=on, joined on the 29th: the first period is 2 days, shorter than
    the retries. October's period is not begun (nor charged) while September's is still
    tried; once it is paid, October's follows at the next run."""
    stripe_app.config["CLINIC_ZONE"] = ZoneInfo(NEW_YORK)
    stripe_app.config["MEMBERSHIP_PRORATION"] = "on"
    with time_machine.travel(local(NEW_YORK, 2027, 9, 29, 8), tick=True):
        offer(stripe_client, staff, percent_off=20)
        joined = join(stripe_client, staff, standin.url, "P-X7")
    decline(standin.url, joined["payment_method"]["id"], "insufficient_funds")
    run_at(stripe_app, local(NEW_YORK, 2027, 9, 29, 9, 0, 30))  # declined
    run_at(stripe_app, local(NEW_YORK, 2027, 9, 30, 9, 0, 30))  # declined again
    run_at(stripe_app, local(NEW_YORK, 2027, 10, 1, 9, 0, 30))  # September ended unpaid
    shown = membership(stripe_client, staff, joined["id"])
    assert shown["status"] == "active" and len(shown["periods"]) == 1
    assert len(charges_sent(proxy)) == 2
    decline(standin.url, joined["payment_method"]["id"], "")
    run_at(stripe_app, local(NEW_YORK, 2027, 10, 2, 9, 0, 30))  # Sep 29 + 3 days: it pays
    run_at(stripe_app, local(NEW_YORK, 2027, 10, 2, 9, 1, 30))  # October begins, is charged
    shown = membership(stripe_client, staff, joined["id"])
    assert [p["starts_at"] for p in shown["periods"]] == ["2027-09-29", "2027-10-01"]
    assert [invoice(stripe_client, staff, p["invoice_id"])["status"] for p in shown["periods"]] == [
        "paid",
        "paid",
    ]
    assert len(set(charges_sent(proxy))) == 4  # two declines, September's, October's


@ON_POSTGRESQL
def test_two_joins_at_once_make_one_membership(stripe_app, stripe_client, staff, standin) -> None:
    with time_machine.travel(local("UTC", 2027, 8, 10, 10), tick=True):
        offer(stripe_client, staff, percent_off=20)
        joined = join(stripe_client, staff, standin.url, "P-X6")
        stripe_client.post(
            f"/v1/memberships/{joined['id']}/cancel", headers=staff, json={"at": "now"}
        )
        card = joined["payment_method"]["id"]
        barrier = threading.Barrier(2)
        answers: list[int] = []

        def again() -> None:
            client = stripe_app.test_client()
            barrier.wait()
            answer = client.post(
                "/v1/patients/P-X6/memberships",
                headers=staff,
                json={"code": "MAINTAIN", "payment_method": card},
            )
            answers.append(answer.status_code)

        threads = [threading.Thread(target=again) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sorted(answers) == [201, 409]
    listed = stripe_client.get("/v1/patients/P-X6/memberships", headers=staff).json["data"]
    assert [m["status"] for m in listed] == ["cancelled", "active"]
