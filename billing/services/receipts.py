"""Which payment a receipt shows."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing.models import Payment
from billing.services.payments import SUCCEEDED


def receipt_payment(session: Session, invoice_id: str) -> Payment | None:
    """The payment that collected the invoice, if any."""
    return session.scalars(
        select(Payment)
        .where(Payment.invoice_id == invoice_id, Payment.status == SUCCEEDED)
        .order_by(Payment.paid_at.desc())
    ).first()
