"""The append-only ledger: each Stripe charge, refund and dispute once, with the status change.

A refund that fails after it was counted (Stripe counts a pending refund as refunded) is
not undone: like Stripe's balance transaction of type `refund_failure`, a new entry of
kind `refund_failure`, for the refund's amount and naming the same Stripe refund, gives
the money back, and every sum of refunds is net of those."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from billing.adapters.db import dialect_insert
from billing.adapters.models import Invoice, LedgerEntry, Refund, utcnow
from billing.domain import statuses
from billing.services.integrations import emails, events
from billing.services.packages import credits

CHARGE, REFUND, DISPUTE = "charge", "refund", "dispute"
REFUND_FAILURE = "refund_failure"  # a counted refund that failed: its money came back


@dataclass(frozen=True, slots=True)
class Amounts:
    paid: int
    refunded: int
    disputed: int
    overpaid: int = 0  # collected beyond the invoice and refunded for that reason


def record(
    session: Session,
    invoice: Invoice,
    kind: str,
    amount: int,
    stripe_object_id: str,
    stripe_charge_id: str | None = None,
    occurred_at: datetime | None = None,
) -> bool:
    """Append one entry and move the invoice's status; False if it was already recorded.

    A refund's failure moves a settled invoice back as far as its money says (refunded
    to partially refunded or paid); nothing else moves a status back."""
    insert = dialect_insert(session)
    statement = (
        insert(LedgerEntry)
        .values(
            invoice_id=invoice.id,
            kind=kind,
            amount=amount,
            currency=invoice.currency,
            stripe_object_id=stripe_object_id,
            stripe_charge_id=stripe_charge_id,
            stripe_ref=stripe_charge_id if kind == CHARGE else stripe_object_id,
            occurred_at=occurred_at or utcnow(),
            created_at=utcnow(),
            invoice_number=invoice.number,
            session_type=invoice.session_type,
            invoice_total=invoice.total,
        )
        .on_conflict_do_nothing(index_elements=["kind", "stripe_object_id"])
        .returning(LedgerEntry.id)
    )
    added = session.execute(statement).scalar_one_or_none() is not None
    if added:
        settle(session, invoice, money_back=kind == REFUND_FAILURE)
    return added


def refunded_net(kind: Any, amount: Any) -> Any:
    """An entry's part of what was refunded, for SQL sums: a refund's amount, less a
    refund failure's."""
    return case((kind == REFUND, amount), (kind == REFUND_FAILURE, -amount), else_=0)


def amounts(session: Session, invoice_id: str, before: datetime | None = None) -> Amounts:
    """What the ledger says was paid, refunded and disputed on one invoice (by `before`,
    when given)."""

    def total(kind: str) -> Any:
        return func.coalesce(func.sum(case((LedgerEntry.kind == kind, LedgerEntry.amount))), 0)

    overpayment_refunds = select(Refund.stripe_refund_id).where(
        Refund.invoice_id == invoice_id,
        Refund.kind == "overpayment",
        Refund.stripe_refund_id.is_not(None),
    )
    refunded = refunded_net(LedgerEntry.kind, LedgerEntry.amount)
    overpaid = func.coalesce(
        func.sum(case((LedgerEntry.stripe_object_id.in_(overpayment_refunds), refunded), else_=0)),
        0,
    )
    entries = select(
        total(CHARGE), func.coalesce(func.sum(refunded), 0), total(DISPUTE), overpaid
    ).where(LedgerEntry.invoice_id == invoice_id)
    if before is not None:
        entries = entries.where(LedgerEntry.occurred_at < before)
    paid, refunded, disputed, given_back = session.execute(entries).one()
    return Amounts(int(paid), int(refunded), int(disputed), int(given_back))


def settle(session: Session, invoice: Invoice, money_back: bool = False) -> None:
    """Move the invoice forward to whatever its ledger now implies; with `money_back` (a
    refund failed), also back among the settled statuses.

    Money given back because it was collected twice counts neither as paid nor refunded.
    """
    money = amounts(session, invoice.id)
    target = statuses.settled_status(
        invoice.total, money.paid - money.overpaid, money.refunded - money.overpaid
    )
    if target is None:
        return
    if money_back:
        invoice.status = statuses.after_refund_failed(invoice.status, target)
    else:
        invoice.status = statuses.advance(invoice.status, target)


def announce_paid(session: Session, invoice: Invoice, status_before: str) -> None:
    """In the caller's transaction, once an invoice has just been paid: other systems hear
    `invoice.paid`, and the patient is sent the receipt."""
    if status_before in statuses.SETTLED or invoice.status not in statuses.SETTLED:
        return
    session.flush()
    session.refresh(invoice, ["amount_paid", "amount_refunded"])
    credits.activate(session, invoice, utcnow())
    events.publish(session, "invoice.paid", "invoice", invoice)
    emails.queue(session, emails.RECEIPT, invoice, f"receipt:{invoice.id}")
