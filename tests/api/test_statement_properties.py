"""For any sequence of what the desk does with a patient's bills (new bills, cash in part
or in full, credit notes, write-offs, cancelled bills, goodwill credit, credit applied to
open bills by the minute job), the portal's statement over all time closes at the
account's balance (what the bills still owe, less the credit), and each of its rows'
balances is the one before plus the row's amount. A period's statement starts from the
balance of the days before it."""

from __future__ import annotations

import io
import itertools
import os
import re
from typing import Any

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pypdf import PdfReader

from billing.adapters import db
from billing.services.payments import received
from tests.conftest import _empty_tables, in_days
from tests.stripe.test_portal_statements import cents, closing_of, portal_client

EXAMPLES = itertools.count()  # each example its own address


@pytest.fixture
def app_settings() -> dict[str, object]:
    """Dozens of sign-ins from one test client: no rate limits here (they have tests of
    their own)."""
    return {"RATELIMIT_ENABLED": False}


MONEY = re.compile(r"-?\$[\d,]+\.\d\d")
steps = st.lists(
    st.tuples(
        st.sampled_from(["bill", "cash", "note", "write_off", "void", "goodwill", "apply"]),
        st.integers(0, 7),  # which bill
        st.integers(1, 100),  # how much, in per cent of what it could be
    ),
    min_size=1,
    max_size=9,
)


def _rows_add_up(text: str) -> None:
    lines = text.splitlines()
    opening = next(line for line in lines if "Opening balance" in line)
    balance = cents(MONEY.findall(opening)[-1])
    for line in lines:
        found = MONEY.findall(line)
        if len(found) == 2 and "Opening" not in line:
            balance += cents(found[0])
            assert cents(found[1]) == balance, line
    assert closing_of(text) == balance


@settings(
    max_examples=int(os.environ.get("STATEMENT_EXAMPLES", "12")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(steps=steps)
def test_any_sequence_closes_the_statement_at_the_accounts_balance(
    app: Flask, make_key: Any, steps: list[tuple[str, int, int]]
) -> None:
    from billing.services.pricing import catalog

    _empty_tables(app)
    with app.app_context():
        catalog.seed_default(db.session())
    desk = make_key(
        "quotes:write", "invoices:read", "invoices:write", "invoices:adjust", "payments:record"
    )
    client = app.test_client()
    email = f"prop{next(EXAMPLES)}@example.org"
    bills: list[str] = []
    keys = itertools.count()

    def new_bill() -> None:
        number = next(keys)
        quote = client.post(
            "/v1/quotes",
            headers=desk,
            json={
                "booking_id": f"BK-P{number}",
                "session_type": "iv_individual",
                "scheduled_at": in_days(3 + number),
                "currency": "usd",
                "patients": [{"patient_id": "P-PROP", "name": "Pat Prop", "email": email}],
            },
        )
        assert quote.status_code == 201, quote.json
        made = client.post("/v1/invoices", headers=desk, json={"quote_id": quote.json["id"]})
        assert made.status_code == 201, made.json
        bills.append(made.json["data"][0]["id"])

    new_bill()  # the patient has a bill: their address reaches them
    for action, which, share in steps:
        if action == "bill":
            new_bill()
            continue
        if action == "apply":
            with app.app_context():
                received.apply_all_credit(db.session())
            continue
        if action == "goodwill":
            client.post(
                "/v1/patients/P-PROP/account/credits",
                headers={**desk, "Idempotency-Key": f"gw-{next(keys)}"},
                json={
                    "amount": 100 * share,
                    "currency": "usd",
                    "reason": "late",
                    "approved_by": "M",
                },
            )
            continue
        invoice = client.get(f"/v1/invoices/{bills[which % len(bills)]}", headers=desk).json
        key = {"Idempotency-Key": f"{action}-{next(keys)}"}
        if action == "cash" and invoice["balance_due"] > 0:
            amount = max(1, invoice["balance_due"] * share // 100)
            client.post(
                f"/v1/invoices/{invoice['id']}/payments",
                headers={**desk, **key},
                json={"method": "cash", "amount": amount},
            )
        elif action == "note" and invoice["status"] != "void":
            owed = invoice["total"] - invoice["amount_credited"] - invoice["amount_written_off"]
            if owed > 0:
                client.post(
                    f"/v1/invoices/{invoice['id']}/credit-notes",
                    headers={**desk, **key},
                    json={"amount": max(1, owed * share // 100), "reason": "r", "approved_by": "M"},
                )
        elif action == "write_off" and invoice["balance_due"] > 0:
            client.post(
                f"/v1/invoices/{invoice['id']}/write-offs",
                headers={**desk, **key},
                json={"reason": "r", "approved_by": "M", "category": "bad_debt"},
            )
        elif action == "void":
            client.post(f"/v1/invoices/{invoice['id']}/void", headers=desk)
        # Refusals (a part that would leave too little, a bill already settled) are fine:
        # whatever happened, the statement must say it.

    account = client.get("/v1/patients/P-PROP/account", headers=desk).json
    balance = sum(row["balance"] for row in account["balances"] if row["currency"] == "usd")
    if not any(
        client.get(f"/v1/invoices/{b}", headers=desk).json["status"] != "void" for b in bills
    ):
        new_bill()  # every bill cancelled: a new one keeps the address reaching them
        balance += 50000
    portal = portal_client(app, email)
    answer = portal.get("/account/statements.pdf?from=2000-01-01&to=2100-12-31")
    assert answer.status_code == 200
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(answer.data)).pages)
    _rows_add_up(text)
    assert closing_of(text) == balance, (steps, account["balances"])
