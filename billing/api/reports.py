"""Finance reports: reconciliation (JSON or streamed CSV), ageing, refunds and disputes,
month end."""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Any

from flask import Response
from flask.views import MethodView
from flask_smorest import Blueprint

from billing import db
from billing.api.common import BEARER
from billing.api.spec import problems
from billing.auth import requires
from billing.exports import json_response, reconciliation_csv, wants_csv
from billing.services import finance, reports
from schemas.reports import (
    AgingSchema,
    MonthEndSchema,
    MonthQuerySchema,
    PeriodQuerySchema,
    ReconciliationSchema,
    RefundsDisputesSchema,
)

blp = Blueprint("reports", __name__, url_prefix="/v1/reports", description="Finance reports")


def period_of(query: dict[str, Any]) -> reports.Period:
    start = datetime.combine(query["start"], time(), UTC)
    end = datetime.combine(query["end"], time(), UTC)
    return finance.day_range(start, end)


@blp.route("/reconciliation")
class ReconciliationView(MethodView):
    @requires("reports:read")
    @blp.doc(security=BEARER)
    @blp.arguments(PeriodQuerySchema(), location="query")
    @blp.alt_response(
        200,
        schema=ReconciliationSchema(),
        success=True,
        description="JSON; or CSV, one pair per line, with Accept: text/csv or format=csv",
    )
    @blp.alt_response(
        200,
        schema={"type": "string"},
        content_type="text/csv",
        success=True,
        description="JSON; or CSV, one pair per line, with Accept: text/csv or format=csv",
    )
    @problems(blp, 422)
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
    @blp.alt_response(200, schema=AgingSchema(), success=True, description="The ageing")
    @problems(blp)
    def get(self) -> Response:
        """Unpaid invoices by age: 0-30, 31-60, 61-90 and over 90 days."""
        return json_response(finance.aging(db.session()))


@blp.route("/refunds-disputes")
class RefundsDisputesView(MethodView):
    @requires("reports:read")
    @blp.doc(security=BEARER)
    @blp.arguments(PeriodQuerySchema(), location="query")
    @blp.alt_response(200, schema=RefundsDisputesSchema(), success=True, description="The lists")
    @problems(blp, 422)
    def get(self, query: dict[str, Any]) -> Response:
        """Refunds and disputes recorded in a period."""
        return json_response(finance.refunds_and_disputes(db.session(), period_of(query)))


@blp.route("/month-end")
class MonthEndView(MethodView):
    @requires("reports:read")
    @blp.doc(security=BEARER)
    @blp.arguments(MonthQuerySchema(), location="query")
    @blp.alt_response(200, schema=MonthEndSchema(), success=True, description="The month")
    @problems(blp, 422)
    def get(self, query: dict[str, Any]) -> Response:
        """A month's summary: billed, collected, refunded, fees, net, still owed."""
        year, month = (int(part) for part in query["month"].split("-"))
        return json_response(finance.month_end(db.session(), year, month))
