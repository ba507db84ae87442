"""Bank debits (ACH, Stripe's `us_bank_account`) against the stand-in, which emulates
Stripe's test accounts: a debit is processing (for days at Stripe, about a second and a
half here), then succeeds, fails, or succeeds and comes back later (a dispute, final).
The invoice shows what is processing; a failure or a return leaves it owed, tells the
patient (an email with a pay link) and finance (an event, the audit trail, reconciliation).
"""

from __future__ import annotations

import json
import urllib.request
from datetime import UTC, datetime

import pytest
import stripe
from sqlalchemy import select

from billing.adapters import db
from billing.adapters.models import AuditEvent, Payment
from billing.adapters.outbox import EmailMessage, Event
from billing.services.finance import stripe_sync
from billing.services.finance.reconciliation import STATUSES
from tests.conftest import in_days
from tests.fixtures_stripe import SECRET_KEY, eventually, payment_method
from tests.stripe.collect import (
    charge_card_on_file,
    ledger_of,
    open_pay_page,
    patient_confirms,
    pay_link,
)
from tests.stripe.events import deliver, make_event, stripe_id
from tests.stripe.test_webhooks import dispute_object


@pytest.fixture(autouse=True)
def banks_decide_quickly(monkeypatch):
    """Days at Stripe, half a second here (a test that needs longer says so)."""
    from billing.adapters.standin import banks

    monkeypatch.setattr(banks, "BANK_SETTLES_AFTER", 0.5)
    monkeypatch.setattr(banks, "BANK_RETURNS_AFTER", 0.5)


MANDATE = {
    "text": "I authorize the clinic to debit my account for my invoices when they are due.",
    "accepted": "offline",
}


def bank_payment_method(standin_url: str, account_number: str) -> str:
    """A us_bank_account PaymentMethod, as Stripe.js makes one through Financial Connections."""
    account = {
        "routing_number": "110000000",
        "account_number": account_number,
        "account_holder_type": "individual",
    }
    return payment_method(
        standin_url, "us_bank_account", account, **{"billing_details[name]": "Ana Ruiz"}
    )


def save_bank_account(client, staff, standin, patient_id, account_number):
    saved = client.post(
        f"/v1/patients/{patient_id}/bank-accounts",
        headers=staff,
        json={
            "payment_method": bank_payment_method(standin.url, account_number),
            "mandate": MANDATE,
        },
    )
    assert saved.status_code == 201, saved.json
    return saved.json


def open_invoice_emailed(client, staff, patient_id):
    """An open IV invoice in US dollars for a patient the clinic can email."""
    quote = client.post(
        "/v1/quotes",
        headers=staff,
        json={
            "booking_id": f"BK-{patient_id}",
            "session_type": "iv_individual",
            "scheduled_at": in_days(5),
            "currency": "usd",
            "patients": [
                {"patient_id": patient_id, "name": "Ana Ruiz", "email": "ana@example.com"}
            ],
        },
    ).json
    made = client.post("/v1/invoices", headers=staff, json={"quote_id": quote["id"]})
    assert made.status_code == 201, made.json
    return made.json["data"][0]["id"]


def debit(client, staff, invoice_id, key):
    return client.post(
        f"/v1/invoices/{invoice_id}/payments",
        headers={**staff, "Idempotency-Key": key},
        json={"method": "bank_debit"},
    )


def invoice(client, staff, invoice_id):
    return client.get(f"/v1/invoices/{invoice_id}", headers=staff).json


def payment(app, invoice_id):
    with app.app_context():
        [only] = db.session().scalars(select(Payment).where(Payment.invoice_id == invoice_id))
        return {
            "id": only.id,
            "status": only.status,
            "failure_code": only.failure_code,
            "source": only.source,
        }


def emails_of(app, invoice_id):
    with app.app_context():
        return [
            m.kind
            for m in db.session().scalars(
                select(EmailMessage)
                .where(EmailMessage.invoice_id == invoice_id)
                .order_by(EmailMessage.created_at)
            )
        ]


def told(app, payment_id):
    """What finance hears of a payment: audit actions, and the events other systems get."""
    with app.app_context():
        session = db.session()
        actions = {
            e.action for e in session.scalars(select(AuditEvent)) if e.object_id == payment_id
        }
        sent = {
            e.type
            for e in session.scalars(select(Event).where(Event.type.like("payment.%")))
            if json.loads(e.data)["object"].get("id") == payment_id
        }
        return actions, sent


def test_a_bank_debit_is_processing_then_pays_the_invoice(
    stripe_client, stripe_app, staff, open_invoice, standin
):
    invoice_id = open_invoice(card="pm_card_visa", patient_id="P-ACH1")
    saved = save_bank_account(stripe_client, staff, standin, "P-ACH1", "000123456789")
    assert (saved["bank_name"], saved["last4"]) == ("STRIPE TEST BANK", "6789")
    assert saved["mandate"].startswith("mandate_")
    total = invoice(stripe_client, staff, invoice_id)["total"]

    made = debit(stripe_client, staff, invoice_id, "ach-1")
    assert made.status_code == 201, made.json
    assert (made.json["method"], made.json["status"], made.json["source"]) == (
        "bank_debit",
        "processing",
        "us_bank_account",
    )
    shown = invoice(stripe_client, staff, invoice_id)
    assert (shown["status"], shown["amount_processing"], shown["balance_due"]) == (
        "processing",
        total,
        total,
    )
    # Nothing else collects it while the bank is deciding: not the card, not another debit.
    assert charge_card_on_file(stripe_client, staff, invoice_id, "card").status_code == 409
    again = debit(stripe_client, staff, invoice_id, "ach-2")
    assert (again.status_code, again.json["code"]) == (409, "payment_in_progress")
    assert debit(stripe_client, staff, invoice_id, "ach-1").json["id"] == made.json["id"]

    paid = eventually(
        lambda: (found := invoice(stripe_client, staff, invoice_id))["status"] == "paid" and found
    )
    assert (paid["amount_paid"], paid["amount_processing"], paid["balance_due"]) == (total, 0, 0)
    assert payment(stripe_app, invoice_id)["status"] == "succeeded"


def test_a_failed_bank_debit_leaves_the_bill_owed_and_asks_the_patient_to_pay(
    stripe_client, stripe_app, staff, standin
):
    invoice_id = open_invoice_emailed(stripe_client, staff, "P-ACH2")
    save_bank_account(stripe_client, staff, standin, "P-ACH2", "000222222227")
    assert debit(stripe_client, staff, invoice_id, "ach").json["status"] == "processing"

    failed = eventually(
        lambda: (found := payment(stripe_app, invoice_id))["status"] == "failed" and found
    )
    assert failed["failure_code"] == "insufficient_funds"
    after = invoice(stripe_client, staff, invoice_id)
    assert (after["status"], after["amount_paid"], after["amount_processing"]) == ("open", 0, 0)
    assert after["balance_due"] == after["total"]
    assert emails_of(stripe_app, invoice_id) == ["bank_debit_failed"]
    actions, sent = told(stripe_app, failed["id"])
    assert {"payment.processing", "payment.failed"} <= actions
    assert {"payment.processing", "payment.failed"} <= sent


def test_a_bank_debit_that_comes_back_after_it_succeeded_is_owed_again(
    stripe_client, stripe_app, staff, standin
):
    invoice_id = open_invoice_emailed(stripe_client, staff, "P-ACH3")
    save_bank_account(stripe_client, staff, standin, "P-ACH3", "000555555559")
    assert debit(stripe_client, staff, invoice_id, "ach").status_code == 201
    total = invoice(stripe_client, staff, invoice_id)["total"]
    # Paid, then returned half a second later: the audit trail keeps the success, which a
    # poll of the invoice's status can miss on a loaded machine.
    returned = eventually(
        lambda: (found := payment(stripe_app, invoice_id))["status"] == "returned" and found
    )
    assert returned["failure_code"] == "bank_return"
    actions, sent = told(stripe_app, returned["id"])
    assert "payment.returned" in actions and "payment.returned" in sent
    assert "payment.succeeded" in actions and "payment.succeeded" in sent  # it was paid first
    owed = invoice(stripe_client, staff, invoice_id)
    assert (owed["status"], owed["amount_paid"], owed["balance_due"]) == ("open", 0, total)
    money = ledger_of(stripe_app, invoice_id)
    assert (money.paid, money.refunded, money.disputed) == (0, 0, 0)
    assert emails_of(stripe_app, invoice_id)[-1] == "bank_debit_returned"
    # Nothing can be refunded of money that came back.
    refund = stripe_client.post(
        f"/v1/invoices/{invoice_id}/refunds",
        headers={**staff, "Idempotency-Key": "rf"},
        json={"amount": 100, "reason": "goodwill"},
    )
    assert refund.status_code == 409

    # Finance: the return pairs with Stripe's dispute transaction, the charge with its own.
    with stripe_app.app_context():
        stripe_sync.sync(db.session(), stripe_app.extensions["billing.stripe"])
    today = datetime.now(UTC).date().isoformat()
    report = stripe_client.get(
        "/v1/reports/reconciliation", query_string={"from": today, "to": today}, headers=staff
    ).json
    mine = {
        row["kind"]: name
        for name in STATUSES
        for row in report[name]
        if row["invoice_id"] == invoice_id
    }
    assert mine == {"charge": "matched", "bank_return": "matched"}
    listed = stripe_client.get(
        "/v1/reports/refunds-disputes", query_string={"from": today, "to": today}, headers=staff
    ).json["disputes"]
    assert [(d["kind"], d["amount"]) for d in listed if d["invoice_id"] == invoice_id] == [
        ("bank_return", total)
    ]


def test_bank_debits_are_in_us_dollars_from_a_saved_account_only(
    stripe_client, staff, open_invoice, standin
):
    invoice_id = open_invoice(card=None, patient_id="P-ACH4")
    none_saved = debit(stripe_client, staff, invoice_id, "ach")
    assert (none_saved.status_code, none_saved.json["code"]) == (409, "no_bank_account")
    online = stripe_client.post(
        "/v1/patients/P-ACH4/bank-accounts",
        headers=staff,
        json={
            "payment_method": bank_payment_method(standin.url, "000123456789"),
            "mandate": {"text": "I authorize it.", "accepted": "online"},
        },
    )
    assert (online.status_code, online.json["code"]) == (422, "validation_error")
    card = stripe_client.post(
        "/v1/patients/P-ACH4/bank-accounts",
        headers=staff,
        json={"payment_method": "pm_card_visa", "mandate": MANDATE},
    )
    assert (card.status_code, card.json["code"]) == (422, "stripe_invalid_request")
    assert "does not allow" in card.json["detail"]


def test_the_stand_in_refuses_the_bank_debits_stripe_refuses(standin):
    client = stripe.StripeClient(SECRET_KEY, base_addresses={"api": standin.url})
    base: dict = {
        "amount": 5000,
        "currency": "usd",
        "payment_method": "pm_usBankAccount_success",
        "confirm": True,
        "allowed_payment_method_types": ["us_bank_account"],
    }
    accepted = {"customer_acceptance": {"type": "offline", "offline": {}}}
    refusals = {
        "no mandate": (base, "parameter_missing"),
        "euros": ({**base, "currency": "eur", "mandate_data": accepted}, None),
        "cards only": (
            {**base, "allowed_payment_method_types": ["card"], "mandate_data": accepted},
            None,
        ),
    }
    for name, (params, code) in refusals.items():
        with pytest.raises(stripe.InvalidRequestError) as refused:
            client.v1.payment_intents.create(params=params)
        assert refused.value.http_status == 400, name
        if code:
            assert refused.value.code == code
    made = client.v1.payment_intents.create(params={**base, "mandate_data": accepted})
    assert made.status == "processing"


def patient_pays_from_bank(standin, client_secret, account_number):
    """What Stripe.js does when the patient pays from a bank account on the pay page."""
    bank = {"name": "Ana Ruiz", "routing_number": "110000000", "account_number": account_number}
    body = json.dumps({"client_secret": client_secret, "bank": bank, "user_agent": "test"})
    request = urllib.request.Request(
        f"{standin.url}/_config/bridge/confirm_bank_payment", data=body.encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def test_a_pay_page_bank_payment_that_fails_days_later_emails_the_patient(
    stripe_client, stripe_app, staff, standin, monkeypatch
):
    from billing.adapters.standin import banks

    monkeypatch.setattr(banks, "BANK_SETTLES_AFTER", 2.5)  # time to look while processing
    invoice_id = open_invoice_emailed(stripe_client, staff, "P-ACH5")
    secret = open_pay_page(stripe_client, staff, invoice_id)
    assert patient_pays_from_bank(standin, secret, "000111111113")["status"] == "processing"
    processing = eventually(
        lambda: (found := payment(stripe_app, invoice_id))["status"] == "processing" and found
    )
    assert processing["source"] == "us_bank_account"  # known before the bank decides
    page = stripe_client.get(pay_link(stripe_client, staff, invoice_id))
    assert b"Bank payment in progress" in page.data and b"payment-form" not in page.data

    failed = eventually(
        lambda: (found := payment(stripe_app, invoice_id))["status"] == "failed" and found
    )
    assert failed["failure_code"] == "account_closed"
    assert invoice(stripe_client, staff, invoice_id)["status"] == "open"
    assert emails_of(stripe_app, invoice_id) == ["bank_debit_failed"]
    # The page takes a payment again: the same PaymentIntent, another way to pay; the
    # receipt then names the card, not the bank account that failed.
    page = stripe_client.get(pay_link(stripe_client, staff, invoice_id))
    assert b"payment-form" in page.data
    assert patient_confirms(standin, secret)["status"] == "succeeded"
    paid = eventually(
        lambda: (found := payment(stripe_app, invoice_id))["status"] == "succeeded" and found
    )
    assert paid["source"] == "card"
    receipt = stripe_client.get(pay_link(stripe_client, staff, invoice_id) + "/receipt")
    assert b"Visa ending 4242" in receipt.data and b"Bank account" not in receipt.data


def test_credit_made_of_a_bank_debit_that_comes_back_is_taken_back(
    stripe_client, stripe_app, staff, standin, monkeypatch
):
    from billing.adapters.standin import banks

    monkeypatch.setattr(banks, "BANK_RETURNS_AFTER", 3.0)  # time for a credit note first
    invoice_id = open_invoice_emailed(stripe_client, staff, "P-ACH6")
    save_bank_account(stripe_client, staff, standin, "P-ACH6", "000555555559")
    assert debit(stripe_client, staff, invoice_id, "ach").status_code == 201
    eventually(lambda: invoice(stripe_client, staff, invoice_id)["status"] == "paid")
    note = stripe_client.post(
        f"/v1/invoices/{invoice_id}/credit-notes",
        headers={**staff, "Idempotency-Key": "cn"},
        json={"amount": 10000, "reason": "session shortened", "approved_by": "Dr. Rivera"},
    )
    assert note.status_code == 201, note.json
    account = stripe_client.get("/v1/patients/P-ACH6/account", headers=staff).json
    assert account["balances"][0]["credit"] == 10000  # paid beyond what it now owes

    eventually(lambda: payment(stripe_app, invoice_id)["status"] == "returned", timeout=15)
    owed = invoice(stripe_client, staff, invoice_id)
    assert (owed["amount_paid"], owed["balance_due"]) == (0, owed["total"] - 10000)
    account = stripe_client.get("/v1/patients/P-ACH6/account", headers=staff).json
    assert account["balances"][0]["credit"] == 0  # never spent on the next bill


def test_a_return_heard_before_the_debit_succeeded_waits_for_it(
    stripe_client, stripe_app, staff, standin
):
    invoice_id = open_invoice_emailed(stripe_client, staff, "P-ACH7")
    save_bank_account(stripe_client, staff, standin, "P-ACH7", "000123456789")
    made = debit(stripe_client, staff, invoice_id, "ach").json
    with stripe_app.app_context():
        intent_id = db.session().get(Payment, made["id"]).stripe_payment_intent_id
    early = dispute_object(stripe_id("du"), stripe_id("ch"), intent_id)
    assert deliver(stripe_client, make_event("charge.dispute.created", early)).status_code == 200
    assert payment(stripe_app, invoice_id)["status"] == "processing"  # not returned yet

    returned = eventually(
        lambda: (found := payment(stripe_app, invoice_id))["status"] == "returned" and found
    )
    assert returned["failure_code"] == "bank_return"
    owed = invoice(stripe_client, staff, invoice_id)
    assert (owed["status"], owed["amount_paid"], owed["balance_due"]) == ("open", 0, owed["total"])
    money = ledger_of(stripe_app, invoice_id)
    assert money.returned == owed["total"]


def test_a_removed_bank_account_is_never_debited(stripe_client, staff, standin):
    invoice_id = open_invoice_emailed(stripe_client, staff, "P-ACH8")
    saved = save_bank_account(stripe_client, staff, standin, "P-ACH8", "000123456789")
    removed = stripe_client.delete(
        f"/v1/patients/P-ACH8/payment-methods/{saved['id']}", headers=staff
    )
    assert removed.status_code == 204
    refused = debit(stripe_client, staff, invoice_id, "ach")
    assert (refused.status_code, refused.json["code"]) == (409, "no_bank_account")
