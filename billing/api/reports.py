"""Finance reports: reconciliation (JSON or streamed CSV), ageing, refunds and disputes,
month end."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, time
from typing import Any

from flask import Response, request, stream_with_context
from flask.views import MethodView
from flask_smorest import Blueprint

from billing import db
from billing.api.common import BEARER
from billing.auth import requires
from billing.services import finance, reports
from schemas.reports import MonthQuerySchema, PeriodQuerySchema

blp = Blueprint("reports", __name__, url_prefix="/v1/reports", description="Finance reports")


def period_of(query: dict[str, Any]) -> reports.Period:
    start = datetime.combine(query["start"], time(), UTC)
    end = datetime.combine(query["end"], time(), UTC)
    return finance.day_range(start, end)


def json_response(body: Any) -> Response:
    return Response(json.dumps(jsonable(body)), mimetype="application/json")


def jsonable(value: Any) -> Any:
    """Timestamps as RFC 3339, everything else as JSON knows it."""
    if isinstance(value, dict):
        return {key: jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def csv_lines(rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    """The pairs as CSV, one buffered line at a time."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=reports.CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow(jsonable(row))
        if buffer.tell() > 64 * 1024:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def wants_csv(query: dict[str, Any]) -> bool:
    if query.get("format"):
        return bool(query["format"] == "csv")
    return request.accept_mimetypes.best_match(["application/json", "text/csv"]) == "text/csv"


def reconciliation_csv(period: reports.Period) -> Response:
    name = f"reconciliation-{period.start.date()}-{period.end.date()}.csv"
    rows = reports.pair_rows(db.session(), period)
    response = Response(stream_with_context(csv_lines(rows)), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@blp.route("/reconciliation")
class ReconciliationView(MethodView):
    @requires("reports:read")
    @blp.doc(
        security=BEARER,
        responses={"200": {"description": "JSON, or CSV with Accept: text/csv or format=csv"}},
    )
    @blp.arguments(PeriodQuerySchema(), location="query")
    def get(self, query: dict[str, Any]) -> Response:
        """Our ledger against Stripe: matched, missing on either side, mismatched, and
        gross, refunds, fees and net per day, per payout and per session type."""
        period = period_of(query)
        if wants_csv(query):
            return reconciliation_csv(period)
        return json_response(reports.reconciliation(db.session(), period))


@blp.route("/aging")
class AgingView(MethodView):
    @requires("reports:read")
    @blp.doc(security=BEARER)
    def get(self) -> Response:
        """Unpaid invoices by age: 0-30, 31-60, 61-90 and over 90 days."""
        return json_response(finance.aging(db.session()))


@blp.route("/refunds-disputes")
class RefundsDisputesView(MethodView):
    @requires("reports:read")
    @blp.doc(security=BEARER)
    @blp.arguments(PeriodQuerySchema(), location="query")
    def get(self, query: dict[str, Any]) -> Response:
        """Refunds and disputes recorded in a period."""
        return json_response(finance.refunds_and_disputes(db.session(), period_of(query)))


@blp.route("/month-end")
class MonthEndView(MethodView):
    @requires("reports:read")
    @blp.doc(security=BEARER)
    @blp.arguments(MonthQuerySchema(), location="query")
    def get(self, query: dict[str, Any]) -> Response:
        """A month's summary: billed, collected, refunded, fees, net, still owed."""
        year, month = (int(part) for part in query["month"].split("-"))
        return json_response(finance.month_end(db.session(), year, month))
