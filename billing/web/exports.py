"""Report bodies for the wire: JSON with RFC 3339 timestamps, and CSV streamed line by line."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import Response, current_app, request

from billing.adapters import db
from billing.domain.dates import day_of
from billing.domain.journal import Account, Journal
from billing.domain.money import Money
from billing.domain.spreadsheet import neutralise
from billing.services.access import audit
from billing.services.finance import fast_reports
from billing.services.finance import reconciliation as reports
from billing.services.finance.journal import MonthJournal


def json_response(body: Any) -> Response:
    return Response(json.dumps(body, default=_timestamp), mimetype="application/json")


def _timestamp(value: Any) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


def jsonable(value: Any) -> Any:
    """Timestamps as RFC 3339, everything else as JSON knows it."""
    if isinstance(value, dict):
        return {key: jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


# The other reports' CSV columns. Each amount has its currency on the same line; no line
# holds a sum across currencies.
AGING_COLUMNS = (
    "id",
    "number",
    "patient_id",
    "status",
    "created_at",
    "age_days",
    "bucket",
    "total",
    "balance_due",
    "currency",
)
REFUNDS_DISPUTES_COLUMNS = (
    "kind",
    "stripe_id",
    "occurred_at",
    "invoice_id",
    "invoice_number",
    "amount",
    "currency",
    "refund_id",
    "reason",
)
DUNNING_COLUMNS = (
    "state",
    "id",
    "invoice_number",
    "invoice_id",
    "patient_id",
    "plan_id",
    "number",
    "due_at",
    "amount",
    "amount_paid",
    "currency",
    "status",
    "declines",
    "failure_code",
    "next_attempt_at",
    "updated_at",
)
MONTH_END_COLUMNS = (
    "month",
    "currency",
    "billed",
    "collected",
    "received_outside_stripe",
    "refunded",
    "disputed",
    "stripe_fees",
    "net",
    "open_amount",
    "credits_redeemed",
    "credit_redemption_value",
    "deferred_revenue",
    "membership_revenue",
    "membership_deferred",
)


def csv_lines(
    rows: Iterable[dict[str, Any]], columns: Sequence[str] = reports.CSV_COLUMNS
) -> Iterator[str]:
    """The rows as CSV, one buffered line at a time; text a spreadsheet would run as a
    formula (a refund's reason, say) written as text."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow(_cells(row, columns))
        if buffer.tell() > 64 * 1024:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def _cells(row: dict[str, Any], columns: Sequence[str]) -> dict[str, Any]:
    """The row's values of `columns` as CSV writes them: timestamps in RFC 3339, text
    neutralised (numbers stay numbers, null stays empty)."""
    cells: dict[str, Any] = {}
    for column in columns:
        value = jsonable(row.get(column))
        cells[column] = neutralise(value) if isinstance(value, str) else value
    return cells


def wants_csv(query: dict[str, Any]) -> bool:
    if query.get("format"):
        return bool(query["format"] == "csv")
    return request.accept_mimetypes.best_match(["application/json", "text/csv"]) == "text/csv"


def reconciliation_csv(period: reports.Period) -> Response:
    name = f"reconciliation-{_days(period)}.csv"
    make_session = db.database().sessionmaker
    in_database = current_app.config["REPORTS_IN_DATABASE"]

    def lines() -> Iterator[bytes]:
        # The stream outlives the request's session: it has one of its own, closed
        # when the last line is sent (or the client goes away).
        session = make_session()
        try:
            if fast_reports.available(session, in_database):  # PostgreSQL writes it (COPY)
                yield from fast_reports.copy_csv(session, period)
            else:
                for text in csv_lines(reports.pair_rows(session, period)):
                    yield text.encode()
        finally:
            session.close()

    return _attachment(lines(), name)


def aging_csv(report: dict[str, Any], zone: ZoneInfo) -> Response:
    """The ageing as CSV: one unpaid invoice a line, with its bucket."""
    name = f"aging-{day_of(report['as_of'], zone)}.csv"
    return _attachment(csv_lines(report["invoices"], AGING_COLUMNS), name)


def refunds_disputes_csv(report: dict[str, Any], period: reports.Period) -> Response:
    """Refunds and disputes as CSV, one a line in the order they happened, `kind` telling
    which: a refund's failure (its money back, the amount negative) is `refund_failure`, a
    bank debit that came back `bank_return`."""
    rows = [
        {
            **row,
            "kind": "refund_failure" if row["amount"] < 0 else "refund",
            "stripe_id": row["stripe_refund_id"],
        }
        for row in report["refunds"]
    ] + [{**row, "stripe_id": row["stripe_dispute_id"]} for row in report["disputes"]]
    rows.sort(key=lambda row: row["occurred_at"])
    name = f"refunds-disputes-{_days(period)}.csv"
    return _attachment(csv_lines(rows, REFUNDS_DISPUTES_COLUMNS), name)


def dunning_csv(report: dict[str, Any], period: reports.Period) -> Response:
    """Declined scheduled charges as CSV, one a line, `state` saying which list it is on:
    in_retry, recovered or given_up."""
    rows = [
        {**row, "state": state}
        for state in ("in_retry", "recovered", "given_up")
        for row in report[state]
    ]
    return _attachment(csv_lines(rows, DUNNING_COLUMNS), f"dunning-{_days(period)}.csv")


def month_end_csv(report: dict[str, Any]) -> Response:
    """The month's money as CSV, one currency a line."""
    rows = [
        {"month": report["month"], "currency": currency, **figures}
        for currency, figures in report["currencies"].items()
    ]
    name = f"month-end-{report['month']}.csv"
    return _attachment(csv_lines(rows, MONTH_END_COLUMNS), name)


# The journal's CSV layouts, as the ledgers' import templates name their columns. Xero
# (manual journals): a journal is the lines sharing a Narration and Date, the Amount a debit
# when positive and a credit when negative, dates dd/mm/yyyy. QuickBooks Online (journal
# entries): a journal is the lines sharing a Journal No., Debits and Credits apart, dates
# MM/DD/YYYY. Amounts in the currency's major unit, without symbol or separators.
XERO_COLUMNS = (
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
)
QUICKBOOKS_COLUMNS = (
    "Journal No.",
    "Journal Date",
    "Account Name",
    "Debits",
    "Credits",
    "Description",
)


def journal_chart() -> dict[str, Account]:
    """The clinic's accounts (JOURNAL_ACCOUNTS)."""
    chart: dict[str, Account] = current_app.config["JOURNAL_CHART"]
    return chart


def journal_body(report: MonthJournal) -> Response:
    """The month's journal as JSON: amounts in minor units, each journal's sums beside."""
    return json_response(
        {
            "month": report.month,
            "status": report.status,
            "closed_at": report.closed_at,
            "closed_by": report.closed_by,
            "time_zone": report.time_zone,
            "journals": [_journal_json(journal) for journal in report.journals],
        }
    )


def _journal_json(journal: Journal) -> dict[str, Any]:
    return {
        "number": journal.number,
        "narration": journal.narration,
        "date": journal.day,
        "currency": journal.currency,
        "debits": journal.debits.amount,
        "credits": journal.credits.amount,
        "lines": [
            {
                "account": line.account.key,
                "account_name": line.account.name,
                "account_code": line.account.code,
                "tax_rate": line.account.tax_rate,
                "description": line.description,
                "debit": line.debit,
                "credit": line.credit,
            }
            for line in journal.lines
        ],
    }


def journal_csv(report: MonthJournal, layout: str, currency: str | None = None) -> Response:
    """The journal as the CSV Xero (`xero`) or QuickBooks Online (`quickbooks`) imports."""
    rows = _xero_rows(report.journals) if layout == "xero" else _quickbooks_rows(report.journals)
    columns = XERO_COLUMNS if layout == "xero" else QUICKBOOKS_COLUMNS
    name = "-".join(filter(None, ("journal", report.month, currency, layout))) + ".csv"
    return _attachment(csv_lines(rows, columns), name)


def _xero_rows(journals: list[Journal]) -> Iterator[dict[str, str]]:
    for journal in journals:
        for line in journal.lines:
            yield {
                "Narration": journal.narration,
                "Date": f"{journal.day:%d/%m/%Y}",
                "Description": line.description,
                "AccountCode": line.account.code,
                "TaxRate": line.account.tax_rate,
                "Amount": Money(line.debit - line.credit, journal.currency).major_units(),
            }


def _quickbooks_rows(journals: list[Journal]) -> Iterator[dict[str, str]]:
    def side(amount: int, currency: str) -> str:
        return Money(amount, currency).major_units() if amount else ""

    for journal in journals:
        for line in journal.lines:
            yield {
                "Journal No.": journal.number,
                "Journal Date": f"{journal.day:%m/%d/%Y}",
                "Account Name": line.account.name,
                "Debits": side(line.debit, journal.currency),
                "Credits": side(line.credit, journal.currency),
                "Description": line.description,
            }


def _days(period: reports.Period) -> str:
    """The period's first and last day, as a file name says them."""
    return f"{period.first_day}-{period.last_day}"


def _attachment(lines: Iterator[str] | Iterator[bytes], name: str) -> Response:
    """A CSV download named `name`, in the audit trail as an export (who took the books
    away); a HEAD takes nothing away and writes nothing."""
    if request.method != "HEAD":
        audit.record_export(db.session(), name)
    response = Response(lines, mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
