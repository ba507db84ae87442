"""A patient's account: money that is theirs and not owed to an invoice (credit), per
currency, and every movement of it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from billing.adapters.models import Base, new_id, utcnow


class AccountBalance(Base):
    """A patient's credit in one currency. It never goes below zero: taking credit is one
    UPDATE that asks for at least as much as it takes (and the database refuses less)."""

    __tablename__ = "account_balances"
    __table_args__ = (CheckConstraint("credit >= 0", name="credit_not_negative"),)

    patient_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    credit: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class AccountMovement(Base):
    """One change of a patient's credit, signed: money paid beyond an invoice kept as
    credit (`overpayment`), a credit note's money (`credit_note`), credit applied to an
    invoice (`applied`, negative). Never edited; the balance is their sum."""

    __tablename__ = "account_movements"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("mv"))
    patient_id: Mapped[str] = mapped_column(String(64), index=True)
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))
    invoice_id: Mapped[str | None] = mapped_column(String(32), index=True)
    payment_id: Mapped[str | None] = mapped_column(String(32))
    adjustment_id: Mapped[str | None] = mapped_column(String(32))
    note: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


__all__ = ["AccountBalance", "AccountMovement"]
