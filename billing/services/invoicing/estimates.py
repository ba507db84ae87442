"""Good Faith Estimates from quotes, kept as given; bills above them; disputes of a bill."""

from __future__ import annotations

import calendar
import json
import logging
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from billing.adapters.booking_models import Booking
from billing.adapters.clinical_models import PatientProfile, VisitRecord
from billing.adapters.credit_models import Package
from billing.adapters.estimate_models import BillDispute, Estimate
from billing.adapters.models import Invoice, Quote, Refund, utcnow
from billing.domain import credits, estimates, policy, statuses
from billing.domain.errors import Conflict, NotFound, ServiceError, field_error
from billing.domain.money import Money
from billing.services.access import audit
from billing.services.invoicing import disputes
from billing.services.invoicing.invoices import get_invoice

log = logging.getLogger("billing.estimates")


@dataclass(frozen=True, slots=True)
class Course:
    """What the estimate covers: one session, or `sessions` of them over `months`; from a
    package, its sessions at the package's price and any more (boosters) at the session's."""

    sessions: int = 1
    months: int = 0
    package: Package | None = None

    @property
    def package_code(self) -> str:
        return self.package.code if self.package is not None else ""


def issue_estimate(
    session: Session,
    quote_id: str,
    patient_id: str | None,
    course: Course,
    requested: bool,
    codes: dict[str, list[str]],
    zone: ZoneInfo,
    now: datetime | None = None,
    requested_at: datetime | None = None,
    provider_npi: str = "",
    replaces: Estimate | None = None,
) -> Estimate:
    """The patient's estimate from the quote: given once and kept; asked again, the same
    estimate (the one the patient holds) comes back. A patient's request (`requested`, at
    `requested_at`, default now) is its own estimate, due 3 business days after it. It
    keeps, as they are now, the patient's date of birth, the diagnoses known (their latest
    recorded visit's) and the convening provider's NPI (`provider_npi`)."""
    now = now or utcnow()
    if requested_at is not None and requested_at > now:
        raise field_error(
            "requested_at_in_future", "requested_at", "A request cannot be in the future."
        )
    quote, line, course, in_package = _what_is_estimated(session, quote_id, patient_id, course)
    kept = _kept(session, quote.id, line.patient_id, course, requested)
    if kept is not None:
        return kept
    # Each session at its price less the recurring sliding scale; a promotion's discount
    # is once, on the quoted session.
    base = Money(line.base_amount if line.base_amount is not None else line.amount, quote.currency)
    unit = base - Money(line.sliding_amount, quote.currency)
    description = line.description
    if course.sessions > 1:
        description += f": a course of {course.sessions} sessions over {course.months} months"
    codes_of = codes.get(quote.session_type, [])
    items: list[dict[str, Any]] = []
    if course.package is not None:
        package = course.package
        items.append(
            {
                "description": f"{package.name} ({package.iv_credits} IV credits): "
                f"{in_package} sessions of the course, paid with its credits",
                "codes": [policy.BILLING_CODES[policy.PACKAGE], *codes_of],
                "quantity": 1,
                "unit_amount": package.amount,
                "amount": package.amount,
            }
        )
    by_the_session = course.sessions - in_package
    if by_the_session:
        items.append(
            {
                "description": (
                    f"{line.description}: {by_the_session} more session(s) (boosters)"
                    if in_package
                    else description
                )
                + (
                    f", after a {line.sliding_percent}% sliding-scale discount"
                    if line.sliding_amount
                    else ""
                ),
                "codes": codes_of,
                "quantity": by_the_session,
                "unit_amount": unit.amount,
                "amount": (unit * by_the_session).amount,
            }
        )
    if line.promotion_amount and not in_package:
        items.append(
            {
                "description": f"Promotion {quote.promotion_code} (once)",
                "codes": [],
                "quantity": 1,
                "unit_amount": -line.promotion_amount,
                "amount": -line.promotion_amount,
            }
        )
    total = Money.sum([Money(item["amount"], quote.currency) for item in items], quote.currency)
    asked = (requested_at or now) if requested else None
    due = estimates.due_by(quote.created_at, quote.scheduled_at, zone, asked)
    if replaces is not None:  # an update: by the business day before the visit at the latest
        due = estimates.update_due_by(quote.scheduled_at, zone)
    estimate = Estimate(
        quote_id=quote.id,
        booking_id=quote.booking_id,
        patient_id=line.patient_id,
        patient_name=line.patient_name,
        session_type=quote.session_type,
        currency=quote.currency,
        sessions=course.sessions,
        course_months=course.months,
        package_code=course.package_code,
        unit_amount=unit.amount,
        total=total.amount,
        items=json.dumps(items),
        scheduled_at=quote.scheduled_at,
        booked_at=quote.created_at,
        requested=requested,
        issued_at=now,
        due_by=due,
        on_time=due is None or now <= due,
        date_of_birth=_born(session, line.patient_id),
        diagnosis_codes=_known_diagnoses(session, line.patient_id, quote.session_type),
        provider_npi=provider_npi,
        replaces_id=replaces.id if replaces is not None else None,
    )
    session.add(estimate)
    try:
        session.flush()
    except IntegrityError:  # the same estimate, given at the same moment elsewhere
        session.rollback()
        again = _kept(session, quote.id, line.patient_id, course, requested)
        assert again is not None
        return again
    audit.record(
        session,
        "estimate.issued",
        "estimate",
        estimate.id,
        quote_id=quote.id,
        patient_id=line.patient_id,
        total=estimate.total,
        currency=estimate.currency,
        sessions=course.sessions,
        due_by=due.isoformat() if due else None,
        on_time=estimate.on_time,
    )
    session.commit()
    return estimate


def update_estimates(
    session: Session,
    quote_id: str,
    codes: dict[str, list[str]],
    zone: ZoneInfo,
    provider_npi: str = "",
    now: datetime | None = None,
) -> list[Estimate]:
    """A booking re-quoted (a new quote for its booking id): each estimate given for its
    earlier quotes is given again for the new one, with the same course (due by the end
    of the business day before the visit at the latest), naming the one it replaces,
    which stays kept as it was given. The updated estimates."""
    booking_id = session.scalar(select(Quote.booking_id).where(Quote.id == quote_id))
    given = session.scalar(  # most quotes are a booking's first: nothing to update
        select(Estimate.id).where(Estimate.booking_id == booking_id).limit(1)
    )
    if booking_id is None or given is None:
        session.commit()
        return []
    quote = session.get(Quote, quote_id)
    if quote is None:
        return []
    earlier = session.scalars(
        select(Estimate)
        .join(Quote, Quote.id == Estimate.quote_id)
        .where(Estimate.booking_id == quote.booking_id, Quote.id != quote.id)
        .where(Quote.created_at <= quote.created_at)
        .order_by(Estimate.issued_at.desc(), Estimate.id)
    ).all()
    session.commit()
    latest: dict[tuple[str, int, int, str, bool], Estimate] = {}
    for estimate in earlier:  # the newest of each patient's and course's
        key = (
            estimate.patient_id,
            estimate.sessions,
            estimate.course_months,
            estimate.package_code,
            estimate.requested,
        )
        latest.setdefault(key, estimate)
    updated = []
    in_quote = {line.patient_id for line in quote.lines}
    for (patient_id, sessions, months, package_code, requested), old in latest.items():
        if patient_id not in in_quote or package_code:  # a package's terms are its own
            continue
        if _kept(session, quote.id, patient_id, Course(sessions, months), requested):
            continue
        made = issue_estimate(
            session,
            quote.id,
            patient_id,
            Course(sessions, months),
            requested,
            codes,
            zone,
            now=now,
            provider_npi=provider_npi,
            replaces=old,
        )
        changed = made.items != old.items or made.total != old.total
        audit.record(
            session, "estimate.updated", "estimate", made.id, replaces=old.id, changed=changed
        )
        session.commit()
        updated.append(made)
    return updated


def update_all(
    session: Session,
    codes: dict[str, list[str]],
    zone: ZoneInfo,
    provider_npi: str = "",
    now: datetime | None = None,
) -> int:
    """The scheduler's job (every minute, off the quote's hot path): every booking
    re-quoted since an estimate was given for it, its visit still ahead, has its
    estimates given again for its newest quote (`update_estimates`). How many."""
    now = now or utcnow()
    newest = (
        select(Quote.booking_id, func.max(Quote.created_at).label("created_at"))
        .where(Quote.booking_id.in_(select(Estimate.booking_id)))
        .group_by(Quote.booking_id)
        .subquery()
    )
    due = session.scalars(
        select(Quote.id)
        .join(
            newest,
            (newest.c.booking_id == Quote.booking_id) & (newest.c.created_at == Quote.created_at),
        )
        .where(
            Quote.scheduled_at > now,
            ~select(Estimate.id).where(Estimate.quote_id == Quote.id).exists(),
        )
    ).all()
    session.commit()
    made = 0
    for quote_id in due:
        try:
            made += len(update_estimates(session, quote_id, codes, zone, provider_npi, now))
        except ServiceError as error:  # a quote the estimate cannot be made from now
            session.rollback()
            log.info("updated estimate for quote %s not given: %s", quote_id, error.detail)
    return made


def _born(session: Session, patient_id: str) -> date | None:
    profile = session.get(PatientProfile, patient_id)
    return profile.date_of_birth if profile is not None else None


def _known_diagnoses(session: Session, patient_id: str, session_type: str) -> str:
    """The diagnoses of the patient's latest recorded visit of the kind estimated (the
    care it continues), comma-separated; none from other care."""
    latest = session.scalar(
        select(VisitRecord.diagnosis_codes)
        .join(Invoice, Invoice.id == VisitRecord.invoice_id)
        .where(
            VisitRecord.patient_id == patient_id,
            VisitRecord.diagnosis_codes != "",
            Invoice.session_type == session_type,
        )
        .order_by(VisitRecord.recorded_at.desc())
        .limit(1)
    )
    return str(latest or "")


def read_estimate(
    session: Session, quote_id: str, patient_id: str | None, course: Course, requested: bool
) -> Estimate:
    """The estimate issued for the quote's patient and course, as it was given; reading
    it never issues one (404 `estimate_not_found` until `issue_estimate` has)."""
    quote, line, course, _ = _what_is_estimated(session, quote_id, patient_id, course)
    kept = _kept(session, quote.id, line.patient_id, course, requested)
    session.commit()
    if kept is None:
        raise NotFound(
            "estimate_not_found",
            f"No Good Faith Estimate was issued for patient {line.patient_id} of quote "
            f"{quote.id} and this course; issue one with POST.",
        )
    return kept


def _what_is_estimated(
    session: Session, quote_id: str, patient_id: str | None, course: Course
) -> tuple[Quote, Any, Course, int]:
    """The quote, the patient's line, the course (a package's sessions counted in) and
    how many of its sessions the package pays."""
    quote = session.get(Quote, quote_id)
    if quote is None:
        raise NotFound("quote_not_found", f"No quote {quote_id!r}.")
    line = _line_of(quote, patient_id)
    in_package = _package_sessions(course, quote)
    if in_package:
        course = Course(max(course.sessions, in_package), course.months, course.package)
    return quote, line, course, in_package


def items_of(estimate: Estimate) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads(estimate.items)
    return items


def _line_of(quote: Quote, patient_id: str | None) -> Any:
    if patient_id is None:
        if len(quote.lines) == 1:
            return quote.lines[0]
        raise field_error(
            "patient_required",
            "patient_id",
            f"Quote {quote.id} is for {len(quote.lines)} patients: name the patient.",
        )
    for line in quote.lines:
        if line.patient_id == patient_id:
            return line
    raise field_error(
        "patient_not_in_quote", "patient_id", f"Patient {patient_id} is not in quote {quote.id}."
    )


def _kept(
    session: Session, quote_id: str, patient_id: str, course: Course, requested: bool
) -> Estimate | None:
    return session.scalars(
        select(Estimate).where(
            Estimate.quote_id == quote_id,
            Estimate.patient_id == patient_id,
            Estimate.sessions == course.sessions,
            Estimate.course_months == course.months,
            Estimate.requested == requested,
            Estimate.package_code == course.package_code,
        )
    ).first()


def _package_sessions(course: Course, quote: Quote) -> int:
    """How many of the quote's sessions the course's package pays (0 without one)."""
    if course.package is None:
        return 0
    if course.package.currency != quote.currency:
        raise field_error(
            "package_not_applicable",
            "package",
            f"Package {course.package.code} is sold in {course.package.currency}, the quote "
            f"is in {quote.currency}.",
        )
    return course.package.iv_credits * 2 // credits.half_credits_for(quote.session_type)


def variance(session: Session, thresholds: dict[str, int]) -> dict[str, Any]:
    """Patients billed at least the dispute threshold ($400.00 for usd) above an estimate,
    per currency: what was estimated, what was billed for its items (session invoices,
    less credit notes, write-offs and what was refunded of them), and by how much it is
    over."""
    report: dict[str, Any] = {}
    # One row per patient and bills: of several estimates for the same bills (a plain
    # one and one the patient asked for, or one updated), the newest speaks.
    newest: dict[tuple[str, str, tuple[str, ...]], tuple[Estimate, Money]] = {}
    for estimate in session.scalars(select(Estimate).order_by(Estimate.issued_at, Estimate.id)):
        bills = list(session.scalars(_billed_for(session, estimate)))
        billed = Money.sum(
            [
                Money(invoice.amount_owed, invoice.currency)  # less credit notes, write-offs
                - Money(_given_back(session, invoice), invoice.currency)
                for invoice in bills
            ],
            estimate.currency,
        )
        key = (estimate.currency, estimate.patient_id, tuple(sorted(i.id for i in bills)))
        newest[key] = (estimate, billed)
    for estimate, billed in newest.values():
        threshold = estimates.dispute_threshold(estimate.currency, thresholds)
        over = billed - Money(estimate.total, estimate.currency)
        entry = report.setdefault(
            estimate.currency, {"threshold": threshold.amount, "patients": []}
        )
        if threshold <= over:
            entry["patients"].append(
                {
                    "patient_id": estimate.patient_id,
                    "patient_name": estimate.patient_name,
                    "estimate_id": estimate.id,
                    "quote_id": estimate.quote_id,
                    "issued_at": estimate.issued_at,
                    "estimated": estimate.total,
                    "billed": billed.amount,
                    "over": over.amount,
                }
            )
    return {"currencies": report}


def _billed_for(session: Session, estimate: Estimate) -> Any:
    """The session invoices an estimate's items became: for one session, its booking's as
    it stands now (a re-quote's, not the superseded quote's); for a course, the patient's
    sessions of that type within its months."""
    statement = select(Invoice).where(
        Invoice.patient_id == estimate.patient_id,
        Invoice.currency == estimate.currency,
        Invoice.status != statuses.VOID,
    )
    if estimate.sessions == 1:
        booking = session.get(Booking, estimate.booking_id)
        statement = statement.where(
            Invoice.kind == policy.SESSION, Invoice.booking_id == estimate.booking_id
        )
        return statement.where(Invoice.quote_id == booking.quote_id) if booking else statement
    end = add_months(estimate.scheduled_at, estimate.course_months)
    # A course: its sessions, and the packages bought for it (from the quote on).
    return statement.where(
        or_(
            (Invoice.kind == policy.SESSION)
            & (Invoice.session_type == estimate.session_type)
            & (Invoice.scheduled_at >= estimate.scheduled_at)
            & (Invoice.scheduled_at < end),
            (Invoice.kind == policy.PACKAGE)
            & (Invoice.created_at >= estimate.booked_at)
            & (Invoice.created_at < end),
        )
    )


def _given_back(session: Session, invoice: Invoice) -> int:
    """What was refunded of the bill itself: not money collected twice and returned."""
    return int(
        session.scalar(
            select(func.coalesce(func.sum(Refund.amount), 0)).where(
                Refund.invoice_id == invoice.id,
                Refund.status == statuses.SUCCEEDED,
                Refund.kind != "overpayment",
            )
        )
        or 0
    )


def add_months(moment: datetime, months: int) -> datetime:
    """The same day and time `months` later (the month's last day where it is shorter)."""
    total = moment.month - 1 + months
    year, month = moment.year + total // 12, total % 12 + 1
    last = calendar.monthrange(year, month)[1]
    return moment.replace(year=year, month=month, day=min(moment.day, last))


# --- a patient disputing a bill ---------------------------------------------------------


def dispute_bill(session: Session, invoice_id: str, status: str, note: str | None) -> BillDispute:
    """Open a dispute of an invoice (while it is open nothing is charged for it and the
    patient gets no payment reminders: `disputes`), or mark the open one resolved;
    opening twice returns the open one."""
    invoice = get_invoice(session, invoice_id, for_update=True)
    current = disputes.open_dispute(session, invoice.id)
    if status == "open":
        if current is not None:
            session.commit()
            return current
        current = BillDispute(invoice_id=invoice.id, patient_id=invoice.patient_id, note=note)
        session.add(current)
        session.flush()
        audit.record(
            session, "bill_dispute.opened", "invoice", invoice.id, dispute_id=current.id, note=note
        )
    else:
        if current is None:
            raise Conflict("no_open_dispute", f"Invoice {invoice.number} has no open dispute.")
        current.resolved_at = utcnow()
        audit.record(
            session,
            "bill_dispute.resolved",
            "invoice",
            invoice.id,
            dispute_id=current.id,
            note=note,
        )
    session.commit()
    return current


def disputing(session: Session, patient_id: str) -> bool:
    """Whether the patient has a dispute of a bill open."""
    return (
        session.scalars(
            select(BillDispute.id).where(
                BillDispute.patient_id == patient_id, BillDispute.resolved_at.is_(None)
            )
        ).first()
        is not None
    )
