"""Invoices: one per patient of a quote, at the quote's locked price, numbered without gaps."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from billing.adapters.booking_models import Booking
from billing.adapters.db import dialect_insert, lock_for_write
from billing.adapters.models import Invoice, InvoiceCounter, InvoiceLine, Quote, QuoteLine, utcnow
from billing.domain import policy, pricing, statuses
from billing.domain.dates import UTC_ZONE, day_of
from billing.domain.errors import Conflict, NotFound, field_error
from billing.services.access import audit
from billing.services.bookings import seats
from billing.services.integrations import events
from billing.services.invoicing import paid
from billing.services.packages import credits
from billing.services.pricing import promotions


@dataclass(frozen=True, slots=True)
class InvoiceBatch:
    invoices: list[Invoice]
    created: bool  # False when the quote had been invoiced before


@dataclass(frozen=True, slots=True)
class InvoicePage:
    data: list[Invoice]
    has_more: bool


def get_invoice(session: Session, invoice_id: str, for_update: bool = False) -> Invoice:
    statement = select(Invoice).where(Invoice.id == invoice_id)
    if for_update:
        # Lock and re-read: the session may hold an older copy of this row.
        lock_for_write(session)
        statement = statement.with_for_update().execution_options(populate_existing=True)
    invoice = session.scalars(statement).one_or_none()
    if invoice is None:
        raise NotFound("invoice_not_found", f"No invoice {invoice_id!r}.")
    return invoice


def patient_for_invoice(
    session: Session, patient_id: str, body: dict[str, Any]
) -> tuple[str, str | None]:
    """The name (and email) for an invoice without a quote (a package's, a gift card's):
    given, or as the patient's last quote had it."""
    if body.get("name"):
        return body["name"], body.get("email")
    last = session.execute(
        select(QuoteLine.patient_name, QuoteLine.patient_email)
        .where(QuoteLine.patient_id == patient_id)
        .order_by(QuoteLine.id.desc())
        .limit(1)
    ).first()
    if last is None:
        raise field_error(
            "patient_name_required",
            "name",
            f"Patient {patient_id} has not been quoted before: give the name for the invoice.",
        )
    return last[0], body.get("email") or last[1]


def sale_invoice(
    session: Session,
    patient_id: str,
    body: dict[str, Any],
    kind: str,
    description: str,
    amount: int,
    currency: str,
    now: datetime,
    zone: ZoneInfo = UTC_ZONE,
) -> Invoice:
    """An invoice without a quote for something sold to a patient (a package, a gift
    card; `kind` is its session type too): one line, open, numbered in the clinic's
    year. The name and email are the body's, or as the patient's last quote had them."""
    name, email = patient_for_invoice(session, patient_id, body)
    invoice = Invoice(
        number=next_numbers(session, day_of(now, zone).year, 1)[0],
        quote_id=None,
        booking_id=None,
        patient_id=patient_id,
        patient_name=name,
        patient_email=email,
        session_type=kind,
        scheduled_at=now,
        currency=currency,
        total=amount,
        status=statuses.OPEN,
        kind=kind,
        created_at=now,
        updated_at=now,
        lines=[
            InvoiceLine(
                position=0,
                description=description,
                session_type=kind,
                billing_code=policy.BILLING_CODES[kind],
                amount=amount,
            )
        ],
    )
    session.add(invoice)
    session.flush()
    return invoice


def create_invoices(
    session: Session, quote_id: str, now: datetime | None = None, zone: ZoneInfo = UTC_ZONE
) -> InvoiceBatch:
    """Invoice every patient of a quote once, numbered in the year of the clinic's calendar
    (`zone`); invoicing it again returns the same invoices."""
    now = now or utcnow()
    quote = session.scalars(
        select(Quote).where(Quote.id == quote_id).with_for_update()
    ).one_or_none()
    if quote is None:
        raise NotFound("quote_not_found", f"No quote {quote_id!r}.")
    existing = _invoices_of(session, quote.id)
    if existing:
        return InvoiceBatch(existing, created=False)
    promotions.lock_for_invoicing(session, quote.promotion_code)
    if pricing.is_expired(quote.expires_at, now):
        raise Conflict(
            "quote_expired", f"Quote {quote.id} expired at {quote.expires_at.isoformat()}."
        )

    # A booking invoiced before (this is a re-quote) is locked before the invoice numbers,
    # in the order a cancellation or a no-show takes them for its fee: booking, then
    # numbers. In the other order the two deadlocked, and one of them failed.
    session.execute(
        select(Booking.booking_id).where(Booking.booking_id == quote.booking_id).with_for_update()
    )
    numbers = next_numbers(session, day_of(now, zone).year, len(quote.lines))
    invoices = [
        Invoice(
            number=number,
            quote_id=quote.id,
            booking_id=quote.booking_id,
            patient_id=line.patient_id,
            patient_name=line.patient_name,
            patient_email=line.patient_email,
            session_type=quote.session_type,
            scheduled_at=quote.scheduled_at,
            currency=quote.currency,
            total=line.amount,
            deposit=line.deposit,
            # Paid with credits: nothing to collect, it is paid as it is made.
            status=statuses.PAID if line.credit_units else statuses.OPEN,
            kind=policy.SESSION,
            created_at=now,
            updated_at=now,
            lines=[
                InvoiceLine(
                    position=0,
                    description=line.description,
                    session_type=quote.session_type,
                    billing_code=policy.BILLING_CODES[quote.session_type],
                    amount=line.amount,
                    base_amount=line.base_amount,
                    sliding_percent=line.sliding_percent,
                    sliding_reason=line.sliding_reason,
                    sliding_approved_by=line.sliding_approved_by,
                    sliding_amount=line.sliding_amount,
                    promotion_code=quote.promotion_code if line.promotion_amount else None,
                    promotion_amount=line.promotion_amount,
                    credit_units=line.credit_units,
                    membership_id=line.membership_id,
                    member_saving=line.member_saving,
                )
            ],
        )
        for number, line in zip(numbers, quote.lines, strict=True)
    ]
    session.add_all(invoices)
    session.flush()
    paying = [line.patient_id for line in quote.lines if line.credit_units]
    if paying:
        credits.lock_all(session, paying)
    for invoice, line in zip(invoices, quote.lines, strict=True):
        if line.credit_units:
            used = credits.use(session, quote.id, line.patient_id, invoice.id, now) or (
                credits.carry(session, quote.booking_id, line.patient_id, quote.id, invoice.id, now)
            )
            if used != line.credit_units:  # the place they were carried from is gone
                raise Conflict(
                    "quote_expired",
                    f"Patient {line.patient_id}'s credits for quote {quote.id} are no "
                    "longer held (the quote expired, or the place they came from was "
                    "cancelled); quote the booking again.",
                )
    seats.open_booking(session, quote, invoices, now)
    for invoice in invoices:
        audit.record(
            session,
            "invoice.created",
            "invoice",
            invoice.id,
            number=invoice.number,
            quote_id=quote.id,
            patient_id=invoice.patient_id,
            total=invoice.total,
            currency=invoice.currency,
        )
        events.publish(session, "invoice.created", "invoice", invoice)
        if invoice.status == statuses.PAID:
            paid.announce_paid(session, invoice, statuses.OPEN)
    session.commit()
    return InvoiceBatch(invoices, created=True)


def _invoices_of(session: Session, quote_id: str) -> list[Invoice]:
    return list(
        session.scalars(
            select(Invoice)
            .where(Invoice.quote_id == quote_id, Invoice.kind == policy.SESSION)
            .order_by(Invoice.number)
        )
    )


def next_numbers(session: Session, year: int, count: int) -> list[str]:
    """Take `count` consecutive numbers of `year`; the counter's row lock serialises callers."""
    insert = dialect_insert(session)
    session.execute(
        insert(InvoiceCounter)
        .values(year=year, last_number=0)
        .on_conflict_do_nothing(index_elements=["year"])
    )
    last = session.execute(
        update(InvoiceCounter)
        .where(InvoiceCounter.year == year)
        .values(last_number=InvoiceCounter.last_number + count)
        .returning(InvoiceCounter.last_number)
    ).scalar_one()
    return [f"{year}-{n:06d}" for n in range(last - count + 1, last + 1)]


def list_invoices(
    session: Session,
    *,
    limit: int = 50,
    starting_after: str | None = None,
    status: str | None = None,
    patient_id: str | None = None,
    booking_id: str | None = None,
    created_gte: datetime | None = None,
    created_lt: datetime | None = None,
) -> InvoicePage:
    """Newest first, filtered; `starting_after` is the id of the last invoice already seen."""
    statement = select(Invoice)
    if status:
        statement = statement.where(Invoice.status == status)
    if patient_id:
        statement = statement.where(Invoice.patient_id == patient_id)
    if booking_id:
        statement = statement.where(Invoice.booking_id == booking_id)
    if created_gte:
        statement = statement.where(Invoice.created_at >= created_gte)
    if created_lt:
        statement = statement.where(Invoice.created_at < created_lt)
    if starting_after:
        cursor = get_invoice(session, starting_after)
        statement = statement.where(
            (Invoice.created_at < cursor.created_at)
            | ((Invoice.created_at == cursor.created_at) & (Invoice.id < cursor.id))
        )
    rows = list(
        session.scalars(
            statement.order_by(Invoice.created_at.desc(), Invoice.id.desc()).limit(limit + 1)
        )
    )
    return InvoicePage(data=rows[:limit], has_more=len(rows) > limit)
