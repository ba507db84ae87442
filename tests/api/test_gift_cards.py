"""Gift cards, on SQLite and PostgreSQL: sold as an invoice with the code shown once, usable
once paid, spent on any invoice by code (of two uses of its last $50 at once, one
succeeds), expired and used cards refused, and where they show in the journal."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import update

from billing.adapters import db
from billing.adapters.account_models import GiftCard


@pytest.fixture
def desk(make_key) -> dict[str, str]:
    return make_key("quotes:write", "invoices:write", "invoices:read", "payments:record")


def bill(client, desk, booking, patient: str) -> dict[str, Any]:
    """A $500.00 individual IV invoice for `patient`."""
    made = client.post(
        "/v1/quotes",
        json=booking(
            session_type="iv_individual",
            booking_id=f"BK-{patient}",
            patients=[{"patient_id": patient, "name": "Lee Park", "prior_iv_sessions": 1}],
        ),
        headers=desk,
    )
    assert made.status_code == 201, made.json
    invoiced = client.post("/v1/invoices", json={"quote_id": made.json["id"]}, headers=desk)
    return dict(invoiced.json["data"][0])


def sell(client, desk, key: str, amount: int = 10000, **extra: Any) -> Any:
    body = {
        "amount": amount,
        "currency": "usd",
        "purchaser_patient_id": "P-8501",
        "name": "Noor Haddad",
        "email": "noor@example.org",
        **extra,
    }
    return client.post("/v1/gift-cards", json=body, headers={**desk, "Idempotency-Key": key})


def pay(client, desk, invoice_id: str, key: str, **body: Any) -> Any:
    return client.post(
        f"/v1/invoices/{invoice_id}/payments", json=body, headers={**desk, "Idempotency-Key": key}
    )


def card_of(client, desk, code: str) -> dict[str, Any]:
    found = client.get(f"/v1/gift-cards/{code}", headers=desk)
    assert found.status_code == 200, found.json
    return dict(found.json)


def paid_card(client, desk, key: str, amount: int = 10000) -> str:
    """A gift card sold and paid for in cash; its code."""
    sold = sell(client, desk, key, amount)
    assert sold.status_code == 201, sold.json
    assert (
        pay(client, desk, sold.json["invoice_id"], f"{key}-cash", method="cash").status_code == 201
    )
    return str(sold.json["code"])


def test_a_gift_card_is_sold_paid_for_and_spent_on_someone_elses_bill(
    client, desk, booking, make_key
) -> None:
    sold = sell(client, desk, "g1")
    assert sold.status_code == 201, sold.json
    code = sold.json["code"]
    assert code.startswith("GC-") and len(code) == 17 and sold.json["last4"] == code[-4:]
    assert (sold.json["status"], sold.json["balance"], sold.json["invoice"]["kind"]) == (
        "awaiting_payment",
        10000,
        "gift_card",
    )
    # The code is shown once: a replay of the sale answers without it.
    assert sell(client, desk, "g1").json["code"] is None

    patient_bill = bill(client, desk, booking, "P-8502")
    early = pay(client, desk, patient_bill["id"], "p0", method="gift_card", code=code)
    assert (early.status_code, early.json["code"]) == (409, "gift_card_not_paid")

    assert pay(client, desk, sold.json["invoice_id"], "p1", method="cash").status_code == 201
    assert card_of(client, desk, code)["status"] == "active"

    typed = " " + code.lower().replace("-", " ") + " "  # as a person might type it
    used = pay(client, desk, patient_bill["id"], "p2", method="gift_card", code=typed)
    assert used.status_code == 201, used.json
    assert (used.json["amount"], used.json["invoice_status"]) == (10000, "partially_paid")
    assert card_of(client, desk, code)["balance"] == 0
    assert card_of(client, desk, code)["status"] == "used"
    again = pay(client, desk, patient_bill["id"], "p3", method="gift_card", code=code)
    assert (again.status_code, again.json["code"]) == (409, "gift_card_used")
    unknown = pay(
        client, desk, patient_bill["id"], "p4", method="gift_card", code="GC-XXXX-XXXX-XXXX"
    )
    assert (unknown.status_code, unknown.json["code"]) == (404, "gift_card_not_found")
    no_code = pay(client, desk, patient_bill["id"], "p5", method="gift_card")
    assert (no_code.status_code, no_code.json["code"]) == (422, "code_required")
    assert client.get("/v1/gift-cards/GC-XXXX-XXXX-XXXX", headers=desk).status_code == 404

    # The sale is a liability until spent; spending it earns the session's revenue.
    month = datetime.now(UTC).strftime("%Y-%m")
    journal = client.get(
        "/v1/reports/journal", query_string={"month": month}, headers=make_key("reports:read")
    ).json
    lines = [line for entry in journal["journals"] for line in entry["lines"]]
    liability = [
        (line["debit"], line["credit"], line["description"])
        for line in lines
        if line["account_name"] == "Gift Card Liability"
    ]
    assert sorted(liability) == [
        (0, 10000, "Gift card sales, received (cash)"),
        (10000, 0, "Individual IV sessions, paid by gift card"),
    ]


def test_a_gift_card_cannot_buy_a_gift_card_and_an_expired_one_is_refused(
    app: Flask, client, desk, booking, make_key
) -> None:
    code = paid_card(client, desk, "g2")
    other = sell(client, desk, "g3")
    adjuster = make_key("invoices:adjust")
    note = client.post(
        f"/v1/invoices/{other.json['invoice_id']}/credit-notes",
        json={"amount": 10000, "reason": "free", "approved_by": "x"},
        headers={**adjuster, "Idempotency-Key": "cn"},
    )
    assert (note.status_code, note.json["code"]) == (409, "invoice_not_adjustable")
    refused = pay(client, desk, other.json["invoice_id"], "p1", method="gift_card", code=code)
    assert (refused.status_code, refused.json["code"]) == (409, "gift_card_not_applicable")
    past = sell(client, desk, "g4", expires_at=(datetime.now(UTC) - timedelta(days=1)).isoformat())
    assert (past.status_code, past.json["code"]) == (422, "expires_in_past")

    with app.app_context():  # a year on: the card's date has passed
        session = db.session()
        session.execute(update(GiftCard).values(expires_at=datetime.now(UTC) - timedelta(days=1)))
        session.commit()
    patient_bill = bill(client, desk, booking, "P-8503")
    late = pay(client, desk, patient_bill["id"], "p2", method="gift_card", code=code)
    assert (late.status_code, late.json["code"]) == (409, "gift_card_expired")
    assert card_of(client, desk, code)["status"] == "expired"


def test_uses_of_a_cards_last_50_dollars_at_once_give_one_success(
    app: Flask, client, desk, booking
) -> None:
    code = paid_card(client, desk, "g5", amount=5000)
    bills = [bill(client, desk, booking, f"P-86{n:02d}") for n in range(5)]
    barrier = threading.Barrier(len(bills))
    answers: list[Any] = []

    def use(invoice_id: str) -> None:
        local = app.test_client()
        barrier.wait()
        body = {"method": "gift_card", "code": code, "amount": 5000}
        answers.append(pay(local, desk, invoice_id, f"race-{invoice_id}", **body))

    threads = [threading.Thread(target=use, args=(b["id"],)) for b in bills]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    codes = sorted((a.status_code, a.json.get("code")) for a in answers)
    assert codes[0] == (201, None) and {c for c in codes[1:]} <= {
        (409, "gift_card_used"),
        (409, "payment_in_progress"),
    }, codes
    assert card_of(client, desk, code)["balance"] == 0
    paid = [client.get(f"/v1/invoices/{b['id']}", headers=desk).json["amount_paid"] for b in bills]
    assert sorted(paid) == [0, 0, 0, 0, 5000]


def test_what_a_gift_card_paid_on_a_cancelled_bill_becomes_the_patients_credit(
    client, desk, booking
) -> None:
    code = paid_card(client, desk, "g6")
    patient_bill = bill(client, desk, booking, "P-8701")
    used = pay(client, desk, patient_bill["id"], "p1", method="gift_card", code=code)
    assert used.status_code == 201, used.json
    voided = client.post(f"/v1/invoices/{patient_bill['id']}/void", headers=desk)
    assert voided.status_code == 200, voided.json
    assert voided.json["status"] == "void"
    account = client.get("/v1/patients/P-8701/account", headers=desk).json
    assert account["balances"] == [
        {"currency": "usd", "owed": 0, "credit": 10000, "balance": -10000}
    ]
    assert [m["kind"] for m in account["movements"]] == ["overpayment"]
