"""Finance reports, each as JSON or CSV: reconciliation (the CSV streamed), ageing,
refunds and disputes, month end, and the accounting journal (CSV for Xero or QuickBooks)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import Response, current_app
from flask.views import MethodView

from billing.adapters import db
from billing.services.finance import dunning, fast_reports, journal
from billing.services.finance import reconciliation as reports
from billing.services.finance import reports as finance
from billing.web.api.blueprint import Blueprint
from billing.web.api.common import BEARER
from billing.web.api.spec import problems
from billing.web.auth import requires
from billing.web.calendar import clinic_zone
from billing.web.exports import (
    aging_csv,
    dunning_csv,
    journal_body,
    journal_chart,
    journal_csv,
    json_response,
    month_end_csv,
    reconciliation_csv,
    refunds_disputes_csv,
    wants_csv,
)
from schemas.journal import JournalQuerySchema, JournalSchema
from schemas.reports import (
    AgingSchema,
    DunningSchema,
    FormatQuerySchema,
    MonthEndSchema,
    MonthQuerySchema,
    PeriodQuerySchema,
    ReconciliationSchema,
    RefundsDisputesSchema,
)

blp = Blueprint("reports", __name__, url_prefix="/v1/reports", description="Finance reports")
F = TypeVar("F", bound=Callable[..., Any])


def or_csv(description: str) -> Callable[[F], F]:
    """Document the CSV an operation also answers, with Accept: text/csv or format=csv."""
    return blp.alt_response(  # type: ignore[no-any-return]  # flask-smorest is untyped
        200,
        schema={"type": "string"},
        content_type="text/csv",
        success=True,
        description=f"JSON; or CSV, {description}, with Accept: text/csv or format=csv",
    )


def period_of(query: dict[str, Any]) -> reports.Period:
    """The days asked for, as the clinic's calendar has them."""
    return finance.day_range(query["start"], query["end"], clinic_zone())


@blp.route("/reconciliation")
class ReconciliationView(MethodView):
    @requires("reports:read")
    @blp.doc(security=BEARER)
    @blp.arguments(PeriodQuerySchema(), location="query")
    @blp.alt_response(200, schema=ReconciliationSchema(), success=True)
    @or_csv("one pair per line")
    @problems(blp, 422)
    def get(self, query: dict[str, Any]) -> Response:
        """Our ledger against Stripe: matched, missing on either side, mismatched, and
        gross, refunds, fees and net per day, per payout and per session type."""
        period = period_of(query)
        if wants_csv(query):
            return reconciliation_csv(period)
        session = db.session()
        if fast_reports.available(
            session, current_app.config["REPORTS_IN_DATABASE"]
        ):  # PostgreSQL writes the pairs' JSON itself
            chunks = fast_reports.reconciliation_json(session, period)
            sent = Response(chunks, mimetype="application/json")
            sent.content_length = sum(map(len, chunks))
            return sent
        return json_response(reports.reconciliation(session, period))


@blp.route("/aging")
class AgingView(MethodView):
    @requires("reports:read")
    @blp.doc(security=BEARER)
    @blp.arguments(FormatQuerySchema(), location="query")
    @blp.alt_response(200, schema=AgingSchema(), success=True)
    @or_csv("one unpaid invoice per line")
    @problems(blp, 422)
    def get(self, query: dict[str, Any]) -> Response:
        """Unpaid invoices by age: 0-30, 31-60, 61-90 and over 90 days."""
        report = finance.aging(db.session(), zone=clinic_zone())
        return aging_csv(report, clinic_zone()) if wants_csv(query) else json_response(report)


@blp.route("/refunds-disputes")
class RefundsDisputesView(MethodView):
    @requires("reports:read")
    @blp.doc(security=BEARER)
    @blp.arguments(PeriodQuerySchema(), location="query")
    @blp.alt_response(200, schema=RefundsDisputesSchema(), success=True)
    @or_csv("one refund or dispute per line")
    @problems(blp, 422)
    def get(self, query: dict[str, Any]) -> Response:
        """Refunds and disputes recorded in a period."""
        period = period_of(query)
        report = finance.refunds_and_disputes(db.session(), period)
        return refunds_disputes_csv(report, period) if wants_csv(query) else json_response(report)


@blp.route("/dunning")
class DunningView(MethodView):
    @requires("reports:read")
    @blp.doc(security=BEARER)
    @blp.arguments(PeriodQuerySchema(), location="query")
    @blp.alt_response(200, schema=DunningSchema(), success=True)
    @or_csv("one declined scheduled charge per line")
    @problems(blp, 422)
    def get(self, query: dict[str, Any]) -> Response:
        """Declined instalments: in retry now, and recovered or given up in the period,
        with what each came to per currency."""
        period = period_of(query)
        report = dunning.dunning_report(db.session(), period.start, period.end)
        return dunning_csv(report, period) if wants_csv(query) else json_response(report)


@blp.route("/month-end")
class MonthEndView(MethodView):
    @requires("reports:read")
    @blp.doc(security=BEARER)
    @blp.arguments(MonthQuerySchema(), location="query")
    @blp.alt_response(200, schema=MonthEndSchema(), success=True)
    @or_csv("one currency per line")
    @problems(blp, 422)
    def get(self, query: dict[str, Any]) -> Response:
        """A month's summary: billed, collected, refunded, fees, net, still owed."""
        year, month = (int(part) for part in query["month"].split("-"))
        report = finance.month_end(db.session(), year, month, clinic_zone())
        return month_end_csv(report) if wants_csv(query) else json_response(report)


@blp.route("/journal")
class JournalView(MethodView):
    @requires("reports:read")
    @blp.doc(security=BEARER)
    @blp.arguments(JournalQuerySchema(), location="query")
    @blp.alt_response(200, schema=JournalSchema(), success=True)
    @blp.alt_response(
        200,
        schema={"type": "string"},
        content_type="text/csv",
        success=True,
        description="JSON; or, with format=xero or format=quickbooks, the CSV that Xero's "
        "manual-journal import or QuickBooks Online's journal-entry import reads",
    )
    @problems(blp, 422)
    def get(self, query: dict[str, Any]) -> Response:
        """A month's accounting journal, one per day and currency, balanced against a Stripe
        clearing account: revenue by session type, refunds, disputes, Stripe's fees and
        payouts to the bank. A closed month's journal is as it was when it closed."""
        report = journal.month_journal(
            db.session(), query["month"], clinic_zone(), journal_chart(), query.get("currency")
        )
        layout = query.get("format", "json")
        if layout == "json":
            return journal_body(report)
        return journal_csv(report, layout, query.get("currency"))
