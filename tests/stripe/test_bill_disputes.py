"""A bill the patient disputes stops collection, against the Stripe stand-in on SQLite and
PostgreSQL: the desk's card-on-file charge and bank debit answer 409 `bill_in_dispute`,
an instalment that falls due waits without charging or using a retry, and once the
dispute is resolved the next run charges it; the patient may still pay it themselves;
finance sees the open dispute and its age on the dashboard."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import time_machine
from flask import Flask

from billing.adapters import db
from billing.services.access.staff import create_staff_user
from tests.api.test_finance_sessions import HTTPS, sign_in
from tests.stripe.collect import charge_card_on_file, pay_link
from tests.stripe.plans import charges_sent, items, local, make_plan, run_at


def dispute(client: Any, staff: dict[str, str], invoice_id: str, status: str) -> Any:
    answer = client.post(
        f"/v1/invoices/{invoice_id}/bill-disputes",
        json={"status": status, "note": "Billed for a session I cancelled"},
        headers=staff,
    )
    assert answer.status_code == 200, answer.json
    return answer.json


def test_a_disputed_bill_is_not_charged_until_the_dispute_is_resolved(
    stripe_client: Any, staff: dict[str, str], open_invoice: Callable[..., str]
) -> None:
    invoice_id = open_invoice("pm_card_visa")
    opened = dispute(stripe_client, staff, invoice_id, "open")
    refused = charge_card_on_file(stripe_client, staff, invoice_id, "desk-1")
    assert refused.status_code == 409, refused.json
    assert refused.json["code"] == "bill_in_dispute"
    assert refused.json["dispute_id"] == opened["id"]
    # The patient may still pay it themselves: the pay page takes a card.
    page = stripe_client.get(pay_link(stripe_client, staff, invoice_id) + "/status")
    assert page.json["payable"] is True

    dispute(stripe_client, staff, invoice_id, "resolved")
    charged = charge_card_on_file(stripe_client, staff, invoice_id, "desk-2")
    assert charged.status_code == 201, charged.json
    assert charged.json["status"] == "succeeded"


def test_an_instalment_due_on_a_disputed_bill_waits_and_is_charged_after(
    stripe_app: Flask,
    stripe_client: Any,
    staff: dict[str, str],
    open_invoice: Callable[..., str],
    proxy: Any,
) -> None:
    invoice_id = open_invoice("pm_card_visa")
    with time_machine.travel(local("UTC", 2027, 5, 1, 10), tick=True):
        make_plan(
            stripe_client, staff, invoice_id, instalments=2, interval="week", first_at="2027-05-03"
        )
        dispute(stripe_client, staff, invoice_id, "open")
    proxy.requests.clear()
    run_at(stripe_app, local("UTC", 2027, 5, 3, 9, 30))
    run_at(stripe_app, local("UTC", 2027, 5, 4, 9, 30))
    assert charges_sent(proxy) == []  # nothing charged while it is disputed
    first = items(stripe_app, invoice_id)[0]
    assert first.status in ("scheduled", "retrying") and first.declines == 0  # no retry used

    with time_machine.travel(local("UTC", 2027, 5, 4, 12), tick=True):
        dispute(stripe_client, staff, invoice_id, "resolved")
    run_at(stripe_app, local("UTC", 2027, 5, 4, 14))
    assert len(charges_sent(proxy)) == 1
    assert items(stripe_app, invoice_id)[0].status == "paid"


def test_finance_sees_open_disputes_with_their_age(
    stripe_app: Flask,
    stripe_client: Any,
    staff: dict[str, str],
    open_invoice: Callable[..., str],
) -> None:
    invoice_id = open_invoice(None)
    number = stripe_client.get(f"/v1/invoices/{invoice_id}", headers=staff).json["number"]
    with time_machine.travel(datetime.now(UTC) - timedelta(days=10, hours=1), tick=True):
        dispute(stripe_client, staff, invoice_id, "open")
    with stripe_app.app_context():
        create_staff_user(db.session(), "fin@example.org", "a long enough passphrase 1")
    browser = stripe_app.test_client()
    assert sign_in(browser, "a long enough passphrase 1", email="fin@example.org") == 303
    page = browser.get("/finance", **HTTPS).get_data(as_text=True)
    assert "Bills patients dispute" in page and number in page
    assert "<td>10</td>" in page  # days open
    dispute(stripe_client, staff, invoice_id, "resolved")
    page = browser.get("/finance", **HTTPS).get_data(as_text=True)
    assert "No patient disputes a bill." in page
