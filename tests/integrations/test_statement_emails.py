"""Monthly statement emails, read from a real SMTP server's side: one per address and
month whatever runs it and how often, only to addresses that owe something, nothing about
treatment, a link to the portal, and an unsubscribe that holds."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from billing.services.portal import statement_emails
from tests.integrations.smtp import Inbox, parts
from tests.integrations.test_emails import BASE, TREATMENT, send_due
from tests.integrations.test_portal import bill


@pytest.fixture
def mailing(app: Flask, inbox: Inbox) -> Flask:
    app.config.update(SMTP_URL=inbox.url, PUBLIC_BASE_URL=BASE, CLINIC_NAME="Harbor Clinic")
    return app


@pytest.fixture
def desk(make_key: Callable[..., dict[str, str]]) -> dict[str, str]:
    return make_key(
        "quotes:write", "invoices:read", "invoices:write", "invoices:adjust", "payments:record"
    )


def run(app: Flask, month: str) -> str:
    result = app.test_cli_runner().invoke(args=["statements", "send", "--month", month])
    assert result.exit_code == 0, result.output
    return str(result.output)


def test_one_statement_email_per_owing_address_and_month_and_unsubscribe_holds(
    mailing: Flask, inbox: Inbox, desk: dict[str, str], booking: Callable[..., Any]
) -> None:
    client = mailing.test_client()
    bill(client, desk, booking, "P-M1", "mona@example.org", "BK-M1", name="Mona Li")
    bill(client, desk, booking, "P-M2", "mona@example.org", "BK-M2", name="Kit Li")  # her son
    paid = bill(client, desk, booking, "P-Q1", "quinn@example.org", "BK-Q1", name="Quinn Roy")
    received = client.post(
        f"/v1/invoices/{paid['id']}/payments",
        json={"method": "cash"},
        headers={**desk, "Idempotency-Key": "quinn-cash"},
    )
    assert received.status_code == 201, received.json

    assert run(mailing, "2026-11") == "1 statement emails queued for November 2026\n"
    assert run(mailing, "2026-11") == "0 statement emails queued for November 2026\n"  # once
    send_due(mailing)
    statements = [m for m in inbox.messages if str(m["Subject"]).startswith("Your statement")]
    assert [m["To"] for m in statements] == ["mona@example.org"]  # Quinn owes nothing
    [message] = statements  # one for the family's two patients
    assert message["Subject"] == "Your statement for November 2026 from Harbor Clinic"
    text, html = parts(message)
    assert "Balance due: $1,000.00" in text  # in all: no single service's amount
    assert f"{BASE}/account" in text and f"{BASE}/account" in html
    for where in (str(message["Subject"]), text, re.sub(r"<[^>]+>", " ", html)):
        assert not TREATMENT.search(where), TREATMENT.search(where)
    unsubscribe = message["List-Unsubscribe"].strip("<>")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert unsubscribe in text

    path = unsubscribe.removeprefix(BASE)
    assert "Stop statement emails" in client.get(path).get_data(as_text=True)
    assert client.get(path[:-3] + "abc").status_code == 404  # not ours
    done = client.post(path)  # as a mail app does it: one click
    assert done.status_code == 200 and "Unsubscribed" in done.get_data(as_text=True)
    assert run(mailing, "2026-12") == "0 statement emails queued for December 2026\n"


def test_a_balance_paid_before_the_email_goes_sends_nothing(
    mailing: Flask, inbox: Inbox, desk: dict[str, str], booking: Callable[..., Any]
) -> None:
    client = mailing.test_client()
    invoice = bill(client, desk, booking, "P-R1", "rui@example.org", "BK-R1")
    assert run(mailing, "2026-10").startswith("1 ")
    client.post(
        f"/v1/invoices/{invoice['id']}/payments",
        json={"method": "cash"},
        headers={**desk, "Idempotency-Key": "rui-cash"},
    )
    send_due(mailing)
    assert [m["Subject"] for m in inbox.to("rui@example.org")] == [
        f"Receipt for invoice {invoice['number']} from Harbor Clinic"
    ]  # the receipt of the cash, no statement


def test_the_scheduler_covers_the_month_before_the_clinics_today() -> None:
    from datetime import date

    assert statement_emails.month_before(date(2027, 1, 1)) == date(2026, 12, 1)
    assert statement_emails.month_before(date(2026, 3, 31)) == date(2026, 2, 1)


def test_each_patient_nets_their_own_credit_and_off_sends_none(
    mailing: Flask, inbox: Inbox, desk: dict[str, str], booking: Callable[..., Any]
) -> None:
    """A family: one child owes $500, the other holds $100 of credit (a credit note on a
    paid bill). The statement says $500: a sibling's credit does not pay it. With
    STATEMENT_EMAILS off, neither the command nor an email queued before sends one."""
    client = mailing.test_client()
    bill(client, desk, booking, "P-F1", "fam@example.org", "BK-F1", name="Ada Fox")
    paid = bill(client, desk, booking, "P-F2", "fam@example.org", "BK-F2", name="Ben Fox")
    for url, key, body in (
        (f"/v1/invoices/{paid['id']}/payments", "fam-cash", {"method": "cash"}),
        (
            f"/v1/invoices/{paid['id']}/credit-notes",
            "fam-note",
            {"amount": 10000, "reason": "shortened", "approved_by": "M. Chen"},
        ),
    ):
        answer = client.post(url, json=body, headers={**desk, "Idempotency-Key": key})
        assert answer.status_code == 201, answer.json
    assert run(mailing, "2026-09").startswith("1 ")
    mailing.config["STATEMENT_EMAILS"] = "off"
    send_due(mailing)
    assert not [m for m in inbox.to("fam@example.org") if "statement" in str(m["Subject"])]
    refused = mailing.test_cli_runner().invoke(args=["statements", "send", "--month", "2026-08"])
    assert refused.exit_code != 0 and "STATEMENT_EMAILS is off" in refused.output
    mailing.config["STATEMENT_EMAILS"] = "on"
    assert run(mailing, "2026-08").startswith("1 ")
    send_due(mailing)
    [statement] = [m for m in inbox.to("fam@example.org") if "statement" in str(m["Subject"])]
    text, _ = parts(statement)
    assert "Balance due: $500.00." in text
