"""What follows once an invoice is paid: its package's credits become usable, other
systems hear `invoice.paid`, and the patient is sent the receipt. Apart from the ledger,
which the packages' credits read."""

from __future__ import annotations

from sqlalchemy.orm import Session

from billing.adapters.models import Invoice, utcnow
from billing.domain import statuses
from billing.services.integrations import emails, events
from billing.services.packages import credits


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
