"""Paying several bills at once from the portal, as the patient sees it: the bills that
can be paid, then what a payment pays of each (shown before paying), then what it paid.
The money itself is `billing.services.payments.balance`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from billing.adapters.models import Invoice, Payment
from billing.adapters.stripe_gateway import StripeGateway
from billing.domain.errors import NotFound
from billing.domain.money import Money
from billing.services.invoicing.invoices import get_invoice
from billing.services.payments import balance
from billing.services.payments.charges import BALANCE, collectable_now, get_payment
from billing.services.portal.access import name_of, reachable
from billing.services.portal.overview import shown_bill


@dataclass(frozen=True, slots=True)
class ShareShown:
    id: str
    number: str
    what: str
    date_of_service: str
    due: str  # what the bill owes now
    chosen: bool = True
    owed: str = ""  # before this payment
    takes: str = ""  # what this payment pays of it
    left: str = ""  # what it owes after


@dataclass(frozen=True, slots=True)
class Choice:
    patient_id: str
    name: str
    currency: str
    bills: list[ShareShown]
    total: str
    least: str | None  # the least part the clinic takes; None: all of the bills chosen


@dataclass(frozen=True, slots=True)
class Review:
    payment_id: str
    patient_id: str
    name: str
    currency: str
    shares: list[ShareShown]
    total: str
    client_secret: str
    status_url: str
    return_url: str
    save_card_url: str


def choice(
    session: Session,
    email: str,
    patient_id: str,
    currency: str,
    least: int | None,
    zone: ZoneInfo,
    chosen: Sequence[str] | None = None,
) -> Choice:
    """The patient's bills in `currency` that can be paid now, oldest first, ticked as
    `chosen` (all by default); 404 when none can."""
    reachable(session, email, patient_id)
    bills = balance.owing(session, patient_id, currency)
    if not bills:
        raise NotFound("not_found", "Nothing can be paid here now.")
    shown = []
    for invoice, owed in bills:
        bill = shown_bill(invoice, zone)
        shown.append(
            ShareShown(
                id=invoice.id,
                number=invoice.number,
                what=bill.what,
                date_of_service=bill.date_of_service,
                due=Money(owed, currency).format(),
                chosen=chosen is None or invoice.id in chosen,
            )
        )
    return Choice(
        patient_id=patient_id,
        name=name_of(session, patient_id),
        currency=currency,
        bills=shown,
        total=Money(sum(owed for _, owed in bills), currency).format(),
        least=Money(least, currency).format() if least is not None else None,
    )


def review(
    session: Session,
    gateway: StripeGateway,
    email: str,
    patient_id: str,
    currency: str,
    chosen: Sequence[str],
    amount: int | None,
    least: int | None,
    zone: ZoneInfo,
) -> Review:
    """The payment of the chosen bills (made, or the one waiting for the same choice),
    with what it pays of each; 422 naming the field when the choice cannot be paid."""
    reachable(session, email, patient_id)
    payment = balance.start(session, gateway, patient_id, currency, chosen, amount, least)
    shares = []
    for row in balance.shares_of(session, payment.id):
        invoice = get_invoice(session, row.invoice_id)
        owed = collectable_now(session, invoice).amount
        shares.append(_shown(invoice, zone, owed, row.amount))
    session.commit()
    return Review(
        payment_id=payment.id,
        patient_id=patient_id,
        name=name_of(session, patient_id),
        currency=currency,
        shares=shares,
        total=Money(payment.amount, currency).format(),
        client_secret=str(payment.client_secret),
        status_url=f"/account/payments/{payment.id}/status",
        return_url=f"/account/payments/{payment.id}/done",
        save_card_url=f"/account/payments/{payment.id}/save-card",
    )


def _shown(invoice: Invoice, zone: ZoneInfo, owed: int, takes: int) -> ShareShown:
    bill = shown_bill(invoice, zone)
    currency = invoice.currency
    return ShareShown(
        id=invoice.id,
        number=invoice.number,
        what=bill.what,
        date_of_service=bill.date_of_service,
        due=Money(invoice.balance_due, currency).format(),
        owed=Money(owed, currency).format(),
        takes=Money(takes, currency).format(),
        left=Money(max(owed - takes, 0), currency).format(),
    )


def payment_of(session: Session, email: str, payment_id: str) -> Payment:
    """One of the address's patients' payments of a balance; 404 for any other."""
    payment = session.get(Payment, payment_id)
    if payment is None or payment.method != BALANCE:
        raise NotFound("not_found", "There is nothing here.")
    reachable(session, email, get_invoice(session, payment.invoice_id).patient_id)
    return payment


@dataclass(frozen=True, slots=True)
class Paid:
    state: str  # balance.PAID, ON_ITS_WAY or NOT_CHARGED
    total: str
    shares: list[ShareShown]
    patient_id: str
    currency: str
    credit: str = ""  # what no bill took (paid another way meanwhile): the patient's credit


def paid(
    session: Session,
    gateway: StripeGateway,
    email: str,
    payment_id: str,
    zone: ZoneInfo,
) -> Paid:
    """What became of the payment the patient's browser just confirmed (asking Stripe
    when our webhook has not told us), and once it succeeded, what it paid of each bill
    and what no bill took (the patient's credit)."""
    payment = payment_of(session, email, payment_id)
    patient_id = get_invoice(session, payment.invoice_id).patient_id
    session.commit()
    # Only this payment's PaymentIntent speaks for it, whatever the address bar names.
    said = None
    if payment.stripe_payment_intent_id:
        said = balance.outcome(session, gateway, [patient_id], payment.stripe_payment_intent_id)
    state = said[0] if said else balance.NOT_CHARGED
    payment = get_payment(session, payment_id)
    shares, took = [], 0
    if state == balance.PAID:
        for row in balance.shares_of(session, payment.id):
            takes = row.applied or 0
            took += takes
            if takes > 0:
                invoice = get_invoice(session, row.invoice_id)
                shares.append(_shown(invoice, zone, invoice.balance_due + takes, takes))
    session.commit()
    left = payment.amount - took if state == balance.PAID else 0
    return Paid(
        state=state,
        total=Money(payment.amount, payment.currency).format(),
        shares=shares,
        patient_id=patient_id,
        currency=payment.currency,
        credit=Money(left, payment.currency).format() if left > 0 else "",
    )
