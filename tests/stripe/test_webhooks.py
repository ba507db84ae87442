"""Stripe webhooks: signature checks, exactly-once effects, concurrency, out-of-order delivery.

Events are signed here exactly as Stripe signs them. Ids come from real payments made through
the API against the stand-in. Keep in mind that the stand-in also delivers its own
`payment_intent.succeeded` (and customer) events about 1 s after a payment: every assertion
below counts rows per Stripe object or per event id, never whole tables.
"""

from __future__ import annotations

import json
import random
import threading
import time
import urllib.parse
import urllib.request
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from billing.adapters import db
from billing.adapters.models import LedgerEntry, Payment, StripeEvent
from billing.services.payments import charges as payment_service
from tests.fixtures_stripe import SECRET_KEY
from tests.stripe.events import deliver, encode, make_event, post_raw, sign, stripe_id

THREE_D_SECURE_CARD = "4000002760003184"
ORDER = {"open": 0, "processing": 1, "paid": 2, "partially_refunded": 3, "refunded": 4}


def intent_object(
    intent_id: str,
    charge_id: str | None,
    metadata: dict[str, str],
    status: str = "succeeded",
    amount: int = 50000,
) -> dict[str, Any]:
    failed = status == "requires_payment_method"
    return {
        "id": intent_id,
        "object": "payment_intent",
        "status": status,
        "amount": amount,
        "amount_received": amount if status == "succeeded" else 0,
        "currency": "usd",
        "latest_charge": charge_id,
        "metadata": metadata,
        "last_payment_error": (
            {"code": "card_declined", "message": "Your card was declined."} if failed else None
        ),
    }


def refunded_charge_object(
    charge_id: str, intent_id: str, refund_id: str, amount_refunded: int
) -> dict[str, Any]:
    """A Charge with its refunds listed (as on API versions before 2022-11-15)."""
    return {
        "id": charge_id,
        "object": "charge",
        "payment_intent": intent_id,
        "amount": 50000,
        "amount_refunded": amount_refunded,
        "refunded": amount_refunded >= 50000,
        "refunds": {
            "object": "list",
            "data": [
                {
                    "id": refund_id,
                    "object": "refund",
                    "amount": amount_refunded,
                    "status": "succeeded",
                    "charge": charge_id,
                    "metadata": {},
                }
            ],
        },
    }


def dispute_object(dispute_id: str, charge_id: str, intent_id: str) -> dict[str, Any]:
    return {
        "id": dispute_id,
        "object": "dispute",
        "amount": 50000,
        "charge": charge_id,
        "payment_intent": intent_id,
        "status": "needs_response",
    }


# Setting scenes up through the API, and reading the database -----------------------------


def pay(client: Any, staff: dict[str, str], invoice_id: str) -> Any:
    return client.post(
        f"/v1/invoices/{invoice_id}/payments",
        headers={**staff, "Idempotency-Key": f"pay-{invoice_id}"},
        json={"method": "card_on_file"},
    )


def get_invoice(client: Any, staff: dict[str, str], invoice_id: str) -> dict[str, Any]:
    response = client.get(f"/v1/invoices/{invoice_id}", headers=staff)
    assert response.status_code == 200, response.json
    return dict(response.json)


def payment_of(app: Flask, invoice_id: str) -> Payment:
    with app.app_context():
        session = db.session()
        return session.scalars(select(Payment).where(Payment.invoice_id == invoice_id)).one()


def paid_invoice(
    client: Any, staff: dict[str, str], open_invoice: Any, app: Flask
) -> tuple[str, Payment]:
    """An invoice paid in full by card on file, and its Payment (PaymentIntent, charge)."""
    invoice_id = open_invoice("pm_card_visa")
    response = pay(client, staff, invoice_id)
    assert response.status_code == 201, response.json
    assert response.json["status"] == "succeeded"
    payment = payment_of(app, invoice_id)
    assert payment.stripe_payment_intent_id and payment.stripe_charge_id
    return invoice_id, payment


def ledger_rows(app: Flask, invoice_id: str, kind: str) -> list[LedgerEntry]:
    with app.app_context():
        session = db.session()
        return list(
            session.scalars(
                select(LedgerEntry).where(
                    LedgerEntry.invoice_id == invoice_id, LedgerEntry.kind == kind
                )
            )
        )


def stored_event(app: Flask, event_id: str) -> StripeEvent | None:
    with app.app_context():
        return db.session().get(StripeEvent, event_id)


def assert_rejected_without_effect(
    app: Flask, client: Any, staff: dict[str, str], response: Any, event: dict[str, Any]
) -> None:
    assert response.status_code == 400, response.json
    assert response.json["code"] == "invalid_signature"
    assert stored_event(app, event["id"]) is None
    invoice_id = event["data"]["object"]["metadata"]["invoice_ref"]
    assert ledger_rows(app, invoice_id, "dispute") == []
    assert get_invoice(client, staff, invoice_id)["disputed_at"] is None


@pytest.fixture
def dispute_of_paid_invoice(
    stripe_app: Flask, stripe_client: Any, staff: dict[str, str], open_invoice: Any
) -> dict[str, Any]:
    """A charge.dispute.created event for a real paid invoice (its ref in the metadata)."""
    invoice_id, payment = paid_invoice(stripe_client, staff, open_invoice, stripe_app)
    obj = dispute_object(
        stripe_id("dp"), str(payment.stripe_charge_id), str(payment.stripe_payment_intent_id)
    )
    obj["metadata"] = {"invoice_ref": invoice_id}
    return make_event("charge.dispute.created", obj)


# 1. Signatures ------------------------------------------------------------------------------


def test_signature_made_with_another_secret_is_rejected_and_changes_nothing(
    stripe_app: Flask, stripe_client: Any, staff: dict[str, str], dispute_of_paid_invoice: Any
) -> None:
    body = encode(dispute_of_paid_invoice)
    response = post_raw(stripe_client, body, sign(body, secret="whsec_someone_else"))
    assert_rejected_without_effect(
        stripe_app, stripe_client, staff, response, dispute_of_paid_invoice
    )


def test_correctly_signed_event_older_than_300_seconds_is_rejected_and_changes_nothing(
    stripe_app: Flask, stripe_client: Any, staff: dict[str, str], dispute_of_paid_invoice: Any
) -> None:
    body = encode(dispute_of_paid_invoice)
    response = post_raw(stripe_client, body, sign(body, timestamp=int(time.time()) - 301))
    assert_rejected_without_effect(
        stripe_app, stripe_client, staff, response, dispute_of_paid_invoice
    )


def test_reserialised_body_no_longer_matches_its_signature_and_changes_nothing(
    stripe_app: Flask, stripe_client: Any, staff: dict[str, str], dispute_of_paid_invoice: Any
) -> None:
    body = encode(dispute_of_paid_invoice)
    signature = sign(body)
    reformatted = json.dumps(json.loads(body), indent=2).encode()
    assert reformatted != body and json.loads(reformatted) == json.loads(body)
    response = post_raw(stripe_client, reformatted, signature)
    assert_rejected_without_effect(
        stripe_app, stripe_client, staff, response, dispute_of_paid_invoice
    )


def test_event_without_signature_header_is_rejected_and_changes_nothing(
    stripe_app: Flask, stripe_client: Any, staff: dict[str, str], dispute_of_paid_invoice: Any
) -> None:
    response = post_raw(stripe_client, encode(dispute_of_paid_invoice), None)
    assert_rejected_without_effect(
        stripe_app, stripe_client, staff, response, dispute_of_paid_invoice
    )


def test_correctly_signed_event_is_accepted(
    stripe_app: Flask, stripe_client: Any, staff: dict[str, str], dispute_of_paid_invoice: Any
) -> None:
    """The control for the rejections above: the same event, signed properly, takes effect."""
    response = deliver(stripe_client, dispute_of_paid_invoice)
    assert response.status_code == 200, response.json
    invoice_id = dispute_of_paid_invoice["data"]["object"]["metadata"]["invoice_ref"]
    assert get_invoice(stripe_client, staff, invoice_id)["disputed_at"] is not None


# 2. Refunds made outside our API, and duplicate deliveries ---------------------------------


def test_refund_made_in_stripe_is_recorded_once_however_often_its_event_arrives(
    stripe_app: Flask, stripe_client: Any, staff: dict[str, str], open_invoice: Any
) -> None:
    invoice_id, payment = paid_invoice(stripe_client, staff, open_invoice, stripe_app)
    refund_id = stripe_id("re")
    event = make_event(
        "charge.refunded",
        refunded_charge_object(
            str(payment.stripe_charge_id), str(payment.stripe_payment_intent_id), refund_id, 10000
        ),
    )

    first = deliver(stripe_client, event)
    assert first.status_code == 200, first.json
    assert first.json == {"received": True, "duplicate": False}
    invoice = get_invoice(stripe_client, staff, invoice_id)
    assert invoice["status"] == "partially_refunded"
    assert invoice["amount_paid"] == 50000
    assert invoice["amount_refunded"] == 10000
    rows = ledger_rows(stripe_app, invoice_id, "refund")
    assert [(row.stripe_object_id, row.amount) for row in rows] == [(refund_id, 10000)]
    # Each entry carries copies of its invoice's number, session type and total.
    copied = (rows[0].invoice_number, rows[0].session_type, rows[0].invoice_total)
    assert copied == (invoice["number"], invoice["session_type"], invoice["total"])

    again = deliver(stripe_client, event)
    assert again.status_code == 200, again.json
    assert again.json["duplicate"] is True
    assert len(ledger_rows(stripe_app, invoice_id, "refund")) == 1
    assert get_invoice(stripe_client, staff, invoice_id)["amount_refunded"] == 10000


# 3. The same event delivered concurrently ----------------------------------------------------


def test_event_delivered_ten_times_at_once_takes_effect_exactly_once(
    stripe_app: Flask, stripe_client: Any, staff: dict[str, str], open_invoice: Any
) -> None:
    invoice_id, payment = paid_invoice(stripe_client, staff, open_invoice, stripe_app)
    dispute_id = stripe_id("dp")
    event = make_event(
        "charge.dispute.created",
        dispute_object(
            dispute_id, str(payment.stripe_charge_id), str(payment.stripe_payment_intent_id)
        ),
    )
    body = encode(event)
    signature = sign(body)
    senders = 10
    barrier = threading.Barrier(senders)
    statuses: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def send() -> None:
        client = stripe_app.test_client()
        try:
            barrier.wait(timeout=10)
            response = post_raw(client, body, signature)
            with lock:
                statuses.append(response.status_code)
        except BaseException as error:  # reported in the main thread
            with lock:
                errors.append(error)

    threads = [threading.Thread(target=send) for _ in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert len(statuses) == senders
    assert all(200 <= status < 300 for status in statuses), statuses
    rows = ledger_rows(stripe_app, invoice_id, "dispute")
    assert [(row.stripe_object_id, row.amount) for row in rows] == [(dispute_id, 50000)]
    invoice = get_invoice(stripe_client, staff, invoice_id)
    assert invoice["disputed_at"] is not None
    assert invoice["status"] == "paid"
    stored = stored_event(stripe_app, event["id"])
    assert stored is not None and stored.processed_at is not None


# 4. Out-of-order delivery --------------------------------------------------------------------


def awaiting_three_d_secure(
    client: Any, staff: dict[str, str], open_invoice: Any, app: Flask
) -> tuple[str, Payment]:
    """An invoice whose card payment waits for 3-D Secure: processing, PaymentIntent known."""
    invoice_id = open_invoice(THREE_D_SECURE_CARD)
    response = pay(client, staff, invoice_id)
    assert response.status_code == 201, response.json
    assert response.json["status"] == "requires_action"
    assert get_invoice(client, staff, invoice_id)["status"] == "processing"
    payment = payment_of(app, invoice_id)
    assert payment.stripe_payment_intent_id and payment.paid_at is None
    return invoice_id, payment


def lifecycle_events(invoice_id: str, payment: Payment) -> dict[str, dict[str, Any]]:
    """A failed attempt, then success, a partial refund of 20000 and a dispute."""
    intent_id = str(payment.stripe_payment_intent_id)
    charge_id = stripe_id("ch")
    metadata = {"payment_id": payment.id, "invoice_ref": invoice_id}
    now = int(time.time())
    return {
        "payment_intent.payment_failed": make_event(
            "payment_intent.payment_failed",
            intent_object(intent_id, None, metadata, status="requires_payment_method"),
            created=now - 120,
        ),
        "payment_intent.succeeded": make_event(
            "payment_intent.succeeded",
            intent_object(intent_id, charge_id, metadata),
            created=now - 60,
        ),
        "charge.refunded": make_event(
            "charge.refunded",
            refunded_charge_object(charge_id, intent_id, stripe_id("re"), 20000),
            created=now - 30,
        ),
        "charge.dispute.created": make_event(
            "charge.dispute.created",
            dispute_object(stripe_id("dp"), charge_id, intent_id),
            created=now - 10,
        ),
    }


SEEDS = [2, 4, 7]  # S-R-D-F, R-F-D-S and D-S-F-R (checked below)


def shuffled_order(seed: int) -> list[str]:
    order = [
        "payment_intent.payment_failed",
        "payment_intent.succeeded",
        "charge.refunded",
        "charge.dispute.created",
    ]
    random.Random(seed).shuffle(order)
    return order


def test_chosen_seeds_give_different_and_telling_orders() -> None:
    orders = [shuffled_order(seed) for seed in SEEDS]
    assert len({tuple(order) for order in orders}) == len(SEEDS)
    # at least one order delivers the failure after the success, and one the refund before it
    assert any(
        o.index("payment_intent.payment_failed") > o.index("payment_intent.succeeded")
        for o in orders
    )
    assert any(o.index("charge.refunded") < o.index("payment_intent.succeeded") for o in orders)


@pytest.mark.parametrize("seed", SEEDS)
def test_events_in_any_order_end_in_the_same_state_and_never_move_status_back(
    stripe_app: Flask, stripe_client: Any, staff: dict[str, str], open_invoice: Any, seed: int
) -> None:
    invoice_id, payment = awaiting_three_d_secure(stripe_client, staff, open_invoice, stripe_app)
    events = lifecycle_events(invoice_id, payment)
    order = shuffled_order(seed)

    seen: list[tuple[str, str]] = []
    succeeded = False
    for event_type in order:
        response = deliver(stripe_client, events[event_type])
        assert response.status_code == 200, (order, event_type, response.json)
        succeeded = succeeded or event_type == "payment_intent.succeeded"
        status = get_invoice(stripe_client, staff, invoice_id)["status"]
        if seen:
            previous = seen[-1][1]
            if event_type == "payment_intent.payment_failed" and not succeeded:
                # a declined attempt leaves a processing invoice open, as designed
                assert status == previous or (previous, status) == ("processing", "open")
            else:
                assert ORDER[status] >= ORDER[previous], (order, seen, status)
        if succeeded:
            assert ORDER[status] >= ORDER["paid"], (order, seen, status)
        seen.append((event_type, status))

    invoice = get_invoice(stripe_client, staff, invoice_id)
    assert invoice["status"] == "partially_refunded", (order, seen)
    assert invoice["amount_paid"] == 50000
    assert invoice["amount_refunded"] == 20000
    assert invoice["disputed_at"] is not None
    for kind in ("charge", "refund", "dispute"):
        assert len(ledger_rows(stripe_app, invoice_id, kind)) == 1, (kind, order)
    assert payment_of(stripe_app, invoice_id).status == "succeeded"
    for event in events.values():
        stored = stored_event(stripe_app, event["id"])
        assert stored is not None and stored.processed_at is not None


# 5 and 6. Events that are not ours, and types we do not handle ------------------------------


def test_event_for_an_unknown_payment_intent_is_kept_unprocessed_and_changes_nothing(
    stripe_app: Flask, stripe_client: Any, staff: dict[str, str], open_invoice: Any
) -> None:
    invoice_id = open_invoice("pm_card_visa")
    event = make_event(
        "payment_intent.succeeded", intent_object(stripe_id("pi"), stripe_id("ch"), {})
    )

    response = deliver(stripe_client, event)

    assert response.status_code == 200, response.json
    assert response.json["duplicate"] is False
    stored = stored_event(stripe_app, event["id"])
    assert stored is not None
    assert stored.type == "payment_intent.succeeded"
    assert stored.processed_at is None
    assert json.loads(stored.payload)["id"] == event["id"]
    invoice = get_invoice(stripe_client, staff, invoice_id)
    assert (invoice["status"], invoice["amount_paid"]) == ("open", 0)
    assert ledger_rows(stripe_app, invoice_id, "charge") == []


def test_unhandled_event_type_is_acknowledged_stored_and_marked_processed(
    stripe_app: Flask, stripe_client: Any
) -> None:
    event = make_event(
        "customer.created",
        {"id": stripe_id("cus"), "object": "customer", "metadata": {"patient_ref": "pt_x"}},
    )

    response = deliver(stripe_client, event)

    assert response.status_code == 200, response.json
    assert response.json == {"received": True, "duplicate": False}
    stored = stored_event(stripe_app, event["id"])
    assert stored is not None
    assert stored.type == "customer.created"
    assert stored.processed_at is not None
    assert deliver(stripe_client, event).json["duplicate"] is True


# Bugs found while writing these tests ---------------------------------------------------------


def refund_at_stripe(standin_url: str, intent_id: str, amount: int) -> str:
    """A refund made directly at Stripe (as from the dashboard), not through our API."""
    data = urllib.parse.urlencode({"payment_intent": intent_id, "amount": amount}).encode()
    request = urllib.request.Request(
        f"{standin_url}/v1/refunds", data=data, headers={"Authorization": f"Bearer {SECRET_KEY}"}
    )
    with urllib.request.urlopen(request, timeout=5) as answer:
        return str(json.loads(answer.read())["id"])


def test_refund_event_as_current_stripe_api_versions_send_it_is_recorded(
    stripe_app: Flask, stripe_client: Any, staff: dict[str, str], open_invoice: Any, standin: Any
) -> None:
    invoice_id, payment = paid_invoice(stripe_client, staff, open_invoice, stripe_app)
    intent_id = str(payment.stripe_payment_intent_id)
    refund_id = refund_at_stripe(standin.url, intent_id, 10000)
    charge = {  # API version 2026-10-28: `refunds` is not part of a Charge unless expanded
        "id": str(payment.stripe_charge_id),
        "object": "charge",
        "payment_intent": intent_id,
        "amount": 50000,
        "amount_refunded": 10000,
        "refunded": False,
    }

    response = deliver(stripe_client, make_event("charge.refunded", charge))

    assert response.status_code == 200, response.json
    invoice = get_invoice(stripe_client, staff, invoice_id)
    assert (invoice["status"], invoice["amount_refunded"]) == ("partially_refunded", 10000)
    rows = ledger_rows(stripe_app, invoice_id, "refund")
    assert [row.stripe_object_id for row in rows] == [refund_id]


def test_failure_event_racing_the_success_event_cannot_unsucceed_the_payment(
    stripe_app: Flask,
    stripe_client: Any,
    staff: dict[str, str],
    open_invoice: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    invoice_id, payment = awaiting_three_d_secure(stripe_client, staff, open_invoice, stripe_app)
    events = lifecycle_events(invoice_id, payment)
    original = payment_service.apply_intent
    raced: list[int] = []
    injected = threading.Event()

    def success_lands_first(
        session: Any, gateway: Any, payment_id: str, intent: Any, *rest: Any
    ) -> Any:
        """The failure's handler has found the payment; now the success commits, from
        another request, before the failure's handler takes its row lock."""
        if intent.status == "requires_payment_method" and not injected.is_set():
            injected.set()  # once: the success's request also retries the pending failure
            client = stripe_app.test_client()
            other = threading.Thread(
                target=lambda: raced.append(
                    deliver(client, events["payment_intent.succeeded"]).status_code
                )
            )
            other.start()
            other.join(timeout=30)
        return original(session, gateway, payment_id, intent, *rest)

    monkeypatch.setattr(payment_service, "apply_intent", success_lands_first)
    response = deliver(stripe_client, events["payment_intent.payment_failed"])
    monkeypatch.undo()

    assert response.status_code == 200, response.json
    assert raced == [200]
    assert get_invoice(stripe_client, staff, invoice_id)["status"] == "paid"
    settled = payment_of(stripe_app, invoice_id)
    # a payment stuck at "failed" beside a paid invoice can never be refunded through the API:
    # refunds.refund_invoice looks for the invoice's *succeeded* payment
    assert (settled.status, settled.failure_code) == ("succeeded", None)


def test_an_event_rendered_in_another_api_version_is_handled_and_said_once(
    stripe_app: Flask, stripe_client: Any, staff: dict[str, str], open_invoice: Any, caplog: Any
) -> None:
    """While a webhook endpoint is moved to a new API version, events of the old one keep
    coming: they are applied (the fields read are the same), and the log says so once."""
    import logging

    caplog.set_level(logging.WARNING, logger="billing.stripe")
    invoice_id, payment = awaiting_three_d_secure(stripe_client, staff, open_invoice, stripe_app)
    intent = intent_object(
        str(payment.stripe_payment_intent_id), stripe_id("ch"), {"payment_id": payment.id}
    )
    older = [make_event("payment_intent.succeeded", intent) for _ in range(2)]
    for event in older:
        event["api_version"] = "2025-03-31.basil"
        assert deliver(stripe_client, event).status_code == 200
    assert get_invoice(stripe_client, staff, invoice_id)["status"] == "paid"
    said = [r.getMessage() for r in caplog.records if "2025-03-31.basil" in r.getMessage()]
    assert len(said) == 1 and "pinned to 2026-10-28.endive" in said[0]


def test_readiness_names_the_stripe_api_version_for_operators(stripe_client: Any) -> None:
    ready = stripe_client.get("/readyz")
    assert ready.status_code == 200, ready.json
    assert ready.json["details"] == {"stripe_api_version": "2026-10-28.endive"}
