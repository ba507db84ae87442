"""A patient disputing a bill (the No Surprises Act's patient-provider dispute): while it
is open, nothing is charged to a card or bank account for that bill (the desk, AutoPay, an
instalment, a retry, a fee), and the patient gets no payment reminders; the patient may
still pay it themselves (the pay page, the desk). Finance sees the open ones, oldest first,
with their age."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing.adapters.estimate_models import BillDispute
from billing.adapters.models import Invoice, utcnow
from billing.domain.errors import Conflict


def open_dispute(session: Session, invoice_id: str) -> BillDispute | None:
    return session.scalars(
        select(BillDispute).where(
            BillDispute.invoice_id == invoice_id, BillDispute.resolved_at.is_(None)
        )
    ).first()


def check_not_disputed(session: Session, invoice: Invoice) -> None:
    """Refuse (409 `bill_in_dispute`) to charge a bill its patient disputes."""
    dispute = open_dispute(session, invoice.id)
    if dispute is not None:
        raise Conflict(
            "bill_in_dispute",
            f"The patient disputes invoice {invoice.number} (since "
            f"{dispute.opened_at:%Y-%m-%d}): nothing is charged until the dispute is resolved.",
            extra={"dispute_id": dispute.id},
        )


@dataclass(frozen=True, slots=True)
class OpenDispute:
    invoice_id: str
    invoice_number: str
    patient_id: str
    opened_at: datetime
    days_open: int
    balance_due: int
    currency: str
    note: str | None


def open_disputes(session: Session, now: datetime | None = None) -> list[OpenDispute]:
    """Every dispute still open, oldest first, with how many days it has been open."""
    now = now or utcnow()
    found = session.execute(
        select(BillDispute, Invoice)
        .join(Invoice, Invoice.id == BillDispute.invoice_id)
        .where(BillDispute.resolved_at.is_(None))
        .order_by(BillDispute.opened_at, BillDispute.id)
    ).all()
    return [
        OpenDispute(
            invoice_id=invoice.id,
            invoice_number=invoice.number,
            patient_id=dispute.patient_id,
            opened_at=dispute.opened_at,
            days_open=(now - dispute.opened_at).days,
            balance_due=invoice.balance_due,
            currency=invoice.currency,
            note=dispute.note,
        )
        for dispute, invoice in found
    ]
