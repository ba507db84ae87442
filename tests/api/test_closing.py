"""Closing a month (POST /v1/closed-months, scope books:close, or the dashboard's button):
its journal never changes afterwards, and what arrives late for it lands in the first open
month; closing is idempotent, in the audit trail, and months with money close in order.

The books are test_journal's October 2026, in Los Angeles."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime

import psycopg
import pytest
from flask import Flask

from tests.api.test_journal import ACCOUNTS, LA, journal, plant_october
from tests.api.test_reconciliation import add_ledger, add_stripe, at, finance_dashboard

HTTPS = {"base_url": "https://localhost"}
# Whatever the machine's clock says, the service's clock here is mid-January 2027.
NOW = "2027-01-15T12:00:00+00:00"
LAYOUTS = ("json", "xero", "quickbooks")


@pytest.fixture
def app_settings() -> dict[str, object]:
    return {"CLINIC_TIMEZONE": LA, "JOURNAL_ACCOUNTS": ACCOUNTS}


@pytest.fixture
def finance(make_key) -> dict[str, str]:
    return make_key("reports:read", "books:close", name="finance")


@pytest.fixture
def clock(monkeypatch) -> Callable[[str], None]:
    """Sets the moment closing takes for now (it refuses a month that is not over)."""

    def set_to(moment: str) -> None:
        monkeypatch.setattr("billing.services.finance.journal.utcnow", lambda: at(moment))

    set_to(NOW)
    return set_to


@pytest.fixture
def books(app: Flask, client, make_key) -> dict[str, dict]:
    return plant_october(app, client, make_key)


def close(client, headers, month: str):
    return client.post("/v1/closed-months", json={"month": month}, headers=headers)


def every_layout(client, headers, month: str) -> dict[str, bytes]:
    """The month's journal as JSON and as both CSVs, byte for byte."""
    return {layout: journal(client, headers, month, format=layout).get_data() for layout in LAYOUTS}


def lines_described(client, headers, month: str, text: str) -> list[tuple[str, int]]:
    """(date, amount) of the month's debit lines whose description holds `text`."""
    return [
        (entry["date"], line["debit"])
        for entry in journal(client, headers, month).json["journals"]
        for line in entry["lines"]
        if text in line["description"] and line["debit"]
    ]


def arrive_late(app: Flask, invoice: dict, tag: str, refund_at: str) -> None:
    """A refund (ledger and Stripe), a dispute with Stripe's fee, and a Stripe fee of its
    own, all dated in October, recorded now."""
    add_ledger(app, invoice, "refund", 5000, f"re_{tag}", refund_at)
    add_stripe(
        app, f"txn_re_{tag}", type="refund", source=f"re_{tag}", amount=-5000, created=refund_at
    )
    add_ledger(app, invoice, "dispute", 7000, f"dp_{tag}", "2026-10-25T10:00:00-07:00")
    add_stripe(
        app,
        f"txn_dp_{tag}",
        type="adjustment",
        source=f"dp_{tag}",
        amount=-7000,
        fee=1500,
        created="2026-10-25T10:00:01-07:00",
    )
    add_stripe(
        app,
        f"txn_fee_{tag}",
        type="stripe_fee",
        source=None,
        amount=-300,  # Radar, say
        created="2026-10-30T09:00:00-07:00",
    )


def test_a_closed_months_journal_never_changes_and_what_comes_late_goes_to_the_next(
    app, client, finance, books, clock
) -> None:
    closed = close(client, finance, "2026-10")
    assert closed.status_code == 201, closed.json
    assert closed.json == {
        "month": "2026-10",
        "status": "closed",
        "closed_at": at(NOW).isoformat(),
        "closed_by": "finance",
        "time_zone": LA,
    }
    october = every_layout(client, finance, "2026-10")
    arrive_late(app, books["iv-late"], "late", "2026-10-31T23:45:00-07:00")
    assert every_layout(client, finance, "2026-10") == october  # byte for byte
    assert journal(client, finance, "2026-10").json["status"] == "closed"

    november = journal(client, finance, "2026-11").json
    assert november["status"] == "open"
    assert all(entry["debits"] == entry["credits"] for entry in november["journals"])
    # On the first day of the first open month, said late for October.
    assert lines_described(client, finance, "2026-11", "late for 2026-10") == [
        ("2026-11-01", 5000),  # Refunds
        ("2026-11-01", 7000),  # Disputes
        ("2026-11-01", 1500 + 300),  # Stripe fees: the dispute's and Radar's
    ]
    assert close(client, finance, "2026-11").status_code == 201
    closed_november = every_layout(client, finance, "2026-11")
    arrive_late(app, books["iv"], "later", "2026-10-05T09:00:00-07:00")
    assert every_layout(client, finance, "2026-11") == closed_november
    assert every_layout(client, finance, "2026-10") == october
    late = lines_described(client, finance, "2026-12", "late for 2026-10")
    assert late == [("2026-12-01", 5000), ("2026-12-01", 7000), ("2026-12-01", 1800)]


def test_closing_a_closed_month_again_changes_nothing(
    client, finance, books, clock, make_key
) -> None:
    first = close(client, finance, "2026-10")
    clock("2027-03-01T12:00:00+00:00")
    again = close(client, finance, "2026-10")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json == first.json
    events = client.get(
        "/v1/audit-events", query_string={"action": "month.closed"}, headers=make_key("audit:read")
    ).json["data"]
    assert [(e["actor"], e["object_id"]) for e in events] == [("finance", "2026-10")]
    assert events[0]["details"]["journals"] == len(
        journal(client, finance, "2026-10").json["journals"]
    )


@pytest.mark.parametrize(
    ("now", "status"),
    [("2026-10-31T23:59:00-07:00", 409), ("2026-11-01T00:00:00-07:00", 201)],
    ids=["a-minute-before-midnight-in-los-angeles", "at-midnight"],
)
def test_a_month_closes_once_it_is_over_on_the_clinics_clock(
    client, finance, books, clock, now, status
) -> None:
    clock(now)
    answer = close(client, finance, "2026-10")
    assert answer.status_code == status, answer.json
    if status == 409:
        assert answer.json["code"] == "month_not_over"
        assert journal(client, finance, "2026-10").json["status"] == "open"


def test_months_with_money_close_in_order_and_empty_ones_may_be_passed(
    client, finance, books, clock
) -> None:
    refused = close(client, finance, "2026-11")
    assert (refused.status_code, refused.json["code"]) == (409, "earlier_month_open")
    assert "2026-10" in refused.json["detail"]
    assert close(client, finance, "2026-09").status_code == 201  # nothing in it or before
    assert close(client, finance, "2026-11").json["code"] == "earlier_month_open"
    assert close(client, finance, "2026-10").status_code == 201
    assert close(client, finance, "2026-11").status_code == 201
    clock("2027-02-10T12:00:00+00:00")
    january = close(client, finance, "2027-01")  # December had no money: it closes with it
    assert january.status_code == 201, january.json
    december = journal(client, finance, "2026-12").json
    assert (december["status"], december["journals"]) == ("closed", [])
    assert december["closed_at"] == january.json["closed_at"]
    assert close(client, finance, "2026-12").json["closed_at"] == january.json["closed_at"]


def test_closing_needs_the_books_close_scope_and_a_month(client, make_key) -> None:
    reader = make_key("reports:read")
    assert close(client, reader, "2026-10").json["code"] == "insufficient_scope"
    closer = make_key("books:close")
    for body, field in (
        ({"month": "2026-13"}, "month"),
        ({}, "month"),
        ({"month": "2026-10", "lock": True}, "lock"),
    ):
        answer = client.post("/v1/closed-months", json=body, headers=closer)
        assert answer.status_code == 422 and field in answer.json["errors"], answer.json


def test_the_dashboards_button_closes_a_month_and_exports_its_journal(
    app, client, finance, books, clock, make_key
) -> None:
    page = finance_dashboard(app, client, "2026-10-01", "2026-10-31")
    assert "No month is closed yet." in page
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token is not None
    forged = client.post("/finance/books/close", data={"month": "2026-10"}, **HTTPS)
    assert forged.status_code == 400
    assert journal(client, finance, "2026-10").json["status"] == "open"
    asked = client.post(
        "/finance/books/close", data={"month": "2026-10", "csrf_token": token.group(1)}, **HTTPS
    )
    assert asked.status_code == 200
    question = asked.get_data(as_text=True)
    assert "Close the books of October 2026?" in question and "cannot be undone" in question
    assert journal(client, finance, "2026-10").json["status"] == "open"  # only asked
    confirmed = {"month": "2026-10", "csrf_token": token.group(1), "confirmed": "yes"}
    done = client.post("/finance/books/close", data=confirmed, **HTTPS)
    assert done.status_code == 200
    assert "October 2026 is closed" in done.get_data(as_text=True)
    page = client.get("/finance?from=2026-10-01&to=2026-10-31", **HTTPS).get_data(as_text=True)
    assert "Closed through October 2026" in page
    assert 'id="close-month" name="month" type="month" value="2026-11"' in page
    for layout in ("xero", "quickbooks"):
        exported = client.get(f"/finance/books/journal.csv?month=2026-10&format={layout}", **HTTPS)
        assert exported.get_data() == journal(client, finance, "2026-10", format=layout).get_data()
    events = client.get(
        "/v1/audit-events", query_string={"action": "month.closed"}, headers=make_key("audit:read")
    ).json["data"]
    assert [(e["actor_type"], e["actor"]) for e in events] == [("staff", "clerk@example.org")]
    refused = client.post(
        "/finance/books/close", data={"month": "2026-12", "csrf_token": token.group(1)}, **HTTPS
    )
    assert refused.status_code == 409 and "stays open" in refused.get_data(as_text=True)


@pytest.mark.parametrize("app", ["postgresql"], indirect=True)
def test_a_closed_journal_cannot_be_changed_on_postgresql(
    postgresql_url: str, client, finance, books, clock
) -> None:
    assert close(client, finance, "2026-10").status_code == 201
    with psycopg.connect(postgresql_url) as connection:
        for statement in (
            "UPDATE closed_journal_lines SET debit = debit + 1",
            "DELETE FROM journal_postings",
            "UPDATE closed_months SET closed_at = now()",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                connection.execute(statement)
            connection.rollback()
    assert (
        journal(client, finance, "2026-10").json["closed_at"]
        == datetime.fromisoformat(NOW).isoformat()
    )


def grant_goodwill(app: Flask, invoice: dict, movement_id: str, granted_at: str) -> None:
    """Goodwill credit for the invoice's patient, granted at `granted_at`."""
    from billing.adapters import db
    from billing.adapters.account_models import AccountMovement

    with app.app_context():
        session = db.session()
        session.add(
            AccountMovement(
                id=movement_id,
                patient_id=invoice["patient_id"],
                currency="usd",
                amount=2500,
                kind="goodwill",
                note="a long wait",
                approved_by="M. Chen",
                created_at=at(granted_at),
            )
        )
        session.commit()


def test_goodwill_credit_is_posted_once_in_its_month_or_late_in_the_next(
    app, client, finance, books, clock
) -> None:
    grant_goodwill(app, books["iv"], "mv_october", "2026-10-20T10:00:00-07:00")
    october = journal(client, finance, "2026-10").json
    assert all(entry["debits"] == entry["credits"] for entry in october["journals"])
    assert lines_described(client, finance, "2026-10", "Goodwill credit granted") == [
        ("2026-10-20", 2500)
    ]
    assert close(client, finance, "2026-10").status_code == 201
    grant_goodwill(app, books["iv"], "mv_late", "2026-10-30T10:00:00-07:00")  # recorded late
    assert lines_described(client, finance, "2026-10", "Goodwill credit granted") == [
        ("2026-10-20", 2500)
    ]
    assert lines_described(client, finance, "2026-11", "Goodwill credit granted") == [
        ("2026-11-01", 2500)  # late for October: the first open month posts it, once
    ]
    assert close(client, finance, "2026-11").status_code == 201
    assert lines_described(client, finance, "2026-12", "Goodwill credit granted") == []
