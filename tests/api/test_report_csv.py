"""Every finance report as CSV: read back, each holds what its JSON holds, amounts beside
their currency, and the OpenAPI document says so."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from datetime import timedelta

import pytest
from flask import Flask

from billing.adapters import db
from billing.adapters.models import Refund, utcnow
from billing.web.exports import AGING_COLUMNS, MONTH_END_COLUMNS, REFUNDS_DISPUTES_COLUMNS
from tests.api.test_reconciliation import add_ledger, add_stripe, at, iv_invoice, set_invoice

MARCH = {"from": "2025-03-01", "to": "2025-03-31"}
AS_CSV = pytest.mark.parametrize(
    ("query", "headers"),
    [({}, {"Accept": "text/csv"}), ({"format": "csv"}, {})],
    ids=["accept-header", "format-param"],
)


@pytest.fixture
def finance(make_key) -> dict[str, str]:
    return make_key("reports:read")


@pytest.fixture
def books(app: Flask, client, make_key) -> dict[str, dict]:
    """Open invoices in usd and cad of several ages; in March 2025 a usd and a cad invoice
    paid, a usd refund (its reason needs quoting), a cad dispute; a refund in April."""
    prices = client.post(
        "/v1/catalog/prices",
        headers=make_key("catalog:write"),
        json={"iv_individual_amount": 60000, "currency": "cad"},
    )
    assert prices.status_code == 201, prices.json
    desk = make_key("quotes:write", "invoices:write", "invoices:read")
    ages = {"usd-10": 10, "cad-10": 10, "usd-45": 45}
    names = (*ages, "usd-paid", "cad-paid")
    invoices = {name: iv_invoice(client, desk, f"P-{name}", currency=name[:3]) for name in names}
    for name, days in ages.items():
        set_invoice(app, invoices[name]["id"], created_at=utcnow() - timedelta(days=days))
    paid, cad = invoices["usd-paid"], invoices["cad-paid"]
    set_invoice(app, paid["id"], status="partially_refunded", created_at=at("2025-03-02T09:00Z"))
    set_invoice(app, cad["id"], status="paid", created_at=at("2025-03-03T09:00Z"))
    add_ledger(app, paid, "charge", 50000, "ch_usd", "2025-03-05T10:00:00Z")
    add_ledger(app, paid, "refund", 12500, "re_usd", "2025-03-12T08:59:58Z")
    add_stripe(
        app,
        "txn_usd",
        type="charge",
        source="ch_usd",
        amount=50000,
        fee=1480,
        created="2025-03-05T10:00:01Z",
    )
    add_ledger(app, paid, "refund", 500, "re_april", "2025-04-02T08:00:00Z")
    add_ledger(app, cad, "charge", 60000, "ch_cad", "2025-03-06T10:00:00Z")
    add_ledger(app, cad, "dispute", 60000, "dp_cad", "2025-03-20T17:30:00Z")
    with app.app_context():
        session = db.session()
        session.add(
            Refund(
                invoice_id=paid["id"],
                amount=12500,
                currency="usd",
                reason='shorter session, "as agreed"',
                status="succeeded",
                stripe_refund_id="re_usd",
            )
        )
        session.commit()
    return invoices


def read_csv(client, path: str, headers: dict[str, str], **query: str) -> tuple:
    """(response, rows, columns) of a report asked for as CSV."""
    response = client.get(path, query_string=query, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/csv"
    reader = csv.DictReader(io.StringIO(response.get_data(as_text=True)))
    rows = list(reader)
    return response, rows, tuple(reader.fieldnames or ())


def as_csv_text(row: dict, columns: tuple[str, ...]) -> dict[str, str]:
    """A JSON row as its CSV line reads back: every value text, null empty."""
    return {column: "" if row.get(column) is None else str(row[column]) for column in columns}


@AS_CSV
def test_aging_csv_lists_each_unpaid_invoice_of_the_json_with_its_currency(
    client, finance, books, query, headers
) -> None:
    report = client.get("/v1/reports/aging", headers=finance).json
    response, rows, columns = read_csv(client, "/v1/reports/aging", {**finance, **headers}, **query)
    assert columns == AGING_COLUMNS
    assert rows == [as_csv_text(row, AGING_COLUMNS) for row in report["invoices"]]
    assert {(row["number"], row["bucket"], row["currency"]) for row in rows} == {
        (books["usd-10"]["number"], "0-30", "usd"),
        (books["cad-10"]["number"], "0-30", "cad"),
        (books["usd-45"]["number"], "31-60", "usd"),
    }
    owed: dict[str, dict[str, int]] = defaultdict(dict)
    for row in rows:  # the buckets' totals, per currency, from the CSV alone
        bucket = owed[row["bucket"]]
        bucket[row["currency"]] = bucket.get(row["currency"], 0) + int(row["total"])
    assert {name: b["totals"] for name, b in report["buckets"].items() if b["count"]} == owed
    assert owed["0-30"] == {"usd": 50000, "cad": 60000}  # never 110000 of anything
    assert response.headers["Content-Disposition"] == (
        f'attachment; filename="aging-{report["as_of"][:10]}.csv"'
    )


@AS_CSV
def test_refunds_disputes_csv_holds_the_json_lists_in_the_order_they_happened(
    client, finance, books, query, headers
) -> None:
    report = client.get("/v1/reports/refunds-disputes", query_string=MARCH, headers=finance).json
    response, rows, columns = read_csv(
        client, "/v1/reports/refunds-disputes", {**finance, **headers}, **MARCH, **query
    )
    assert columns == REFUNDS_DISPUTES_COLUMNS
    (refund,) = report["refunds"]
    (dispute,) = report["disputes"]
    expected = [
        {**refund, "kind": "refund", "stripe_id": refund["stripe_refund_id"]},
        {**dispute, "kind": "dispute", "stripe_id": dispute["stripe_dispute_id"]},
    ]
    assert rows == [as_csv_text(row, REFUNDS_DISPUTES_COLUMNS) for row in expected]
    assert rows[0]["reason"] == 'shorter session, "as agreed"'
    assert [(r["amount"], r["currency"]) for r in rows] == [("12500", "usd"), ("60000", "cad")]
    assert response.headers["Content-Disposition"] == (
        'attachment; filename="refunds-disputes-2025-03-01-2025-03-31.csv"'
    )


@AS_CSV
def test_month_end_csv_has_one_line_per_currency_of_the_json(
    client, finance, books, query, headers
) -> None:
    report = client.get("/v1/reports/month-end?month=2025-03", headers=finance).json
    response, rows, columns = read_csv(
        client, "/v1/reports/month-end", {**finance, **headers}, month="2025-03", **query
    )
    assert columns == MONTH_END_COLUMNS
    assert rows == [
        as_csv_text({"month": "2025-03", "currency": currency, **figures}, MONTH_END_COLUMNS)
        for currency, figures in report["currencies"].items()
    ]
    by_currency = {row["currency"]: row for row in rows}
    assert (by_currency["usd"]["billed"], by_currency["usd"]["refunded"]) == ("50000", "12500")
    assert (by_currency["cad"]["billed"], by_currency["cad"]["disputed"]) == ("60000", "60000")
    assert response.headers["Content-Disposition"] == 'attachment; filename="month-end-2025-03.csv"'


@pytest.mark.parametrize(
    "path", ["/v1/reports/aging", "/v1/reports/refunds-disputes?from=2025-03-01&to=2025-03-31"]
)
def test_format_json_wins_and_an_unknown_format_is_a_field_error(client, finance, path) -> None:
    joiner = "&" if "?" in path else "?"
    answer = client.get(f"{path}{joiner}format=json", headers={**finance, "Accept": "text/csv"})
    assert answer.mimetype == "application/json"
    wrong = client.get(f"{path}{joiner}format=xlsx", headers=finance)
    assert wrong.status_code == 422
    assert set(wrong.json["errors"]) == {"format"}


@pytest.mark.parametrize("report", ["reconciliation", "aging", "refunds-disputes", "month-end"])
def test_the_openapi_document_offers_every_report_as_csv(client, report) -> None:
    document = client.get("/openapi.json").json
    operation = document["paths"][f"/v1/reports/{report}"]["get"]
    assert set(operation["responses"]["200"]["content"]) == {"application/json", "text/csv"}
    (parameter,) = [p for p in operation["parameters"] if p["name"] == "format"]
    assert parameter["schema"] == {"$ref": "#/components/schemas/ReportFormat"}
    assert document["components"]["schemas"]["ReportFormat"]["enum"] == ["json", "csv"]
