"""The patient's pay page: what is owed and why, a Stripe card form, then a receipt.

The invoice's state always comes from our database (moved by Stripe's webhooks); the
browser's word is never taken as proof of payment.
"""

from __future__ import annotations

from urllib.parse import urlencode

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    g,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
)

from billing.adapters import db
from billing.adapters.models import Invoice, Payment
from billing.adapters.providers import gateway
from billing.domain import statuses
from billing.domain.errors import ServiceError
from billing.domain.money import Money
from billing.services.access import audit
from billing.services.invoicing.paylinks import open_pay_link
from billing.services.invoicing.receipts import receipt_payments
from billing.services.payments import online, received
from billing.services.payments.pay_status import (
    NOT_CHARGED_NOW,
    ON_ITS_WAY,
    PAID,
    attempt_outcome,
    awaiting_the_bank,
    bank_debit_processing,
    pay_status,
)
from billing.web import plans
from billing.web.limits import limiter, on_breach_page, pay_limit
from billing.web.pages import security_headers
from billing.web.receipts import build_receipt, pdf_response
from schemas.discounts import discounts_of

blp = Blueprint("pay", __name__, url_prefix="/pay")
WAIT_REFRESHES = 60  # the waiting page refreshes every 2 s: about 2 minutes, then stops
NOT_CHARGED_TEXT = "This card was not charged. Try again, or use another card."
UNPAYABLE_TEXT = {
    statuses.PROCESSING: "A payment for this invoice is already being processed.",
    statuses.VOID: "This invoice was cancelled; it can no longer be paid here.",
    statuses.WRITTEN_OFF: "This invoice has nothing left to pay.",
    statuses.PAID: "This invoice is already paid. Reload this page for the receipt.",
    statuses.PARTIALLY_REFUNDED: "This invoice is already paid. Reload this page for the receipt.",
    statuses.REFUNDED: "This invoice is already paid. Reload this page for the receipt.",
}


HELD_TEXT = "Your booking has changed, so this invoice cannot be paid here now."
# The patient chose how much to pay now: refused, the page asks for all of it again.
PART_REFUSED = ("amount_too_small", "amount_exceeds_balance", "remainder_too_small")
LEAVES_TOO_LITTLE = "Pay all of it, or leave enough to pay by card later."
PART_TEXT = "Enter an amount of at least {least}, and no more than the balance due."
THANKS_TEXT = "Thank you: your payment was received. The rest is still due."
CLOSED_TEXT = "Invoice {number} has nothing left to pay. Thank you."
BANK_DEBIT_TEXT = (
    "Thank you. Your payment of {amount} from your bank account is on its way: bank "
    "payments take up to four business days. Nothing more is needed from you now; we will "
    "email you if your bank does not pay it. Please do not pay it again."
)
BANK_DEBIT_REST_TEXT = (
    " The rest of the bill, {rest}, can be paid here once your bank has paid this."
)
# A gift card's code typed on the page: what happened, in the patient's words.
GIFT_CARD_TEXT = {
    "applied": "Your gift card was applied.",
    "gift_card_not_found": "No gift card has that code. Check it and try again.",
    "code_required": "Enter the gift card's code.",
    "gift_card_used": "Nothing is left on that gift card.",
    "gift_card_expired": "That gift card has expired.",
    "gift_card_not_paid": "That gift card has not been paid for yet.",
    "gift_card_not_applicable": "That gift card cannot pay this invoice.",
    "remainder_too_small": "That gift card would leave too little to pay by card: pay by card.",
}
GIFT_CARD_FAILED = "The gift card could not be used just now. Try again, or call the clinic."
# A cancelled invoice may have been replaced by another (a changed booking): never say
# that nothing is owed, which the patient may read as "nothing at all".
VOID_TEXT = (
    "Invoice {number} was cancelled, so it can no longer be paid. If the clinic sent you "
    "a new payment link, use that one; otherwise the clinic will contact you if anything "
    "is still owed."
)


def init_app(app: Flask) -> None:
    app.register_blueprint(blp)


def signing_keys() -> list[str]:
    """The key that signs new links, then the retired ones that still open old links."""
    return [current_app.config["SECRET_KEY"], *current_app.config["SECRET_KEY_FALLBACKS"]]


def _too_many(_limit: object) -> Response:
    return _message("Too many attempts", "Please wait a minute and try again.", 429)


# Guessing pay links is slow, from one address and across every instance.
limiter.limit(pay_limit, on_breach=on_breach_page(_too_many))(blp)


@blp.before_request
def _as_patient() -> None:
    """What the pay page sets going (its PaymentIntent) is the patient's doing."""
    audit.act_as(audit.Actor("patient", "pay page", g.get("request_id")))


@blp.after_request
def _security_headers(response: Response) -> Response:
    return security_headers(response)


# The booking changed under the invoice: words for the patient, not the front desk.
ON_HOLD = ("booking_below_minimum", "quote_superseded", "booking_cancelled")


@blp.errorhandler(ServiceError)
def _link_error(error: ServiceError) -> Response:
    if error.code in ON_HOLD:
        return _message(
            "Nothing to pay here now",
            "Your booking has changed, so this invoice cannot be paid. The clinic will "
            "contact you; if you were sent a new payment link, use that one.",
            409,
        )
    titles = {404: "Link not valid", 410: "Link no longer valid"}
    return _message(titles.get(error.status, error.title), error.detail, error.status)


def save_card_consent() -> str:
    """The words beside the pay page's checkbox; stored, exactly so, with a saved card."""
    clinic = current_app.config["CLINIC_NAME"]
    return (
        f"Save this card for future visits and fees at {clinic}. I agree that {clinic} may "
        "charge it without asking me each time: for each session I book, its quoted price, "
        "when the session is due or marked done; and for a late-cancellation or no-show "
        "fee, the amount the cancellation policy I was given sets, when the fee arises. I "
        "can cancel this at any time by removing the card in my account or asking the "
        "clinic to remove it."
    )


@blp.get("/<token>")
def page(token: str) -> Response:
    """What is owed, and the card form; the receipt once paid; a clear word otherwise.

    Back from paying (`?submitted=N&payment_intent=pi_...`), the page decides from that
    PaymentIntent alone, asking Stripe when our webhook has not arrived: the receipt, a
    waiting page while it is on its way, or the form again saying the card was not charged.
    """
    session = db.session()
    invoice = open_pay_link(session, signing_keys(), token)
    waited = _waited(request.args.get("submitted"))
    intent_id = request.args.get("payment_intent") if waited is not None else None
    outcome = None
    if invoice.status in statuses.UNPAID:
        outcome = attempt_outcome(session, gateway(), invoice, intent_id)
        invoice = open_pay_link(session, signing_keys(), token)
    if invoice.status in statuses.SETTLED:
        return _receipt_page(token, invoice)
    if invoice.status == statuses.VOID:
        return _message("Invoice cancelled", VOID_TEXT.format(number=invoice.number), 200)
    if invoice.status == statuses.WRITTEN_OFF:
        return _message("Nothing to pay", CLOSED_TEXT.format(number=invoice.number), 200)
    bank = awaiting_the_bank(session, invoice) if waited is None else None
    if bank is not None:  # the saved card's charge: the patient confirms it here
        return _pay_form(invoice, bank, authenticate=True)
    debit = bank_debit_processing(session, invoice)
    if debit is not None:  # days, not seconds: nothing to wait for on this page
        text = BANK_DEBIT_TEXT.format(amount=Money(debit.amount, debit.currency).format())
        rest = Money(invoice.balance_due, invoice.currency) - Money(
            invoice.amount_processing, invoice.currency
        )
        if rest.amount > 0:  # a part: the rest is paid here once the bank has paid this
            text += BANK_DEBIT_REST_TEXT.format(rest=rest.format())
        return _message("Bank payment in progress", text, 200)
    if outcome == ON_ITS_WAY or invoice.status == statuses.PROCESSING:
        return _waiting(token, waited or 0, intent_id)
    least = current_app.config["PAY_PAGE_MINIMUMS"].get(invoice.currency)
    chosen, problem = (None, None) if outcome == PAID else _chosen(invoice, least)
    try:
        payment = online.start_online_payment(
            session, gateway(), invoice.id, chosen, least, bank_accounts=_banks()
        )
    except ServiceError as error:
        if error.code == "invoice_not_payable":
            # The page's last PaymentIntent turned out to have been paid (its webhook was
            # still on its way): the receipt, not an error.
            invoice = open_pay_link(session, signing_keys(), token)
            if invoice.status in statuses.SETTLED:
                return _receipt_page(token, invoice)
        if error.code not in PART_REFUSED:
            raise
        payment = online.start_online_payment(
            session, gateway(), invoice.id, bank_accounts=_banks()
        )
        problem = LEAVES_TOO_LITTLE if error.code == "remainder_too_small" else PART_TEXT
    not_charged = intent_id is not None and outcome == NOT_CHARGED_NOW
    said = request.args.get("gift_card")
    return _pay_form(
        invoice,
        payment,
        not_charged=not_charged,
        part=_part(invoice, least, problem),
        thanks=outcome == PAID,
        gift_card=None if said is None else GIFT_CARD_TEXT.get(said[:40], GIFT_CARD_FAILED),
        gift_card_ok=said == "applied",
    )


@blp.post("/<token>/gift-card")
def use_gift_card(token: str) -> Response:
    """The patient typed a gift card's code: as much of it as pays the invoice is applied
    (the page's PaymentIntent is cancelled at Stripe first), then the page again, for the
    rest or the receipt."""
    session = db.session()
    invoice = open_pay_link(session, signing_keys(), token)
    code = str(request.form.get("code", ""))[:40].strip()
    said = "applied"
    try:
        received.record_payment(
            session,
            gateway(),
            invoice.id,
            received.GIFT_CARD_METHOD,
            None,
            None,
            None,
            None,
            code=code,
        )
    except ServiceError as error:
        session.rollback()
        if error.code in ON_HOLD:
            raise
        said = error.code if error.code in GIFT_CARD_TEXT else "failed"
    return redirect(f"/pay/{token}?{urlencode({'gift_card': said})}", code=303)  # type: ignore[return-value]  # Werkzeug's Response


def _banks() -> bool:
    """Whether the pay page offers a US bank account beside cards (US dollars only)."""
    return bool(current_app.config["PAY_PAGE_BANK_DEBIT"])


def _chosen(invoice: Invoice, least: int | None) -> tuple[int | None, str | None]:
    """The amount the patient asked to pay now (`?amount=150.00`), or why it cannot be."""
    typed = request.args.get("amount")
    if typed is None or least is None:
        return None, None
    chosen = Money.parse(typed[:32], invoice.currency)
    return (chosen.amount, None) if chosen is not None else (None, PART_TEXT)


def _part(invoice: Invoice, least: int | None, problem: str | None) -> dict[str, str] | None:
    """The "pay part of it" field, when the clinic lets patients pay this invoice in
    parts (`PAY_PAGE_MINIMUMS`) and more than the least is owed."""
    balance = invoice.balance_due
    if least is None or balance <= least:
        return None
    return {
        "least": Money(least, invoice.currency).format(),
        "balance": Money(balance, invoice.currency).format(),
        "problem": problem.format(least=Money(least, invoice.currency).format()) if problem else "",
    }


def _pay_form(
    invoice: Invoice,
    payment: Payment,
    authenticate: bool = False,
    not_charged: bool = False,
    part: dict[str, str] | None = None,
    thanks: bool = False,
    gift_card: str | None = None,
    gift_card_ok: bool = False,
) -> Response:
    """The card form for `payment` (all that is left to pay, or the part the patient
    chose, with the field to choose it); or, to confirm a charge of the saved card, only
    a button."""
    client_secret = str(payment.client_secret)
    due_major = Money(payment.amount, invoice.currency).major_units()
    return make_response(
        render_template(
            "pay/pay.html",
            invoice=invoice,
            plan=plans.shown(invoice.plan, current_app.config["CLINIC_ZONE"]),
            total=Money(invoice.total, invoice.currency).format(),
            paid=Money(invoice.amount_paid, invoice.currency).format()
            if invoice.amount_paid
            else None,
            balance=Money(invoice.balance_due, invoice.currency).format(),
            due=Money(payment.amount, invoice.currency).format(),
            due_major=due_major,
            part=part,
            thanks=THANKS_TEXT if thanks else None,
            lines=[
                row
                for line in invoice.lines
                for row in [
                    (
                        line.description,
                        Money(
                            line.amount if line.base_amount is None else line.base_amount,
                            invoice.currency,
                        ).format(),
                    ),
                    *(
                        (d["description"], Money(-d["amount"], invoice.currency).format())
                        for d in discounts_of(line)
                    ),
                ]
            ],
            client_secret=client_secret,
            authenticate=authenticate,
            bank_accounts=_banks() and invoice.currency == "usd",
            publishable_key=current_app.config["STRIPE_PUBLISHABLE_KEY"],
            stripe_js_url=current_app.config["STRIPE_JS_URL"],
            # Back from the bank with the card not charged, the form asks for the same part.
            return_url=f"{request.path}?submitted=1"
            + (f"&amount={due_major}" if payment.amount < invoice.balance_due else ""),
            status_url=f"{request.path}/status",
            save_card_url=f"{request.path}/save-card",
            gift_card_url=f"{request.path}/gift-card",
            gift_card=gift_card,
            gift_card_ok=gift_card_ok,
            save_card_consent=save_card_consent(),
            notice=NOT_CHARGED_TEXT if not_charged else None,
            clinic_name=current_app.config["CLINIC_NAME"],
            contact=contact(),
        )
    )


@blp.post("/<token>/save-card")
def save_card(token: str) -> Response:
    """For the page's script, just before it confirms: the patient ticked "save this card"
    (`{"save": true}`) or not. The consent stored is the server's own text, not the
    browser's."""
    session = db.session()
    invoice = open_pay_link(session, signing_keys(), token)
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # nested thousands deep: not what the page sends
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("save"), bool):
        return make_response(jsonify(error='Send {"save": true} or {"save": false}.'), 400)
    consent = save_card_consent() if body["save"] else None
    try:
        online.choose_to_save_card(
            session,
            gateway(),
            invoice.id,
            consent,
            ip_address=request.remote_addr,
            user_agent=request.headers.get("User-Agent"),
        )
    except ServiceError as error:
        return make_response(jsonify(error=error.detail, code=error.code), error.status)
    return jsonify(save=body["save"])


@blp.get("/<token>/status")
def status(token: str) -> Response:
    """For the page's script, just before it confirms: may this invoice still be paid?"""
    session = db.session()
    invoice = open_pay_link(session, signing_keys(), token)
    state = pay_status(session, invoice)
    return jsonify(
        invoice_status=state.invoice_status,
        payable=state.payable,
        payment_status=state.payment_status,
        message=None if state.payable else UNPAYABLE_TEXT.get(state.invoice_status, HELD_TEXT),
    )


def _waited(submitted: str | None) -> int | None:
    """How many times the waiting page has refreshed itself; None when not submitted."""
    if submitted is None:
        return None
    return int(submitted) if submitted.isdigit() else 1


def _waiting(token: str, waited: int, intent_id: str | None) -> Response:
    """Stripe is working on it: say so, refreshing every 2 s, for about 2 minutes at most;
    each refresh asks again about the same PaymentIntent."""
    again: dict[str, str | int] = {"submitted": waited + 1}
    if intent_id:
        again["payment_intent"] = intent_id
    if waited >= WAIT_REFRESHES:
        return _message(
            "Still waiting for the card network",
            "We have not heard back about this payment yet. Nothing more is needed from you "
            "now: reload this page later and it will show the receipt once the payment "
            "arrives. Please do not pay again.",
            200,
        )
    return _message(
        "Payment in progress",
        "Thank you. We are waiting for the card network to confirm your payment; "
        "this page updates by itself.",
        200,
        refresh_url=f"/pay/{token}?" + urlencode(again),
    )


@blp.get("/<token>/receipt")
def receipt(token: str) -> Response:
    invoice = open_pay_link(db.session(), signing_keys(), token)
    if invoice.status not in statuses.SETTLED:
        return redirect(f"/pay/{token}", code=303)  # type: ignore[return-value]  # Werkzeug's Response
    return _receipt_page(token, invoice)


@blp.get("/<token>/receipt.pdf")
def receipt_pdf(token: str) -> Response:
    session = db.session()
    invoice = open_pay_link(session, signing_keys(), token)
    if invoice.status not in statuses.SETTLED:
        return redirect(f"/pay/{token}", code=303)  # type: ignore[return-value]  # Werkzeug's Response
    return pdf_response(invoice, receipt_payments(session, invoice.id))


def _receipt_page(token: str, invoice: Invoice) -> Response:
    payments = receipt_payments(db.session(), invoice.id)
    return make_response(
        render_template(
            "pay/receipt.html",
            receipt=build_receipt(invoice, payments, current_app.config),
            pdf_url=f"/pay/{token}/receipt.pdf",
            clinic_name=current_app.config["CLINIC_NAME"],
        )
    )


def _message(title: str, text: str, status: int, refresh_url: str | None = None) -> Response:
    """A page that takes no payment: an error (a 4xx) in red, anything else neutral, and
    always a way to reach the clinic."""
    html = render_template(
        "pay/message.html",
        title=title,
        text=text,
        tone="error" if status >= 400 else "neutral",
        refresh_url=refresh_url,
        clinic_name=current_app.config["CLINIC_NAME"],
        contact=contact(),
    )
    return make_response(html, status)


def contact() -> dict[str, str]:
    """The clinic's phone (with a dialable tel: form) and email, as configured."""
    phone = current_app.config["CLINIC_PHONE"]
    return {
        "phone": phone,
        "tel": "".join(c for c in phone if c.isdigit() or c == "+"),
        "email": current_app.config["CLINIC_EMAIL"],
    }
