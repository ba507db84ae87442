"""A patient's statement from the portal, against the Stripe stand-in: bills paid by card
and partly refunded, cash at the desk beyond what was owed (kept as credit), a credit
note, goodwill credit. The PDF's text lists every bill and payment, its running balance
adds up row by row, and its closing balance is what the account says (what the bills
still owe, less the credit); a period shows only its rows, from the balance before it."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from pypdf import PdfReader
from sqlalchemy import select

from billing.adapters import db
from billing.adapters.portal_models import PortalSignIn
from billing.services.portal import access
from billing.web.pages.pay import signing_keys

EMAIL = "stella@example.org"
PATIENT = "P-STMT"
OUTPUT = Path(__file__).resolve().parents[2] / "test-output" / "statements"
MONEY = re.compile(r"-?\$[\d,]+\.\d\d")


def portal_client(app: Flask, email: str) -> Any:
    """A browser signed in to the portal as `email` (the link read from our own table; the
    email that carries it is tested elsewhere)."""
    client = app.test_client()
    assert client.post("/account/sign-in", data={"email": email}).status_code == 200
    with app.test_request_context():
        session = db.session()
        sign_in = session.scalars(
            select(PortalSignIn)
            .where(PortalSignIn.email == email)
            .order_by(PortalSignIn.created_at.desc())
        ).first()
        assert sign_in is not None
        token = access.token_for(session, app.config["SECRET_KEY"], sign_in.id)
        assert signing_keys()  # the app's keys sign it
    assert client.post(f"/account/sign-in/{token}").status_code == 303
    return client


def pdf_text(answer: Any) -> str:
    assert answer.status_code == 200, answer.get_data(as_text=True)[:500]
    assert answer.mimetype == "application/pdf"
    return "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(answer.data)).pages)


def cents(text: str) -> int:
    return round(float(text.replace("$", "").replace(",", "")) * 100)


def test_the_statement_lists_every_bill_and_payment_and_closes_at_the_accounts_balance(
    stripe_client: Any,
    staff: dict[str, str],
    open_invoice: Callable[..., str],
) -> None:
    app = stripe_client.application
    first = open_invoice("pm_card_visa", patient_id=PATIENT, booking_id="BK-S1", email=EMAIL)
    second = open_invoice(None, patient_id=PATIENT, booking_id="BK-S2", email=EMAIL)
    third = open_invoice(None, patient_id=PATIENT, booking_id="BK-S3", email=EMAIL)

    def post(url: str, key: str, body: dict[str, Any]) -> Any:
        answer = stripe_client.post(url, json=body, headers={**staff, "Idempotency-Key": key})
        assert answer.status_code in (200, 201), answer.json
        return answer.json

    post(f"/v1/invoices/{first}/payments", "card-1", {"method": "card_on_file"})
    post(f"/v1/invoices/{first}/refunds", "refund-1", {"amount": 10000, "reason": "shorter"})
    post(f"/v1/invoices/{second}/payments", "cash-2", {"method": "cash", "amount": 20000})
    post(
        f"/v1/invoices/{second}/credit-notes",
        "note-2",
        {"amount": 5000, "reason": "wrong rate", "approved_by": "M. Chen"},
    )
    post(f"/v1/invoices/{third}/payments", "cash-3", {"method": "cash", "amount": 50000})
    post(  # paid in full, then lowered: what was paid beyond is the patient's credit
        f"/v1/invoices/{third}/credit-notes",
        "note-3",
        {"amount": 10000, "reason": "shortened", "approved_by": "M. Chen"},
    )
    post(
        f"/v1/patients/{PATIENT}/account/credits",
        "goodwill",
        {"amount": 2500, "currency": "usd", "reason": "late start", "approved_by": "M. Chen"},
    )
    numbers = [
        stripe_client.get(f"/v1/invoices/{i}", headers=staff).json["number"]
        for i in (first, second, third)
    ]
    account = stripe_client.get(f"/v1/patients/{PATIENT}/account", headers=staff).json
    [usd] = account["balances"]

    portal = portal_client(app, EMAIL)
    year = datetime.now(UTC).year
    answer = portal.get(f"/account/statements.pdf?year={year}")
    OUTPUT.mkdir(parents=True, exist_ok=True)  # for people to look at, beside the screenshots
    (OUTPUT / f"statement-{year}.pdf").write_bytes(answer.data)
    text = pdf_text(answer)
    assert "Harbor" in text or app.config["CLINIC_NAME"] in text
    assert app.config["CLINIC_ADDRESS"] in text and app.config["CLINIC_TAX_ID"] in text
    for number in numbers:
        assert f"Invoice {number}" in text
    assert "Payment by card or bank" in text and "Payment received in cash" in text
    assert "Refunded to you" in text and "Credit note" in text
    assert "Credit from the clinic" in text
    assert "J3490" in text or any(c in text for c in app.config["BILLING_CODES"]["iv_individual"])

    # Row by row: each balance is the one before plus the row's amount.
    rows = [MONEY.findall(line) for line in text.splitlines()]
    opening = next(m for line, m in zip(text.splitlines(), rows, strict=True) if "Opening" in line)
    balance = cents(opening[-1])
    assert balance == 0
    steps = [m for line, m in zip(text.splitlines(), rows, strict=True) if len(m) == 2]
    assert len(steps) >= 9  # 3 bills, a card payment, a refund (2 rows), 2 cash, a note, goodwill
    for amount, after in steps:
        balance += cents(amount)
        assert cents(after) == balance, (amount, after)
    closing = re.search(r"Closing balance \(owed, less your credit\)\s*(-?\$[\d,.]+)", text)
    assert closing is not None
    assert cents(closing.group(1)) == balance == usd["balance"]  # what the account says
    assert usd["owed"] - usd["credit"] == usd["balance"]

    # Only a period's rows, from the balance before it: nothing happens in a past year.
    earlier = pdf_text(portal.get(f"/account/statements.pdf?year={year - 1}"))
    assert "Nothing was billed or paid in this period." in earlier
    assert not any(f"Invoice {n}" in earlier for n in numbers)


@pytest.mark.parametrize(
    "query", ["year=20x6", "from=2026-13-01", "from=2026-05-01&to=2026-04-01", "year=1999"]
)
def test_statement_dates_not_understood_are_a_clear_page_not_a_500(
    stripe_client: Any, staff: dict[str, str], open_invoice: Callable[..., str], query: str
) -> None:
    open_invoice(None, patient_id=PATIENT, booking_id="BK-S9", email=EMAIL)
    portal = portal_client(stripe_client.application, EMAIL)
    answer = portal.get(f"/account/statements.pdf?{query}")
    assert answer.status_code == 422
    assert "Give dates as YYYY-MM-DD" in answer.get_data(as_text=True) or "out of order" in (
        answer.get_data(as_text=True)
    )


def closing_of(text: str) -> int:
    found = re.search(r"Closing balance \(owed, less your credit\)\s*(-?\$[\d,.]+)", text)
    assert found is not None, text
    return cents(found.group(1))


def test_cancelled_bills_close_the_statement_at_the_accounts_balance(
    stripe_client: Any, staff: dict[str, str], open_invoice: Callable[..., str]
) -> None:
    """A bill lowered by a credit note, one paid in part by card and refunded, one paid in
    part in cash: each then cancelled. Only the cash stays, as credit (the patient's open
    bill keeps their address reaching them: a cancelled bill's address decides nothing)."""
    noted = open_invoice(None, patient_id="P-VOID", booking_id="BK-V1", email="vera@example.org")
    refunded = open_invoice(
        "pm_card_visa", patient_id="P-VOID", booking_id="BK-V2", email="vera@example.org"
    )
    cash = open_invoice(None, patient_id="P-VOID", booking_id="BK-V3", email="vera@example.org")

    def post(url: str, key: str, body: dict[str, Any]) -> None:
        answer = stripe_client.post(url, json=body, headers={**staff, "Idempotency-Key": key})
        assert answer.status_code in (200, 201), answer.json

    post(
        f"/v1/invoices/{noted}/credit-notes",
        "v-note",
        {"amount": 5000, "reason": "wrong rate", "approved_by": "M. Chen"},
    )
    post(f"/v1/invoices/{refunded}/payments", "v-card", {"method": "card_on_file", "amount": 20000})
    post(f"/v1/invoices/{refunded}/refunds", "v-refund", {"amount": 20000, "reason": "moved"})
    post(f"/v1/invoices/{cash}/payments", "v-cash", {"method": "cash", "amount": 20000})
    for invoice in (noted, refunded, cash):
        post(f"/v1/invoices/{invoice}/void", f"v-void-{invoice}", {})
    open_invoice(None, patient_id="P-VOID", booking_id="BK-V4", email="vera@example.org")
    [usd] = stripe_client.get("/v1/patients/P-VOID/account", headers=staff).json["balances"]
    assert usd["owed"] - usd["credit"] == 50000 - 20000

    portal = portal_client(stripe_client.application, "vera@example.org")
    text = pdf_text(portal.get(f"/account/statements.pdf?year={datetime.now(UTC).year}"))
    assert text.count(" cancelled") == 3
    assert closing_of(text) == usd["balance"] == 30000
