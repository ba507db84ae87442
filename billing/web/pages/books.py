"""Closing the books from the dashboard, and the journal's exports for Xero and QuickBooks."""

from __future__ import annotations

from flask import Blueprint, Flask, Response, abort, request

from billing.adapters import db
from billing.adapters.models import StaffUser
from billing.domain.dates import month_name
from billing.domain.errors import Conflict
from billing.services.finance import journal
from billing.web.calendar import clinic_zone
from billing.web.exports import journal_chart, journal_csv
from billing.web.pages import security_headers
from billing.web.pages.finance import check_csrf, render_page, signed_in
from schemas.reports import MonthSchema

blp = Blueprint("finance_books", __name__, url_prefix="/finance/books")
blp.before_request(check_csrf)
LAYOUTS = {"xero": "Xero", "quickbooks": "QuickBooks Online"}


def init_app(app: Flask) -> None:
    app.register_blueprint(blp)


@blp.after_request
def _headers(response: Response) -> Response:
    return security_headers(response)


def _month() -> str:
    month = request.values.get("month", "")
    if MonthSchema().validate({"month": month}):
        abort(render_page("finance/message.html", 400, title="Bad month", text="Use YYYY-MM."))
    return month


@blp.post("/close")
@signed_in
def close(user: StaffUser) -> Response:
    """Close a month: its journal is kept as it is now; what comes later goes to the next.
    Closing cannot be undone, so the first post asks; the second, confirmed, closes."""
    month, session, zone = _month(), db.session(), clinic_zone()
    try:
        if request.form.get("confirmed") != "yes" and journal.check_closable(session, month, zone):
            preview = journal.month_journal(session, month, zone, journal_chart())
            return render_page(
                "finance/close_month.html",
                200,
                user=user,
                month=month,
                name=month_name(month),
                entries=len(preview.journals),
            )
        closing = journal.close_month(session, month, zone, journal_chart())
    except Conflict as refusal:
        title = f"{month_name(month)} stays open"
        return render_page("finance/message.html", 409, user=user, title=title, text=refusal.detail)
    done = "is closed" if closing.created else "was closed already"
    text = (
        "Its journal no longer changes; anything that arrives for it later goes to the "
        "first open month."
    )
    title = f"{month_name(month)} {done}"
    return render_page("finance/message.html", 200, user=user, title=title, text=text)


@blp.get("/journal.csv")
@signed_in
def export_journal(user: StaffUser) -> Response:
    """A month's journal as the CSV Xero or QuickBooks Online imports."""
    month, layout = _month(), request.args.get("format", "")
    if layout not in LAYOUTS:
        abort(render_page("finance/message.html", 400, title="Bad format", text="Pick a ledger."))
    report = journal.month_journal(db.session(), month, clinic_zone(), journal_chart())
    return journal_csv(report, layout)
