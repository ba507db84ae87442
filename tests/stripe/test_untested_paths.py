"""Paths a review found untested, against the Stripe stand-in on SQLite and PostgreSQL: a
card-on-file charge refused while Stripe processes the pay page's payment; a refund that
fails is an event and is not counted as refunded; a paid no-show fee given back when the
no-show is corrected; two cancellations of a paid booking at once refund it once."""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

import pytest
import requests
from flask import Flask
from sqlalchemy import select

from billing.adapters import db
from billing.adapters.models import LedgerEntry, Payment, Refund
from billing.adapters.stripe_gateway import Intent
from billing.services.access import keys
from billing.services.bookings import lifecycle
from billing.services.payments import refunds as refund_service
from tests.conftest import in_days, in_hours
from tests.integrations.feed import wait_until_settled
from tests.stripe.collect import (
    charge_card_on_file,
    collected_at_stripe,
    intents_of,
    ledger_of,
    open_pay_page,
    refunds_of,
)
from tests.stripe.events import deliver, make_event, stripe_id

CONSENT = {
    "text": "Save this card for future visits and fees at Example Clinic.",
    "agreed_at": "2026-11-30T17:00:00+00:00",
}


def key(app: Flask, *scopes: str) -> dict[str, str]:
    with app.app_context():
        _, plain = keys.create_key(db.session(), f"key-{stripe_id('k')}", list(scopes))
    return {"Authorization": f"Bearer {plain}"}


def feed(app: Flask, client: Any, event_type: str) -> list[dict[str, Any]]:
    """The events of one type, oldest first, as a booking system reads them."""
    reader = key(app, "events:read")
    wait_until_settled(app)
    answer = client.get(
        "/v1/events", query_string={"type": event_type, "limit": 500}, headers=reader
    )
    assert answer.status_code == 200, answer.json
    return list(answer.json["data"])


def invoice_of(client: Any, headers: dict[str, str], invoice_id: str) -> dict[str, Any]:
    shown = client.get(f"/v1/invoices/{invoice_id}", headers=headers)
    assert shown.status_code == 200, shown.json
    return dict(shown.json)


def paid(client: Any, staff: dict[str, str], open_invoice: Any) -> tuple[str, dict[str, Any]]:
    """An invoice paid in full by card on file, and the payment as the API shows it."""
    invoice_id = open_invoice("pm_card_visa")
    charged = charge_card_on_file(client, staff, invoice_id, f"pay-{invoice_id}")
    assert charged.status_code == 201 and charged.json["status"] == "succeeded", charged.json
    return invoice_id, dict(charged.json)


def refund(client: Any, staff: dict[str, str], invoice_id: str, amount: int, key: str) -> Any:
    return client.post(
        f"/v1/invoices/{invoice_id}/refunds",
        headers={**staff, "Idempotency-Key": key},
        json={"amount": amount, "reason": "session cancelled"},
    )


def about(events: list[dict[str, Any]], invoice_id: str) -> list[dict[str, Any]]:
    return [e for e in events if e["data"]["object"]["invoice_id"] == invoice_id]


# A card-on-file charge while Stripe processes the pay page's payment ----------------------


def charge_while_the_page_is_processing(
    app: Flask, client: Any, staff: dict[str, str], invoice_id: str, key: str
) -> Any:
    """Charge the card on file while Stripe says the pay page's PaymentIntent is processing
    (so it cannot be cancelled). A unit-level double of one gateway call: the stand-in
    cannot hold a card PaymentIntent in processing."""
    gateway = app.extensions["billing.stripe"]

    def still_processing(intent_id: str) -> Intent:
        return dataclasses.replace(gateway.retrieve_payment_intent(intent_id), status="processing")

    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(gateway, "cancel_payment_intent", still_processing)
        return charge_card_on_file(client, staff, invoice_id, key)


def test_card_on_file_is_refused_while_stripe_processes_the_pay_page_payment(
    stripe_app: Flask,
    stripe_client: Any,
    staff: dict[str, str],
    open_invoice: Any,
    proxy: Any,
    standin: Any,
) -> None:
    """The pay page's PaymentIntent cannot be cancelled because Stripe is processing it:
    the card on file is not charged (409 payment_in_progress); once Stripe lets go of
    that PaymentIntent, the invoice can be charged."""
    invoice_id = open_invoice("pm_card_visa")
    open_pay_page(stripe_client, staff, invoice_id)
    (page_intent,) = intents_of(standin, invoice_id)
    creates = len(proxy.calls("POST", "/v1/payment_intents"))

    refused = charge_while_the_page_is_processing(
        stripe_app, stripe_client, staff, invoice_id, "card-while-processing"
    )

    assert refused.status_code == 409, refused.json
    assert refused.json["code"] == "payment_in_progress"
    assert len(proxy.calls("POST", "/v1/payment_intents")) == creates  # no charge was made
    assert [i["id"] for i in intents_of(standin, invoice_id)] == [page_intent["id"]]
    assert ledger_of(stripe_app, invoice_id).paid == 0

    charged = charge_card_on_file(stripe_client, staff, invoice_id, "card-after-processing")
    assert charged.status_code == 201 and charged.json["status"] == "succeeded", charged.json
    invoice = invoice_of(stripe_client, staff, invoice_id)
    assert invoice["status"] == "paid"
    assert collected_at_stripe(standin, invoice_id) == (invoice["total"], 0)
    at_stripe = {i["id"]: i["status"] for i in intents_of(standin, invoice_id)}
    assert at_stripe.pop(page_intent["id"]) == "canceled"  # the pay page's, let go of
    assert list(at_stripe.values()) == ["succeeded"]  # the card on file's


def test_an_invoice_whose_pay_page_payment_is_processing_still_reads_processing(
    stripe_app: Flask, stripe_client: Any, staff: dict[str, str], open_invoice: Any
) -> None:
    """A card-on-file charge refused because Stripe is processing the patient's online
    payment leaves the invoice showing that payment in progress, not open for payment."""
    invoice_id = open_invoice("pm_card_visa")
    open_pay_page(stripe_client, staff, invoice_id)

    refused = charge_while_the_page_is_processing(
        stripe_app, stripe_client, staff, invoice_id, "card-while-processing"
    )

    assert refused.status_code == 409 and refused.json["code"] == "payment_in_progress"
    assert invoice_of(stripe_client, staff, invoice_id)["status"] == "processing"


# A refund that fails -----------------------------------------------------------------------


def refund_at_stripe(
    payment: dict[str, Any], refund_id: str, amount: int, status: str
) -> dict[str, Any]:
    """A Refund as Stripe shows it, with our refund's id in its metadata."""
    failed = status == "failed"
    return {
        "id": stripe_id("re"),
        "object": "refund",
        "amount": amount,
        "currency": "usd",
        "status": status,
        "failure_reason": "expired_or_canceled_card" if failed else None,
        "charge": payment["charge"],
        "payment_intent": payment["intent"],
        "metadata": {"refund_id": refund_id},
    }


def charge_refunded(payment: dict[str, Any], *listed: dict[str, Any]) -> dict[str, Any]:
    """A charge.refunded event listing the charge's refunds (as API versions before
    2022-11-15 render a Charge)."""
    refunded = sum(r["amount"] for r in listed if r["status"] in ("succeeded", "pending"))
    charge = {
        "id": payment["charge"],
        "object": "charge",
        "payment_intent": payment["intent"],
        "amount": payment["amount"],
        "amount_refunded": refunded,
        "refunded": refunded >= payment["amount"],
        "refunds": {"object": "list", "data": list(listed), "has_more": False},
    }
    return make_event("charge.refunded", charge)


def stripe_side(app: Flask, invoice_id: str, amount: int) -> dict[str, Any]:
    """The invoice's PaymentIntent and charge at Stripe, as our payment row knows them."""
    with app.app_context():
        payment = (
            db.session()
            .scalars(
                select(Payment).where(
                    Payment.invoice_id == invoice_id, Payment.status == "succeeded"
                )
            )
            .one()
        )
        return {
            "intent": payment.stripe_payment_intent_id,
            "charge": payment.stripe_charge_id,
            "amount": amount,
        }


def test_a_refund_stripe_reports_failed_is_one_refund_failed_event_and_is_not_refunded(
    stripe_app: Flask,
    stripe_client: Any,
    staff: dict[str, str],
    open_invoice: Any,
    proxy: Any,
    standin: Any,
) -> None:
    """Our refund's call was lost; Stripe's charge.refunded then says that refund failed
    (the card was closed). It is announced once as refund.failed, the invoice shows
    nothing refunded, and its amount can be refunded again."""
    invoice_id, payment = paid(stripe_client, staff, open_invoice)
    total = payment["amount"]
    proxy.fault = "down"
    try:
        lost = refund(stripe_client, staff, invoice_id, total, "refund-lost")
    finally:
        proxy.fault = None
    assert lost.status_code == 503, lost.json
    (ours,) = refunds_of(stripe_app, invoice_id)

    side = stripe_side(stripe_app, invoice_id, total)
    failed = refund_at_stripe(side, ours.id, total, "failed")
    for _ in range(2):  # Stripe tells it twice, in two events: still one announcement
        told = deliver(stripe_client, charge_refunded(side, failed))
        assert told.status_code == 200, told.json

    (event,) = about(feed(stripe_app, stripe_client, "refund.failed"), invoice_id)
    shown = event["data"]["object"]
    assert (shown["id"], shown["amount"], shown["status"]) == (ours.id, total, "failed")
    assert about(feed(stripe_app, stripe_client, "refund.succeeded"), invoice_id) == []
    invoice = invoice_of(stripe_client, staff, invoice_id)
    assert (invoice["status"], invoice["amount_refunded"]) == ("paid", 0)
    assert ledger_of(stripe_app, invoice_id).refunded == 0

    again = refund(stripe_client, staff, invoice_id, total, "refund-again")
    assert again.status_code == 201 and again.json["status"] == "succeeded", again.json
    assert invoice_of(stripe_client, staff, invoice_id)["amount_refunded"] == total


def test_a_refund_stripe_refuses_is_a_refund_failed_event_with_the_reason(
    stripe_app: Flask, stripe_client: Any, staff: dict[str, str], open_invoice: Any, proxy: Any
) -> None:
    """Stripe answers the refund with an error (a 422 with Stripe's reason): the refund is
    announced as refund.failed with that reason, and nothing counts as refunded."""
    invoice_id, payment = paid(stripe_client, staff, open_invoice)
    proxy.fault = "reject"
    try:
        refused = refund(stripe_client, staff, invoice_id, payment["amount"], "refund-refused")
    finally:
        proxy.fault = None
    assert refused.status_code == 422, refused.json
    (ours,) = refunds_of(stripe_app, invoice_id)

    (event,) = about(feed(stripe_app, stripe_client, "refund.failed"), invoice_id)
    shown = event["data"]["object"]
    assert (shown["id"], shown["status"]) == (ours.id, "failed")
    assert shown["failure_code"] == refused.json["code"] == "stripe_invalid_request"
    invoice = invoice_of(stripe_client, staff, invoice_id)
    assert (invoice["status"], invoice["amount_refunded"]) == ("paid", 0)


@pytest.mark.parametrize("told_by", ["charge.refunded", "charge.refund.updated"])
def test_a_pending_refund_that_then_fails_is_no_longer_counted_as_refunded(
    stripe_app: Flask,
    stripe_client: Any,
    staff: dict[str, str],
    open_invoice: Any,
    proxy: Any,
    told_by: str,
) -> None:
    """Stripe holds our refund pending (its balance was short), then the card's bank
    returns it: the refund is failed, announced as refund.failed, and the invoice is
    back to paid with nothing refunded."""
    invoice_id, payment = paid(stripe_client, staff, open_invoice)
    total = payment["amount"]
    proxy.fault = "down"
    try:
        assert refund(stripe_client, staff, invoice_id, total, "refund-held").status_code == 503
    finally:
        proxy.fault = None
    (ours,) = refunds_of(stripe_app, invoice_id)
    side = stripe_side(stripe_app, invoice_id, total)
    pending = refund_at_stripe(side, ours.id, total, "pending")
    assert deliver(stripe_client, charge_refunded(side, pending)).status_code == 200

    failed = {**pending, "status": "failed", "failure_reason": "expired_or_canceled_card"}
    if told_by == "charge.refunded":
        told = deliver(stripe_client, charge_refunded(side, failed))
    else:
        told = deliver(stripe_client, make_event("charge.refund.updated", failed))
    assert told.status_code == 200, told.json

    invoice = invoice_of(stripe_client, staff, invoice_id)
    assert (invoice["status"], invoice["amount_refunded"]) == ("paid", 0)
    (event,) = about(feed(stripe_app, stripe_client, "refund.failed"), invoice_id)
    assert event["data"]["object"]["id"] == ours.id


def ledger_kinds(app: Flask, invoice_id: str) -> list[tuple[str, int, str]]:
    """The invoice's ledger entries (kind, amount, Stripe object), oldest first."""
    with app.app_context():
        rows = db.session().execute(
            select(LedgerEntry.kind, LedgerEntry.amount, LedgerEntry.stripe_object_id)
            .where(LedgerEntry.invoice_id == invoice_id)
            .order_by(LedgerEntry.id)
        )
        return [(str(k), int(a), str(o)) for k, a, o in rows]


def test_a_failed_refund_told_again_in_every_event_kind_and_late_changes_nothing_more(
    stripe_app: Flask,
    stripe_client: Any,
    staff: dict[str, str],
    open_invoice: Any,
    proxy: Any,
) -> None:
    """A refund counted while pending, then failed: the failure told again, in each event
    Stripe sends for it (charge.refunded, charge.refund.updated, refund.updated,
    refund.failed), and the pending news arriving late, leave one refund.failed event, one
    reversing ledger entry and the refund failed; its amount can be refunded again."""
    invoice_id, payment = paid(stripe_client, staff, open_invoice)
    total = payment["amount"]
    proxy.fault = "down"
    try:
        assert refund(stripe_client, staff, invoice_id, total, "refund-held").status_code == 503
    finally:
        proxy.fault = None
    (ours,) = refunds_of(stripe_app, invoice_id)
    side = stripe_side(stripe_app, invoice_id, total)
    pending = refund_at_stripe(side, ours.id, total, "pending")
    told_pending = charge_refunded(side, pending)
    assert deliver(stripe_client, told_pending).status_code == 200
    counted = invoice_of(stripe_client, staff, invoice_id)
    assert (counted["status"], counted["amount_refunded"]) == ("refunded", total)

    failed = {**pending, "status": "failed", "failure_reason": "expired_or_canceled_card"}
    told_failed = make_event("charge.refund.updated", failed)
    for event in (
        told_failed,
        told_failed,  # the same event delivered twice
        charge_refunded(side, failed),
        make_event("refund.updated", failed),
        make_event("refund.failed", failed),
        make_event("charge.refund.updated", failed),
        {**told_pending, "id": stripe_id("evt")},  # the pending news, late
        make_event("refund.updated", pending),
    ):
        assert deliver(stripe_client, event).status_code == 200

    assert ledger_kinds(stripe_app, invoice_id) == [
        ("charge", total, side["intent"]),
        ("refund", total, pending["id"]),
        ("refund_failure", total, pending["id"]),
    ]
    assert ledger_of(stripe_app, invoice_id).refunded == 0
    invoice = invoice_of(stripe_client, staff, invoice_id)
    assert (invoice["status"], invoice["amount_refunded"]) == ("paid", 0)
    (after,) = refunds_of(stripe_app, invoice_id)
    assert (after.status, after.failure_code) == ("failed", "expired_or_canceled_card")
    assert after.failure_message and "expired or cancelled" in after.failure_message
    (event,) = about(feed(stripe_app, stripe_client, "refund.failed"), invoice_id)
    assert event["data"]["object"]["id"] == ours.id
    (succeeded,) = about(feed(stripe_app, stripe_client, "refund.succeeded"), invoice_id)
    assert succeeded["data"]["object"]["id"] == ours.id  # when Stripe counted it, pending

    again = refund(stripe_client, staff, invoice_id, total, "refund-again")
    assert again.status_code == 201 and again.json["status"] == "succeeded", again.json
    invoice = invoice_of(stripe_client, staff, invoice_id)
    assert (invoice["status"], invoice["amount_refunded"]) == ("refunded", total)


def test_a_partial_refund_that_fails_leaves_the_other_refund_counted(
    stripe_app: Flask, stripe_client: Any, staff: dict[str, str], open_invoice: Any
) -> None:
    """Two partial refunds make the invoice refunded; one of them then fails: the invoice
    reads partially refunded, by the other one's amount."""
    invoice_id, payment = paid(stripe_client, staff, open_invoice)
    total = payment["amount"]
    first = refund(stripe_client, staff, invoice_id, total - 10000, "refund-first")
    second = refund(stripe_client, staff, invoice_id, 10000, "refund-second")
    assert first.status_code == second.status_code == 201, (first.json, second.json)
    assert invoice_of(stripe_client, staff, invoice_id)["status"] == "refunded"
    side = stripe_side(stripe_app, invoice_id, total)
    with stripe_app.app_context():
        made = db.session().get(Refund, first.json["id"])
        assert made is not None and made.stripe_refund_id
        failed = {
            **refund_at_stripe(side, made.id, made.amount, "failed"),
            "id": made.stripe_refund_id,
        }

    assert deliver(stripe_client, make_event("refund.failed", failed)).status_code == 200

    invoice = invoice_of(stripe_client, staff, invoice_id)
    assert (invoice["status"], invoice["amount_refunded"]) == ("partially_refunded", 10000)
    (event,) = about(feed(stripe_app, stripe_client, "refund.failed"), invoice_id)
    assert event["data"]["object"]["id"] == first.json["id"]


# A paid no-show fee, when the no-show is corrected -------------------------------------------


def test_a_paid_no_show_fee_is_refunded_in_full_when_the_patient_is_marked_attended(
    stripe_app: Flask, stripe_client: Any, proxy: Any, standin: Any
) -> None:
    """A no-show fee charged to the card saved with consent is refunded in full, once, when
    the front desk corrects the no-show to attended; the session then counts as attended
    (the patient, new to the clinic, may now join a group session)."""
    desk = key(
        stripe_app,
        "quotes:write",
        "invoices:read",
        "invoices:write",
        "payments:write",
        "bookings:write",
        "catalog:write",
    )
    priced = stripe_client.post(
        "/v1/catalog/prices",
        headers=desk,
        json={
            "iv_individual_amount": 50000,
            "currency": "usd",
            "cancellation_policy": {
                "notice_hours": 24,
                "late_cancellation_fee": {"percent": 50},
                "no_show_fee": {"amount": 7500},
            },
        },
    )
    assert priced.status_code == 201, priced.json
    newcomer = {"patient_id": "P-4001", "name": "Cleo New"}
    quote = stripe_client.post(
        "/v1/quotes",
        headers=desk,
        json={
            "booking_id": "BK-NS-4001",
            "session_type": "iv_individual",
            "scheduled_at": in_hours(-1),
            "currency": "usd",
            "patients": [newcomer],
        },
    )
    assert quote.status_code == 201, quote.json
    (session_invoice,) = stripe_client.post(
        "/v1/invoices", headers=desk, json={"quote_id": quote.json["id"]}
    ).json["data"]
    saved = stripe_client.post(
        "/v1/patients/P-4001/payment-methods",
        headers=desk,
        json={"payment_method": "pm_card_visa", "consent": CONSENT},
    )
    assert saved.status_code == 201, saved.json

    def mark(status: str, key: str) -> Any:
        marked = stripe_client.post(
            "/v1/bookings/BK-NS-4001/attendance",
            headers={**desk, "Idempotency-Key": key},
            json={"patients": [{"patient_id": "P-4001", "status": status}]},
        )
        assert marked.status_code == 200, marked.json
        return marked.json

    (fee,) = mark("no_show", "missed-4001")["fees"]
    assert fee["status"] == "paid" and fee["amount_paid"] == 7500
    group = {
        "booking_id": "BK-GROUP-4001",
        "session_type": "im_group",
        "scheduled_at": in_days(5),
        "currency": "usd",
        "patients": [{"patient_id": "P-4002", "name": "Ana", "prior_iv_sessions": 1}, newcomer],
    }
    missed = stripe_client.post("/v1/quotes", headers=desk, json=group)
    assert missed.json["code"] == "first_session_must_be_iv"  # a missed session is none

    corrected = mark("attended", "came-4001")
    assert corrected["patients"][0]["attendance"] == "attended"
    assert corrected["patients"][0]["fee_invoice_id"] is None
    given_back = invoice_of(stripe_client, desk, fee["id"])
    assert given_back["status"] == "refunded" and given_back["amount_refunded"] == 7500
    assert collected_at_stripe(standin, fee["id"]) == (7500, 7500)
    assert len(proxy.calls("POST", "/v1/refunds")) == 1
    assert invoice_of(stripe_client, desk, session_invoice["id"])["status"] == "open"
    joined = stripe_client.post("/v1/quotes", headers=desk, json=group)
    assert joined.status_code == 201, joined.json


# Two cancellations of a paid booking at once -------------------------------------------------


def cancel_at_once(app: Flask, headers: dict[str, str], booking_id: str, *bodies: dict) -> list:
    """POST each cancellation from its own thread against the live server, all released
    together; the answers (status, body) in the order given."""
    ready = threading.Barrier(len(bodies))
    answers: list[Any] = [None] * len(bodies)

    def cancel(index: int, body: dict[str, Any]) -> None:
        with requests.Session() as http:
            ready.wait(timeout=10)
            answer = http.post(
                f"{app.config['LIVE_URL']}/v1/bookings/{booking_id}/cancellations",
                json=body,
                headers={**headers, "Idempotency-Key": f"race-{booking_id}-{index}"},
                timeout=60,
            )
            answers[index] = (answer.status_code, answer.json())

    threads = [threading.Thread(target=cancel, args=(i, body)) for i, body in enumerate(bodies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    assert all(answer is not None for answer in answers), answers
    return answers


@pytest.fixture
def desk(stripe_app: Flask) -> dict[str, str]:
    return key(
        stripe_app,
        "quotes:write",
        "invoices:read",
        "invoices:write",
        "payments:write",
        "bookings:write",
    )


def book_and_pay_first(
    client: Any, desk: dict[str, str], booking_id: str, session_type: str, *patients: dict
) -> list[dict[str, Any]]:
    """Book and invoice; the first patient saves a card and pays their invoice with it."""
    quote = client.post(
        "/v1/quotes",
        headers=desk,
        json={
            "booking_id": booking_id,
            "session_type": session_type,
            "scheduled_at": in_days(5),
            "currency": "usd",
            "patients": list(patients),
        },
    )
    assert quote.status_code == 201, quote.json
    invoiced = client.post("/v1/invoices", headers=desk, json={"quote_id": quote.json["id"]})
    assert invoiced.status_code == 201, invoiced.json
    first = invoiced.json["data"][0]
    saved = client.post(
        f"/v1/patients/{first['patient_id']}/payment-methods",
        headers=desk,
        json={"payment_method": "pm_card_visa"},
    )
    assert saved.status_code == 201, saved.json
    charged = charge_card_on_file(client, desk, first["id"], f"pay-{first['id']}")
    assert charged.status_code == 201 and charged.json["status"] == "succeeded", charged.json
    return list(invoiced.json["data"])


def assert_refunded_once(
    app: Flask, client: Any, desk: dict[str, str], proxy: Any, standin: Any, invoice: dict
) -> None:
    total = invoice["total"]
    after = invoice_of(client, desk, invoice["id"])
    assert after["status"] == "refunded" and after["amount_refunded"] == total
    assert ledger_of(app, invoice["id"]).refunded == total
    assert collected_at_stripe(standin, invoice["id"]) == (total, total)
    assert len(proxy.calls("POST", "/v1/refunds")) == 1
    assert [r.status for r in refunds_of(app, invoice["id"])] == ["succeeded"]


def test_two_cancellations_of_a_paid_booking_at_once_refund_it_once(
    stripe_app: Flask, stripe_client: Any, desk: dict[str, str], proxy: Any, standin: Any
) -> None:
    """The whole booking cancelled twice at the same moment (two keys): one cancellation
    stands, the other is told it is cancelled already, and the paid invoice is refunded
    exactly once."""
    (invoice,) = book_and_pay_first(
        stripe_client, desk, "BK-RACE-1", "iv_individual", {"patient_id": "P-5001", "name": "Pat"}
    )

    answers = cancel_at_once(stripe_app, desk, "BK-RACE-1", {"by": "clinic"}, {"by": "clinic"})

    assert sorted(status for status, _ in answers) == [200, 409], answers
    assert {body.get("code") for status, body in answers if status == 409} == {"already_cancelled"}
    assert_refunded_once(stripe_app, stripe_client, desk, proxy, standin, invoice)


def meet_before(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> list[bool]:
    """Two threads calling `module.name` wait for each other before they go on (up to 5 s,
    so a thread that never comes holds the other no longer); whether each call met the
    other."""
    together = threading.Barrier(2, timeout=5)
    real = getattr(module, name)
    met: list[bool] = []

    def meeting(*args: Any, **kwargs: Any) -> Any:
        try:
            together.wait()
            met.append(True)
        except threading.BrokenBarrierError:
            met.append(False)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, meeting)
    return met


def test_two_places_of_a_group_cancelled_at_once_refund_the_paid_one_once(
    stripe_app: Flask,
    stripe_client: Any,
    desk: dict[str, str],
    proxy: Any,
    standin: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Both patients of a group cancel at the same moment (each their own place). Pinned to
    the worst interleaving (both cancellations committed, then both settles find the paid
    invoice to give back and weigh its refund together), the paid place is still refunded
    exactly once and the unpaid one is voided."""
    paid_one, unpaid = book_and_pay_first(
        stripe_client,
        desk,
        "BK-RACE-2",
        "im_group",
        {"patient_id": "P-5101", "name": "Ana", "prior_iv_sessions": 1},
        {"patient_id": "P-5102", "name": "Ben", "prior_iv_sessions": 1},
    )

    settled = meet_before(monkeypatch, lifecycle, "settle")
    weighed = meet_before(monkeypatch, refund_service, "left_to_refund")
    answers = cancel_at_once(
        stripe_app,
        desk,
        "BK-RACE-2",
        {"by": "clinic", "patient_id": "P-5101"},
        {"by": "clinic", "patient_id": "P-5102"},
    )

    assert [status for status, _ in answers] == [200, 200], answers
    assert settled == weighed == [True, True]  # both settles weighed the refund together
    booking = stripe_client.get("/v1/bookings/BK-RACE-2", headers=desk).json
    assert booking["state"] == "cancelled"
    assert_refunded_once(stripe_app, stripe_client, desk, proxy, standin, paid_one)
    assert invoice_of(stripe_client, desk, unpaid["id"])["status"] == "void"
