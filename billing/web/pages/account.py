"""The patient portal, /account: sign in with a one-time link, then every bill of the
patients the address reaches (billing.services.portal.access says which), paid from
here, with receipts to download.

Every page carries the pay page's headers (a strict CSP with no inline script, no-store,
no referrer). The session cookie is HttpOnly, SameSite=Strict and sent only to /account;
every form of a signed-in page carries a token derived from the session, and a POST from
another site is refused before anything else.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from datetime import date, timedelta
from functools import wraps
from typing import Any
from urllib.parse import urlencode, urlsplit

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    g,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
)

from billing.adapters import db
from billing.adapters.portal_models import PortalSession
from billing.adapters.providers import gateway
from billing.domain import statuses
from billing.domain.errors import NotFound, ServiceError
from billing.domain.money import CURRENCY_EXPONENTS, Money
from billing.services.access import audit
from billing.services.invoicing.receipts import receipt_payments
from billing.services.payments import autopay, balance, card_moves, credit_requests, patients
from billing.services.payments.online import REUSABLE
from billing.services.payments.pay_status import INTENT_ID
from billing.services.portal import access, overview, paying, statement_emails, statements
from billing.web.calendar import clinic_as_consents_name_it, clinic_contact, clinic_today
from billing.web.estimates import pdf_response as estimate_pdf_response
from billing.web.estimates import view_of
from billing.web.limits import limiter, on_breach_page
from billing.web.pages import security_headers
from billing.web.pages.pay import WAIT_REFRESHES, contact, save_card_consent, signing_keys
from billing.web.receipts import pdf_response
from billing.web.requests import LONE_SURROGATE
from billing.web.statements import statement_response

blp = Blueprint("account", __name__, url_prefix="/account")
SESSION_COOKIE = "billing_portal"
BROWSER_COOKIE = "billing_portal_browser"
PATH = "/account"
SENT_TEXT = (
    "If {email} is the address the clinic has for you, a sign-in link is on its way. It "
    "works once, within {minutes} minutes, in this browser. Nothing arrived? Check the "
    "spam folder, or ask the clinic which address they have."
)


def init_app(app: Flask) -> None:
    app.register_blueprint(blp)


def lifetimes(link: timedelta | None = None) -> access.Lifetimes:
    config = current_app.config
    return access.Lifetimes(
        link=link or timedelta(minutes=config["PORTAL_LINK_MINUTES"]),
        idle=timedelta(minutes=config["PORTAL_IDLE_MINUTES"]),
        whole=timedelta(hours=config["PORTAL_SESSION_HOURS"]),
    )


@blp.after_request
def _headers(response: Response) -> Response:
    return security_headers(response)


@blp.before_request
def _same_site_posts_only() -> None:
    """A form posted from another site (a forged sign-in, a forged payment) is refused:
    browsers say where a request comes from (Sec-Fetch-Site, Origin)."""
    audit.act_as(audit.Actor("patient", "portal", g.get("request_id")))
    said = [request.path, *(v for item in request.args.items(multi=True) for v in item)]
    if request.method == "POST":
        said += [v for item in request.form.items(multi=True) for v in item]
    if any("\x00" in text or LONE_SURROGATE.search(text) for text in said):
        # No id, address or date holds one (and PostgreSQL cannot store a NUL).
        abort(_page("account/message.html", 404, title="Not found", text="There is nothing here."))
    if request.method != "POST":
        return
    fetched = request.headers.get("Sec-Fetch-Site")
    origin = request.headers.get("Origin")
    cross = fetched is not None and fetched not in ("same-origin", "none")
    if origin and origin != "null" and urlsplit(origin).netloc not in _our_hosts():
        cross = True
    if cross:
        abort(_page("account/message.html", 403, title="Not allowed", text=FORGED_TEXT))


FORGED_TEXT = "This form was sent from another website, so it was refused."


def _our_hosts() -> set[str]:
    """Where the portal's own forms come from: the service's public address (behind a
    proxy the Host header may say something else), and the host this request named."""
    hosts = {request.host}
    public = str(current_app.config.get("PUBLIC_BASE_URL") or "")
    if public:
        hosts.add(urlsplit(public).netloc)
    return hosts


def _page(template: str, status: int = 200, **context: Any) -> Response:
    html = render_template(
        template,
        clinic_name=current_app.config["CLINIC_NAME"],
        contact=contact(),
        **context,
    )
    return make_response(html, status)


def csrf_for(portal_session: PortalSession) -> str:
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, f"portal-csrf:{portal_session.id}".encode(), hashlib.sha256).hexdigest()


def signed_in(view: Callable[..., Any]) -> Callable[..., Any]:
    """The signed-in session, or the sign-in form; a form posted without the session's
    token is refused."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        found = access.current(db.session(), request.cookies.get(SESSION_COOKIE), lifetimes())
        if found is None:
            response = redirect(f"{PATH}/sign-in", code=303)
            response.delete_cookie(SESSION_COOKIE, path=PATH)
            return response
        # A form's field, or the header the card form's script sends with its JSON.
        said = request.form.get("csrf") or request.headers.get("X-CSRF-Token", "")
        if request.method == "POST" and not hmac.compare_digest(str(said), csrf_for(found)):
            return _page(
                "account/message.html",
                400,
                title="Form expired",
                text="This form has expired. Go back, reload the page and try again.",
            )
        audit.act_as(audit.Actor("patient", found.email, g.get("request_id")))
        return view(*args, portal=found, **kwargs)

    return wrapper


def _too_many(_limit: object) -> Response:
    return _page(
        "account/sign_in.html",
        429,
        error="Too many sign-in links were asked for. Wait a while and try again.",
    )


def _busy() -> Response:
    return _page(
        "account/message.html",
        429,
        title="Too many at once",
        text="Too many statements were asked for just now. Wait a minute and try again.",
    )


def _email_key() -> str:
    return "portal-email:" + access.normalised(str(request.form.get("email", "")))


@blp.get("/sign-in")
def sign_in_form() -> Response:
    return _page("account/sign_in.html")


@blp.post("/sign-in")
@limiter.limit(
    lambda: str(current_app.config["PORTAL_ADDRESS_LIMIT"]),
    on_breach=on_breach_page(_too_many),
)
@limiter.limit(
    lambda: str(current_app.config["PORTAL_EMAIL_LIMIT"]),
    key_func=_email_key,
    on_breach=lambda _limit: _sent_page(str(request.form.get("email", ""))[:254].strip()),
)
def ask_for_link() -> Response:
    """The same answer whether or not the address reaches anyone; the link, if sent, is
    bound to this browser (a cookie for /account only)."""
    email = str(request.form.get("email", ""))[:254].strip()
    if "@" not in email or len(email) < 3:
        return _page(
            "account/sign_in.html", 422, error="Enter the email address the clinic has for you."
        )
    browser = request.cookies.get(BROWSER_COOKIE)
    if not browser or len(browser) > 100:
        browser = access.new_browser_cookie()
    access.ask_for_link(db.session(), email, browser, lifetimes())
    response = _sent_page(email)
    response.set_cookie(
        BROWSER_COOKIE,
        browser,
        max_age=current_app.config["PORTAL_LINK_MINUTES"] * 60,
        path=PATH,
        secure=current_app.config["PORTAL_COOKIE_SECURE"],
        httponly=True,
        samesite="Lax",  # sent when the link is opened from a mail app
    )
    return response


def _sent_page(email: str) -> Response:
    """What asking for a link answers: the same for a known address, an unknown one, and
    one that asked too often this hour (then nothing is sent, and a stranger asking in
    someone's name learns nothing from the page)."""
    return _page(
        "account/message.html",
        200,
        title="Check your email",
        text=SENT_TEXT.format(email=email, minutes=current_app.config["PORTAL_LINK_MINUTES"]),
        tone="neutral",
    )


@blp.errorhandler(ServiceError)
def _service_error(error: ServiceError) -> Response:
    if error.code.startswith("sign_in_"):
        return _page(
            "account/sign_in.html",
            error.status,
            error=f"{error.detail} Ask for a new one below.",
        )
    if error.status == 404:
        return _page("account/message.html", 404, title="Not found", text="There is nothing here.")
    return _page("account/message.html", error.status, title=error.title, text=error.detail)


@blp.get("/sign-in/<token>")
def open_link(token: str) -> Response:
    """A button, not a sign-in: a mail scanner that opens the link uses nothing up."""
    access.check_link(
        db.session(), signing_keys(), token[:200], request.cookies.get(BROWSER_COOKIE)
    )
    return _page("account/confirm.html", action=f"{PATH}/sign-in/{token[:200]}")


@blp.post("/sign-in/<token>")
def use_link(token: str) -> Response:
    opened = access.use_link(
        db.session(), signing_keys(), token[:200], request.cookies.get(BROWSER_COOKIE)
    )
    response = redirect(PATH, code=303)
    response.set_cookie(
        SESSION_COOKIE,
        opened.cookie,
        max_age=current_app.config["PORTAL_SESSION_HOURS"] * 3600,
        path=PATH,
        secure=current_app.config["PORTAL_COOKIE_SECURE"],
        httponly=True,
        samesite="Strict",
    )
    response.delete_cookie(BROWSER_COOKIE, path=PATH)
    return response  # type: ignore[return-value]  # Werkzeug's Response


@blp.post("/sign-out")
@signed_in
def sign_out(portal: PortalSession) -> Response:
    access.end(db.session(), portal)
    response = redirect(f"{PATH}/sign-in", code=303)
    response.delete_cookie(SESSION_COOKIE, path=PATH)
    return response  # type: ignore[return-value]  # Werkzeug's Response


@blp.get("")
@signed_in
def home(portal: PortalSession) -> Response:
    accounts = overview.accounts(db.session(), portal.email, current_app.config["CLINIC_ZONE"])
    today = clinic_today()
    return _page(
        "account/home.html",
        accounts=accounts,
        csrf=csrf_for(portal),
        years=[today.year, today.year - 1],
        today=today.isoformat(),
        year_start=date(today.year, 1, 1).isoformat(),
    )


@blp.post("/invoices/<invoice_id>/pay")
@signed_in
def pay_invoice(portal: PortalSession, invoice_id: str) -> Response:
    """To the invoice's pay page, with a link made for it (or one it has)."""
    session = db.session()
    invoice = overview.invoice_of(session, portal.email, invoice_id[:40])
    ttl = timedelta(days=current_app.config["PAY_LINK_TTL_DAYS"])
    token = overview.pay_token(session, current_app.config["SECRET_KEY"], invoice, ttl)
    return redirect(f"/pay/{token}", code=303)  # type: ignore[return-value]  # Werkzeug's Response


@blp.get("/patients/<patient_id>/pay")
@signed_in
def choose_bills(portal: PortalSession, patient_id: str) -> Response:
    """The bills that can be paid now, all ticked, and (where the clinic takes parts)
    how much to pay: one payment, shared out oldest bill first."""
    currency = _currency(request.args.get("currency"))
    return _choice_page(portal, patient_id[:64], currency)


def _currency(raw: object) -> str:
    """A currency the service knows, or a 404 page (no bill is in any other)."""
    currency = str(raw or "")[:3].lower()
    if currency not in CURRENCY_EXPONENTS:
        raise NotFound("not_found", "There is nothing here.")
    return currency


def _choice_page(
    portal: PortalSession,
    patient_id: str,
    currency: str,
    chosen: list[str] | None = None,
    amount: str | None = None,
    error: str | None = None,
) -> Response:
    session = db.session()
    least = _least(currency)
    shown = paying.choice(
        session,
        portal.email,
        patient_id,
        currency,
        least,
        current_app.config["CLINIC_ZONE"],
        chosen,
    )
    return _page(
        "account/pay_choose.html",
        422 if error else 200,
        choice=shown,
        csrf=csrf_for(portal),
        amount=amount,
        error=error,
    )


def _least(currency: str) -> int | None:
    """The least part of what is owed the clinic takes online (None: all of it)."""
    minimums = current_app.config["PAY_PAGE_MINIMUMS"]
    return int(minimums[currency]) if currency in minimums else None


# A choice that cannot be paid, in the patient's words.
CHOICE_TEXT = {
    "nothing_to_pay": "Tick at least one bill to pay.",
    "invoice_not_payable": "A bill you chose can no longer be paid here. Look again below.",
    "amount_exceeds_balance": "That is more than the bills you chose owe.",
    "amount_too_small": "Pay at least {least}, or leave the amount empty to pay them all.",
    "part_not_taken": "Pay all of the bills you chose, or choose fewer bills.",
    "remainder_too_small": "That would leave a few cents owed: pay a little more or a little less.",
    "balance_changed": "What you owe changed just now. Look again below.",
    "payment_in_progress": "A payment of these bills is being processed. Wait a minute, "
    "then look at your account before paying again.",
}


@blp.post("/patients/<patient_id>/pay")
@signed_in
def review_payment(portal: PortalSession, patient_id: str) -> Response:
    """What the payment pays of each bill, and the card form to pay it."""
    session = db.session()
    patient_id = patient_id[:64]
    currency = _currency(request.form.get("currency"))
    chosen = [str(value)[:40] for value in request.form.getlist("invoice")][:200]
    typed = str(request.form.get("amount", "")).strip()[:32]
    amount = None
    if typed:
        parsed = Money.parse(typed, currency)
        if parsed is None or parsed.amount <= 0:
            return _choice_page(
                portal, patient_id, currency, chosen, typed, "Enter an amount such as 150.00."
            )
        amount = parsed.amount
    least = _least(currency)
    access.reachable(session, portal.email, patient_id)  # before Stripe is asked
    try:
        review = paying.review(
            session,
            gateway(),
            portal.email,
            patient_id,
            currency,
            chosen,
            amount,
            least,
            current_app.config["CLINIC_ZONE"],
        )
    except ServiceError as error:
        session.rollback()
        if error.code not in CHOICE_TEXT:
            raise
        least_text = Money(least or 0, currency).format()
        text = CHOICE_TEXT[error.code].format(least=least_text)
        return _choice_page(portal, patient_id, currency, chosen, typed, text)
    wallet = overview.wallet(session, gateway(), portal.email, patient_id)
    return _page(
        "account/pay_review.html",
        review=review,
        cards=wallet.cards,
        csrf=csrf_for(portal),
        save_card_consent=save_card_consent(),
        publishable_key=current_app.config["STRIPE_PUBLISHABLE_KEY"],
        stripe_js_url=current_app.config["STRIPE_JS_URL"],
    )


@blp.get("/payments/<payment_id>/status")
@signed_in
def payment_status(portal: PortalSession, payment_id: str) -> Response:
    """For the card form's script, just before it confirms: may it still be paid? (The
    desk may have taken money for one of its bills meanwhile, which cancels it.)"""
    payment = paying.payment_of(db.session(), portal.email, payment_id[:40])
    payable = payment.status in REUSABLE and payment.client_secret is not None
    return jsonify(
        payable=payable,
        payment_status=payment.status,
        message=None
        if payable
        else "These bills changed since this page was opened. "
        "Go back to your account and look again.",
    )


@blp.post("/payments/<payment_id>/saved-card")
@signed_in
def pay_with_saved_card(portal: PortalSession, payment_id: str) -> Response:
    """The patient chose a saved card instead of typing one: charged now, with the bank's
    confirmation in the page if it asks for one."""
    session = db.session()
    waiting = paying.payment_of(session, portal.email, payment_id[:40])
    back = f"/account/patients/{waiting.invoice.patient_id}/pay?currency={waiting.currency}"
    try:
        payment = balance.pay_with_saved_card(
            session,
            gateway(),
            waiting.id,
            str(request.form.get("card", ""))[:255],
            _least(waiting.currency),
        )
    except ServiceError as error:
        if error.status != 409:
            raise
        return _page(
            "account/message.html",
            409,
            title="Not paid here",
            text=f"{CHOICE_TEXT.get(error.code, error.detail)} Your account shows what was paid.",
            back_url=back,
        )
    done = f"/account/payments/{payment.id}/done"
    if payment.status == statuses.SUCCEEDED:
        return redirect(done, code=303)  # type: ignore[return-value]  # Werkzeug's Response
    if payment.status == statuses.REQUIRES_ACTION and payment.client_secret:
        return _page(
            "account/pay_confirm.html",
            total=Money(payment.amount, payment.currency).format(),
            client_secret=payment.client_secret,
            return_url=done,
            publishable_key=current_app.config["STRIPE_PUBLISHABLE_KEY"],
            stripe_js_url=current_app.config["STRIPE_JS_URL"],
            csrf=csrf_for(portal),
        )
    return _page(
        "account/message.html",
        402,
        title="Not charged",
        text=f"{payment.failure_message or 'The card was declined.'} Nothing was charged: "
        "choose the bills again to try another card.",
        back_url=back,
    )


@blp.post("/payments/<payment_id>/save-card")
@signed_in
def save_card(portal: PortalSession, payment_id: str) -> Response:
    """For the card form's script, just before it confirms: the patient ticked "save this
    card" (`{"save": true}`) or not; the consent stored is the server's own words."""
    session = db.session()
    payment = paying.payment_of(session, portal.email, payment_id[:40])
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # nested thousands deep: not what the page sends
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("save"), bool):
        return make_response(jsonify(error='Send {"save": true} or {"save": false}.'), 400)
    try:
        balance.choose_to_save_card(
            session,
            gateway(),
            payment.id,
            save_card_consent() if body["save"] else None,
            ip_address=request.remote_addr,
            user_agent=request.headers.get("User-Agent"),
        )
    except ServiceError as error:
        return make_response(jsonify(error=error.detail, code=error.code), error.status)
    return jsonify(save=body["save"])


@blp.get("/payments/<payment_id>/done")
@signed_in
def payment_done(portal: PortalSession, payment_id: str) -> Response:
    """Back from paying: what Stripe says of the payment, and once paid, what it paid of
    each bill."""
    intent_id = request.args.get("payment_intent")
    if intent_id is not None and not INTENT_ID.match(intent_id):
        intent_id = None
    waited = request.args.get("submitted", "0")[:4]
    waited_count = int(waited) if waited.isascii() and waited.isdigit() else 0
    session = db.session()
    paying.payment_of(session, portal.email, payment_id[:40])  # before Stripe is asked
    done = paying.paid(
        session, gateway(), portal.email, payment_id[:40], current_app.config["CLINIC_ZONE"]
    )
    if done.state == balance.PAID:
        text = f"Your payment of {done.total} was received. It paid:"
        if done.credit:
            text = (
                f"Your payment of {done.total} was received. {done.credit} of it is your "
                "credit (a bill was paid another way meanwhile): it pays your next bills, "
                "or you can ask for it back from your account. It paid:"
            )
        return _page(
            "account/message.html",
            title="Thank you",
            text=text,
            tone="neutral",
            paid_shares=done.shares,
        )
    if done.state == balance.ON_ITS_WAY and waited_count < WAIT_REFRESHES:
        again = urlencode({"submitted": waited_count + 1, "payment_intent": intent_id or ""})
        return _page(
            "account/message.html",
            title="Payment in progress",
            text="Thank you. We are waiting for the card network to confirm your payment; "
            "this page updates by itself. Please do not pay again.",
            tone="neutral",
            refresh_url=f"{request.path}?{again}",
        )
    if done.state == balance.ON_ITS_WAY:
        return _page(
            "account/message.html",
            title="Still waiting for the card network",
            text="We have not heard back about this payment yet. Nothing more is needed "
            "from you now; your account will show it once it arrives. Please do not pay again.",
            tone="neutral",
        )
    return _page(
        "account/message.html",
        title="Not charged",
        text="This card was not charged. Go back to your account to try again, or use "
        "another card.",
    )


@blp.get("/invoices/<invoice_id>/receipt.pdf")
@signed_in
def receipt_pdf(portal: PortalSession, invoice_id: str) -> Response:
    session = db.session()
    invoice = overview.invoice_of(session, portal.email, invoice_id[:40])
    if invoice.status not in overview.RECEIPTED:
        raise NotFound("not_found", "This invoice has no receipt yet.")
    return pdf_response(invoice, receipt_payments(session, invoice.id))


@blp.get("/statements.pdf")
@limiter.limit("30 per minute", on_breach=on_breach_page(lambda _limit: _busy()))  # heavy pages
@signed_in
def statement_pdf(portal: PortalSession) -> Response:
    """A statement of every patient the address reaches: `?year=2026` (the year-end
    statement), or `?from=2026-01-01&to=2026-03-31` (by default this year so far)."""
    today = clinic_today()
    try:
        year = _year(request.args.get("year"))
        first = _day(request.args.get("from"))
        last = _day(request.args.get("to"))
    except ValueError:
        return _page(
            "account/message.html",
            422,
            title="Dates not understood",
            text="Give dates as YYYY-MM-DD (from 2000 to 2100), or a year such as 2026.",
        )
    first, last = statements.period_of(year, first, last, today)
    if first > last:
        return _page(
            "account/message.html",
            422,
            title="Dates out of order",
            text="The statement's first day comes after its last day.",
        )
    session = db.session()
    made = statements.statement(
        session,
        access.patients_of(session, portal.email),
        first,
        last,
        current_app.config["CLINIC_ZONE"],
        current_app.config["BILLING_CODES"],
    )
    return statement_response(made, current_app.config)


def _year(raw: str | None) -> int | None:
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or not 2000 <= int(raw) <= 2100:
        raise ValueError(raw)
    return int(raw)


def _day(raw: str | None) -> date | None:
    if raw is None or raw == "":
        return None
    day = date.fromisoformat(raw[:10]) if len(raw) == 10 else None
    if day is None or not 2000 <= day.year <= 2100:
        raise ValueError(raw)
    return day


@blp.get("/patients/<patient_id>/cards")
@signed_in
def cards(portal: PortalSession, patient_id: str) -> Response:
    session = db.session()
    access.reachable(session, portal.email, patient_id[:64])  # before Stripe is asked
    shown = overview.wallet(session, gateway(), portal.email, patient_id[:64])
    said = {
        "default": "That card is now your default card.",
        "removed": "The card was removed.",
        "autopay_off": "AutoPay is off: nothing will be charged automatically.",
        "moved": "Done: your plan or membership is now charged to the card you chose.",
    }
    return _page(
        "account/cards.html",
        wallet=shown,
        csrf=csrf_for(portal),
        notice=said.get(request.args.get("done", "")),
    )


@blp.post("/patients/<patient_id>/cards/<payment_method_id>/default")
@signed_in
def make_default(portal: PortalSession, patient_id: str, payment_method_id: str) -> Response:
    session = db.session()
    access.reachable(session, portal.email, patient_id[:64])
    patients.set_default(session, gateway(), patient_id[:64], payment_method_id[:255])
    return _back_to_cards(patient_id, "default")


@blp.post("/patients/<patient_id>/cards/<payment_method_id>/remove")
@signed_in
def remove_card(portal: PortalSession, patient_id: str, payment_method_id: str) -> Response:
    session = db.session()
    access.reachable(session, portal.email, patient_id[:64])
    try:
        patients.remove_card(session, gateway(), patient_id[:64], payment_method_id[:255])
    except ServiceError as error:
        if error.code != "card_in_use":
            raise
        return _page(
            "account/message.html",
            409,
            title="Choose another card first",
            text=f"{error.detail} Save another card when you next pay, or ask the clinic to "
            "move it for you; then you can remove this one.",
        )
    return _back_to_cards(patient_id, "removed")


@blp.post("/patients/<patient_id>/cards/<payment_method_id>/move")
@signed_in
def move_card(portal: PortalSession, patient_id: str, payment_method_id: str) -> Response:
    """What a plan or a membership charges on this card, to another saved card: with the
    patient's consent to the new card's words (the box on the form)."""
    session = db.session()
    access.reachable(session, portal.email, patient_id[:64])
    to_card = str(request.form.get("to", ""))[:255]
    if request.form.get("agree") != "yes" or not to_card:
        return _page(
            "account/message.html",
            422,
            title="Nothing was moved",
            text="Choose the card to use instead, and tick the box to agree to it being "
            "charged. Go back and try again.",
        )
    card_moves.move(
        session,
        lambda card: gateway().card_of(card),
        patient_id[:64],
        payment_method_id[:255],
        to_card,
        card_moves.Agreement(
            "online", request.remote_addr, str(request.headers.get("User-Agent", ""))[:500]
        ),
        clinic_as_consents_name_it(),
        clinic_today(),
    )
    return _back_to_cards(patient_id, "moved")


@blp.post("/patients/<patient_id>/autopay/off")
@signed_in
def autopay_off(portal: PortalSession, patient_id: str) -> Response:
    session = db.session()
    access.reachable(session, portal.email, patient_id[:64])
    autopay.set_autopay(
        session,
        lambda card: gateway().card_of(card),
        patient_id[:64],
        False,
        None,
        autopay.Consent(accepted="online", ip_address=request.remote_addr),
        current_app.config["CLINIC_NAME"],
        clinic_contact(),
    )
    return _back_to_cards(patient_id, "autopay_off")


def _back_to_cards(patient_id: str, done: str) -> Response:
    return redirect(f"{PATH}/patients/{patient_id}/cards?done={done}", code=303)  # type: ignore[return-value]  # Werkzeug's Response


@blp.get("/estimates/<estimate_id>.pdf")
@signed_in
def estimate_pdf(portal: PortalSession, estimate_id: str) -> Response:
    estimate = overview.estimate_of(db.session(), portal.email, estimate_id[:40])
    return estimate_pdf_response(view_of(estimate, current_app.config))


@blp.post("/patients/<patient_id>/credit-refund-request")
@signed_in
def ask_for_credit_back(portal: PortalSession, patient_id: str) -> Response:
    """A request for staff to refund the patient's credit (never a refund by itself)."""
    session = db.session()
    access.reachable(session, portal.email, patient_id[:64])
    currency = str(request.form.get("currency", ""))[:3].lower()
    credit_requests.ask(session, patient_id[:64], currency, portal.email)
    return _page(
        "account/message.html",
        200,
        title="Request sent",
        text="The clinic has your request: they will refund your credit to the card it came "
        "from, or contact you. You will see it on your account meanwhile.",
        tone="neutral",
    )


@blp.route("/unsubscribe/<token>", methods=["GET", "POST"])
def unsubscribe(token: str) -> Response:
    """The link in a statement email: a button (GET), then no more statement emails
    (POST; mail apps post here themselves for one-click unsubscribe)."""
    address = statement_emails.address_of(signing_keys(), token)
    if address is None:
        return _page("account/message.html", 404, title="Not found", text="This link is not valid.")
    if request.method == "GET":
        return _page("account/unsubscribe.html", action=f"{PATH}/unsubscribe/{token[:500]}")
    statement_emails.opt_out(db.session(), address)
    return _page(
        "account/message.html",
        200,
        title="Unsubscribed",
        text="You will get no more monthly statement emails. Your statements are still in "
        "your account, and receipts and sign-in links still come by email.",
        tone="neutral",
    )
