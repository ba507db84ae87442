"""Invoices the booking lifecycle holds: nothing collects them while the booking says no."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing.adapters.booking_models import Booking, Seat
from billing.adapters.models import Invoice
from billing.domain import policy
from billing.domain.errors import Conflict


def check_not_held(session: Session, invoice: Invoice) -> None:
    """Refuse (409) to collect a session invoice of a superseded quote, of a cancelled
    seat, or of a group left below its minimum size."""
    if invoice.kind != policy.SESSION:
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
