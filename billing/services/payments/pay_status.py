"""What the pay page may tell a patient: read from our database only, never from the browser."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing.adapters.models import Invoice, Payment
from billing.domain import statuses
from billing.services.bookings import holds
from billing.services.payments.charges import IN_FLIGHT

# An online payment in these states has nothing on its way: the card was not charged.
NOT_CHARGED = (statuses.FAILED, statuses.CANCELED)


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
            Payment.method == "card_on_file",
            Payment.status.in_(IN_FLIGHT),
        )
        .limit(1)
    )
    payable = invoice.status == statuses.OPEN and charging is None and not _held(session, invoice)
    return PayStatus(invoice.status, payable, online)


def _held(session: Session, invoice: Invoice) -> bool:
    """The booking changed under the invoice (a group below two, a re-quote, a cancelled
    place): the page must not take a card, whatever Stripe still allows."""
    return holds.is_held(session, invoice)
