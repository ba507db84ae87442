"""What the pay page may tell a patient: from our database, and from Stripe when our
webhook has not arrived yet; never from the browser's word.

After the patient pays, the page is told which PaymentIntent the browser confirmed, and
decides from that one only: paid, still on its way, or not charged (Stripe says it did
not succeed). An older attempt's failure never speaks for a newer one.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing.adapters.models import Invoice, Payment
from billing.adapters.stripe_gateway import BANK_ACCOUNT, StripeGateway
from billing.domain import statuses
from billing.domain.errors import ServiceError
from billing.services.bookings import holds
from billing.services.payments import charges
from billing.services.payments.charges import IN_FLIGHT

log = logging.getLogger("billing.payments")

# An online payment in these states has nothing on its way: the card was not charged.
NOT_CHARGED = (statuses.FAILED, statuses.CANCELED)
# What became of an attempt, as the page tells it.
PAID, ON_ITS_WAY, NOT_CHARGED_NOW = "paid", "on_its_way", "not_charged"
INTENT_ID = re.compile(r"^pi_[A-Za-z0-9_]{1,250}$")
# Attempts a webhook may still overtake: the patient tried, and we heard no success yet.
TRIED = (statuses.FAILED, statuses.REQUIRES_ACTION, statuses.PROCESSING, statuses.UNKNOWN)


@dataclass(frozen=True, slots=True)
class PayStatus:
    invoice_status: str
    payable: bool  # open, and no other way of paying is under way
    payment_status: str | None  # the invoice's latest online payment, if any

    @property
    def in_flight(self) -> bool:
        """Something may still be collected: wait for Stripe's word."""
        return self.invoice_status == statuses.PROCESSING or self.payment_status not in (
            None,
            *NOT_CHARGED,
        )


def awaiting_the_bank(session: Session, invoice: Invoice) -> Payment | None:
    """A charge of the saved card that the patient's bank wants confirmed (3-D Secure):
    the pay page lets the patient confirm it instead of taking another card."""
    return session.scalars(
        select(Payment)
        .where(
            Payment.invoice_id == invoice.id,
            Payment.method == "card_on_file",
            Payment.status == statuses.REQUIRES_ACTION,
            Payment.client_secret.is_not(None),
        )
        .order_by(Payment.created_at.desc())
        .limit(1)
    ).first()


def bank_debit_processing(session: Session, invoice: Invoice) -> Payment | None:
    """A payment from the patient's bank account that the bank is still deciding on (ACH:
    up to four business days), on the pay page or debited by the clinic."""
    return session.scalars(
        select(Payment)
        .where(
            Payment.invoice_id == invoice.id,
            Payment.status == statuses.PROCESSING,
            (Payment.method == charges.BANK_DEBIT) | (Payment.source == BANK_ACCOUNT),
        )
        .order_by(Payment.created_at.desc())
        .limit(1)
    ).first()


def pay_status(session: Session, invoice: Invoice) -> PayStatus:
    """The invoice's status, whether it can be paid now, and its latest online payment's."""
    online = session.scalar(
        select(Payment.status)
        .where(Payment.invoice_id == invoice.id, Payment.method == "online")
        .order_by(Payment.created_at.desc())
        .limit(1)
    )
    charging = session.scalar(
        select(Payment.id)
        .where(
            Payment.invoice_id == invoice.id,
            Payment.method.in_(charges.OFF_SESSION),
            Payment.status.in_(IN_FLIGHT),
        )
        .limit(1)
    ) or charges.balance_charging(session, invoice.id)
    payable = (
        statuses.is_payable(invoice.status) and charging is None and not _held(session, invoice)
    )
    return PayStatus(invoice.status, payable, online)


def _held(session: Session, invoice: Invoice) -> bool:
    """The booking changed under the invoice (a group below two, a re-quote, a cancelled
    place): the page must not take a card, whatever Stripe still allows."""
    return holds.is_held(session, invoice)


def attempt_outcome(
    session: Session, gateway: StripeGateway, invoice: Invoice, intent_id: str | None
) -> str | None:
    """What became of the PaymentIntent the patient's browser just confirmed on this
    invoice's page: PAID, ON_ITS_WAY or NOT_CHARGED_NOW, asking Stripe when our webhook has
    not told us; None when the id names no payment of this invoice.

    Without an id (the page opened again), the invoice's latest online attempt that we have
    not seen succeed is checked the same way, so that a success whose webhook is still on
    its way shows as one; its NOT_CHARGED_NOW is then not news to tell the patient.
    """
    query = select(Payment).where(Payment.invoice_id == invoice.id)
    if intent_id is not None:
        if not INTENT_ID.match(intent_id):
            return None
        query = query.where(Payment.stripe_payment_intent_id == intent_id)
    else:
        query = query.where(
            Payment.method == "online",
            Payment.stripe_payment_intent_id.is_not(None),
            Payment.status.in_(TRIED),
        )
    payment = session.scalars(query.order_by(Payment.created_at.desc()).limit(1)).first()
    session.commit()
    if payment is None:
        return None
    if payment.status != statuses.SUCCEEDED:
        try:
            payment = charges.resolve(session, gateway, payment.id)
        except ServiceError as error:  # Stripe cannot say now: nothing is known yet
            log.warning("pay page: payment %s not checked with Stripe: %s", payment.id, error)
            return ON_ITS_WAY
    if payment.status == statuses.SUCCEEDED:
        return PAID
    if payment.status in (statuses.PROCESSING, statuses.PENDING, statuses.UNKNOWN):
        return ON_ITS_WAY
    return NOT_CHARGED_NOW
