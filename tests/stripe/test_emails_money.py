"""Emails that money moving calls for: the receipt once paid, and a pay link at once when
an off-session charge of the saved card is declined or needs the patient's bank."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask

from billing.adapters import db
from billing.services.integrations import emails
from billing.services.integrations.settings import sending
from tests.integrations.smtp import Inbox, parts
from tests.integrations.test_emails import BASE, says_nothing_of_the_treatment

EMAIL = "rae@example.org"


@pytest.fixture
def mailing(stripe_app: Flask, inbox: Inbox) -> Flask:
    stripe_app.config.update(SMTP_URL=inbox.url, PUBLIC_BASE_URL=BASE)
    return stripe_app


def send_due(app: Flask) -> list[str]:
    with app.app_context():
        session = db.session()
        return [emails.send(session, sending(app), m) for m in emails.due(session)]


def invoice_with_card(client: Any, staff: dict[str, str], card: str, stand_in: str) -> str:
    from tests.fixtures_stripe import in_days, save_card

    quote = client.post(
        "/v1/quotes",
        headers=staff,
        json={
            "booking_id": "BK-MAIL",
            "session_type": "iv_individual",
            "scheduled_at": in_days(5),
            "currency": "usd",
            "patients": [{"patient_id": "P-MAIL", "name": "Rae Kim", "email": EMAIL}],
        },
    ).json
    invoice = client.post("/v1/invoices", headers=staff, json={"quote_id": quote["id"]}).json
    save_card(client, staff, stand_in, "P-MAIL", card)
    return str(invoice["data"][0]["id"])


def charge(client: Any, staff: dict[str, str], invoice_id: str) -> Any:
    return client.post(
        f"/v1/invoices/{invoice_id}/payments",
        headers={**staff, "Idempotency-Key": f"pay-{invoice_id}"},
        json={"method": "card_on_file"},
    )


def test_a_paid_invoice_sends_its_receipt_once(
    mailing: Flask, stripe_client: Any, staff: dict[str, str], inbox: Inbox, standin: Any
) -> None:
    invoice_id = invoice_with_card(stripe_client, staff, "pm_card_visa", standin.url)
    assert charge(stripe_client, staff, invoice_id).status_code == 201
    assert send_due(mailing) == ["sent"]
    [receipt] = inbox.to(EMAIL)
    number = stripe_client.get(f"/v1/invoices/{invoice_id}", headers=staff).json["number"]
    assert receipt["Subject"] == f"Receipt for invoice {number} from Example Clinic"
    text, _ = parts(receipt)
    assert "we received your payment of $500.00" in text
    link = re.search(rf"{BASE}(/pay/\S+/receipt)", text)
    assert link is not None
    page = stripe_client.get(link.group(1))
    assert page.status_code == 200 and number in page.get_data(as_text=True)
    says_nothing_of_the_treatment(receipt)
    charge(stripe_client, staff, invoice_id)  # a replay; the webhook arrives too
    assert send_due(mailing) == []


@pytest.mark.parametrize("card", ["4000000000000341", "4000002760003184"])
def test_a_declined_or_unconfirmed_card_on_file_emails_the_patient_a_pay_link(
    mailing: Flask,
    stripe_client: Any,
    staff: dict[str, str],
    inbox: Inbox,
    standin: Any,
    card: str,
) -> None:
    invoice_id = invoice_with_card(stripe_client, staff, card, standin.url)
    answer = charge(stripe_client, staff, invoice_id)
    assert answer.status_code in (201, 402)
    assert send_due(mailing) == ["sent"]
    [message] = inbox.to(EMAIL)
    text, html = parts(message)
    assert "Nothing has been charged" in text
    link = re.search(rf"{BASE}(/pay/[^\s/]+)\s", text)
    assert link is not None and link.group(1) in html
    page = stripe_client.get(link.group(1))
    assert page.status_code == 200  # the pay page: the patient can pay there
    says_nothing_of_the_treatment(message)
