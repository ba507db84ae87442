"""A booking's seats, made when a quote is invoiced; and what they say of a patient."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from billing.adapters.booking_models import Booking, Seat
from billing.adapters.db import dialect_insert
from billing.adapters.models import Invoice, Quote
from billing.domain import policy, pricing
from billing.domain.errors import Conflict
from billing.services.access import audit


def open_booking(
    session: Session, quote: Quote, invoices: Sequence[Invoice], now: datetime
) -> None:
    """In the invoicing transaction: the booking now stands on `quote`, one seat per
    invoice. A newer quote of the same booking supersedes the old one, whose invoices the
    lifecycle then voids or refunds (see `lifecycle.settle`)."""
    made = session.execute(  # two first invoicings at once: one makes it, both lock it
        dialect_insert(session)(Booking)
        .values(
            booking_id=quote.booking_id,
            quote_id=quote.id,
            session_type=quote.session_type,
            currency=quote.currency,
            scheduled_at=quote.scheduled_at,
            state=policy.ACTIVE,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["booking_id"])
        .returning(Booking.booking_id)
    ).scalar_one_or_none()
    booking = session.scalars(
        select(Booking)
        .where(Booking.booking_id == quote.booking_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    if made is None:
        _check_supersedable(session, booking, quote)
        audit.record(
            session,
            "booking.requoted",
            "booking",
            booking.booking_id,
            superseded_quote_id=booking.quote_id,
            quote_id=quote.id,
        )
    booking.quote_id = quote.id
    booking.session_type = quote.session_type
    booking.currency = quote.currency
    booking.scheduled_at = quote.scheduled_at
    booking.state = policy.ACTIVE
    booking.updated_at = now
    session.add_all(
        Seat(
            quote_id=quote.id,
            patient_id=invoice.patient_id,
            booking_id=quote.booking_id,
            invoice_id=invoice.id,
            updated_at=now,
        )
        for invoice in invoices
    )


def _check_supersedable(session: Session, booking: Booking, quote: Quote) -> None:
    current = session.get(Quote, booking.quote_id)
    if current is not None and (current.created_at, current.id) > (quote.created_at, quote.id):
        raise Conflict(
            "quote_superseded",
            f"Booking {booking.booking_id} already stands on a newer quote, {current.id}.",
        )
    marked = session.scalar(
        select(func.count())
        .select_from(Seat)
        .where(Seat.quote_id == booking.quote_id, Seat.attendance.is_not(None))
    )
    if marked:
        raise Conflict(
            "booking_attended",
            f"Attendance was marked for booking {booking.booking_id}: the session took place "
            "and can no longer be re-quoted.",
        )


def completed_iv_sessions(session: Session, patient_ids: Sequence[str]) -> dict[str, int]:
    """Rule 3: individual IV sessions each patient attended, as the clinic marked them."""
    rows = session.execute(
        select(Seat.patient_id, func.count())
        .join(Booking, Booking.quote_id == Seat.quote_id)
        .where(
            Seat.patient_id.in_(patient_ids),
            Seat.attendance == policy.ATTENDED,
            Booking.session_type == pricing.IV_INDIVIDUAL,
        )
        .group_by(Seat.patient_id)
    )
    return {patient_id: int(count) for patient_id, count in rows}
