"""Invoices the booking lifecycle holds: nothing collects them while the booking says no."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing.adapters.booking_models import Booking, CardConsent, Seat
from billing.adapters.models import Invoice
from billing.domain import policy
from billing.domain.errors import Conflict


def standing_fees(session: Session, booking: Booking) -> set[str]:
    """The fee invoices that still apply: those of the current quote's places, and those
    of patients a re-quote left out (a patient back in the new quote owes none of the old
    quote's fees: at most one fee per place)."""
    seats = session.scalars(select(Seat).where(Seat.booking_id == booking.booking_id)).all()
    current = {seat.patient_id for seat in seats if seat.quote_id == booking.quote_id}
    return {
        seat.fee_invoice_id
        for seat in seats
        if seat.fee_invoice_id
        and (seat.quote_id == booking.quote_id or seat.patient_id not in current)
    }


def check_not_held(session: Session, invoice: Invoice) -> None:
    """Refuse (409) to collect a fee that no longer applies, or a session invoice of a
    superseded quote, of a cancelled place, or of a group left below its minimum size."""
    if invoice.kind == policy.FEE:
        owner = session.get(Booking, invoice.booking_id)
        if owner is not None and invoice.id not in standing_fees(session, owner):
            raise Conflict("fee_waived", f"Fee {invoice.number} no longer applies.")
        return
    seat = session.scalars(select(Seat).where(Seat.invoice_id == invoice.id)).first()
    if seat is None:
        return
    booking = session.get(Booking, seat.booking_id)
    if booking is None:
        return
    if seat.quote_id != booking.quote_id:
        raise Conflict(
            "quote_superseded",
            f"Booking {booking.booking_id} was re-quoted; invoice {invoice.number} no longer "
            "applies.",
        )
    if seat.cancelled_at is not None:
        raise Conflict(
            "booking_cancelled",
            f"Patient {seat.patient_id}'s place in booking {booking.booking_id} was cancelled.",
        )
    if booking.state == policy.BELOW_MINIMUM:
        raise Conflict(
            "booking_below_minimum",
            f"Booking {booking.booking_id} has fewer than 2 patients left for a group "
            "session; re-quote it (add a patient, or book an individual IV session) or "
            "cancel it.",
        )


def is_held(session: Session, invoice: Invoice) -> bool:
    """Whether `check_not_held` would refuse to collect the invoice."""
    try:
        check_not_held(session, invoice)
    except Conflict:
        return True
    return False


def card_allows_fees(session: Session, patient_id: str, payment_method_id: str) -> bool:
    """Saved by this patient with consent to later charges, not removed, not HSA/FSA."""
    consent = session.get(CardConsent, payment_method_id)
    return consent is not None and consent.patient_id == patient_id and consent.allows_fees
