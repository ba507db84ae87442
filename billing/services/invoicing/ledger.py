"""The append-only ledger: each Stripe charge, refund and dispute once, and the money staff
received outside Stripe (cash, a check, another terminal), with the status change.

Nothing in it is undone. A refund that fails after it was counted (Stripe counts a
pending refund as refunded) gets, like Stripe's balance transaction of type
`refund_failure`, a new entry of kind `refund_failure` naming the same Stripe refund; a
payment received at the desk that never arrives (a check that bounced) gets a `reversal`
naming the same payment. Every sum is net of those."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from billing.adapters.db import dialect_insert
from billing.adapters.models import Invoice, LedgerEntry, Refund, utcnow
from billing.domain import statuses

CHARGE, REFUND, DISPUTE = "charge", "refund", "dispute"
REFUND_FAILURE = "refund_failure"  # a counted refund that failed: its money came back
RECEIVED = "received"  # money staff received outside Stripe: cash, a check, a terminal
REVERSAL = "reversal"  # money received that never arrived after all (a bounced check)
# A bank debit (ACH) that came back after it succeeded: Stripe's dispute of it, which is
# final; what it paid is owed again (a card's dispute leaves the invoice paid).
BANK_RETURN = "bank_return"
# Between the invoice and the patient's credit: money paid beyond what it owes kept as
# credit (`to_credit`), and credit applied to it (`from_credit`). Neither is new money.
TO_CREDIT, FROM_CREDIT = "to_credit", "from_credit"
GIFT_CARD = "gift_card"  # a gift card (sold and paid for earlier) paid part of the invoice
OUTSIDE_STRIPE_KINDS = (RECEIVED, REVERSAL, TO_CREDIT, FROM_CREDIT, GIFT_CARD)  # no Stripe object
MOVES = (TO_CREDIT, FROM_CREDIT, GIFT_CARD)  # money that was already the clinic's: no new money
MONEY_BACK = (REFUND_FAILURE, REVERSAL, BANK_RETURN)  # entries that may move a status back


@dataclass(frozen=True, slots=True)
class Amounts:
    paid: int
    refunded: int
    disputed: int
    overpaid: int = 0  # collected beyond the invoice and refunded for that reason
    returned: int = 0  # bank debits that came back after they succeeded (not in `paid`)


def record(
    session: Session,
    invoice: Invoice,
    kind: str,
    amount: int,
    stripe_object_id: str,
    stripe_charge_id: str | None = None,
    occurred_at: datetime | None = None,
    method: str | None = None,
) -> bool:
    """Append one entry and move the invoice's status; False if it was already recorded.
    Money received outside Stripe names our payment (`stripe_object_id`) and its
    `method`, and no Stripe object.

    A refund's failure or a reversal moves the invoice back as far as its money says;
    nothing else moves a status back."""
    # The Stripe object its balance transaction names: none for money received outside.
    ref = stripe_charge_id if kind == CHARGE else stripe_object_id
    if kind in OUTSIDE_STRIPE_KINDS:
        ref = None
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
            stripe_ref=ref,
            method=method,
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
        settle(session, invoice, money_back=kind in MONEY_BACK)
    return added


def paid_net(kind: Any, amount: Any) -> Any:
    """An entry's part of what was paid, for SQL sums: a charge's or money received, less
    a reversal's or a bank debit's return."""
    return case(
        (kind.in_((CHARGE, RECEIVED)), amount),
        (kind.in_((REVERSAL, BANK_RETURN)), -amount),
        else_=0,
    )


def applied_net(kind: Any, amount: Any) -> Any:
    """An entry's part of what was paid on the invoice, for SQL sums: as `paid_net`, and
    the patient's credit applied to it, less what of it was moved to that credit."""
    return case(
        (kind.in_((CHARGE, RECEIVED, FROM_CREDIT, GIFT_CARD)), amount),
        (kind.in_((REVERSAL, BANK_RETURN, TO_CREDIT)), -amount),
        else_=0,
    )


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
    paid = func.coalesce(func.sum(applied_net(LedgerEntry.kind, LedgerEntry.amount)), 0)
    entries = select(
        paid, func.coalesce(func.sum(refunded), 0), total(DISPUTE), overpaid, total(BANK_RETURN)
    ).where(LedgerEntry.invoice_id == invoice_id)
    if before is not None:
        entries = entries.where(LedgerEntry.occurred_at < before)
    paid, refunded, disputed, given_back, returned = session.execute(entries).one()
    return Amounts(int(paid), int(refunded), int(disputed), int(given_back), int(returned))


def held(session: Session, invoice_id: str) -> int:
    """What the clinic holds of what was paid on the invoice: paid (less what moved to
    the patient's credit), less refunds (those still in flight too) and disputes."""
    money = amounts(session, invoice_id)
    in_flight = session.scalar(
        select(func.coalesce(func.sum(Refund.amount), 0)).where(
            Refund.invoice_id == invoice_id,
            Refund.status.in_((statuses.PENDING, statuses.UNKNOWN)),
        )
    )
    return money.paid - money.refunded - money.disputed - int(in_flight or 0)


def settle(session: Session, invoice: Invoice, money_back: bool = False) -> None:
    """Move the invoice forward to whatever its ledger now implies; with `money_back` (a
    refund failed), also back among the settled statuses.

    Money given back because it was collected twice counts neither as paid nor refunded.
    """
    money = amounts(session, invoice.id)
    paid = money.paid - money.overpaid
    session.refresh(invoice, ["amount_credited", "amount_written_off"])
    owed = invoice.amount_owed
    if invoice.status == statuses.WRITTEN_OFF:
        if money_back and paid < owed:  # a check that bounced: owed again, collectable
            invoice.status = statuses.owing(paid, in_flight=False)
        return
    target = statuses.settled_status(owed, paid, money.refunded - money.overpaid)
    if target is None:
        # Still owed: partially paid once anything was. A charge in flight keeps it
        # processing (its outcome moves it on); a closed invoice stays closed.
        if invoice.status not in (*statuses.CLOSED, statuses.PROCESSING):
            invoice.status = statuses.owing(paid, in_flight=False)
        return
    if money_back:
        invoice.status = statuses.after_refund_failed(invoice.status, target)
    else:
        invoice.status = statuses.advance(invoice.status, target)
