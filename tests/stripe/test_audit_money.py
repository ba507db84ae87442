"""Money in the audit trail: payments and refunds, each step with who moved it."""

from __future__ import annotations

import urllib.parse
import urllib.request
from typing import Any

from billing.adapters import db
from billing.services.access import keys
from tests.fixtures_stripe import SECRET_KEY, eventually


def _auditor(stripe_app: Any) -> dict[str, str]:
    with stripe_app.app_context():
        _, plain = keys.create_key(db.session(), "auditor", ["audit:read"])
    return {"Authorization": f"Bearer {plain}"}


def _trail_of(client: Any, auditor: dict[str, str], invoice_id: str) -> list[dict[str, Any]]:
    """Oldest first: the invoice's own events and those of its payments and refunds."""
    events = client.get("/v1/audit-events?limit=500", headers=auditor).json["data"]
    return [
        event
        for event in reversed(events)
        if event["object_id"] == invoice_id or event["details"].get("invoice_id") == invoice_id
    ]


def test_a_payment_and_a_refund_leave_each_step_in_the_trail(
    stripe_app, stripe_client, staff, open_invoice
) -> None:
    invoice_id = open_invoice("pm_card_visa")
    paid = stripe_client.post(
        f"/v1/invoices/{invoice_id}/payments",
        headers={**staff, "Idempotency-Key": "pay-audit"},
        json={"method": "card_on_file"},
    )
    assert paid.status_code == 201, paid.json
    refunded = stripe_client.post(
        f"/v1/invoices/{invoice_id}/refunds",
        headers={**staff, "Idempotency-Key": "refund-audit"},
        json={"amount": 1000, "reason": "shortened session"},
    )
    assert refunded.status_code == 201, refunded.json

    events = _trail_of(stripe_client, _auditor(stripe_app), invoice_id)
    assert [event["action"] for event in events] == [
        "invoice.created",
        "payment.created",
        "payment.succeeded",
        "refund.created",
        "refund.succeeded",
    ]
    assert {event["actor"] for event in events} == {"staff"}  # the key's name
    assert events[2]["object_id"] == paid.json["id"]
    assert events[2]["details"]["amount"] == 50_000
    assert events[3]["details"]["reason"] == "shortened session"
    assert events[4]["request_id"] == refunded.headers["X-Request-ID"]


def test_a_declined_card_is_in_the_trail_with_its_reason(
    stripe_app, stripe_client, staff, open_invoice
) -> None:
    invoice_id = open_invoice("4000000000000341")
    declined = stripe_client.post(
        f"/v1/invoices/{invoice_id}/payments",
        headers={**staff, "Idempotency-Key": "pay-declined"},
        json={"method": "card_on_file"},
    )
    assert declined.status_code == 402
    events = _trail_of(stripe_client, _auditor(stripe_app), invoice_id)
    assert events[-1]["action"] == "payment.failed"
    assert events[-1]["details"]["failure_code"] == "card_declined"


def test_what_stripe_says_by_webhook_is_stripes_in_the_trail(
    stripe_app, stripe_client, staff, open_invoice, standin
) -> None:
    invoice_id = open_invoice("4000002760003184")  # 3-D Secure every time: the patient finishes it
    answer = stripe_client.post(
        f"/v1/invoices/{invoice_id}/payments",
        headers={**staff, "Idempotency-Key": "pay-3ds"},
        json={"method": "card_on_file"},
    )
    secret = answer.json["next_action"]["client_secret"]
    data = urllib.parse.urlencode({"client_secret": secret, "success": "true"}).encode()
    urllib.request.urlopen(
        urllib.request.Request(
            f"{standin.url}/v1/payment_intents/{secret.split('_secret_')[0]}/_authenticate",
            data=data,
            headers={"Authorization": f"Bearer {SECRET_KEY}"},
        )
    ).close()
    auditor = _auditor(stripe_app)

    def succeeded() -> list[dict[str, Any]]:
        events = _trail_of(stripe_client, auditor, invoice_id)
        return [event for event in events if event["action"] == "payment.succeeded"]

    [event] = eventually(succeeded)
    assert (event["actor_type"], event["actor"]) == ("stripe", "webhook")
    steps = [event["action"] for event in _trail_of(stripe_client, auditor, invoice_id)]
    assert steps == [
        "invoice.created",
        "payment.created",
        "payment.requires_action",
        "payment.succeeded",
    ]


def test_payments_refunds_webhooks_and_stripe_calls_are_counted(
    stripe_app, stripe_client, staff, open_invoice
) -> None:
    from tests.api.test_operations import _sample

    stripe_app.config["METRICS_TOKEN"] = "scrape"

    def scrape() -> str:
        answer = stripe_client.get("/metrics", headers={"Authorization": "Bearer scrape"})
        assert answer.status_code == 200
        return str(answer.get_data(as_text=True))

    paid_ok = {"method": "card_on_file", "outcome": "succeeded"}
    declined = {"method": "card_on_file", "outcome": "failed"}
    before = scrape()
    ok_invoice, bad_invoice = open_invoice("pm_card_visa"), open_invoice("4000000000000341")
    for invoice_id, key in ((ok_invoice, "m-1"), (bad_invoice, "m-2")):
        stripe_client.post(
            f"/v1/invoices/{invoice_id}/payments",
            headers={**staff, "Idempotency-Key": key},
            json={"method": "card_on_file"},
        )
    refund = stripe_client.post(
        f"/v1/invoices/{ok_invoice}/refunds",
        headers={**staff, "Idempotency-Key": "m-3"},
        json={"amount": 500, "reason": "goodwill"},
    )
    assert refund.status_code == 201

    def webhook_arrived() -> str | None:
        text = scrape()
        seen = _sample(
            text,
            "billing_stripe_webhook_events_total",
            type="payment_intent.succeeded",
            result="duplicate",
        ) + _sample(
            text,
            "billing_stripe_webhook_events_total",
            type="payment_intent.succeeded",
            result="applied",
        )
        return text if seen else None

    after = eventually(webhook_arrived)

    def delta(name: str, **labels: str) -> float:
        return _sample(after, name, **labels) - _sample(before, name, **labels)

    assert delta("billing_payments_total", **paid_ok) == 1
    assert delta("billing_payments_total", **declined) == 1
    assert delta("billing_refunds_total", kind="requested", outcome="succeeded") == 1
    charges = "billing_stripe_request_duration_seconds_count"
    assert delta(charges, operation="charge_card_on_file") == 2
    assert delta(charges, operation="refund") == 1
    assert (
        delta("billing_stripe_errors_total", operation="attach_card", code="card_declined")
        + (
            delta(
                "billing_stripe_errors_total", operation="charge_card_on_file", code="card_declined"
            )
        )
        >= 1
    )
    lag = "billing_stripe_webhook_lag_seconds_count"
    assert _sample(after, lag, type="payment_intent.succeeded") >= 1
