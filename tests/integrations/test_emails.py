"""Emails to patients, read from a real SMTP server's side: the pay link on request, the
reminders of open invoices, each once; text and HTML; nothing about the treatment."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from billing.adapters import db
from billing.adapters.models import Invoice, utcnow
from billing.adapters.outbox import EmailMessage as Queued
from billing.services.integrations import emails
from billing.services.integrations.settings import sending
from tests.integrations.smtp import Inbox, parts

# Nothing that says what kind of treatment it was: the session type, the drug, the route,
# the clinician, a billing code.
TREATMENT = re.compile(
    r"\b(iv|im|ketamine|infusion|intramuscular|injection|group|individual|session|"
    r"dr\.?|clinician|psychotherapy|j3490|9\d{4})\b",
    re.IGNORECASE,
)
BASE = "https://pay.example-clinic.com"


@pytest.fixture
def mailing(app: Flask, inbox: Inbox) -> Flask:
    app.config.update(SMTP_URL=inbox.url, PUBLIC_BASE_URL=BASE, CLINIC_NAME="Harbor Clinic")
    return app


def send_due(app: Flask) -> list[str]:
    """What a worker does: send every email that is owed now."""
    with app.app_context():
        session = db.session()
        return [emails.send(session, sending(app), m) for m in emails.due(session)]


def invoice_for(
    client: FlaskClient, desk: dict[str, str], booking: Callable[..., Any], email: str | None
) -> dict[str, Any]:
    patient: dict[str, Any] = {"patient_id": "P-77", "name": "Rae Kim"}
    if email:
        patient["email"] = email
    made = client.post(
        "/v1/quotes",
        json=booking(session_type="iv_individual", patients=[patient]),
        headers=desk,
    ).json
    return dict(client.post("/v1/invoices", json={"quote_id": made["id"]}, headers=desk).json)[
        "data"
    ][0]


def pay_link(client: FlaskClient, desk: dict[str, str], invoice_id: str, key: str) -> Any:
    return client.post(
        f"/v1/invoices/{invoice_id}/payments",
        json={"method": "online", "send_email": True},
        headers={**desk, "Idempotency-Key": key},
    )


def says_nothing_of_the_treatment(message: EmailMessage) -> None:
    text, html = parts(message)
    for where in (str(message["Subject"]), text, re.sub(r"<[^>]+>", " ", html)):
        assert not TREATMENT.search(where), TREATMENT.search(where)


@pytest.fixture
def desk(make_key: Callable[..., dict[str, str]]) -> dict[str, str]:
    return make_key("quotes:write", "invoices:read", "invoices:write", "payments:write")


def test_a_pay_link_asked_to_be_emailed_arrives_once_with_a_working_link(
    mailing: Flask,
    inbox: Inbox,
    desk: dict[str, str],
    booking: Callable[..., Any],
) -> None:
    client = mailing.test_client()
    invoice = invoice_for(client, desk, booking, "rae@example.org")
    answer = pay_link(client, desk, invoice["id"], "link-1")
    assert answer.status_code == 201 and answer.json["email_queued"] is True
    assert pay_link(client, desk, invoice["id"], "link-1").json["email_queued"] is True  # replay
    assert send_due(mailing) == ["sent"]
    assert send_due(mailing) == []  # once
    [message] = inbox.to("rae@example.org")
    assert message["Subject"] == f"Invoice {invoice['number']} from Harbor Clinic"
    assert message["From"] == "Harbor Clinic <billing@example-clinic.com>"
    text, html = parts(message)
    assert "$500.00" in text and invoice["number"] in text and "$500.00" in html
    link = re.search(rf"{BASE}(/pay/[^\s\"<]+)", text)
    assert link is not None and link.group(1) in html
    assert BASE + link.group(1) == answer.json["pay_url"]  # the very link the API gave
    status = client.get(f"{link.group(1)}/status").json
    assert status["invoice_status"] == "open" and status["payable"] is True
    says_nothing_of_the_treatment(message)


def test_no_address_no_email_and_the_answer_says_so(
    mailing: Flask,
    inbox: Inbox,
    desk: dict[str, str],
    booking: Callable[..., Any],
) -> None:
    client = mailing.test_client()
    invoice = invoice_for(client, desk, booking, None)
    assert pay_link(client, desk, invoice["id"], "k").json["email_queued"] is False
    assert send_due(mailing) == [] and inbox.messages == []
    card = client.post(
        f"/v1/invoices/{invoice['id']}/payments",
        json={"method": "card_on_file", "send_email": True},
        headers={**desk, "Idempotency-Key": "c"},
    )
    assert card.status_code == 422 and "send_email" in card.json["errors"]


def age(app: Flask, invoice_id: str, days: float) -> None:
    with app.app_context():
        db.session().execute(
            update(Invoice)
            .where(Invoice.id == invoice_id)
            .values(created_at=utcnow() - timedelta(days=days))
        )
        db.session().commit()


def remind(app: Flask) -> int:
    with app.app_context():
        return emails.queue_reminders(db.session(), app.config["REMINDER_DAYS"])


def test_open_invoices_are_reminded_after_3_7_and_14_days_once_each(
    mailing: Flask,
    inbox: Inbox,
    desk: dict[str, str],
    booking: Callable[..., Any],
) -> None:
    client = mailing.test_client()
    invoice = invoice_for(client, desk, booking, "rae@example.org")
    assert remind(mailing) == 0  # a day old: nothing yet
    for days, expected in ((3.1, 1), (3.5, 0), (7.2, 1), (15, 1), (30, 0)):
        age(mailing, invoice["id"], days)
        assert remind(mailing) == expected, days
        send_due(mailing)
    reminders = inbox.to("rae@example.org")
    assert len(reminders) == 3
    assert all(
        m["Subject"] == f"Reminder: invoice {invoice['number']} from Harbor Clinic"
        for m in reminders
    )
    for message in reminders:
        says_nothing_of_the_treatment(message)


def test_an_invoice_opened_long_ago_gets_its_latest_reminder_only(
    mailing: Flask,
    inbox: Inbox,
    desk: dict[str, str],
    booking: Callable[..., Any],
) -> None:
    client = mailing.test_client()
    invoice = invoice_for(client, desk, booking, "rae@example.org")
    age(mailing, invoice["id"], 20)
    assert remind(mailing) == 1
    with mailing.app_context():
        keys = db.session().scalars(select(Queued.dedupe_key)).all()
    assert keys == [f"reminder:{invoice['id']}:14"]


def test_no_reminder_once_paid_or_void_even_if_it_was_already_decided(
    mailing: Flask,
    inbox: Inbox,
    desk: dict[str, str],
    booking: Callable[..., Any],
) -> None:
    client = mailing.test_client()
    invoice = invoice_for(client, desk, booking, "rae@example.org")
    age(mailing, invoice["id"], 4)
    assert remind(mailing) == 1
    client.post(f"/v1/invoices/{invoice['id']}/void", headers=desk)  # before it went out
    assert send_due(mailing) == ["skipped"]
    assert inbox.messages == []
    age(mailing, invoice["id"], 8)
    assert remind(mailing) == 0  # void: no more


def test_a_mail_server_that_refuses_for_a_while_gets_the_email_once_later(
    mailing: Flask,
    inbox: Inbox,
    desk: dict[str, str],
    booking: Callable[..., Any],
) -> None:
    client = mailing.test_client()
    invoice = invoice_for(client, desk, booking, "rae@example.org")
    inbox.refuse = 1
    pay_link(client, desk, invoice["id"], "k")
    assert send_due(mailing) == ["pending"]
    with mailing.app_context():
        [queued] = db.session().scalars(select(Queued)).all()
        assert "451" in str(queued.last_error)
        db.session().execute(update(Queued).values(next_attempt_at=utcnow()))  # its retry is due
        db.session().commit()
    assert send_due(mailing) == ["sent"]
    assert len(inbox.messages) == 1


def test_without_a_mail_server_each_email_is_a_file_and_the_log_says_where(
    app: Flask,
    tmp_path: Path,
    desk: dict[str, str],
    booking: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    app.config.update(SMTP_URL="", MAIL_DIR=str(tmp_path / "mail"), PUBLIC_BASE_URL=BASE)
    client = app.test_client()
    invoice = invoice_for(client, desk, booking, "rae@example.org")
    pay_link(client, desk, invoice["id"], "k")
    with caplog.at_level(logging.INFO, logger="billing.mail"):
        assert send_due(app) == ["sent"]
    [written] = list((tmp_path / "mail").glob("*.eml"))
    assert str(written) in caplog.text
    assert "rae@example.org" not in caplog.text  # no addresses in the log
    assert invoice["number"] in written.read_text()


def test_a_partly_paid_invoice_is_reminded_of_what_is_still_owed(
    mailing: Flask,
    inbox: Inbox,
    make_key: Callable[..., dict[str, str]],
    desk: dict[str, str],
    booking: Callable[..., Any],
) -> None:
    client = mailing.test_client()
    invoice = invoice_for(client, desk, booking, "rae@example.org")
    cash = client.post(
        f"/v1/invoices/{invoice['id']}/payments",
        json={"method": "cash", "amount": 20000},
        headers={**make_key("payments:record"), "Idempotency-Key": "cash"},
    )
    assert cash.status_code == 201 and cash.json["invoice_status"] == "partially_paid"
    age(mailing, invoice["id"], 3.1)
    assert remind(mailing) == 1
    send_due(mailing)
    [message] = inbox.to("rae@example.org")
    text, html = parts(message)
    assert "$300.00" in text and "$300.00" in html and "$500.00" not in text
