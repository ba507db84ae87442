"""Helpers of the payment plan tests: a plan on an open invoice, the scheduler run at a
moment of the clinic's clock, and what Stripe was asked."""

from __future__ import annotations

import threading
import urllib.parse
import urllib.request
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import time_machine
from flask import Flask
from sqlalchemy import select

from billing.adapters import db
from billing.adapters.outbox import EmailMessage, Event
from billing.adapters.schedule_models import ScheduledCharge
from tests.fixtures_stripe import SECRET_KEY, RecordingProxy


def card_of(client: Any, staff: dict[str, str], patient_id: str) -> str:
    cards = client.get(f"/v1/patients/{patient_id}/payment-methods", headers=staff).json
    return str(cards["data"][0]["id"])


def make_plan(client: Any, staff: dict[str, str], invoice_id: str, **body: Any) -> dict[str, Any]:
    patient_id = client.get(f"/v1/invoices/{invoice_id}", headers=staff).json["patient_id"]
    body.setdefault("payment_method", card_of(client, staff, patient_id))
    response = client.post(f"/v1/invoices/{invoice_id}/plan", headers=staff, json=body)
    assert response.status_code == 201, response.json
    return dict(response.json)


def run_at(app: Flask, moment: datetime) -> str:
    """`flask --app billing schedule run` with the clock at `moment` (and moving on)."""
    with time_machine.travel(moment, tick=True):
        result = app.test_cli_runner().invoke(args=["schedule", "run"])
    assert result.exit_code == 0, result.output
    return str(result.output)


def charged_on_each_day(
    app: Flask, proxy: RecordingProxy, zone: str, days: list[str], again: bool = False
) -> None:
    """Runs the scheduler on each day (`YYYY-MM-DD`) just before 9:00 of the clinic's clock
    (nothing more is charged) and just after it (one more charge); with `again`, a second
    run a minute later charges nothing more either."""
    for number, day in enumerate(days, start=1):
        year, month, dom = (int(part) for part in day.split("-"))
        run_at(app, local(zone, year, month, dom, 8, 59))  # not yet its hour
        assert len(charges_sent(proxy)) == number - 1, day
        run_at(app, local(zone, year, month, dom, 9, 0, 30))
        if again:
            run_at(app, local(zone, year, month, dom, 9, 1, 30))
        assert len(charges_sent(proxy)) == number, day


def local(zone: str, *parts: int) -> datetime:
    return datetime(*parts, tzinfo=ZoneInfo(zone))  # type: ignore[misc]


def plan_of(client: Any, staff: dict[str, str], invoice_id: str) -> dict[str, Any]:
    return dict(client.get(f"/v1/invoices/{invoice_id}", headers=staff).json["plan"])


def charges_sent(proxy: RecordingProxy) -> list[str]:
    """The idempotency key of each PaymentIntent the app asked Stripe to create."""
    return [str(call.idempotency_key) for call in proxy.calls("POST", "/v1/payment_intents")]


def decline(standin_url: str, payment_method: str, code: str) -> None:
    """The saved card declines its next charges with `code` ("" to let it pay again)."""
    request = urllib.request.Request(
        f"{standin_url}/_config/cards/{payment_method}/decline",
        data=urllib.parse.urlencode({"decline_code": code}).encode(),
        headers={"Authorization": f"Bearer {SECRET_KEY}"},
    )
    urllib.request.urlopen(request, timeout=5).close()


def items(app: Flask, invoice_id: str) -> list[ScheduledCharge]:
    with app.app_context():
        session = db.session()
        found = list(
            session.scalars(
                select(ScheduledCharge)
                .where(ScheduledCharge.invoice_id == invoice_id)
                .order_by(ScheduledCharge.created_at, ScheduledCharge.number)
            )
        )
        session.expunge_all()
        return found


def event_types(app: Flask, prefix: str) -> list[str]:
    with app.app_context():
        return [
            str(t)
            for t in db.session().scalars(
                select(Event.type).where(Event.type.like(f"{prefix}%")).order_by(Event.id)
            )
        ]


def emails_of(app: Flask, invoice_id: str) -> list[str]:
    with app.app_context():
        return [
            str(m.kind)
            for m in db.session().scalars(
                select(EmailMessage)
                .where(EmailMessage.invoice_id == invoice_id)
                .order_by(EmailMessage.created_at)
            )
        ]


class Died(BaseException):
    """The runner's process ended here."""


def dies_once(monkeypatch, owner, name):
    """`owner.name` raises Died instead of running, on its first call from this thread;
    other threads (the webhook's) are left alone."""
    original = getattr(owner, name)
    state = {"died": False, "thread": threading.get_ident()}

    def wrapped(*args, **kwargs):
        if not state["died"] and threading.get_ident() == state["thread"]:
            state["died"] = True
            raise Died(name)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapped)
