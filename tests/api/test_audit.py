"""The audit trail: every change with who made it, when and the request that made it;
written with the change or not at all; append-only on PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient

from billing.adapters import db
from billing.services.access.staff import create_staff_user

HTTPS = {"base_url": "https://localhost"}


def trail(client: FlaskClient, auditor: dict[str, str], **query: Any) -> list[dict[str, Any]]:
    answer = client.get("/v1/audit-events", query_string=query, headers=auditor)
    assert answer.status_code == 200, answer.json
    return list(answer.json["data"])


def test_changes_are_in_the_trail_with_who_what_and_the_request(
    app: Flask,
    client: FlaskClient,
    make_key: Callable[..., dict[str, str]],
    booking: Callable[..., dict[str, Any]],
) -> None:
    desk = make_key("quotes:write", "invoices:write", name="front-desk")
    pricing = make_key("catalog:write", name="finance-pricing")
    auditor = make_key("audit:read", name="auditor")

    price = client.post(
        "/v1/catalog/prices",
        json={"iv_individual_amount": 52_000, "currency": "usd"},
        headers={**pricing, "X-Request-ID": "req-price-1"},
    )
    assert price.status_code == 201
    quote = client.post("/v1/quotes", json=booking(), headers=desk)
    assert quote.status_code == 201
    made = client.post("/v1/invoices", json={"quote_id": quote.json["id"]}, headers=desk)
    first = made.json["data"][0]
    voided = client.post(f"/v1/invoices/{first['id']}/void", headers=desk)
    assert voided.status_code == 200

    events = trail(client, auditor)
    actions = [event["action"] for event in reversed(events)]  # oldest first
    assert actions == ["price.created"] + ["api_key.created"] * 3 + [  # the seed, then keys
        "price.created",
        "quote.created_with_exemption",
        "invoice.created",
        "invoice.created",
        "invoice.voided",
    ]
    by_action = {event["action"]: event for event in reversed(events)}  # the newest of each
    assert by_action["price.created"]["actor"] == "finance-pricing"
    assert by_action["price.created"]["actor_type"] == "api_key"
    assert by_action["price.created"]["request_id"] == "req-price-1"
    assert by_action["price.created"]["details"]["iv_individual_amount"] == 52_000
    exemption = by_action["quote.created_with_exemption"]
    assert exemption["object_id"] == quote.json["id"]
    assert exemption["details"]["exemptions"] == [
        {"patient_id": "P-1002", "reason": "difficult_venous_access", "approved_by": "Dr. Lee"}
    ]
    void = by_action["invoice.voided"]
    assert (void["actor"], void["object_id"]) == ("front-desk", first["id"])
    assert void["request_id"] == voided.headers["X-Request-ID"]
    created = [event for event in events if event["action"] == "invoice.created"]
    assert {event["object_id"] for event in created} == {i["id"] for i in made.json["data"]}


def test_a_quote_without_an_exemption_leaves_no_trail(
    client: FlaskClient,
    make_key: Callable[..., dict[str, str]],
    booking: Callable[..., dict[str, Any]],
) -> None:
    desk = make_key("quotes:write")
    auditor = make_key("audit:read")
    patients = [{"patient_id": "P-2001", "name": "Ana Ruiz"}]
    answer = client.post(
        "/v1/quotes", json=booking(session_type="iv_individual", patients=patients), headers=desk
    )
    assert answer.status_code == 201
    assert trail(client, auditor, action="quote.") == []


def test_keys_made_and_revoked_at_the_command_line_name_the_operator(
    app: Flask, client: FlaskClient, make_key: Callable[..., dict[str, str]]
) -> None:
    runner = app.test_cli_runner()
    assert (
        runner.invoke(args=["keys", "create", "booking", "--scopes", "quotes:write"]).exit_code == 0
    )
    assert runner.invoke(args=["keys", "revoke", "booking"]).exit_code == 0
    events = trail(client, make_key("audit:read"), object_id="booking")
    assert [event["action"] for event in events] == ["api_key.revoked", "api_key.created"]
    assert all(event["actor_type"] == "operator" for event in events)
    assert all(event["actor"].startswith("cli:") for event in events)
    assert events[1]["details"] == {"scopes": "quotes:write", "client": "booking"}


def test_the_trail_filters_and_pages_newest_first(
    app: Flask, client: FlaskClient, make_key: Callable[..., dict[str, str]]
) -> None:
    pricing = make_key("catalog:write", name="pricing")
    auditor = make_key("audit:read")
    for amount in (51_000, 52_000, 53_000, 54_000, 55_000):
        client.post(
            "/v1/catalog/prices",
            json={"iv_individual_amount": amount, "currency": "usd"},
            headers=pricing,
        )
    seen: list[int] = []
    cursor: dict[str, Any] = {}
    while True:
        answer = client.get(
            "/v1/audit-events",
            query_string={"action": "price.created", "limit": 2, **cursor},
            headers=auditor,
        )
        page = answer.json
        seen += [event["details"]["iv_individual_amount"] for event in page["data"]]
        if not page["has_more"]:
            break
        cursor = {"starting_after": page["data"][-1]["id"]}
    assert seen == [55_000, 54_000, 53_000, 52_000, 51_000, 50_000]  # and the seed
    assert len(trail(client, auditor, actor="pricing")) == 5
    assert trail(client, auditor, actor="somebody else") == []
    bad = client.get("/v1/audit-events?limit=0&occurred_gte=yesterday", headers=auditor)
    assert bad.status_code == 422
    assert set(bad.json["errors"]) == {"limit", "occurred_gte"}


def _sign_in(client: FlaskClient, email: str, password: str) -> int:
    login = client.get("/finance/login", **HTTPS).get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', login)
    assert token is not None
    return client.post(
        "/finance/login",
        data={"email": email, "password": password, "csrf_token": token.group(1)},
        environ_base={"REMOTE_ADDR": "10.9.8.7"},
        **HTTPS,
    ).status_code


def test_finance_sign_ins_and_failed_attempts_are_in_the_trail(
    app: Flask, make_key: Callable[..., dict[str, str]]
) -> None:
    with app.app_context():
        create_staff_user(db.session(), "clerk@example.org", "a long enough password")
    browser = app.test_client()
    assert _sign_in(browser, "clerk@example.org", "not the password!") == 401
    assert _sign_in(browser, "clerk@example.org", "a long enough password") == 303
    events = trail(app.test_client(), make_key("audit:read"), action="staff.")
    failed, signed_in = events[1], events[0]
    assert (failed["action"], failed["actor_type"], failed["actor"]) == (
        "staff.sign_in_failed",
        "anonymous",
        "10.9.8.7",
    )
    assert (signed_in["action"], signed_in["actor"]) == ("staff.signed_in", "clerk@example.org")


@pytest.mark.parametrize("app", ["postgresql"], indirect=True)
def test_a_change_whose_audit_row_cannot_be_written_does_not_happen(
    app: Flask,
    client: FlaskClient,
    make_key: Callable[..., dict[str, str]],
    booking: Callable[..., dict[str, Any]],
) -> None:
    desk = make_key("quotes:write", "invoices:read", "invoices:write")
    quote = client.post("/v1/quotes", json=booking(), headers=desk).json
    invoice = client.post("/v1/invoices", json={"quote_id": quote["id"]}, headers=desk).json
    invoice_id = invoice["data"][0]["id"]
    url = app.config["DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://")
    refuse_voids = """
        CREATE FUNCTION test_refuse_void_audit() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.action = 'invoice.voided' THEN RAISE EXCEPTION 'audit store broken'; END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER test_refuse_void_audit BEFORE INSERT ON audit_events
            FOR EACH ROW EXECUTE FUNCTION test_refuse_void_audit();
    """
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(refuse_voids)
    try:
        answer = client.post(f"/v1/invoices/{invoice_id}/void", headers=desk)
        assert answer.status_code >= 500
    finally:
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute("DROP TRIGGER test_refuse_void_audit ON audit_events")
            connection.execute("DROP FUNCTION test_refuse_void_audit()")
    after = client.get(f"/v1/invoices/{invoice_id}", headers=desk).json
    assert after["status"] == "open" and after["voided_at"] is None


@pytest.mark.parametrize("app", ["postgresql"], indirect=True)
def test_the_trail_cannot_be_changed_or_removed_on_postgresql(
    postgresql_url: str, app: Flask, client: FlaskClient, make_key: Callable[..., dict[str, str]]
) -> None:
    make_key("catalog:write", name="someone")  # writes api_key.created
    with psycopg.connect(postgresql_url) as connection:
        count = connection.execute("SELECT count(*) FROM audit_events").fetchone()
        assert count is not None and count[0] >= 1
        for statement in (
            "UPDATE audit_events SET actor = 'nobody'",
            "DELETE FROM audit_events",
            "TRUNCATE audit_events",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                connection.execute(statement)
            connection.rollback()
        after = connection.execute("SELECT count(*) FROM audit_events").fetchone()
        assert after == count


def test_report_exports_name_who_took_them(
    app: Flask, client: FlaskClient, make_key: Callable[..., dict[str, str]]
) -> None:
    reports = make_key("reports:read", name="finance-reports")
    answer = client.get(
        "/v1/reports/reconciliation?from=2026-11-01&to=2026-11-30&format=csv", headers=reports
    )
    assert answer.status_code == 200 and answer.mimetype == "text/csv"
    answer.close()
    assert client.get("/v1/reports/aging", headers=reports).status_code == 200  # JSON: a read
    with app.app_context():
        create_staff_user(db.session(), "clerk@example.org", "a long enough password")
    browser = app.test_client()
    assert _sign_in(browser, "clerk@example.org", "a long enough password") == 303
    download = browser.get("/finance/export/aging.csv", **HTTPS)
    assert download.status_code == 200
    download.close()

    exports = trail(client, make_key("audit:read"), action="report.exported")
    assert [(event["actor"], event["object_id"]) for event in exports] == [
        ("clerk@example.org", download.headers["Content-Disposition"].split('"')[1]),
        ("finance-reports", "reconciliation-2026-11-01-2026-11-30.csv"),
    ]


@pytest.mark.parametrize("app", ["postgresql"], indirect=True)
def test_the_ledger_refuses_truncate_of_its_own_on_postgresql(
    postgresql_url: str, app: Flask
) -> None:
    """Not only because the journal's postings refer to it (and refuse TRUNCATE
    themselves): with theirs out of the way, in a transaction rolled back, its own trigger
    refuses, CASCADE or not."""
    with psycopg.connect(postgresql_url) as connection:
        for statement in ("TRUNCATE ledger_entries CASCADE", "TRUNCATE ledger_entries"):
            connection.execute("DROP TRIGGER journal_postings_no_truncate ON journal_postings")
            connection.execute(
                "ALTER TABLE journal_postings DROP CONSTRAINT IF EXISTS "
                "fk_journal_postings_ledger_entry_id"
            )
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="ledger_entries"):
                connection.execute(statement)
            connection.rollback()
