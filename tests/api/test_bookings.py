"""The booking after the quote, on SQLite and PostgreSQL: attendance and rule 3,
cancellations in time and late, fees, a group that shrinks, re-quotes."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, func, select, text

from billing.adapters import db
from billing.adapters.models import ApiKey, AuditEvent, Invoice, PayLink
from billing.adapters.outbox import EmailMessage
from billing.domain.errors import ServiceError
from billing.services.bookings import lifecycle
from billing.services.invoicing import invoices
from billing.web.api.bookings import settings
from tests.conftest import in_days, in_hours

ANA = {
    "patient_id": "P-1001",
    "name": "Ana Ruiz",
    "email": "ana@example.org",
    "prior_iv_sessions": 2,
}
BEN = {
    "patient_id": "P-1002",
    "name": "Ben Okafor",
    "email": "ben@example.org",
    "prior_iv_sessions": 1,
}
CAL = {"patient_id": "P-1003", "name": "Cal Ito", "prior_iv_sessions": 3}
NEW = {"patient_id": "P-3001", "name": "Cleo New"}


@pytest.fixture
def headers(make_key):
    return make_key(
        "quotes:write",
        "invoices:write",
        "invoices:read",
        "catalog:write",
        "bookings:write",
        "payments:write",
    )


class Desk:
    """The front desk's calls, each with its own Idempotency-Key unless given one."""

    def __init__(self, client: FlaskClient, headers: dict[str, str]) -> None:
        self.client, self.headers, self.keys = client, headers, 0

    def _key(self, key: str | None) -> dict[str, str]:
        self.keys += 1
        return {**self.headers, "Idempotency-Key": key or f"desk-{self.keys}"}

    def book(self, booking_id: str, session_type: str, when: str, *patients: dict) -> list[dict]:
        quote = self.client.post(
            "/v1/quotes",
            json={
                "booking_id": booking_id,
                "session_type": session_type,
                "scheduled_at": when,
                "currency": "usd",
                "patients": list(patients),
            },
            headers=self.headers,
        )
        assert quote.status_code == 201, quote.json
        invoiced = self.client.post(
            "/v1/invoices", json={"quote_id": quote.json["id"]}, headers=self.headers
        )
        assert invoiced.status_code == 201, invoiced.json
        return invoiced.json["data"]

    def cancel(self, booking_id: str, key: str | None = None, **body: Any) -> Any:
        return self.client.post(
            f"/v1/bookings/{booking_id}/cancellations", json=body, headers=self._key(key)
        )

    def mark(self, booking_id: str, key: str | None = None, **marks: str) -> Any:
        patients = [{"patient_id": p, "status": s} for p, s in marks.items()]
        return self.client.post(
            f"/v1/bookings/{booking_id}/attendance",
            json={"patients": patients},
            headers=self._key(key),
        )

    def get(self, booking_id: str) -> dict[str, Any]:
        response = self.client.get(f"/v1/bookings/{booking_id}", headers=self.headers)
        assert response.status_code == 200, response.json
        return response.json

    def invoice(self, invoice_id: str) -> dict[str, Any]:
        return self.client.get(f"/v1/invoices/{invoice_id}", headers=self.headers).json

    def price(self, amount: int = 50000, **policy: Any) -> Any:
        body: dict[str, Any] = {"iv_individual_amount": amount, "currency": "usd"}
        if policy:
            body["cancellation_policy"] = policy
        return self.client.post("/v1/catalog/prices", json=body, headers=self.headers)


@pytest.fixture
def desk(client, headers) -> Desk:
    return Desk(client, headers)


def _quote(desk: Desk, session_type: str, *patients: dict, when: str | None = None) -> Any:
    return desk.client.post(
        "/v1/quotes",
        json={
            "booking_id": "BK-Q",
            "session_type": session_type,
            "scheduled_at": when or in_days(5),
            "currency": "usd",
            "patients": list(patients),
        },
        headers=desk.headers,
    )


# --- attendance and rule 3 ------------------------------------------------------------------


def test_an_attended_iv_session_lets_a_new_patient_join_a_group(desk) -> None:
    assert _quote(desk, "im_group", ANA, NEW).json["code"] == "first_session_must_be_iv"
    desk.book("BK-IV", "iv_individual", in_hours(-1), NEW)

    marked = desk.mark("BK-IV", **{"P-3001": "attended"})
    assert marked.status_code == 200, marked.json
    assert marked.json["patients"][0]["attendance"] == "attended"

    accepted = _quote(desk, "im_group", ANA, NEW)
    assert accepted.status_code == 201, accepted.json
    assert [line["amount"] for line in accepted.json["lines"]] == [25000, 25000]


def test_a_paid_or_missed_iv_session_is_not_a_completed_one(app, desk) -> None:
    (invoice,) = desk.book("BK-IV", "iv_individual", in_hours(-1), NEW)
    with app.app_context():  # what a settled payment does, without Stripe
        db.session().get(Invoice, invoice["id"]).status = "paid"
        db.session().commit()
    refused = _quote(desk, "im_group", ANA, NEW)
    assert refused.status_code == 422 and "patients.1" in refused.json["errors"]

    assert desk.mark("BK-IV", **{"P-3001": "no_show"}).status_code == 200
    assert _quote(desk, "im_group", ANA, NEW).json["code"] == "first_session_must_be_iv"


def test_a_no_show_costs_the_fee_and_a_correction_gives_it_back(app, desk) -> None:
    assert (
        desk.price(
            notice_hours=24, late_cancellation_fee={"percent": 50}, no_show_fee={"amount": 7500}
        ).status_code
        == 201
    )
    (session_invoice,) = desk.book("BK-IV", "iv_individual", in_hours(-1), NEW)

    missed = desk.mark("BK-IV", **{"P-3001": "no_show"})
    assert missed.status_code == 200, missed.json
    (fee,) = missed.json["fees"]
    assert fee["kind"] == "fee" and fee["fee_reason"] == "no_show"
    assert fee["total"] == 7500 and fee["status"] == "open"
    assert fee["lines"] == [
        {
            "description": "Missed appointment (no-show) fee",
            "session_type": "iv_individual",
            "billing_code": "FEE-NO-SHOW",
            "amount": 7500,
            "base_amount": None,
            "discounts": [],
            "credits_used": 0.0,
        }
    ]
    assert missed.json["patients"][0]["fee_invoice_id"] == fee["id"]
    # The session itself stays billed; the fee, with no consented card, waits on a pay link.
    assert desk.invoice(session_invoice["id"])["status"] == "open"
    with app.app_context():
        assert (
            db.session().scalar(
                select(func.count()).select_from(PayLink).where(PayLink.invoice_id == fee["id"])
            )
            == 1
        )

    corrected = desk.mark("BK-IV", **{"P-3001": "attended"})
    assert corrected.status_code == 200, corrected.json
    assert corrected.json["patients"][0]["attendance"] == "attended"
    assert corrected.json["patients"][0]["fee_invoice_id"] is None
    assert desk.invoice(fee["id"])["status"] == "void"
    with app.app_context():
        actions = (
            db.session()
            .scalars(
                select(AuditEvent.action)
                .where(AuditEvent.object_id == "BK-IV")
                .order_by(AuditEvent.id)
            )
            .all()
        )
    assert actions == ["booking.attendance_marked", "booking.attendance_corrected"]


def test_a_no_show_fee_never_exceeds_the_line(desk) -> None:
    desk.price(
        notice_hours=24, late_cancellation_fee={"percent": 50}, no_show_fee={"amount": 90000}
    )
    desk.book("BK-G", "im_group", in_hours(-1), ANA, BEN)
    missed = desk.mark("BK-G", **{"P-1001": "no_show", "P-1002": "attended"})
    assert [fee["total"] for fee in missed.json["fees"]] == [25000]  # the line, not 90000


def test_attendance_is_refused_before_the_session_and_for_strangers(desk) -> None:
    desk.book("BK-IV", "iv_individual", in_days(2), NEW)
    early = desk.mark("BK-IV", **{"P-3001": "attended"})
    assert early.status_code == 409 and early.json["code"] == "session_not_started"

    desk.book("BK-NOW", "iv_individual", in_hours(1), ANA)
    too_soon = desk.mark("BK-NOW", **{"P-1001": "no_show"})
    assert too_soon.status_code == 409 and too_soon.json["code"] == "session_not_started"
    stranger = desk.mark("BK-NOW", **{"P-9": "attended"})
    assert stranger.status_code == 422 and stranger.json["code"] == "patient_not_in_booking"
    assert "patients.0.patient_id" in stranger.json["errors"]
    bad = desk.mark("BK-NOW", **{"P-1001": "late"})
    assert bad.status_code == 422 and "patients.0.status" in bad.json["errors"]
    unknown = desk.mark("BK-NOPE", **{"P-1001": "attended"})
    assert unknown.status_code == 404 and unknown.json["code"] == "booking_not_found"


# --- cancellations --------------------------------------------------------------------------


def test_a_cancellation_in_time_voids_the_invoice_and_costs_nothing(desk) -> None:
    (invoice,) = desk.book("BK-IV", "iv_individual", in_days(5), NEW)
    cancelled = desk.cancel("BK-IV", by="patient")
    assert cancelled.status_code == 200, cancelled.json
    assert cancelled.json["state"] == "cancelled"
    seat = cancelled.json["patients"][0]
    assert seat["cancelled_by"] == "patient" and seat["cancellation_late"] is False
    assert cancelled.json["fees"] == []
    assert desk.invoice(invoice["id"])["status"] == "void"


def test_a_late_cancellation_by_the_patient_costs_the_policy_fee(desk) -> None:
    (invoice,) = desk.book("BK-IV", "iv_individual", in_days(1), NEW)  # default: 48 h, 50%
    cancelled = desk.cancel("BK-IV", by="patient")
    assert cancelled.status_code == 200, cancelled.json
    assert cancelled.json["patients"][0]["cancellation_late"] is True
    (fee,) = cancelled.json["fees"]
    assert fee["fee_reason"] == "late_cancellation" and fee["total"] == 25000
    assert fee["lines"][0]["billing_code"] == "FEE-LATE-CANCEL"
    assert desk.invoice(invoice["id"])["status"] == "void"


def test_the_clinic_cancelling_late_costs_the_patient_nothing(desk) -> None:
    (invoice,) = desk.book("BK-IV", "iv_individual", in_days(1), NEW)
    cancelled = desk.cancel("BK-IV", by="clinic")
    assert cancelled.json["fees"] == [] and cancelled.json["state"] == "cancelled"
    assert desk.invoice(invoice["id"])["status"] == "void"


def test_notice_is_counted_between_instants_whatever_the_zones(desk) -> None:
    tokyo = ZoneInfo("Asia/Tokyo")
    now = datetime.now(UTC).replace(microsecond=0)
    for booking_id, ahead, late in (("BK-IN-TIME", 48.5, False), ("BK-LATE", 47.5, True)):
        scheduled = (now + timedelta(hours=ahead)).astimezone(ZoneInfo("America/Los_Angeles"))
        desk.book(booking_id, "iv_individual", scheduled.isoformat(), NEW)
        told = datetime.now(UTC).astimezone(tokyo)  # written in Tokyo's time, 17 hours ahead
        answer = desk.cancel(booking_id, by="patient", cancelled_at=told.isoformat())
        assert answer.status_code == 200, answer.json
        assert answer.json["patients"][0]["cancellation_late"] is late, booking_id


def test_cancellations_refused_with_the_reason(desk) -> None:
    desk.book("BK-IV", "iv_individual", in_days(5), NEW)
    future = desk.cancel("BK-IV", by="patient", cancelled_at=in_days(1))
    assert future.status_code == 422 and future.json["code"] == "cancelled_at_in_future"
    assert "cancelled_at" in future.json["errors"]
    who = desk.cancel("BK-IV", by="doctor")
    assert who.status_code == 422 and "by" in who.json["errors"], who.json
    stranger = desk.cancel("BK-IV", by="patient", patient_id="P-9")
    assert stranger.status_code == 422 and "patient_id" in stranger.json["errors"]
    assert desk.cancel("BK-IV", by="patient").status_code == 200
    again = desk.cancel("BK-IV", by="patient")
    assert again.status_code == 409 and again.json["code"] == "already_cancelled"

    desk.book("BK-PAST", "iv_individual", in_hours(-1), ANA)
    started = desk.cancel("BK-PAST", by="patient")
    assert started.status_code == 409 and started.json["code"] == "session_started"


def test_a_replayed_cancellation_answers_the_same_and_charges_one_fee(desk) -> None:
    desk.book("BK-IV", "iv_individual", in_days(1), NEW)
    first = desk.cancel("BK-IV", key="cancel-1", by="patient")
    replay = desk.cancel("BK-IV", key="cancel-1", by="patient")
    assert first.status_code == replay.status_code == 200
    assert first.json == replay.json
    assert len(replay.json["fees"]) == 1
    other = desk.cancel("BK-IV", key="cancel-1", by="clinic")
    assert other.status_code == 422 and other.json["code"] == "idempotency_key_reused"


# --- a group that shrinks, and re-quotes --------------------------------------------------


def test_a_group_left_with_one_patient_is_held_until_requoted(desk) -> None:
    ana, ben = desk.book("BK-G", "im_group", in_days(5), ANA, BEN)
    left = desk.cancel("BK-G", by="patient", patient_id="P-1002")
    assert left.status_code == 200, left.json
    assert left.json["state"] == "below_minimum"
    assert desk.invoice(ben["id"])["status"] == "void"

    link = desk.client.post(
        f"/v1/invoices/{ana['id']}/payments",
        json={"method": "online"},
        headers={**desk.headers, "Idempotency-Key": "link-ana"},
    )
    assert link.status_code == 409 and link.json["code"] == "booking_below_minimum"
    mark = desk.mark("BK-G", **{"P-1001": "attended"})
    assert mark.status_code == 409 and mark.json["code"] in (
        "booking_below_minimum",
        "session_not_started",
    )

    # Re-quoted with another patient: the old quote's invoices give way to the new ones.
    new_ana, cal = desk.book("BK-G", "im_group", in_days(5), ANA, CAL)
    booking = desk.get("BK-G")
    assert booking["state"] == "active" and booking["quote_id"] == new_ana["quote_id"]
    assert [p["patient_id"] for p in booking["patients"]] == ["P-1001", "P-1003"]
    assert desk.invoice(ana["id"])["status"] == "void"
    assert {i["id"] for i in booking["invoices"]} == {
        ana["id"],
        ben["id"],
        new_ana["id"],
        cal["id"],
    }
    paid_later = desk.client.post(
        f"/v1/invoices/{ana['id']}/payments",
        json={"method": "online"},
        headers={**desk.headers, "Idempotency-Key": "link-old-ana"},
    )
    assert paid_later.status_code == 409
    fresh = desk.client.post(
        f"/v1/invoices/{new_ana['id']}/payments",
        json={"method": "online"},
        headers={**desk.headers, "Idempotency-Key": "link-new-ana"},
    )
    assert fresh.status_code == 201, fresh.json


def test_an_older_quote_cannot_supersede_a_newer_one(desk) -> None:
    older = _quote(desk, "iv_individual", NEW).json
    desk.book("BK-Q", "iv_individual", in_days(5), NEW)
    refused = desk.client.post("/v1/invoices", json={"quote_id": older["id"]}, headers=desk.headers)
    assert refused.status_code == 409 and refused.json["code"] == "quote_superseded"


# --- the policy, versioned with P -----------------------------------------------------------


def test_the_policy_is_versioned_with_the_price_and_locked_by_the_quote(desk) -> None:
    made = desk.price(
        notice_hours=24, late_cancellation_fee={"amount": 4000}, no_show_fee={"percent": 100}
    )
    assert made.status_code == 201, made.json
    policy = {
        "notice_hours": 24,
        "late_cancellation_fee": {"percent": None, "amount": 4000},
        "no_show_fee": {"percent": 100, "amount": None},
        "deposit": None,
    }
    assert made.json["cancellation_policy"] == policy
    catalog = desk.client.get("/v1/catalog", headers=desk.headers).json
    assert catalog["prices"][0]["cancellation_policy"] == policy

    desk.book("BK-IV", "iv_individual", in_hours(20), NEW)
    assert desk.get("BK-IV")["cancellation_policy"] == policy
    # A later price keeps the policy unless it says otherwise; a stricter one later does not
    # reach the booking already quoted.
    assert desk.price(52000).json["cancellation_policy"] == policy
    desk.price(
        52000, notice_hours=72, late_cancellation_fee={"percent": 100}, no_show_fee={"percent": 100}
    )
    cancelled = desk.cancel("BK-IV", by="patient")
    assert [fee["total"] for fee in cancelled.json["fees"]] == [4000]


@pytest.mark.parametrize(
    "policy, field",
    [
        (
            {
                "notice_hours": -1,
                "late_cancellation_fee": {"percent": 5},
                "no_show_fee": {"percent": 5},
            },
            "notice_hours",
        ),
        (
            {
                "notice_hours": 24,
                "late_cancellation_fee": {"percent": 101},
                "no_show_fee": {"percent": 5},
            },
            "late_cancellation_fee",
        ),
        (
            {
                "notice_hours": 24,
                "late_cancellation_fee": {"percent": 5, "amount": 100},
                "no_show_fee": {"percent": 5},
            },
            "late_cancellation_fee",
        ),
        (
            {"notice_hours": 24, "late_cancellation_fee": {}, "no_show_fee": {"percent": 5}},
            "late_cancellation_fee",
        ),
        ({"notice_hours": 24, "late_cancellation_fee": {"percent": 5}}, "no_show_fee"),
    ],
)
def test_a_bad_policy_is_refused_with_its_field(desk, policy, field) -> None:
    refused = desk.client.post(
        "/v1/catalog/prices",
        json={"iv_individual_amount": 50000, "currency": "usd", "cancellation_policy": policy},
        headers=desk.headers,
    )
    assert refused.status_code == 422, refused.json
    assert any(name.startswith(f"cancellation_policy.{field}") for name in refused.json["errors"])


# --- concurrency (PostgreSQL) ---------------------------------------------------------------


@pytest.mark.postgresql
@pytest.mark.parametrize("app", ["postgresql"], indirect=True)
def test_two_cancellations_of_one_seat_at_once_make_one_fee(app: Flask, desk) -> None:
    desk.book("BK-IV", "iv_individual", in_days(1), NEW)
    barrier = threading.Barrier(2)
    answers: list[Any] = []

    def cancel(key: str) -> None:
        client = app.test_client()
        barrier.wait()
        answers.append(
            client.post(
                "/v1/bookings/BK-IV/cancellations",
                json={"by": "patient", "patient_id": "P-3001"},
                headers={**desk.headers, "Idempotency-Key": key},
            )
        )

    threads = [threading.Thread(target=cancel, args=(f"race-{i}",)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(a.status_code for a in answers) == [200, 409]
    assert len(desk.get("BK-IV")["fees"]) == 1
    with app.app_context():
        fees = db.session().scalar(
            select(func.count()).select_from(Invoice).where(Invoice.kind == "fee")
        )
    assert fees == 1


def test_two_settles_at_once_give_a_fee_one_pay_link_and_one_email(
    app: Flask, desk, make_key, monkeypatch
) -> None:
    """Two keys (or a key and the scheduler) settling a booking at the same moment, both
    finding its fee without a pay link: forced to pass that check together, they still
    make one link, and the patient gets one email."""
    priced = desk.price(
        notice_hours=24, late_cancellation_fee={"percent": 50}, no_show_fee={"amount": 7500}
    )
    assert priced.status_code == 201, priced.json
    desk.book("BK-NS", "iv_individual", in_hours(-1), {**NEW, "email": "cleo@example.org"})
    make_key("bookings:write")  # a second key

    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise ServiceError("busy", "The first try at a link failed.")

    with monkeypatch.context() as first_try:  # the fee is left waiting for its link
        first_try.setattr(lifecycle.paylinks, "create_pay_link", refuse)
        (fee,) = desk.mark("BK-NS", **{"P-3001": "no_show"}).json["fees"]
    both_checked = threading.Barrier(2, timeout=2.0)
    consented = lifecycle._consented_card

    def checked_then_wait(*args: Any) -> bool:
        try:
            both_checked.wait()
        except threading.BrokenBarrierError:
            pass
        return consented(*args)

    monkeypatch.setattr(lifecycle, "_consented_card", checked_then_wait)
    with app.app_context():
        key_ids = db.session().scalars(select(ApiKey.id).order_by(ApiKey.id)).all()[:2]
    failures: list[BaseException] = []

    def settle(key_id: int) -> None:
        try:
            with app.app_context():
                lifecycle.settle(db.session(), settings(), "BK-NS", key_id)
        except BaseException as error:  # noqa: BLE001 (reported below)
            failures.append(error)

    threads = [threading.Thread(target=settle, args=(key_id,)) for key_id in key_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not failures, failures
    with app.app_context():
        session = db.session()
        links = session.scalar(
            select(func.count()).select_from(PayLink).where(PayLink.invoice_id == fee["id"])
        )
        mails = session.scalar(
            select(func.count())
            .select_from(EmailMessage)
            .where(EmailMessage.invoice_id == fee["id"], EmailMessage.kind == "pay_link")
        )
    assert (links, mails) == (1, 1)


def test_a_late_cancellation_and_a_re_quote_invoiced_at_once_do_not_deadlock(
    app: Flask, desk, monkeypatch
) -> None:
    """The cancellation locks the booking, then takes an invoice number for its fee; the
    re-quote's invoicing takes numbers for its invoices and locks the booking. Forced to
    meet halfway (each waits, up to two seconds, for the other to be there), they must
    still both go through (whichever commits first), never with a deadlock's 503."""
    desk.book("BK-Q", "im_group", in_days(1), ANA, BEN)  # default policy: 48 h notice
    requote = _quote(desk, "im_group", ANA, BEN, when=in_days(1))
    assert requote.status_code == 201, requote.json
    halfway = threading.Barrier(2, timeout=2.0)
    locked, numbered = lifecycle._locked, invoices.next_numbers

    def meet() -> None:
        try:
            halfway.wait()
        except threading.BrokenBarrierError:
            pass

    def locked_then_meet(*args: Any) -> Any:
        found = locked(*args)
        meet()
        return found

    def numbered_then_meet(*args: Any) -> Any:
        found = numbered(*args)
        if threading.current_thread().name == "invoicing":
            meet()
        return found

    monkeypatch.setattr(lifecycle, "_locked", locked_then_meet)
    monkeypatch.setattr(invoices, "next_numbers", numbered_then_meet)
    answers: dict[str, Any] = {}

    def cancel() -> None:
        answers["cancel"] = app.test_client().post(
            "/v1/bookings/BK-Q/cancellations",
            json={"by": "patient", "patient_id": ANA["patient_id"]},
            headers={**desk.headers, "Idempotency-Key": "late-1"},
        )

    def invoice() -> None:
        answers["invoice"] = app.test_client().post(
            "/v1/invoices", json={"quote_id": requote.json["id"]}, headers=desk.headers
        )

    threads = [
        threading.Thread(target=cancel, name="cancelling"),
        threading.Thread(target=invoice, name="invoicing"),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    statuses = {name: answer.status_code for name, answer in answers.items()}
    assert statuses == {"cancel": 200, "invoice": 201}, {
        name: answer.json for name, answer in answers.items()
    }


# --- finance sees the fees -----------------------------------------------------------------


def test_the_dashboard_shows_fees_invoiced_and_waived_per_month_and_currency(app, desk) -> None:
    from billing.services.access.staff import create_staff_user
    from tests.api.test_finance_sessions import HTTPS, PASSWORD, sign_in

    desk.price(notice_hours=24, late_cancellation_fee={"percent": 50}, no_show_fee={"amount": 6000})
    desk.book("BK-LATE", "iv_individual", in_hours(5), ANA)
    desk.cancel("BK-LATE", by="patient")  # 25000 owed
    desk.book("BK-MISS", "iv_individual", in_hours(-1), BEN)
    desk.mark("BK-MISS", **{"P-1002": "no_show"})
    desk.mark("BK-MISS", **{"P-1002": "attended"})  # 6000 waived

    with app.app_context():
        create_staff_user(db.session(), "clerk@example.org", PASSWORD)
    assert sign_in(desk.client, email="clerk@example.org") == 303
    page = desk.client.get("/finance", **HTTPS).get_data(as_text=True)
    fees = page[page.index('id="fees-heading"') : page.index('id="discrepancy-heading"')]
    month = datetime.now(UTC).strftime("%Y-%m")
    row = re.search(rf"<tr><td>{month} \(USD\)</td><td>2</td>(.*?)</tr>", fees, re.S)
    assert row is not None, fees
    assert re.findall(r"<td>([^<]+)</td>", row.group(1)) == [
        "$310.00",  # invoiced: 250.00 + 60.00
        "$0.00",  # charged
        "$60.00",  # waived
        "$250.00",  # still owed
    ]


def test_a_patient_back_in_a_requoted_group_owes_no_earlier_fee(desk) -> None:
    desk.book("BK-G", "im_group", in_hours(20), ANA, BEN, CAL)
    left = desk.cancel("BK-G", by="patient", patient_id="P-1001")  # late: a fee
    (fee,) = left.json["fees"]
    assert fee["status"] == "open"
    desk.book("BK-G", "im_group", in_hours(20), ANA, BEN, CAL)  # Ana is back
    assert desk.invoice(fee["id"])["status"] == "void"
    # A patient the re-quote leaves out keeps the fee of their late cancellation.
    cancelled = desk.cancel("BK-G", by="patient", patient_id="P-1003")
    (cal_fee,) = [f for f in cancelled.json["fees"] if f["status"] == "open"]
    desk.book("BK-G", "im_group", in_hours(20), ANA, BEN)
    assert desk.invoice(cal_fee["id"])["status"] == "open"


def test_a_cancellation_dated_before_the_booking_is_refused(desk) -> None:
    desk.book("BK-IV", "iv_individual", in_hours(20), NEW)
    backdated = desk.cancel("BK-IV", by="patient", cancelled_at=in_days(-3))
    assert backdated.status_code == 422 and backdated.json["code"] == "cancelled_at_before_booking"
    assert "cancelled_at" in backdated.json["errors"]


@pytest.mark.postgresql
@pytest.mark.parametrize("app", ["postgresql"], indirect=True)
def test_two_quotes_of_a_new_booking_invoiced_at_once_never_fail(app: Flask, desk) -> None:
    quotes = [_quote(desk, "iv_individual", NEW).json for _ in range(2)]
    barrier = threading.Barrier(2)
    answers: list[Any] = []

    def invoice(quote_id: str) -> None:
        client = app.test_client()
        barrier.wait()
        answers.append(
            client.post("/v1/invoices", json={"quote_id": quote_id}, headers=desk.headers)
        )

    threads = [threading.Thread(target=invoice, args=(q["id"],)) for q in quotes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(a.status_code for a in answers) in ([201, 201], [201, 409]), [
        a.json for a in answers
    ]
    booking = desk.get("BK-Q")
    assert booking["quote_id"] == quotes[1]["id"] or len(booking["invoices"]) == 1
    open_ones = [i for i in booking["invoices"] if i["status"] == "open"]
    assert len(open_ones) == 1  # one place, one invoice to pay


@pytest.mark.postgresql
@pytest.mark.parametrize("app", ["postgresql"], indirect=True)
def test_a_requote_invoiced_while_the_older_quote_settles_is_never_voided(
    app: Flask, desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worst moment, forced: the older quote's invoicing has read the booking and is
    about to read its invoices when the newer quote's invoicing goes. Read apart, the older
    would see the newer invoice beside a booking still naming the older quote, and void it."""
    older, newer = (_quote(desk, "iv_individual", NEW).json["id"] for _ in range(2))
    booking_read, newer_invoiced = threading.Event(), threading.Event()
    settling = threading.local()
    engine = app.extensions["billing.db"].engine
    settle, create = lifecycle.settle, invoices.create_invoices

    def marked_settle(*args: Any, **kwargs: Any) -> Any:
        settling.on = True
        try:
            return settle(*args, **kwargs)
        finally:
            settling.on = False

    def create_then_tell(session: Any, quote_id: str, *args: Any, **kwargs: Any) -> Any:
        batch = create(session, quote_id, *args, **kwargs)
        if quote_id == newer:
            newer_invoiced.set()
        return batch

    def someone_waits_on_a_lock() -> bool:
        with engine.connect() as watcher:
            return bool(
                watcher.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                        " AND datname = current_database()"
                    )
                )
            )

    def pause_before_the_invoices(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
        if (
            threading.current_thread().name == "older"
            and getattr(settling, "on", False)
            and not booking_read.is_set()
            and statement.lstrip().startswith("SELECT")
            and "invoices.booking_id" in statement
        ):
            booking_read.set()  # the newer goes now: until it is invoiced, or waits on us
            for _ in range(500):
                if newer_invoiced.wait(timeout=0.02) or someone_waits_on_a_lock():
                    break

    monkeypatch.setattr(lifecycle, "settle", marked_settle)
    monkeypatch.setattr(invoices, "create_invoices", create_then_tell)
    answers: dict[str, Any] = {}

    def invoice(name: str, quote_id: str) -> None:
        if name == "newer":
            assert booking_read.wait(timeout=20)
        answers[name] = app.test_client().post(
            "/v1/invoices", json={"quote_id": quote_id}, headers=desk.headers
        )

    threads = [
        threading.Thread(target=invoice, args=(name, quote_id), name=name)
        for name, quote_id in (("older", older), ("newer", newer))
    ]
    event.listen(engine, "before_cursor_execute", pause_before_the_invoices)
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        event.remove(engine, "before_cursor_execute", pause_before_the_invoices)
    assert booking_read.is_set()  # the moment happened
    assert {n: a.status_code for n, a in answers.items()} == {"older": 201, "newer": 201}
    booking = desk.get("BK-Q")
    assert booking["quote_id"] == newer
    assert {i["quote_id"]: i["status"] for i in booking["invoices"]} == {
        older: "void",
        newer: "open",
    }
