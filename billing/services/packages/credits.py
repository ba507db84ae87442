"""A patient's credits: held by a quote, used by its invoice, given back when the place
is cancelled in time or re-quoted, expired, or refunded as money.

Every change to a patient's credits takes the row locks of the patient's packages first
(in id order), so two quotes racing for the last credit are counted one after the other:
one holds it, the other is refused with 409 `insufficient_credits`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from billing.adapters.booking_models import Booking, Seat
from billing.adapters.credit_models import CreditHold, CreditRefund, PatientPackage
from billing.adapters.models import Invoice, LedgerEntry, Refund, utcnow
from billing.domain import credits, policy, statuses
from billing.domain.errors import Conflict
from billing.domain.statuses import PENDING, SUCCEEDED, UNKNOWN
from billing.services.access import audit
from billing.services.integrations import events
from billing.services.invoicing import ledger

RESERVING = (SUCCEEDED, PENDING, UNKNOWN)  # a refund's amount is spoken for


@dataclass(frozen=True, slots=True)
class PackageCredits:
    package: PatientPackage
    balance: credits.Balance
    status: str  # awaiting_payment, active, expired, void (its invoice voided unpaid)


@dataclass(frozen=True, slots=True)
class Statement:
    patient_id: str
    packages: list[PackageCredits]
    movements: list[dict[str, Any]]
    as_of: datetime

    @property
    def available(self) -> int:
        return sum(p.balance.available for p in self.packages)

    @property
    def reserved(self) -> int:
        return sum(p.balance.reserved for p in self.packages)

    @property
    def next_expiry(self) -> datetime | None:
        live = [p.package.expires_at for p in self.packages if p.balance.available > 0]
        return min((at for at in live if at is not None), default=None)


def lock(session: Session, patient_id: str) -> list[PatientPackage]:
    """The patient's packages, locked (oldest first) for the rest of the transaction."""
    return lock_all(session, [patient_id])


def lock_all(session: Session, patient_ids: Sequence[str]) -> list[PatientPackage]:
    """The packages of every one of `patient_ids`, locked in one order (patient, then
    package) whatever order they come in: two group quotes naming the same patients in
    different orders cannot deadlock.

    SQLite has no row locks (it ignores FOR UPDATE) and reads outside any write
    transaction, so two quotes could both read the last credit as free: there a write
    that changes nothing comes first, taking the database's write lock for the rest of
    the transaction. Whoever holds credits then goes one at a time, and reads what the
    one before wrote."""
    ids = sorted(set(patient_ids))
    if session.get_bind().dialect.name == "sqlite":
        session.execute(
            update(PatientPackage)
            .where(PatientPackage.patient_id.in_(ids))
            .values(patient_id=PatientPackage.patient_id)
            .execution_options(synchronize_session=False)
        )
    return list(
        session.scalars(
            select(PatientPackage)
            .where(PatientPackage.patient_id.in_(ids))
            .order_by(PatientPackage.patient_id, PatientPackage.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    )


def balances(
    session: Session, packages: Sequence[PatientPackage], now: datetime
) -> dict[str, credits.Balance]:
    """Each package's half-credits as they stand at `now`."""
    ids = [p.id for p in packages]
    if not ids:
        return {}
    live = CreditHold.returned_at.is_(None)
    reserved = dict(
        session.execute(
            select(CreditHold.patient_package_id, func.sum(CreditHold.half_credits))
            .where(
                CreditHold.patient_package_id.in_(ids),
                live,
                CreditHold.used_at.is_(None),
                CreditHold.expires_at > now,
            )
            .group_by(CreditHold.patient_package_id)
        ).all()
    )
    used = dict(
        session.execute(
            select(CreditHold.patient_package_id, func.sum(CreditHold.half_credits))
            .where(CreditHold.patient_package_id.in_(ids), live, CreditHold.used_at.is_not(None))
            .group_by(CreditHold.patient_package_id)
        ).all()
    )
    refunded = dict(
        session.execute(
            select(CreditRefund.patient_package_id, func.sum(CreditRefund.half_credits))
            .outerjoin(Refund, Refund.id == CreditRefund.refund_id)
            .where(CreditRefund.patient_package_id.in_(ids), counted_refund())
            .group_by(CreditRefund.patient_package_id)
        ).all()
    )
    outside = money_outside(session, packages)
    counted = {  # what was held, used or refunded stays counted, whatever a plan did since
        p.id: sum(int(kind.get(p.id) or 0) for kind in (reserved, used, refunded)) for p in packages
    }
    return {
        p.id: credits.balance(
            max(granted(p), counted[p.id]),
            int(reserved.get(p.id) or 0),
            int(used.get(p.id) or 0),
            int(refunded.get(p.id) or 0),
            is_expired=p.expires_at is not None and p.expires_at <= now,
            is_withdrawn=p.id in outside,
        )
        for p in packages
    }


def money_outside(
    session: Session, packages: Sequence[PatientPackage], before: datetime | None = None
) -> dict[str, datetime]:
    """The packages whose invoice gave money back other than through a refund of their
    credits (a refund made in Stripe's dashboard, a dispute, a bank debit that came back),
    and when: their credits no
    longer stand on money the clinic holds, so those not yet used or held are withdrawn.
    With `before`, as the ledger stood then (a month-end report of a closed month reads
    the same whatever came after)."""
    by_invoice = {p.invoice_id: p.id for p in packages if p.paid_at is not None}
    if not by_invoice:
        return {}
    # A refund that failed gave nothing back: the sums below are net of its failure.
    gone = LedgerEntry.kind.in_((ledger.REFUND, ledger.DISPUTE, ledger.BANK_RETURN))
    outside = select(LedgerEntry.invoice_id, func.max(LedgerEntry.occurred_at)).where(
        LedgerEntry.invoice_id.in_(by_invoice), gone
    )
    credited = (
        select(CreditRefund.patient_package_id, func.sum(CreditRefund.amount))
        .join(Refund, Refund.id == CreditRefund.refund_id)
        .where(CreditRefund.patient_package_id.in_(by_invoice.values()))
    )
    if before is None:
        credited = credited.where(Refund.status == SUCCEEDED)
    else:
        outside = outside.where(LedgerEntry.occurred_at < before)

        def entry(kind: str) -> Any:
            return (
                select(LedgerEntry.id)
                .where(
                    LedgerEntry.kind == kind,
                    LedgerEntry.stripe_object_id == Refund.stripe_refund_id,
                    LedgerEntry.occurred_at < before,
                )
                .exists()
            )

        # the refunds of credits the ledger counted by then (and had not seen fail), as
        # the money they are weighed against
        credited = credited.where(entry(ledger.REFUND), ~entry(ledger.REFUND_FAILURE))
    when = dict(session.execute(outside.group_by(LedgerEntry.invoice_id)).all())
    left = {}
    for invoice_id, last in when.items():
        # Less money collected twice and given back.
        money = ledger.amounts(session, invoice_id, before)
        left[invoice_id] = (money.refunded - money.overpaid + money.disputed + money.returned, last)
    if not left:
        return {}
    by_credits = dict(session.execute(credited.group_by(CreditRefund.patient_package_id)).all())
    return {
        by_invoice[invoice_id]: last
        for invoice_id, (amount, last) in left.items()
        if amount > int(by_credits.get(by_invoice[invoice_id]) or 0)
    }


def counted_refund() -> Any:
    """A refund of credits counts from when it is asked for until Stripe refuses it (or
    it failed before reaching Stripe); with `CreditRefund` outer-joined to `Refund`."""
    return CreditRefund.failed_at.is_(None) & (
        CreditRefund.refund_id.is_(None) | Refund.status.in_(RESERVING)
    )


def hold(
    session: Session,
    quote_id: str,
    patient_id: str,
    currency: str,
    half_credits: int,
    expires_at: datetime,
    now: datetime,
    field: str,
    booking_id: str | None = None,
) -> None:
    """In the quote's transaction: hold `half_credits` of the patient's paid, unexpired
    packages in the quote's currency, soonest to expire first, until the quote expires;
    409 `insufficient_credits` when they hold too few."""
    packages = lock(session, patient_id)
    if booking_id is not None and (
        sum(held.half_credits for held in carried(session, booking_id, patient_id)) == half_credits
    ):
        return  # a re-quote of a place credits pay: invoicing it carries them over
    standing = balances(session, packages, now)
    usable = sorted(
        (p for p in packages if p.currency == currency and standing[p.id].available > 0),
        # soonest to expire first; one still on a plan (no expiry yet) last
        key=lambda p: (p.expires_at is None, p.expires_at or now, p.id),
    )
    taken = credits.take([(p.id, standing[p.id].available) for p in usable], half_credits)
    if taken is None:
        have = sum(standing[p.id].available for p in usable)
        raise Conflict(
            "insufficient_credits",
            f"Patient {patient_id} has {credits.as_credits(have):g} IV credit(s) in "
            f"{currency} to use; this place takes {credits.as_credits(half_credits):g}.",
            errors={field: ["Not enough credits."]},
        )
    session.add_all(
        CreditHold(
            patient_package_id=package_id,
            patient_id=patient_id,
            quote_id=quote_id,
            half_credits=share,
            expires_at=expires_at,
            created_at=now,
        )
        for package_id, share in taken
    )


def carried(session: Session, booking_id: str, patient_id: str) -> list[CreditHold]:
    """The credits that pay the patient's place in the booking as it stands now (its
    current quote's invoice): a re-quote of the place (a new time, say) takes them over
    rather than holding more."""
    place = (
        select(Seat.invoice_id)
        .join(Booking, Booking.booking_id == Seat.booking_id)
        .where(
            Seat.booking_id == booking_id,
            Seat.patient_id == patient_id,
            Seat.quote_id == Booking.quote_id,
            Seat.cancelled_at.is_(None),
            Seat.attendance.is_(None),
        )
    )
    return list(
        session.scalars(
            select(CreditHold).where(
                CreditHold.invoice_id.in_(place),
                CreditHold.used_at.is_not(None),
                CreditHold.returned_at.is_(None),
            )
        )
    )


def carry(
    session: Session,
    booking_id: str,
    patient_id: str,
    quote_id: str,
    invoice_id: str,
    now: datetime,
) -> int:
    """In the invoicing transaction of a re-quote (before the booking moves to it): the
    credits of the patient's place now pay the new invoice; the half-credits carried."""
    moved = 0
    for held in carried(session, booking_id, patient_id):
        held.quote_id = quote_id
        held.invoice_id = invoice_id  # used when it was first invoiced: used_at stays
        moved += held.half_credits
    return moved


def use(session: Session, quote_id: str, patient_id: str, invoice_id: str, now: datetime) -> int:
    """In the invoicing transaction: the quote's held credits pay `invoice_id`; the
    half-credits used. Only holds still live once the packages are locked: invoicing
    may have waited on a lock past the quote's expiry, and by then a lapsed hold's
    credits may be another quote's or refunded."""
    lock(session, patient_id)
    now = max(now, utcnow())
    result = session.execute(
        update(CreditHold)
        .where(
            CreditHold.quote_id == quote_id,
            CreditHold.patient_id == patient_id,
            CreditHold.used_at.is_(None),
            CreditHold.returned_at.is_(None),
            CreditHold.expires_at > now,
        )
        .values(invoice_id=invoice_id, used_at=now)
        .returning(CreditHold.half_credits)
    )
    return sum(result.scalars())


def give_back(session: Session, invoice: Invoice, now: datetime, why: str) -> int:
    """The credits that paid `invoice` are the patient's again, and the invoice, which
    collected no money, is void; safe to run again (the half-credits given back)."""
    lock(session, invoice.patient_id)
    result = session.execute(
        update(CreditHold)
        .where(CreditHold.invoice_id == invoice.id, CreditHold.returned_at.is_(None))
        .values(returned_at=now)
        .returning(CreditHold.half_credits)
    )
    returned = sum(result.scalars())
    if invoice.status != statuses.VOID:
        invoice.status = statuses.VOID
        invoice.voided_at = now
        events.publish(session, "invoice.voided", "invoice", invoice)
        audit.record(
            session,
            "credits.returned",
            "invoice",
            invoice.id,
            patient_id=invoice.patient_id,
            half_credits=returned,
            reason=why,
        )
    return returned


def granted(package: PatientPackage) -> int:
    """The package's half-credits the patient may use: all once its invoice is paid; while
    a payment plan pays it, as the clinic decides (PLAN_PACKAGE_CREDITS): none until paid
    (`when_paid`), all at once (`at_once`), or in proportion to what is paid (`as_paid`,
    rounded down to a half credit)."""
    if package.paid_at is not None:
        return package.half_credits
    invoice = package.invoice
    if invoice.plan is None or invoice.status in statuses.CLOSED or invoice.total <= 0:
        return 0
    mode = plan_credits()
    if mode == "at_once":
        return package.half_credits
    if mode == "as_paid":
        return package.half_credits * min(invoice.amount_paid, invoice.total) // invoice.total
    return 0


def plan_credits() -> str:
    """The clinic's PLAN_PACKAGE_CREDITS (`when_paid` outside an app)."""
    from flask import current_app, has_app_context

    if not has_app_context():
        return "when_paid"
    return str(current_app.config.get("PLAN_PACKAGE_CREDITS", "when_paid"))


def paid_by_credits(invoice: Invoice) -> bool:
    return any(line.credit_units for line in invoice.lines)


def activate(session: Session, invoice: Invoice, now: datetime) -> None:
    """A package's invoice was just paid: its credits count from now for its validity (a
    membership period's, until the period's end)."""
    if invoice.kind not in (policy.PACKAGE, policy.MEMBERSHIP):
        return
    package = session.scalars(
        select(PatientPackage).where(PatientPackage.invoice_id == invoice.id).with_for_update()
    ).one_or_none()
    if package is None or package.paid_at is not None:
        return
    package.paid_at = now
    if invoice.kind == policy.PACKAGE:
        package.expires_at = now + timedelta(days=package.valid_days)
    audit.record(
        session,
        "package.activated",
        "patient_package",
        package.id,
        patient_id=package.patient_id,
        half_credits=package.half_credits,
        expires_at=package.expires_at.isoformat() if package.expires_at else None,
    )


def statement(session: Session, patient_id: str, now: datetime | None = None) -> Statement:
    """The patient's packages with their balances, and every movement that made them."""
    now = now or utcnow()
    packages = list(
        session.scalars(
            select(PatientPackage)
            .where(PatientPackage.patient_id == patient_id)
            .order_by(PatientPackage.sold_at, PatientPackage.id)
        )
    )
    standing = balances(session, packages, now)
    ids = [p.id for p in packages]
    holds = (
        list(session.scalars(select(CreditHold).where(CreditHold.patient_package_id.in_(ids))))
        if ids
        else []
    )
    refunds = (
        list(
            session.scalars(
                select(CreditRefund)
                .outerjoin(Refund, Refund.id == CreditRefund.refund_id)
                .where(CreditRefund.patient_package_id.in_(ids), counted_refund())
            )
        )
        if ids
        else []
    )
    return Statement(
        patient_id=patient_id,
        packages=[
            PackageCredits(p, standing[p.id], _status(p, standing[p.id], now)) for p in packages
        ],
        movements=_movements(
            packages, standing, holds, refunds, money_outside(session, packages), now
        ),
        as_of=now,
    )


def _status(package: PatientPackage, balance: credits.Balance, now: datetime) -> str:
    if balance.withdrawn:
        return "withdrawn"
    if package.paid_at is None and package.invoice.status == statuses.VOID:
        return "void"
    if package.paid_at is None and balance.total and package.invoice.plan is not None:
        return "on_plan"  # credits usable while a payment plan pays for them
    if package.paid_at is None:
        return "awaiting_payment"
    if package.expires_at is not None and package.expires_at <= now:
        return "expired"
    return "active"


def _movements(
    packages: Sequence[PatientPackage],
    standing: dict[str, credits.Balance],
    holds: Sequence[CreditHold],
    refunds: Sequence[CreditRefund],
    outside: dict[str, datetime],
    now: datetime,
) -> list[dict[str, Any]]:
    """Each change of the balance, oldest first; their `half_credits` add up to what is
    available now (a hold that became an invoice is `used`, and moves nothing more)."""
    moves: list[dict[str, Any]] = []

    def move(kind: str, at: datetime, half_credits: int, package_id: str, **more: Any) -> None:
        moves.append(
            {
                "kind": kind,
                "at": at,
                "half_credits": half_credits,
                "credits": credits.as_credits(half_credits),
                "patient_package_id": package_id,
                "quote_id": more.get("quote_id"),
                "invoice_id": more.get("invoice_id"),
                "amount": more.get("amount"),
                "currency": more.get("currency"),
            }
        )

    for package in packages:
        if package.paid_at is not None:
            move(
                "purchased",
                package.paid_at,
                package.half_credits,
                package.id,
                invoice_id=package.invoice_id,
            )
        expired = standing[package.id].expired
        if expired and package.expires_at is not None:
            move("expired", package.expires_at, -expired, package.id)
        withdrawn = standing[package.id].withdrawn
        if withdrawn:
            move(
                "withdrawn",
                outside[package.id],
                -withdrawn,
                package.id,
                invoice_id=package.invoice_id,
            )
    for held in holds:
        ids = {"quote_id": held.quote_id, "invoice_id": held.invoice_id}
        move("reserved", held.created_at, -held.half_credits, held.patient_package_id, **ids)
        if held.used_at is not None:
            move("used", held.used_at, 0, held.patient_package_id, **ids)
        if held.returned_at is not None:
            move("returned", held.returned_at, held.half_credits, held.patient_package_id, **ids)
        elif held.used_at is None and held.expires_at <= now:
            move("released", held.expires_at, held.half_credits, held.patient_package_id, **ids)
    for refund in refunds:
        move(
            "refunded",
            refund.created_at,
            -refund.half_credits,
            refund.patient_package_id,
            amount=refund.amount,
            currency=refund.currency,
        )
    order = {
        "purchased": 0,
        "reserved": 1,
        "used": 2,
        "returned": 3,
        "released": 3,
        "refunded": 4,
        "withdrawn": 5,
        "expired": 5,
    }
    return sorted(moves, key=lambda m: (m["at"], order[m["kind"]]))
