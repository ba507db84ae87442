"""Money Stripe collected beyond what an invoice owes goes back to the card, exactly once.

It happens when two ways of paying race at Stripe (the pay page and the front desk), or
when a patient pays a void invoice. The refund is reserved in the same transaction that
records the charge, under an id derived from the payment, so it is made once however
often Stripe reports the success; finance sees it in the overpayments report.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from billing.adapters.db import dialect_insert
from billing.adapters.models import Invoice, Payment, Refund, utcnow
from billing.domain import statuses
from billing.domain.money import Money
from billing.services.access import audit
from billing.services.invoicing import ledger

OVERPAYMENT = "overpayment"


def refund_id_for(payment_id: str) -> str:
    """The one overpayment refund a payment can ever have."""
    return "rfo_" + payment_id.removeprefix("pay_")


def excess(session: Session, invoice: Invoice) -> Money:
    """What the ledger shows collected beyond the invoice (all of it on a void invoice),
    less what is already being given back."""
    currency = invoice.currency
    collected = Money(ledger.amounts(session, invoice.id).paid, currency)
    session.refresh(invoice, ["amount_credited", "amount_written_off"])
    owed = Money(0 if invoice.status == statuses.VOID else invoice.amount_owed, currency)
    returning = session.scalar(
        select(func.coalesce(func.sum(Refund.amount), 0)).where(
            Refund.invoice_id == invoice.id,
            Refund.kind == OVERPAYMENT,
            Refund.status != statuses.FAILED,
        )
    )
    beyond = collected - owed - Money(int(returning or 0), currency)
    return beyond if Money.zero(currency) < beyond else Money.zero(currency)


def reserve(session: Session, invoice: Invoice, payment: Payment) -> str | None:
    """In the caller's transaction, after `payment`'s charge is in the ledger: reserve the
    refund of what it collected beyond the invoice. The refund's id, or None if none is due."""
    beyond = excess(session, invoice)
    amount = min(beyond.amount, payment.amount)
    if amount <= 0:
        return None
    refund_id = refund_id_for(payment.id)
    insert = dialect_insert(session)
    reserved = session.execute(
        insert(Refund)
        .values(
            id=refund_id,
            invoice_id=invoice.id,
            payment_id=payment.id,
            amount=amount,
            currency=invoice.currency,
            reason=f"Collected beyond invoice {invoice.number} ({invoice.status}); given back.",
            kind=OVERPAYMENT,
            status=statuses.PENDING,
            created_at=utcnow(),
            updated_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(Refund.id)
    ).scalar_one_or_none()
    if reserved is not None:
        audit.record(
            session,
            "refund.created",
            "refund",
            refund_id,
            invoice_id=invoice.id,
            kind=OVERPAYMENT,
            amount=amount,
            currency=invoice.currency,
            reason="collected beyond the invoice",
        )
    return refund_id
