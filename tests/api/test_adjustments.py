"""Credit notes, write-offs and a patient's credit, on SQLite and PostgreSQL, with money
taken at the desk (the card side is in tests/stripe/test_patient_credit.py): what each
leaves owed, the statuses, the credit that is kept and applied (never below zero, the last
of it to one taker of two), the events, the audit trail and the journal."""

from __future__ import annotations

import io
import threading
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from pypdf import PdfReader

from billing.adapters import db
from billing.services.payments import received
from tests.integrations.feed import wait_until_settled


@pytest.fixture
def desk(make_key) -> dict[str, str]:
    """The front desk and a finance lead: invoices, desk money, corrections."""
    return make_key(
        "quotes:write", "invoices:write", "invoices:read", "payments:record", "invoices:adjust"
    )


def bill(client, desk, booking, patient: str, booking_id: str) -> dict[str, Any]:
    """A $500.00 individual IV invoice for `patient`."""
    made = client.post(
        "/v1/quotes",
        json=booking(
            session_type="iv_individual",
            booking_id=booking_id,
            patients=[{"patient_id": patient, "name": "Ada Obi", "prior_iv_sessions": 1}],
        ),
        headers=desk,
    )
    assert made.status_code == 201, made.json
    invoiced = client.post("/v1/invoices", json={"quote_id": made.json["id"]}, headers=desk)
    assert invoiced.status_code == 201, invoiced.json
    return dict(invoiced.json["data"][0])


def post(client, desk, path: str, key: str, **body: Any) -> Any:
    return client.post(path, json=body, headers={**desk, "Idempotency-Key": key})


def cash(client, desk, invoice_id: str, key: str, amount: int) -> Any:
    return post(
        client, desk, f"/v1/invoices/{invoice_id}/payments", key, method="cash", amount=amount
    )


def credit_note(client, desk, invoice_id: str, key: str, amount: int) -> Any:
    return post(
        client,
        desk,
        f"/v1/invoices/{invoice_id}/credit-notes",
        key,
        amount=amount,
        reason="session shortened",
        approved_by="Dr. Rivera",
    )


def write_off(client, desk, invoice_id: str, key: str, **body: Any) -> Any:
    body = {"category": "bad_debt", "reason": "no reply", "approved_by": "M. Chen", **body}
    return post(client, desk, f"/v1/invoices/{invoice_id}/write-offs", key, **body)


def shown(client, desk, invoice_id: str) -> tuple[str, int, int, int]:
    now = client.get(f"/v1/invoices/{invoice_id}", headers=desk).json
    return now["status"], now["amount_paid"], now["amount_credited"], now["balance_due"]


def balanced_journal_lines(client, finance, month: str) -> list[dict[str, Any]]:
    """The month's journal lines, each day's journal checked to balance."""
    journal = client.get("/v1/reports/journal", query_string={"month": month}, headers=finance).json
    for entry in journal["journals"]:
        assert sum(line["debit"] for line in entry["lines"]) == sum(
            line["credit"] for line in entry["lines"]
        )
    return [line for entry in journal["journals"] for line in entry["lines"]]


def account_of(client, desk, patient: str) -> dict[str, Any]:
    found = client.get(f"/v1/patients/{patient}/account", headers=desk)
    assert found.status_code == 200, found.json
    return dict(found.json)


def test_a_credit_note_lowers_what_is_owed_and_money_paid_beyond_it_becomes_credit(
    client, desk, booking, make_key
) -> None:
    invoice = bill(client, desk, booking, "P-8001", "BK-8001")
    assert cash(client, desk, invoice["id"], "k1", 20000).status_code == 201
    first = credit_note(client, desk, invoice["id"], "k2", 10000)
    assert first.status_code == 201, first.json
    assert (first.json["number"], first.json["to_credit"]) == (invoice["number"] + "-CN1", 0)
    assert shown(client, desk, invoice["id"]) == ("partially_paid", 20000, 10000, 20000)

    # A second note leaves $100 owed of the $200 paid: $100 goes to the patient's credit.
    second = credit_note(client, desk, invoice["id"], "k3", 30000)
    assert second.status_code == 201, second.json
    assert (second.json["number"], second.json["to_credit"]) == (invoice["number"] + "-CN2", 10000)
    assert shown(client, desk, invoice["id"]) == ("paid", 10000, 40000, 0)
    aging = client.get("/v1/reports/aging", headers=make_key("reports:read")).json
    assert aging["credits"] == [{"patient_id": "P-8001", "currency": "usd", "credit": 10000}]
    account = account_of(client, desk, "P-8001")
    assert account["balances"] == [
        {"currency": "usd", "owed": 0, "credit": 10000, "balance": -10000}
    ]
    assert [(m["kind"], m["amount"]) for m in account["movements"]] == [("credit_note", 10000)]

    # The receipt shows what the notes took off and what was paid.
    pdf = client.get(f"/v1/invoices/{invoice['id']}/receipt.pdf", headers=desk)
    assert pdf.status_code == 200
    text = " ".join(
        "".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.data)).pages).split()
    )
    assert "Total $500.00 Credit notes -$400.00 Amount paid $100.00" in text

    # Nothing more can come off than is left, and a replay is the same note.
    too_much = credit_note(client, desk, invoice["id"], "k4", 10001)
    assert (too_much.status_code, too_much.json["code"]) == (422, "amount_exceeds_invoice")
    assert "amount" in too_much.json["errors"]
    assert credit_note(client, desk, invoice["id"], "k3", 30000).json["id"] == second.json["id"]


def test_credit_pays_the_oldest_open_bill_and_staff_can_apply_it(
    app: Flask, client, desk, booking, make_key
) -> None:
    paid = bill(client, desk, booking, "P-8101", "BK-8101")
    older = bill(client, desk, booking, "P-8101", "BK-8102")
    newer = bill(client, desk, booking, "P-8101", "BK-8103")
    assert cash(client, desk, paid["id"], "k1", 50000).status_code == 201
    assert credit_note(client, desk, paid["id"], "k2", 30000).status_code == 201  # $300 credit

    nothing = post(
        client,
        desk,
        f"/v1/invoices/{newer['id']}/payments",
        "k3",
        method="account_credit",
        amount=30001,
    )
    assert (nothing.status_code, nothing.json["code"]) == (422, "amount_exceeds_credit")
    with app.app_context():
        applied = received.apply_all_credit(db.session())
    assert applied == 30000
    assert shown(client, desk, older["id"])[0::3] == ("partially_paid", 20000)
    assert shown(client, desk, newer["id"])[0::3] == ("open", 50000)
    assert account_of(client, desk, "P-8101")["balances"][0]["credit"] == 0

    # None left: staff are told so; the job changes nothing.
    none_left = post(
        client, desk, f"/v1/invoices/{newer['id']}/payments", "k4", method="account_credit"
    )
    assert (none_left.status_code, none_left.json["code"]) == (409, "no_credit")
    with app.app_context():
        assert received.apply_all_credit(db.session()) == 0

    # The journal moves the $300 from revenue to the patients' credit, then $300 of it back
    # into revenue when it paid the older bill; every day balances.
    finance = make_key("reports:read")
    month = datetime.now(UTC).strftime("%Y-%m")
    lines = balanced_journal_lines(client, finance, month)
    held = [line for line in lines if line["account_name"] == "Patient Credit Balances"]
    assert sorted((line["debit"], line["credit"]) for line in held) == [(0, 30000), (30000, 0)]
    month_end = client.get("/v1/reports/month-end", query_string={"month": month}, headers=finance)
    figures = month_end.json["currencies"]["usd"]
    assert (figures["credit_notes"], figures["credit_kept"], figures["credit_applied"]) == (
        30000,
        30000,
        30000,
    )
    assert figures["credit_held"] == 0

    wait_until_settled(app)
    reader = make_key("events:read")
    applied_events = client.get(
        "/v1/events", query_string={"type": "credit.applied"}, headers=reader
    ).json["data"]
    assert [
        (e["data"]["object"]["invoice_id"], e["data"]["object"]["method"]) for e in applied_events
    ] == [(older["id"], "account_credit")]
    notes = client.get(
        "/v1/events", query_string={"type": "credit_note.created"}, headers=reader
    ).json["data"]
    assert len(notes) == 1 and "reason" not in notes[0]["data"]["object"]
    assert "approved_by" not in notes[0]["data"]["object"]


def apply_at_once(app: Flask, desk, attempts: list[tuple[str, str]]) -> list[Any]:
    """Apply $100.00 of credit to each invoice (with its key), all at the same moment."""
    barrier = threading.Barrier(len(attempts))
    answers: list[Any] = []

    def apply(invoice_id: str, key: str) -> None:
        local = app.test_client()
        barrier.wait()
        path = f"/v1/invoices/{invoice_id}/payments"
        answers.append(post(local, desk, path, key, method="account_credit", amount=10000))

    threads = [threading.Thread(target=apply, args=attempt) for attempt in attempts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return answers


def test_two_applications_of_the_last_credit_at_once_give_one_success(
    app: Flask, client, desk, booking
) -> None:
    for trial in range(3):
        patient = f"P-82{trial:02d}"
        source = bill(client, desk, booking, patient, f"BK-{patient}-a")
        first = bill(client, desk, booking, patient, f"BK-{patient}-b")
        second = bill(client, desk, booking, patient, f"BK-{patient}-c")
        assert cash(client, desk, source["id"], f"{trial}-1", 50000).status_code == 201
        assert credit_note(client, desk, source["id"], f"{trial}-2", 10000).status_code == 201
        answers = apply_at_once(
            app, desk, [(first["id"], f"{trial}-b"), (second["id"], f"{trial}-c")]
        )
        assert sorted(a.status_code for a in answers) == [201, 409], [a.json for a in answers]
        account = account_of(client, desk, patient)
        assert account["balances"][0]["credit"] == 0
        owed = sorted(shown(client, desk, i["id"])[3] for i in (first, second))
        assert owed == [40000, 50000]


def test_a_write_off_closes_the_balance_and_takes_no_more_money(
    app: Flask, client, desk, booking, make_key
) -> None:
    invoice = bill(client, desk, booking, "P-8301", "BK-8301")
    assert cash(client, desk, invoice["id"], "k1", 10000).status_code == 201
    link = post(
        client,
        make_key("payments:write"),
        f"/v1/invoices/{invoice['id']}/payments",
        "l",
        method="online",
    )
    assert link.status_code == 201, link.json
    too_much = write_off(client, desk, invoice["id"], "k2", amount=40001)
    assert (too_much.status_code, too_much.json["code"]) == (422, "amount_exceeds_balance")
    small = write_off(client, desk, invoice["id"], "k3", amount=1000, category="small_balance")
    assert small.status_code == 201, small.json
    assert small.json["invoice"]["status"] == "partially_paid"
    assert small.json["invoice"]["balance_due"] == 39000
    rest = write_off(client, desk, invoice["id"], "k4")
    assert rest.status_code == 201, rest.json
    assert (rest.json["number"], rest.json["amount"]) == (invoice["number"] + "-WO2", 39000)
    now = client.get(f"/v1/invoices/{invoice['id']}", headers=desk).json
    assert (now["status"], now["amount_written_off"], now["balance_due"]) == (
        "written_off",
        40000,
        0,
    )
    page = client.get("/" + link.json["pay_url"].split("/", 3)[3])
    assert page.status_code == 200 and b"has nothing left to pay" in page.data
    refused = cash(client, desk, invoice["id"], "k5", 1000)
    assert (refused.status_code, refused.json["code"]) == (409, "invoice_not_payable")
    again = credit_note(client, desk, invoice["id"], "k6", 1000)
    assert (again.status_code, again.json["code"]) == (409, "invoice_not_adjustable")

    wait_until_settled(app)
    reader = make_key("events:read", "audit:read")
    written = client.get(
        "/v1/events", query_string={"type": "invoice.written_off"}, headers=reader
    ).json["data"]
    assert [e["data"]["object"]["id"] for e in written] == [invoice["id"]]
    trail = client.get(
        "/v1/audit-events", query_string={"object_id": invoice["id"]}, headers=reader
    ).json["data"]
    offs = [e for e in trail if e["action"] == "invoice.written_off"]
    assert sorted(e["details"]["amount"] for e in offs) == [1000, 39000]
    assert {e["details"]["approved_by"] for e in offs} == {"M. Chen"}

    # Ageing owes nothing for it; month end counts the write-offs and the credit notes.
    finance = make_key("reports:read")
    aging = client.get("/v1/reports/aging", headers=finance).json
    assert [r for r in aging["invoices"] if r["id"] == invoice["id"]] == []
    month = datetime.now(UTC).strftime("%Y-%m")
    month_end = client.get(
        "/v1/reports/month-end", query_string={"month": month}, headers=finance
    ).json
    figures = month_end["currencies"]["usd"]
    assert (figures["credit_notes"], figures["written_off"]) == (0, 40000)


def test_a_credit_note_that_leaves_nothing_owed_settles_an_unpaid_bill(
    client, desk, booking
) -> None:
    invoice = bill(client, desk, booking, "P-8401", "BK-8401")
    whole = credit_note(client, desk, invoice["id"], "k1", 50000)
    assert whole.status_code == 201, whole.json
    assert shown(client, desk, invoice["id"]) == ("paid", 0, 50000, 0)
    assert account_of(client, desk, "P-8401")["balances"] == []


def test_a_partial_write_off_then_full_payment_reads_paid(client, desk, booking) -> None:
    invoice = bill(client, desk, booking, "P-8501", "BK-8501")
    off = write_off(client, desk, invoice["id"], "k1", amount=1000, category="small_balance")
    assert off.status_code == 201, off.json
    assert cash(client, desk, invoice["id"], "k2", 49000).status_code == 201
    assert shown(client, desk, invoice["id"]) == ("paid", 49000, 0, 0)


def test_a_check_that_bounces_takes_back_the_credit_it_became_and_reopens_a_write_off(
    client, desk, booking, make_key
) -> None:
    invoice = bill(client, desk, booking, "P-8601", "BK-8601")
    check = post(
        client,
        desk,
        f"/v1/invoices/{invoice['id']}/payments",
        "k1",
        method="check",
        reference="501",
    )
    assert check.status_code == 201, check.json
    assert credit_note(client, desk, invoice["id"], "k2", 20000).status_code == 201
    assert account_of(client, desk, "P-8601")["balances"][0]["credit"] == 20000
    bounced = post(
        client,
        desk,
        f"/v1/invoices/{invoice['id']}/payments/{check.json['id']}/reversals",
        "k3",
        reason="returned",
    )
    assert bounced.status_code == 201, bounced.json
    account = account_of(client, desk, "P-8601")
    assert account["balances"][0]["credit"] == 0
    assert [m["kind"] for m in account["movements"]][0] == "taken_back"
    assert shown(client, desk, invoice["id"]) == ("open", 0, 20000, 30000)

    # A written-off bill whose check bounces is owed again, and can be collected.
    other = bill(client, desk, booking, "P-8602", "BK-8602")
    part = post(
        client,
        desk,
        f"/v1/invoices/{other['id']}/payments",
        "k4",
        method="check",
        reference="502",
        amount=10000,
    )
    assert write_off(client, desk, other["id"], "k5").status_code == 201
    post(
        client,
        desk,
        f"/v1/invoices/{other['id']}/payments/{part.json['id']}/reversals",
        "k6",
        reason="returned",
    )
    now = client.get(f"/v1/invoices/{other['id']}", headers=desk).json
    assert (now["status"], now["balance_due"]) == ("open", 10000)
    assert cash(client, desk, other["id"], "k7", 10000).status_code == 201


def test_the_dashboard_shows_corrections_and_patients_credit(
    app: Flask, client, desk, booking
) -> None:
    from tests.api.test_finance_sessions import HTTPS, PASSWORD, sign_in

    invoice = bill(client, desk, booking, "P-8701", "BK-8701")
    assert cash(client, desk, invoice["id"], "k1", 50000).status_code == 201
    assert credit_note(client, desk, invoice["id"], "k2", 7500).status_code == 201
    with app.app_context():
        from billing.services.access.staff import create_staff_user

        create_staff_user(db.session(), "lead@example.org", PASSWORD)
    browser = app.test_client()
    assert sign_in(browser, email="lead@example.org") == 303
    page = browser.get("/finance", **HTTPS).get_data(as_text=True)
    section = page.split('id="corrections-heading"')[1].split("</section>")[0]
    cells = [c for c in section.split("<td>")[1:]]
    assert [c.split("</td>")[0] for c in cells] == [
        "$75.00",
        "$0.00",
        "$75.00",
        "$0.00",
        "$0.00",
        "$75.00",
    ]


def test_goodwill_credit_pays_the_next_bill_is_never_cash_and_is_in_the_books(
    app: Flask, client, desk, booking, make_key
) -> None:
    invoice = bill(client, desk, booking, "P-8401", "BK-8401")
    path = "/v1/patients/P-8401/account/credits"
    body = {"amount": 5000, "currency": "usd", "reason": "started an hour late"}
    granted = post(client, desk, path, "gw", **body, approved_by="M. Chen")
    assert granted.status_code == 201, granted.json
    assert (granted.json["kind"], granted.json["amount"], granted.json["approved_by"]) == (
        "goodwill",
        5000,
        "M. Chen",
    )
    again = post(client, desk, path, "gw", **body, approved_by="M. Chen")
    assert again.json["id"] == granted.json["id"]  # the same grant, not a second one
    unknown = post(
        client, desk, "/v1/patients/P-0000/account/credits", "gw2", **body, approved_by="x"
    )
    assert (unknown.status_code, unknown.json["code"]) == (409, "patient_not_billed")
    unapproved = post(client, desk, path, "gw3", **body)
    assert (unapproved.status_code, set(unapproved.json["errors"])) == (422, {"approved_by"})
    assert account_of(client, desk, "P-8401")["balances"][0]["credit"] == 5000

    # It pays the bill like any credit; no card ever gets it.
    with app.app_context():
        assert received.apply_all_credit(db.session()) == 5000
    assert shown(client, desk, invoice["id"])[0::3] == ("partially_paid", 45000)
    assert account_of(client, desk, "P-8401")["balances"][0]["credit"] == 0

    # The journal: granted at the clinic's cost into the patient's credit, then earned.
    finance = make_key("reports:read")
    month = datetime.now(UTC).strftime("%Y-%m")
    lines = balanced_journal_lines(client, finance, month)
    month_end = client.get("/v1/reports/month-end", query_string={"month": month}, headers=finance)
    figures = month_end.json["currencies"]["usd"]
    assert (figures["credit_granted"], figures["credit_applied"], figures["credit_held"]) == (
        5000,
        5000,
        0,
    )
    by_account = {
        (line["account_name"], line["debit"], line["credit"])
        for line in lines
        if line["account_name"] in ("Goodwill Credits", "Patient Credit Balances")
    }
    assert by_account == {
        ("Goodwill Credits", 5000, 0),
        ("Patient Credit Balances", 0, 5000),
        ("Patient Credit Balances", 5000, 0),
    }
