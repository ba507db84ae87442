"""The finance dashboard: staff sign in, see a period's money, discrepancies and exports."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from functools import wraps
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    g,
    make_response,
    redirect,
    render_template,
    request,
    session,
)

from billing.adapters import db
from billing.adapters.models import StaffUser
from billing.domain.dates import clinic_date
from billing.domain.errors import NotFound
from billing.domain.money import CURRENCY_EXPONENTS, Money
from billing.domain.pricing import SESSION_TYPES, session_name
from billing.services.access import audit
from billing.services.access.staff import authenticate_staff, end_sessions
from billing.services.finance import journal
from billing.services.finance import reconciliation as reports
from billing.services.finance import reports as finance
from billing.services.invoicing import disputes, receipts
from billing.web.calendar import clinic_today, clinic_zone
from billing.web.charts import Series, line_chart
from billing.web.exports import aging_csv, month_end_csv, reconciliation_csv, refunds_disputes_csv
from billing.web.limits import (
    limiter,
    login_account,
    login_account_limit,
    login_address_limit,
    on_breach_page,
    retry_after,
)
from billing.web.pages import security_headers
from schemas.fields import EARLIEST, LATEST
from schemas.reports import MonthQuerySchema

blp = Blueprint("finance", __name__, url_prefix="/finance")
SESSION_HOURS = 12  # a session ends this long after sign-in, however busy it was


def init_app(app: Flask) -> None:
    # Set, not defaulted: Flask's own defaults already hold these keys (31 days, no
    # SameSite), so setdefault would change nothing.
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    # Only the finance pages use the session: the cookie is never sent to (nor refreshed
    # by) the patients' pay pages or the API.
    app.config["SESSION_COOKIE_PATH"] = "/finance"
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(hours=SESSION_HOURS)
    app.config["SESSION_COOKIE_SECURE"] = app.config["FINANCE_COOKIE_SECURE"]
    app.register_blueprint(blp)


@blp.after_request
def _headers(response: Response) -> Response:
    return security_headers(response)


def csrf_token() -> str:
    """The session's CSRF token, made on first use; every form carries it back."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return str(session["csrf"])


@blp.before_request
def check_csrf() -> None:
    """Every form posted carries the session's CSRF token, or is refused."""
    if request.method == "POST":
        sent = request.form.get("csrf_token", "")
        expected = str(session.get("csrf", ""))
        if not sent or not hmac.compare_digest(sent.encode(), expected.encode()):
            abort(
                render_page(
                    "finance/message.html",
                    400,
                    title="Form expired",
                    text="The form was missing its security token. Reload and try again.",
                )
            )


def signed_in(view: Callable[..., Any]) -> Callable[..., Any]:
    """The account behind the session, or off to sign in: when there is none, it is
    disabled, the session was ended (signed out or a new password, anywhere), or it was
    idle longer than FINANCE_IDLE_MINUTES, or signed in more than SESSION_HOURS ago (the
    cookie is refreshed on every page, so only this ends a session that never idles)."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        user_id = session.get("staff_id")
        user = db.session().get(StaffUser, user_id) if user_id else None
        now = datetime.now(UTC).timestamp()
        idle = now - float(session.get("seen", 0))
        age = now - float(session.get("since", 0))
        if (
            user is None
            or user.disabled_at is not None
            or session.get("version") != user.session_version
            or idle > current_app.config["FINANCE_IDLE_MINUTES"] * 60
            or age > SESSION_HOURS * 3600
        ):
            session.clear()
            return redirect("/finance/login", code=303)
        session["seen"] = now
        audit.act_as(audit.Actor("staff", user.email, g.get("request_id")))
        return view(*args, user=user, **kwargs)

    return wrapper


def _too_many_attempts(limit: Any) -> Response:
    return render_page(
        "finance/login.html",
        429,
        error=f"Too many sign-in attempts from this address. Try again in {_minutes(limit)}.",
    )


def _account_locked(limit: Any) -> Response:
    return render_page(
        "finance/login.html",
        429,
        error="Too many wrong passwords for this account from this address: signing in "
        f"from here is locked for {_minutes(limit)}. An administrator can set a new "
        "password meanwhile.",
        email=request.form.get("email", ""),
    )


def _minutes(limit: Any) -> str:
    minutes = max(1, -(-int(retry_after(limit)) // 60))  # whole minutes, rounded up
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


@blp.route("/login", methods=["GET", "POST"])
# Per address, every attempt; per account, the failed ones (across every instance).
@limiter.limit(login_address_limit, methods=["POST"], on_breach=on_breach_page(_too_many_attempts))
@limiter.limit(
    login_account_limit,
    key_func=login_account,
    methods=["POST"],
    deduct_when=lambda response: response.status_code == 401,
    on_breach=on_breach_page(_account_locked),
)
def login() -> Response:
    if request.method == "GET":
        return render_page("finance/login.html", 200)
    user = authenticate_staff(
        db.session(), request.form.get("email", ""), request.form.get("password", "")
    )
    if user is None:
        return render_page(
            "finance/login.html",
            401,
            error="Email or password is wrong.",
            email=request.form.get("email", ""),
        )
    session.clear()  # a fresh session (and CSRF token) for the signed-in user
    session.permanent = True
    session["staff_id"] = user.id
    session["version"] = user.session_version
    session["seen"] = session["since"] = datetime.now(UTC).timestamp()
    return redirect("/finance", code=303)  # type: ignore[return-value]  # Werkzeug's Response


@blp.post("/logout")
def logout() -> Response:
    """Sign out: every session of the account ends, copies of this cookie included."""
    user_id = session.get("staff_id")
    user = db.session().get(StaffUser, user_id) if user_id else None
    if user is not None and session.get("version") == user.session_version:
        end_sessions(db.session(), user)
    session.clear()
    return redirect("/finance/login", code=303)  # type: ignore[return-value]  # Werkzeug's Response


@blp.get("")
@signed_in
def dashboard(user: StaffUser) -> Response:
    start, end = _period_args()
    period = finance.day_range(start, end, clinic_zone())
    report = reports.reconciliation(db.session(), period)
    daily = finance.daily_by_session_type(db.session(), period)
    return render_page(
        "finance/dashboard.html",
        200,
        user=user,
        start=start,
        end=end,
        month=f"{end:%Y-%m}",
        closed_through=journal.closed_through(db.session()),
        totals=report["totals"],
        by_session_type=report["by_session_type"],
        by_payout=report["by_payout"],
        discrepancies=[
            row
            for key in ("missing_in_stripe", "missing_in_ledger", "mismatched")
            for row in report[key]
        ],
        matched=len(report["matched"]),
        overpayments=report["overpayments"],
        mismatches=finance.stripe_mismatches(db.session(), period),
        known_currencies=CURRENCY_EXPONENTS,
        fees=finance.fees_by_month(db.session(), period),
        disputes=disputes.open_disputes(db.session()),
        corrections=sorted(finance.adjustments_in(db.session(), period).items()),
        charts=[
            _chart([row for row in daily if row["currency"] == currency], start, end, currency)
            for currency in sorted({row["currency"] for row in daily}) or ["usd"]
        ],
        money=lambda amount, currency: Money(int(amount), currency).format(),
    )


@blp.get("/invoices/<invoice_id>")
@signed_in
def invoice(invoice_id: str, user: StaffUser) -> Response:
    try:
        history = receipts.invoice_history(db.session(), invoice_id)
    except NotFound:
        return render_page("finance/message.html", 404, title="No such invoice", text=invoice_id)
    currency = history.invoice.currency
    return render_page(
        "finance/invoice.html",
        200,
        user=user,
        invoice=history.invoice,
        payments=history.payments,
        refunds=history.refunds,
        ledger=history.ledger,
        money=lambda amount: Money(int(amount), currency).format(),
    )


@blp.get("/export/reconciliation.csv")
@signed_in
def export(user: StaffUser) -> Response:
    start, end = _period_args()
    return reconciliation_csv(finance.day_range(start, end, clinic_zone()))


@blp.get("/export/aging.csv")
@signed_in
def export_aging(user: StaffUser) -> Response:
    """The unpaid invoices by age, as CSV."""
    return aging_csv(finance.aging(db.session(), zone=clinic_zone()), clinic_zone())


@blp.get("/export/refunds-disputes.csv")
@signed_in
def export_refunds_disputes(user: StaffUser) -> Response:
    """The period's refunds and disputes, as CSV."""
    start, end = _period_args()
    period = finance.day_range(start, end, clinic_zone())
    return refunds_disputes_csv(finance.refunds_and_disputes(db.session(), period), period)


@blp.get("/export/month-end.csv")
@signed_in
def export_month_end(user: StaffUser) -> Response:
    """A month's summary, one currency a line, as CSV."""
    month = request.args.get("month", "")
    if MonthQuerySchema().validate({"month": month}):
        abort(render_page("finance/message.html", 400, title="Bad month", text="Use YYYY-MM."))
    year, number = (int(part) for part in month.split("-"))
    return month_end_csv(finance.month_end(db.session(), year, number, clinic_zone()))


def _period_args() -> tuple[date, date]:
    """The clinic days asked for; by default this month of the clinic's calendar so far."""
    today = clinic_today()
    try:
        start = date.fromisoformat(request.args.get("from") or today.replace(day=1).isoformat())
        end = date.fromisoformat(request.args.get("to") or today.isoformat())
    except ValueError:
        abort(render_page("finance/message.html", 400, title="Bad dates", text="Use YYYY-MM-DD."))
    if not (EARLIEST.date() <= start and end < LATEST.date()):
        abort(
            render_page(
                "finance/message.html", 400, title="Bad dates", text="Pick days from 1900 to 8999."
            )
        )
    if end < start or (end - start).days > 400:
        abort(
            render_page(
                "finance/message.html", 400, title="Bad period", text="Pick up to 400 days."
            )
        )
    return start, end


def _chart(daily: list[dict[str, Any]], start: date, end: date, currency: str) -> str:
    days = [(start + timedelta(days=n)).isoformat() for n in range((end - start).days + 1)]
    index = {day: n for n, day in enumerate(days)}
    series = []
    for colour, session_type in enumerate(SESSION_TYPES):
        gross, net = [0] * len(days), [0] * len(days)
        for row in daily:
            if row["session_type"] == session_type and row["day"] in index:
                gross[index[row["day"]]] = row["gross"]
                net[index[row["day"]]] = row["net"]
        name = session_name(session_type)
        series.append(Series(f"{name} gross", gross, colour=colour))
        series.append(Series(f"{name} net", net, dashed=True, colour=colour))
    return line_chart(
        f"Daily gross and net by session type, {currency.upper()}",
        [clinic_date(date.fromisoformat(day)) for day in days],
        series,
        amount=lambda value: Money(value, currency).format(),
        key=f"chart-{currency}",
    )


def render_page(template: str, status: int, **context: Any) -> Response:
    html = render_template(
        template,
        csrf_token=csrf_token(),
        clinic_name=current_app.config["CLINIC_NAME"],
        **context,
    )
    return make_response(html, status)
