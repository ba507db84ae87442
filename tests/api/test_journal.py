"""The accounting journal (GET /v1/reports/journal): each day's money per currency, balanced
against the Stripe clearing account, as JSON and as the CSV Xero and QuickBooks Online
import; the clinic's calendar is Los Angeles.

The books of October 2026: an IV and a group session paid on 5 Oct (and a CAD session the
same day), a refund on 12 Oct, a dispute on 20 Oct, a payout to the bank on 22 Oct, an IV
session paid at 23:30 on 31 Oct (06:30 UTC on 1 Nov), and one paid at 00:30 on 1 Nov.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from decimal import Decimal

import pytest
from flask import Flask

from tests.api.test_reconciliation import add_ledger, add_stripe, iv_invoice, make_invoices

LA = "America/Los_Angeles"
# Xero's manual journal import template and QuickBooks Online's journal entry import, as
# their help pages name the columns.
XERO = [
    "Narration",
    "Date",
    "Description",
    "AccountCode",
    "TaxRate",
    "Amount",
    "TrackingName1",
    "TrackingOption1",
    "TrackingName2",
    "TrackingOption2",
]
QUICKBOOKS = ["Journal No.", "Journal Date", "Account Name", "Debits", "Credits", "Description"]
ACCOUNTS = {
    "bank": {"name": "Chase Checking", "code": "090"},
    "revenue_iv_individual": {"name": "Infusion Revenue", "code": "201"},
}
# (what, ledger kind or Stripe type, when in Los Angeles, amount, Stripe's fee, invoice)
OCTOBER = [
    ("iv", "charge", "2026-10-05T10:00:00-07:00", 50000, 1480, "iv"),
    ("group-1", "charge", "2026-10-05T11:00:00-07:00", 25000, 755, "group-1"),
    ("group-2", "charge", "2026-10-05T11:05:00-07:00", 25000, 755, "group-2"),
    ("cad", "charge", "2026-10-05T12:00:00-07:00", 60000, 2100, "cad"),
    ("refund", "refund", "2026-10-12T09:00:00-07:00", 10000, 0, "iv"),
    ("dispute", "dispute", "2026-10-20T15:00:00-07:00", 25000, 1500, "group-2"),
    ("halloween", "charge", "2026-10-31T23:30:00-07:00", 50000, 1480, "iv-late"),
    ("november", "charge", "2026-11-01T00:30:00-07:00", 50000, 1480, "iv-nov"),
]
PAYOUT = ("po_october", "2026-10-22T02:00:00-07:00", -60000)
STRIPE_TYPE = {"charge": "charge", "refund": "refund", "dispute": "adjustment"}


@pytest.fixture
def app_settings() -> dict[str, object]:
    return {"CLINIC_TIMEZONE": LA, "JOURNAL_ACCOUNTS": ACCOUNTS}


@pytest.fixture
def finance(make_key) -> dict[str, str]:
    return make_key("reports:read", "books:close", name="finance")


@pytest.fixture
def books(app: Flask, client, make_key) -> dict[str, dict]:
    return plant_october(app, client, make_key)


def plant_october(app: Flask, client, make_key) -> dict[str, dict]:
    """October's books as the module's docstring tells them; the invoices by name."""
    prices = make_key("catalog:write")
    cad = client.post(
        "/v1/catalog/prices",
        headers=prices,
        json={"iv_individual_amount": 60000, "currency": "cad"},
    )
    assert cad.status_code == 201, cad.json
    desk = make_key("quotes:write", "invoices:write", "invoices:read")
    invoices = {name: iv_invoice(client, desk, f"P-{name}") for name in ("iv", "iv-late", "iv-nov")}
    invoices["cad"] = iv_invoice(client, desk, "P-cad", currency="cad")
    invoices["group-1"], invoices["group-2"] = make_invoices(
        client, desk, "im_group", ["P-g1", "P-g2"]
    )
    for what, kind, when, amount, fee, invoice in OCTOBER:
        add_ledger(app, invoices[invoice], kind, amount, f"src_{what}", when)
        sign = 1 if kind == "charge" else -1
        add_stripe(
            app,
            f"txn_{what}",
            type=STRIPE_TYPE[kind],
            source=f"src_{what}",
            amount=sign * amount,
            fee=fee,
            created=when,
            currency=invoices[invoice]["currency"],
        )
    payout, when, amount = PAYOUT
    add_stripe(app, f"txn_{payout}", type="payout", source=payout, amount=amount, created=when)
    return invoices


def journal(client, headers, month: str, **query: str):
    answer = client.get(
        "/v1/reports/journal", query_string={"month": month, **query}, headers=headers
    )
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return answer


def rows_of(answer) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(answer.get_data(as_text=True)))
    rows = list(reader)
    return list(reader.fieldnames or []), rows


def by_account(journals: list[dict]) -> dict[tuple[str, str], tuple[int, int]]:
    """(currency, account) -> (debits, credits) over the journals."""
    sums: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for entry in journals:
        for line in entry["lines"]:
            sums[entry["currency"], line["account"]][0] += line["debit"]
            sums[entry["currency"], line["account"]][1] += line["credit"]
    return {key: (debit, credit) for key, (debit, credit) in sums.items()}


def planted(month: str, currency: str = "usd") -> dict[str, int]:
    """What October's plants put in a month of the clinic's calendar, per kind."""
    sums: dict[str, int] = defaultdict(int)
    for what, kind, when, amount, fee, invoice in OCTOBER:
        if when.startswith(month) and (what == "cad") == (currency == "cad"):
            sums[kind if kind != "charge" else f"charge-{invoice.split('-')[0]}"] += amount
            sums["fee"] += fee
    if PAYOUT[1].startswith(month) and currency == "usd":
        sums["payout"] -= PAYOUT[2]
    return sums


def test_every_journal_balances_and_holds_one_day_in_one_currency(client, finance, books) -> None:
    for month in ("2026-10", "2026-11"):
        entries = journal(client, finance, month).json["journals"]
        assert entries
        for entry in entries:
            debits = sum(line["debit"] for line in entry["lines"])
            credits = sum(line["credit"] for line in entry["lines"])
            assert debits == credits == entry["debits"] == entry["credits"] > 0, entry
            assert all((line["debit"] == 0) != (line["credit"] == 0) for line in entry["lines"])
            assert entry["date"].startswith(month)
        keys = [(entry["date"], entry["currency"]) for entry in entries]
        assert keys == sorted(set(keys))  # one journal per day and currency


def test_the_journal_posts_revenue_by_session_type_fees_refunds_disputes_and_payouts(
    client, finance, books
) -> None:
    report = journal(client, finance, "2026-10").json
    assert (report["month"], report["status"], report["time_zone"]) == ("2026-10", "open", LA)
    usd, cad = planted("2026-10"), planted("2026-10", "cad")
    revenue = usd["charge-iv"] + usd["charge-group"]
    money_out = usd["refund"] + usd["dispute"] + usd["fee"] + usd["payout"]
    assert by_account(report["journals"]) == {
        ("usd", "revenue_iv_individual"): (0, usd["charge-iv"]),
        ("usd", "revenue_im_group"): (0, usd["charge-group"]),
        ("usd", "refunds"): (usd["refund"], 0),
        ("usd", "disputes"): (usd["dispute"], 0),
        ("usd", "stripe_fees"): (usd["fee"], 0),
        ("usd", "bank"): (usd["payout"], 0),
        ("usd", "stripe_clearing"): (revenue, money_out),
        ("cad", "revenue_iv_individual"): (0, cad["charge-cad"]),
        ("cad", "stripe_fees"): (cad["fee"], 0),
        ("cad", "stripe_clearing"): (cad["charge-cad"], cad["fee"]),
    }
    days = {(entry["date"], entry["currency"]) for entry in report["journals"]}
    assert ("2026-10-31", "usd") in days  # 23:30 in Los Angeles is still October
    november = journal(client, finance, "2026-11").json["journals"]
    assert [(entry["date"], entry["debits"]) for entry in november] == [
        ("2026-11-01", planted("2026-11")["charge-iv"] + planted("2026-11")["fee"])
    ]


def test_the_xero_csv_has_xeros_columns_and_each_narration_balances(client, finance, books) -> None:
    answer = journal(client, finance, "2026-10", format="xero")
    assert answer.mimetype == "text/csv"
    assert (
        answer.headers["Content-Disposition"] == 'attachment; filename="journal-2026-10-xero.csv"'
    )
    columns, rows = rows_of(answer)
    assert columns == XERO
    journals: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for row in rows:
        day, month, year = row["Date"].split("/")  # dd/mm/yyyy
        assert (len(day), month, year) == (2, "10", "2026")
        assert row["Narration"].startswith("Stripe ") and row["TaxRate"] == "Tax Exempt"
        journals[row["Narration"], row["Date"]] += Decimal(row["Amount"])
    assert set(journals.values()) == {Decimal(0)}
    assert ("Stripe CAD 2026-10-05", "05/10/2026") in journals
    codes = {row["AccountCode"] for row in rows if row["Description"] == "Payouts to the bank"}
    assert codes == {"090", "1250"}  # the configured bank, and the default clearing account
    iv = [row for row in rows if row["AccountCode"] == "201"]  # the configured IV revenue
    assert sum(Decimal(row["Amount"]) for row in iv if "USD" in row["Narration"]) == -(
        Decimal(planted("2026-10")["charge-iv"]) / 100
    )
    assert all(row["Amount"].lstrip("-").replace(".", "", 1).isdigit() for row in rows)
    assert all(len(row["Amount"].split(".")[1]) == 2 for row in rows)  # cents, never floats


def test_the_quickbooks_csv_has_its_columns_and_each_journal_no_balances(
    client, finance, books
) -> None:
    answer = journal(client, finance, "2026-10", format="quickbooks", currency="usd")
    disposition = answer.headers["Content-Disposition"]
    assert disposition == 'attachment; filename="journal-2026-10-usd-quickbooks.csv"'
    columns, rows = rows_of(answer)
    assert columns == QUICKBOOKS
    debits: dict[str, Decimal] = defaultdict(Decimal)
    credits: dict[str, Decimal] = defaultdict(Decimal)
    for row in rows:
        assert (row["Debits"] == "") != (row["Credits"] == ""), row  # one side per line
        month, day, year = row["Journal Date"].split("/")  # MM/DD/YYYY
        assert (month, len(day), year) == ("10", 2, "2026")
        assert row["Journal No."] == f"{year}{month}{day}-USD"
        debits[row["Journal No."]] += Decimal(row["Debits"] or 0)
        credits[row["Journal No."]] += Decimal(row["Credits"] or 0)
    assert debits == credits and len(debits) == 5  # 5, 12, 20, 22 and 31 Oct
    names = {row["Account Name"] for row in rows}
    assert {"Chase Checking", "Infusion Revenue", "Stripe Clearing", "Stripe Fees"} <= names
    assert not any("CAD" in row["Journal No."] for row in rows)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"month": "2026-13"}, "month"),
        ({"month": "2026-10", "format": "csv"}, "format"),
        ({"month": "2026-10", "currency": "USD"}, "currency"),
        ({}, "month"),
    ],
)
def test_a_bad_journal_query_is_a_field_error(client, finance, query, field) -> None:
    answer = client.get("/v1/reports/journal", query_string=query, headers=finance)
    assert answer.status_code == 422
    assert set(answer.json["errors"]) == {field}


def test_a_key_without_reports_read_cannot_read_the_journal(client, make_key) -> None:
    answer = client.get("/v1/reports/journal?month=2026-10", headers=make_key("books:close"))
    assert (answer.status_code, answer.json["code"]) == (403, "insufficient_scope")


def test_the_openapi_document_describes_the_journal_like_the_other_reports(client) -> None:
    document = client.get("/openapi.json").json
    operation = document["paths"]["/v1/reports/journal"]["get"]
    assert operation["operationId"] == "getJournal" and operation["tags"] == ["reports"]
    assert set(operation["responses"]["200"]["content"]) == {"application/json", "text/csv"}
    (layout,) = [p for p in operation["parameters"] if p["name"] == "format"]
    assert layout["schema"] == {"$ref": "#/components/schemas/JournalFormat"}
    assert document["components"]["schemas"]["JournalFormat"]["enum"] == [
        "json",
        "xero",
        "quickbooks",
    ]
