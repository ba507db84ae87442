"""What a receipt shows, and what staff see of an invoice's money."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from billing.adapters.models import Invoice, LedgerEntry, Payment, Refund
from billing.domain import statuses
from billing.domain.errors import Conflict
from billing.domain.statuses import SUCCEEDED
from billing.services.invoicing.invoices import get_invoice


def receipt_payments(session: Session, invoice_id: str) -> list[Payment]:
    """The payments that collected the invoice, first first: by card, at the desk, each
    part of a split bill (a reversed one collected nothing and is left out)."""
    return list(
        session.scalars(
            select(Payment)
            .where(Payment.invoice_id == invoice_id, Payment.status == SUCCEEDED)
            .order_by(func.coalesce(Payment.received_at, Payment.paid_at), Payment.id)
        )
    )


def paid_invoice(session: Session, invoice_id: str) -> tuple[Invoice, list[Payment]]:
    """An invoice that has a receipt (money was collected, all or part of what it owes),
    with the payments that collected it."""
    invoice = get_invoice(session, invoice_id)
    part_paid = (statuses.PARTIALLY_PAID, statuses.WRITTEN_OFF)
    if invoice.status not in statuses.SETTLED and not (
        invoice.status in part_paid and invoice.amount_paid > 0
    ):
        raise Conflict("invoice_not_paid", f"Invoice {invoice.number} has not been paid.")
    return invoice, receipt_payments(session, invoice.id)


@dataclass(frozen=True, slots=True)
class InvoiceHistory:
    """Everything staff look at when a payment does not add up."""

    invoice: Invoice
    payments: list[Payment]
    refunds: list[Refund]
    ledger: list[LedgerEntry]


def invoice_history(session: Session, invoice_id: str) -> InvoiceHistory:
    invoice = get_invoice(session, invoice_id)

    def of(model: Any) -> list[Any]:
        return list(session.scalars(select(model).where(model.invoice_id == invoice_id)))

    return InvoiceHistory(invoice, of(Payment), of(Refund), of(LedgerEntry))
