"""CSV injection (OWASP): in every CSV the service writes, text a spreadsheet would run as a
formula starts with a ', on SQLite and on PostgreSQL (whose reconciliation CSV is COPY's);
amounts, negative ones too, dates and ids stay as they are."""

from __future__ import annotations

import csv
import io
from datetime import datetime

import pytest
from flask import Flask
from sqlalchemy import text

from billing.adapters import db
from billing.adapters.models import LedgerEntry, Refund
from billing.domain.spreadsheet import neutralise
from billing.services.finance import fast_reports
from billing.services.finance import reconciliation as portable
from billing.services.finance.reports import day_range
from billing.web.exports import csv_lines
from tests.api.test_reconciliation import add_ledger, add_stripe, at, iv_invoice

MARCH = {"from": "2025-03-01", "to": "2025-03-31"}
OCTOBER = {"from": "2026-10-01", "to": "2026-10-31"}
FORMULAS = (
    '=HYPERLINK("http://evil.example","x")',
    "+cmd|' /C calc'!A0",
    "@SUM(1+1)",
    "-1+2",
    "\tTAB",
    "\rCR",
)


@pytest.fixture
def finance(make_key) -> dict[str, str]:
    return make_key("reports:read")


@pytest.fixture
def desk(make_key) -> dict[str, str]:
    return make_key("quotes:write", "invoices:write", "invoices:read")


def csv_of(client, path: str, headers: dict[str, str], **query: str) -> list[dict[str, str]]:
    """The CSV report's rows, read back with Python's csv module."""
    response = client.get(path, query_string={**query, "format": "csv"}, headers=headers)
    body = response.get_data(as_text=True)
    assert response.status_code == 200, body
    assert response.mimetype == "text/csv"
    return list(csv.DictReader(io.StringIO(body, newline="")))


def test_a_refunds_reason_a_spreadsheet_would_run_is_written_as_text(
    app: Flask, client, finance, desk
) -> None:
    """Refunds recorded as the refund code records them (a ledger row and its Refund; the
    API would call Stripe), each with a formula for a reason; one reason a plain number."""
    invoice = iv_invoice(client, desk, "P-csv")
    add_ledger(app, invoice, "charge", 90000, "ch_csv", "2025-03-02T10:00:00Z")
    reasons = {f"re_{n}": reason for n, reason in enumerate((*FORMULAS, "-5000"))}
    amounts = {ref: 1000 * (n + 1) for n, ref in enumerate(reasons)}
    for n, (ref, reason) in enumerate(reasons.items()):
        add_ledger(app, invoice, "refund", amounts[ref], ref, f"2025-03-{n + 10}T09:00:00Z")
        with app.app_context():
            session = db.session()
            session.add(
                Refund(
                    invoice_id=invoice["id"],
                    amount=amounts[ref],
                    currency="usd",
                    reason=reason,
                    status="succeeded",
                    stripe_refund_id=ref,
                )
            )
            session.commit()
    add_ledger(app, invoice, "dispute", 90000, "dp_csv", "2025-03-25T09:00:00Z")

    report = client.get("/v1/reports/refunds-disputes", query_string=MARCH, headers=finance).json
    assert {r["stripe_refund_id"]: r["reason"] for r in report["refunds"]} == reasons  # as typed
    rows = csv_of(client, "/v1/reports/refunds-disputes", finance, **MARCH)
    refunds = {row["stripe_id"]: row for row in rows if row["kind"] == "refund"}
    assert set(refunds) == set(reasons)
    for ref, reason in reasons.items():
        if reason in FORMULAS:
            assert refunds[ref]["reason"] == "'" + reason
        else:
            assert refunds[ref]["reason"] == "-5000"  # a number, not a formula
    # Amounts, ids, numbers and dates exactly as the JSON says them.
    listed = {r["stripe_refund_id"]: r for r in report["refunds"]}
    for ref, row in refunds.items():
        assert row["amount"] == str(amounts[ref]) == str(listed[ref]["amount"])
        assert (row["invoice_id"], row["invoice_number"]) == (invoice["id"], invoice["number"])
        assert row["refund_id"] == listed[ref]["refund_id"]
        assert row["occurred_at"] == listed[ref]["occurred_at"]
    (dispute,) = [row for row in rows if row["kind"] == "dispute"]
    assert (dispute["amount"], dispute["reason"]) == ("90000", "")


def test_csv_lines_neutralises_text_but_not_negative_amounts_or_empty_cells() -> None:
    """The journal's layouts: a credit's amount is negative, in minor or major units."""
    rows = [
        {"Description": "=1+1", "Amount": "-50.00", "Credits": -5000, "Debits": "", "Date": None},
        {"Description": "-1+2", "Amount": "-5000", "Credits": 0, "Debits": "12.50", "Date": None},
    ]
    columns = ("Description", "Amount", "Credits", "Debits", "Date")
    written = "".join(csv_lines(rows, columns))
    assert list(csv.reader(io.StringIO(written, newline=""))) == [
        list(columns),
        ["'=1+1", "-50.00", "-5000", "", ""],
        ["'-1+2", "-5000", "0", "12.50", ""],
    ]


def plant_hostile_pairs(app: Flask, client, desk) -> None:
    """October's pairs whose text cells hold formulas: Stripe's ids and our copy of an
    invoice's number, as if either side had been written by someone hostile."""
    invoice = iv_invoice(client, desk, "P-recon")
    with app.app_context():  # the ledger is append-only: its copy of the number from the start
        session = db.session()
        session.add(
            LedgerEntry(
                invoice_id=invoice["id"],
                invoice_number=FORMULAS[1][:16],  # the copy the report prefers
                kind="charge",
                amount=50000,
                currency="usd",
                stripe_object_id="pi_recon",
                stripe_charge_id=FORMULAS[0],
                stripe_ref=FORMULAS[0],
                occurred_at=at("2026-10-05T10:00:00Z"),
            )
        )
        session.commit()
    add_stripe(
        app,
        FORMULAS[2],
        type="charge",
        source=FORMULAS[0],
        amount=50000,
        fee=1480,
        created="2026-10-05T10:00:01Z",
    )
    add_ledger(app, invoice, "refund", 12500, FORMULAS[3], "2026-10-12T09:00:00Z")
    add_stripe(
        app, "txn_re", type="refund", source=FORMULAS[3], amount=-12500, created="2026-10-12T09:00Z"
    )


def test_the_reconciliation_csv_writes_formulas_in_its_text_cells_as_text(
    app: Flask, client, finance, desk
) -> None:
    """On PostgreSQL, the COPY path (SQL); on SQLite, the portable one (Python)."""
    plant_hostile_pairs(app, client, desk)
    rows = csv_of(client, "/v1/reports/reconciliation", finance, **OCTOBER)
    charge = next(row for row in rows if row["kind"] == "charge")
    assert charge["invoice_number"] == "'" + FORMULAS[1][:16]
    assert charge["stripe_source"] == "'" + FORMULAS[0]
    assert charge["stripe_transaction_id"] == "'" + FORMULAS[2]
    assert (charge["ledger_amount"], charge["stripe_fee"], charge["stripe_net"]) == (
        "50000",
        "1480",
        "48520",
    )
    refund = next(row for row in rows if row["kind"] == "refund")
    assert refund["stripe_source"] == "'" + FORMULAS[3]
    assert (refund["ledger_amount"], refund["stripe_amount"]) == ("-12500", "-12500")
    assert refund["stripe_transaction_id"] == "txn_re"
    assert refund["occurred_at"] == "2026-10-12T09:00:00+00:00"


@pytest.mark.postgresql
@pytest.mark.parametrize("app", ["postgresql"], indirect=True)
def test_copy_writes_the_neutralised_csv_the_portable_path_writes(app: Flask, client, desk) -> None:
    plant_hostile_pairs(app, client, desk)
    october = day_range(datetime(2026, 10, 1).date(), datetime(2026, 10, 31).date())
    with app.app_context():
        session = db.session()
        written = "".join(csv_lines(portable.pair_rows(session, october)))
        copied = b"".join(fast_reports.copy_csv(session, october)).decode()
    assert copied == written
    assert "'" + FORMULAS[2] in copied


@pytest.mark.postgresql
@pytest.mark.parametrize("app", ["postgresql"], indirect=True)
def test_the_sql_rule_is_the_python_rule(app: Flask) -> None:
    """NEUTRALISED_SQL run by PostgreSQL on each kind of cell says what `neutralise` says."""
    cells = [
        *FORMULAS,
        "=",
        "-",
        "-5000 off",
        "-5000\n",
        "-5.",
        "--5",
        "+5",
        "-5000",
        "-50.00",
        "12.50",
        "0",
        "",
        "re_3Pq",
        " =1+1",
        "'=1+1",
        'shorter session, "as agreed"',
    ]
    values = ", ".join(f"({n}, :cell_{n})" for n in range(len(cells)))
    rule = fast_reports.NEUTRALISED_SQL.format(cell="CAST(t.cell AS varchar)")
    query = text(f"SELECT {rule} FROM (VALUES {values}) AS t (n, cell) ORDER BY t.n")
    with app.app_context():
        session = db.session()
        made = session.scalars(query, {f"cell_{n}": cell for n, cell in enumerate(cells)}).all()
        null = session.scalar(text(f"SELECT {rule} FROM (SELECT NULL AS cell) AS t"))
    assert made == [neutralise(cell) for cell in cells]
    assert made[: len(FORMULAS)] == ["'" + cell for cell in FORMULAS]
    assert null is None  # written empty, as Python writes a None
