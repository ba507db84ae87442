"""The booking after the quote: attendance, cancellations and the fees they cost.

Each call commits what happened to the booking first (seats cancelled or marked, fee
invoices made, the booking's state), then `settle` makes the money follow, from what the
database says rather than from what the request asked: session invoices of cancelled or
superseded seats are voided when unpaid and refunded in full when paid; fee invoices no
seat owns any more (an attendance corrected) likewise; a new fee invoice is charged to a
card saved with consent to fees, or gets a pay link. Every Stripe step runs under a key
derived from the invoice, so a replay, a retry or two callers at once move money once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from billing.adapters.booking_models import Booking, Seat
from billing.adapters.db import lock_for_write
from billing.adapters.models import (
    Invoice,
    InvoiceLine,
    Patient,
    PayLink,
    Payment,
    Refund,
    utcnow,
)
from billing.adapters.stripe_gateway import StripeGateway
from billing.domain import clinical, policy, statuses
from billing.domain.dates import UTC_ZONE, day_of
from billing.domain.errors import Conflict, NotFound, ServiceError, field_error
from billing.domain.money import STRIPE_MINIMUM_CHARGE, Money
from billing.services import idempotency
from billing.services.access import audit
from billing.services.bookings import holds
from billing.services.clinical import profiles, visits
from billing.services.idempotency import IdempotencyRequest
from billing.services.integrations import events
from billing.services.invoicing import invoices, paylinks
from billing.services.packages import credits
from billing.services.payments import autopay, charges, online, received, refunds

CLOCK_SKEW = timedelta(minutes=5)  # a caller's clock may run a little ahead of ours
CHECK_IN = timedelta(hours=2)  # attendance may be marked this long before the start
# An invoice that no longer applies still holds money (or may still collect it).
GIVE_BACK = (
    statuses.OPEN,
    statuses.PARTIALLY_PAID,
    statuses.PAID,
    statuses.PARTIALLY_REFUNDED,
)
GIVE_BACK_ATTEMPTS = 3  # refunds Stripe refused before a person must look (refunds report)


@dataclass(frozen=True, slots=True)
class Settings:
    """What settling needs besides the database: Stripe, and how to make pay links."""

    gateway: Callable[[], StripeGateway]  # a 503 when Stripe is not configured
    link_secret: str
    link_ttl: timedelta
    zone: Any = UTC_ZONE  # the clinic's calendar, for fee invoices' numbers
    fee_exempt: tuple[str, ...] = (clinical.MEDICAID,)  # payer classes charged no fees


def settings_from(config: Any, gateway: Callable[[], StripeGateway]) -> Settings:
    """Settings from a Flask app's configuration."""
    return Settings(
        gateway=gateway,
        link_secret=config["SECRET_KEY"],
        link_ttl=timedelta(days=config["PAY_LINK_TTL_DAYS"]),
        zone=config["CLINIC_ZONE"],
        fee_exempt=tuple(config["FEE_EXEMPT_PAYER_CLASSES"]),
    )


@dataclass(frozen=True, slots=True)
class BookingView:
    """A booking as the API shows it: its seats (current quote) and every invoice."""

    booking: Booking
    seats: list[Seat]
    invoices: list[Invoice]
    fees: list[Invoice]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.booking, name)


def get_booking(session: Session, booking_id: str) -> BookingView:
    booking = session.get(Booking, booking_id, populate_existing=True)
    if booking is None:
        raise NotFound("booking_not_found", f"No invoiced booking {booking_id!r}.")
    seats = list(
        session.scalars(
            select(Seat)
            .where(Seat.quote_id == booking.quote_id)
            .order_by(Seat.patient_id)
            .execution_options(populate_existing=True)
        )
    )
    every = list(
        session.scalars(
            select(Invoice)
            .where(Invoice.booking_id == booking_id)
            .order_by(Invoice.number)
            .execution_options(populate_existing=True)
        )
    )
    return BookingView(
        booking,
        seats,
        [invoice for invoice in every if invoice.kind == policy.SESSION],
        [invoice for invoice in every if invoice.kind == policy.FEE],
    )


def mark_attendance(
    session: Session,
    settings: Settings,
    booking_id: str,
    marks: Sequence[dict[str, Any]],
    request: IdempotencyRequest,
    now: datetime | None = None,
) -> BookingView:
    """Attended or no-show per patient; a no-show costs the policy's no-show fee, and a
    correction (no-show -> attended) reverses that fee. The visit's diagnoses and
    rendering clinician, when given, are recorded for its superbill (`visits`)."""
    now = now or utcnow()
    claim = idempotency.claim(session, request, "booking")
    if claim.replay_of is None:
        booking = _locked(session, booking_id)
        owed: list[str] = []  # the invoices (and fees) attendance leaves to collect
        if booking.state != policy.ACTIVE:
            raise _not_active(booking)
        if now < booking.scheduled_at - CHECK_IN:
            raise Conflict(
                "session_not_started",
                f"Booking {booking_id} starts at {booking.scheduled_at.isoformat()}; "
                "attendance is marked from two hours before.",
            )
        for index, mark in enumerate(marks):
            seat = _seat(session, booking, mark["patient_id"], f"patients.{index}.patient_id")
            if seat.cancelled_at is not None:
                raise Conflict(
                    "patient_cancelled",
                    f"Patient {seat.patient_id}'s place was cancelled; attendance cannot be "
                    "marked.",
                )
            if mark["status"] == policy.NO_SHOW and now < booking.scheduled_at:
                raise Conflict(
                    "session_not_started",
                    f"Booking {booking_id} has not started; a no-show is marked once it has.",
                )
            _mark(session, settings, booking, seat, mark["status"], now)
            if mark["status"] == policy.NO_SHOW:  # no visit: nothing to bill an insurer
                visits.forget(session, seat.invoice_id)
            elif "diagnosis_codes" in mark or "rendering_provider" in mark:
                visits.record(
                    session,
                    seat.invoice_id,
                    seat.patient_id,
                    mark.get("diagnosis_codes"),
                    mark.get("rendering_provider"),
                    f"patients.{index}",
                )
            owed.extend(i for i in (seat.invoice_id, seat.fee_invoice_id) if i is not None)
        session.flush()
        autopay.queue(session, owed, autopay.ATTENDED, now)  # charged by the scheduler
        events.publish(
            session, "booking.attendance_marked", "booking", get_booking(session, booking_id)
        )
        idempotency.complete(session, claim, booking_id)
        session.commit()
    else:
        session.commit()
    return settle(session, settings, booking_id, request.api_key_id)


def _mark(
    session: Session,
    settings: Settings,
    booking: Booking,
    seat: Seat,
    status: str,
    now: datetime,
) -> None:
    previous = seat.attendance
    if previous == status:
        return
    seat.attendance = status
    seat.attendance_marked_at = now
    seat.updated_at = now
    seat.fee_exempt_reason = None  # decided again below, for a no-show
    if previous == policy.NO_SHOW:
        seat.fee_invoice_id = None  # the fee no longer applies: `settle` gives it back
    if status == policy.NO_SHOW:
        fee = _fee_invoice(session, settings, booking, seat, policy.NO_SHOW, now)
        seat.fee_invoice_id = fee.id if fee is not None else None
    audit.record(
        session,
        "booking.attendance_corrected" if previous else "booking.attendance_marked",
        "booking",
        booking.booking_id,
        patient_id=seat.patient_id,
        attendance=status,
        previous=previous,
        fee_invoice_id=seat.fee_invoice_id,
    )


def cancel(
    session: Session,
    settings: Settings,
    booking_id: str,
    body: dict[str, Any],
    request: IdempotencyRequest,
    now: datetime | None = None,
) -> BookingView:
    """Cancel one patient's place, or the whole booking without `patient_id`.

    By the clinic, or by the patient with the policy's notice: the session invoice is
    voided or refunded in full. By the patient with less notice: that too, and the
    late-cancellation fee is invoiced instead (never more than the line)."""
    now = now or utcnow()
    claim = idempotency.claim(session, request, "booking")
    if claim.replay_of is None:
        booking = _locked(session, booking_id)
        cancelled_at = body.get("cancelled_at") or now
        if cancelled_at > now + CLOCK_SKEW:
            raise field_error(
                "cancelled_at_in_future", "cancelled_at", "A cancellation cannot be in the future."
            )
        if cancelled_at < booking.created_at - CLOCK_SKEW:
            raise field_error(
                "cancelled_at_before_booking",
                "cancelled_at",
                f"Booking {booking_id} was invoiced at {booking.created_at.isoformat()}; a "
                "cancellation cannot come before it.",
            )
        if cancelled_at >= booking.scheduled_at:
            raise Conflict(
                "session_started",
                f"Booking {booking_id} started at {booking.scheduled_at.isoformat()}; mark "
                "attendance (a no-show) instead.",
            )
        if booking.state == policy.CANCELLED:
            raise Conflict("already_cancelled", f"Booking {booking_id} is cancelled already.")
        if "patient_id" in body:
            seat = _seat(session, booking, body["patient_id"], "patient_id")
            if seat.cancelled_at is not None:
                raise Conflict(
                    "already_cancelled",
                    f"Patient {seat.patient_id}'s place in booking {booking_id} is cancelled "
                    "already.",
                )
            chosen = [seat]
        else:
            chosen = [seat for seat in _seats(session, booking) if seat.live]
        for seat in chosen:
            if seat.attendance is not None:
                raise Conflict(
                    "attendance_marked",
                    f"Attendance was marked for patient {seat.patient_id}; it cannot be cancelled.",
                )
        terms = booking.quote.cancellation_policy
        late = body["by"] == policy.BY_PATIENT and terms.is_late(cancelled_at, booking.scheduled_at)
        for seat in chosen:
            seat.cancelled_at = cancelled_at
            seat.cancelled_by = body["by"]
            seat.cancellation_late = late
            seat.updated_at = now
            if late:
                fee = _fee_invoice(session, settings, booking, seat, policy.LATE_CANCELLATION, now)
                seat.fee_invoice_id = fee.id if fee is not None else None
            audit.record(
                session,
                "booking.cancelled",
                "booking",
                booking.booking_id,
                patient_id=seat.patient_id,
                by=body["by"],
                cancelled_at=cancelled_at.isoformat(),
                late=late,
                fee_invoice_id=seat.fee_invoice_id,
            )
        _restate(session, booking, now)
        session.flush()
        events.publish(session, "booking.cancelled", "booking", get_booking(session, booking_id))
        idempotency.complete(session, claim, booking_id)
        session.commit()
    else:
        session.commit()
    return settle(session, settings, booking_id, request.api_key_id)


def _restate(session: Session, booking: Booking, now: datetime) -> None:
    """Active, below its minimum (a group of fewer than 2), or cancelled (nobody left)."""
    live = sum(1 for seat in _seats(session, booking) if seat.live)
    state = policy.ACTIVE
    if live == 0:
        state = policy.CANCELLED
    elif live < policy.live_patients_needed(booking.session_type):
        state = policy.BELOW_MINIMUM
    if state != booking.state:
        audit.record(session, "booking.state_changed", "booking", booking.booking_id, state=state)
        booking.state = state
    booking.updated_at = now


def _fee_invoice(
    session: Session,
    settings: Settings,
    booking: Booking,
    seat: Seat,
    reason: str,
    now: datetime,
) -> Invoice | None:
    """The fee invoice for `seat`, or None when the policy's fee is nothing (or less than
    Stripe can charge)."""
    line = seat.invoice
    # A place credits paid costs its session price in the policy's terms: the credit is
    # given back like money would be, and the fee is invoiced like anyone's.
    value = Money(line.total, line.currency)
    if line.total == 0:
        value = Money.sum(
            [Money(item.base_amount or item.amount, line.currency) for item in line.lines],
            line.currency,
        )
    amount = policy.fee_for(booking.quote.cancellation_policy, reason, value)
    if amount.amount < STRIPE_MINIMUM_CHARGE.get(amount.currency, 1):
        return None
    payer = profiles.payer_class_of(session, line.patient_id)
    exempt = clinical.fee_exemption(payer, settings.fee_exempt)
    if exempt is not None:  # recorded on the place, and in the audit trail
        seat.fee_exempt_reason = exempt
        audit.record(
            session,
            "booking.fee_exempted",
            "booking",
            booking.booking_id,
            patient_id=seat.patient_id,
            fee_reason=reason,
            payer_class=payer,
            amount=amount.amount,
        )
        return None
    number = invoices.next_numbers(session, day_of(now, settings.zone).year, 1)[0]
    fee = Invoice(
        number=number,
        quote_id=seat.quote_id,
        booking_id=booking.booking_id,
        patient_id=line.patient_id,
        patient_name=line.patient_name,
        patient_email=line.patient_email,
        session_type=line.session_type,
        scheduled_at=line.scheduled_at,
        currency=line.currency,
        total=amount.amount,
        status=statuses.OPEN,
        kind=policy.FEE,
        fee_reason=reason,
        created_at=now,
        updated_at=now,
        lines=[
            InvoiceLine(
                position=0,
                description=policy.FEE_DESCRIPTIONS[reason],
                session_type=line.session_type,
                billing_code=policy.BILLING_CODES[reason],
                amount=amount.amount,
            )
        ],
    )
    session.add(fee)
    session.flush()
    audit.record(
        session,
        "invoice.created",
        "invoice",
        fee.id,
        number=fee.number,
        kind=policy.FEE,
        fee_reason=reason,
        patient_id=fee.patient_id,
        total=fee.total,
        currency=fee.currency,
    )
    events.publish(session, "invoice.created", "invoice", fee)
    return fee


# --- making the money follow -----------------------------------------------------------


def settle(session: Session, settings: Settings, booking_id: str, api_key_id: int) -> BookingView:
    """Void or refund what no longer applies, collect new fees; safe to run again."""
    # The booking, its places and its invoices read in one moment: a re-quote invoiced
    # between reading the booking and reading its invoices would look superseded and be
    # voided. Whatever was held is let go first, so the lock is the only thing waited on.
    session.commit()
    lock_for_write(session)
    _locked(session, booking_id)
    view = get_booking(session, booking_id)
    session.commit()
    if view.booking.api_key_id != api_key_id:  # whom the settle job acts for, later
        view.booking.api_key_id = api_key_id
        session.commit()
    standing = holds.standing_fees(session, view.booking)
    current = {seat.invoice_id: seat for seat in view.seats}
    seated = {seat.invoice_id for seat in _every_seat(session, booking_id)}
    for invoice in view.invoices:
        if invoice.id not in seated:
            continue  # invoiced before bookings were kept: left as it was
        seat = current.get(invoice.id)
        if seat is None or not seat.live:  # superseded by a re-quote, or cancelled
            _give_back(session, settings, invoice, api_key_id, _why(view.booking, seat))
        elif view.booking.state == policy.BELOW_MINIMUM:
            _stop_pay_page(session, settings, invoice)
    for fee in view.fees:
        if fee.id not in standing:
            _give_back(session, settings, fee, api_key_id, "The fee no longer applies.")
        elif fee.status == statuses.OPEN:
            _collect_fee(session, settings, fee, api_key_id)
    session.commit()
    return get_booking(session, booking_id)


def settle_pending(session: Session, settings: Settings) -> list[str]:
    """For the scheduler: settle every booking whose money has not followed yet (Stripe
    was away, or a payment was in flight when its place was cancelled); the bookings
    settled."""
    superseded_or_cancelled = (
        select(Seat.booking_id)
        .join(Invoice, Invoice.id == Seat.invoice_id)
        .join(Booking, Booking.booking_id == Seat.booking_id)
        .where(
            (Seat.cancelled_at.is_not(None)) | (Seat.quote_id != Booking.quote_id),
            Invoice.status.in_(GIVE_BACK),
        )
    )
    fees_left = session.execute(
        select(Invoice.id, Invoice.booking_id).where(
            Invoice.kind == policy.FEE, Invoice.status.in_(GIVE_BACK)
        )
    ).all()
    stray_fees = set()
    for fee_id, fee_booking_id in fees_left:
        owner = session.get(Booking, fee_booking_id)
        if owner is not None and fee_id not in holds.standing_fees(session, owner):
            stray_fees.add(fee_booking_id)
    untried_fees = select(Invoice.booking_id).where(
        Invoice.kind == policy.FEE,
        Invoice.status == statuses.OPEN,
        ~select(Payment.id).where(Payment.invoice_id == Invoice.id).exists(),
        ~select(PayLink.id).where(PayLink.invoice_id == Invoice.id).exists(),
    )
    # A group below two whose pay page may still hold a live PaymentIntent at Stripe.
    held_pages = (
        select(Booking.booking_id)
        .join(Seat, Seat.quote_id == Booking.quote_id)
        .join(Payment, Payment.invoice_id == Seat.invoice_id)
        .where(
            Booking.state == policy.BELOW_MINIMUM,
            Payment.method == "online",
            Payment.stripe_payment_intent_id.is_not(None),
            Payment.status.in_(online.REUSABLE),
        )
    )
    found = (
        set(session.scalars(superseded_or_cancelled))
        | stray_fees
        | set(session.scalars(untried_fees))
        | set(session.scalars(held_pages))
    )
    due = sorted(booking_id for booking_id in found if booking_id is not None)
    settled = []
    for booking_id in due:
        booking = session.get(Booking, booking_id)
        session.commit()
        if booking is None or booking.api_key_id is None:
            continue
        settle(session, settings, booking_id, booking.api_key_id)
        settled.append(booking_id)
    return settled


def _why(booking: Booking, seat: Seat | None) -> str:
    if seat is None:
        return f"Booking {booking.booking_id} was re-quoted."
    return f"Booking {booking.booking_id} was cancelled by the {seat.cancelled_by}."


def _give_back(
    session: Session, settings: Settings, invoice: Invoice, api_key_id: int, reason: str
) -> None:
    """Void an unpaid invoice, refund a paid one in full; a partly paid one is refunded,
    then voided once nothing is left to refund. A payment in flight is left for the next
    settle (its pay page can no longer start one: the invoice is held)."""
    invoice = invoices.get_invoice(session, invoice.id)
    if credits.paid_by_credits(invoice):  # no money moved: the credits are returned
        credits.give_back(session, invoice, utcnow(), reason)
        session.commit()
        return
    if _failed_refunds(session, invoice.id) >= GIVE_BACK_ATTEMPTS:
        session.commit()  # Stripe keeps refusing: the refunds report shows it to finance
        return
    try:
        if invoice.status == statuses.OPEN:
            online.void_invoice(session, settings.gateway, invoice.id)
        elif invoice.status in (statuses.PARTIALLY_PAID, *statuses.SETTLED):
            left = refunds.left_to_refund(session, invoice)
            # Ours in flight (Stripe was away): the same key again replays it, sending it
            # to Stripe under its own idempotency key, so it is made once.
            in_flight = session.scalars(
                select(Refund.amount).where(
                    Refund.invoice_id == invoice.id,
                    Refund.status.in_((statuses.PENDING, statuses.UNKNOWN)),
                )
            ).first()
            amount = left.amount or in_flight or 0
            # Nothing (more) to give back through Stripe: what the desk took is given back
            # by hand, the invoice void (finance's overpayments list it until then).
            given_back = amount == 0 and (
                invoice.status == statuses.PARTIALLY_PAID
                or received.desk_money(session, invoice.id) > 0
            )
            session.commit()
            if given_back:
                online.void_invoice(session, settings.gateway, invoice.id)
            elif amount > 0:
                refunds.refund_invoice(
                    session,
                    settings.gateway(),
                    invoice.id,
                    amount,
                    reason,
                    _derived(session, api_key_id, "give-back", invoice.id),
                )
    except ServiceError:
        session.rollback()  # Stripe refused or is away: the next settle tries again


def _stop_pay_page(session: Session, settings: Settings, invoice: Invoice) -> None:
    """A held invoice's pay page must not collect: cancel its PaymentIntent at Stripe."""
    if invoice.status not in statuses.PAYABLE:
        return
    try:
        charges.cancel_online(session, settings.gateway(), invoice.id)
    except ServiceError:
        session.rollback()


def _collect_fee(session: Session, settings: Settings, fee: Invoice, api_key_id: int) -> None:
    """Charge a card the patient saved with consent to fees (never an HSA/FSA card), once;
    otherwise, or if that charge fails, the fee waits on a pay link."""
    tried = session.scalar(
        select(func.count()).select_from(Payment).where(Payment.invoice_id == fee.id)
    )
    linked = session.scalar(
        select(func.count()).select_from(PayLink).where(PayLink.invoice_id == fee.id)
    )
    session.commit()
    if not tried and _consented_card(session, fee.patient_id):
        try:
            charges.pay_with_card_on_file(
                session,
                settings.gateway(),
                fee.id,
                _derived(session, api_key_id, "fee-charge", fee.id),
                card_allowed=holds.card_allows_fees,
            )
            return
        except ServiceError:
            session.rollback()
        fee = invoices.get_invoice(session, fee.id)
        if fee.status != statuses.OPEN:
            return
    if linked:
        return
    try:
        paylinks.create_pay_link(
            session,
            settings.link_secret,
            fee.id,
            settings.link_ttl,
            _derived(session, api_key_id, "fee-link", fee.id),
            email=bool(fee.patient_email),
            once=True,  # two settles at once (two keys, or a key and the scheduler)
        )
    except ServiceError:
        session.rollback()


def _consented_card(session: Session, patient_id: str) -> bool:
    patient = session.scalars(select(Patient).where(Patient.patient_id == patient_id)).first()
    if patient is None or not patient.default_payment_method_id:
        return False
    return holds.card_allows_fees(session, patient_id, patient.default_payment_method_id)


def _failed_refunds(session: Session, invoice_id: str) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(Refund)
            .where(Refund.invoice_id == invoice_id, Refund.status == statuses.FAILED)
        )
        or 0
    )


def _derived(session: Session, api_key_id: int, step: str, invoice_id: str) -> IdempotencyRequest:
    """The key of one Stripe step on one invoice: the same for every caller that gets
    there. A refund that failed frees its key: the next attempt is numbered after it."""
    key = f"booking:{step}:{invoice_id}:{_failed_refunds(session, invoice_id)}"
    return IdempotencyRequest(api_key_id=api_key_id, key=key, fingerprint=key)


# --- reading and locking ---------------------------------------------------------------


def _locked(session: Session, booking_id: str) -> Booking:
    booking = session.scalars(
        select(Booking)
        .where(Booking.booking_id == booking_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one_or_none()
    if booking is None:
        raise NotFound("booking_not_found", f"No invoiced booking {booking_id!r}.")
    return booking


def _seats(session: Session, booking: Booking) -> list[Seat]:
    return list(
        session.scalars(
            select(Seat)
            .where(Seat.quote_id == booking.quote_id)
            .order_by(Seat.patient_id)
            .execution_options(populate_existing=True)
        )
    )


def _every_seat(session: Session, booking_id: str) -> list[Seat]:
    return list(session.scalars(select(Seat).where(Seat.booking_id == booking_id)))


def _seat(session: Session, booking: Booking, patient_id: str, field: str) -> Seat:
    seat = session.get(Seat, (booking.quote_id, patient_id), populate_existing=True)
    if seat is None:
        raise field_error(
            "patient_not_in_booking",
            field,
            f"Patient {patient_id} is not in booking {booking.booking_id}.",
        )
    return seat


def _not_active(booking: Booking) -> Conflict:
    if booking.state == policy.BELOW_MINIMUM:
        return Conflict(
            "booking_below_minimum",
            f"Booking {booking.booking_id} has fewer than 2 patients left for a group "
            "session; re-quote or cancel it first.",
        )
    return Conflict("booking_cancelled", f"Booking {booking.booking_id} is cancelled.")
