"""A patient's account: money that is theirs and not owed to an invoice (credit), per
currency, and every movement of it; and gift cards, money anyone holding the code may
spend."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from billing.adapters.models import Base, new_id, utcnow


class AccountBalance(Base):
    """A patient's credit in one currency. It never goes below zero: taking credit is one
    UPDATE that asks for at least as much as it takes (and the database refuses less)."""

    __tablename__ = "account_balances"
    __table_args__ = (
        CheckConstraint("credit >= 0", name="credit_not_negative"),
        CheckConstraint("goodwill >= 0 AND goodwill <= credit", name="goodwill_within_credit"),
    )

    patient_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    credit: Mapped[int] = mapped_column(BigInteger)
    # Of the credit, what no card paid (goodwill, and what credit paid on an invoice that
    # came back to credit): it pays bills first, and is never refunded to a card.
    goodwill: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class AccountMovement(Base):
    """One change of a patient's credit, signed: money paid beyond an invoice kept as
    credit (`overpayment`), a credit note's money (`credit_note`), credit applied to an
    invoice (`applied`, negative), credit staff granted that no money paid (`goodwill`,
    with who approved it). Never edited; the balance is their sum."""

    __tablename__ = "account_movements"
    __table_args__ = (Index("ix_account_movements_kind_created_at", "kind", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("mv"))
    patient_id: Mapped[str] = mapped_column(String(64), index=True)
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))
    invoice_id: Mapped[str | None] = mapped_column(String(32), index=True)
    payment_id: Mapped[str | None] = mapped_column(String(32))
    adjustment_id: Mapped[str | None] = mapped_column(String(32))
    refund_id: Mapped[str | None] = mapped_column(String(32))  # credit refunded, or restored
    note: Mapped[str] = mapped_column(String(500))
    approved_by: Mapped[str | None] = mapped_column(String(200))  # goodwill credit's
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class GiftCard(Base):
    """A gift card sold as an invoice (kind `gift_card`): usable once that invoice is paid,
    on any invoice, until `expires_at` if it has one. Only its code's SHA-256 is kept (the
    code is shown once, when it is sold); what is left on it is its amount less what paid
    invoices and what was refunded to its buyer, counted under the lock of its invoice."""

    __tablename__ = "gift_cards"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("gc"))
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    last4: Mapped[str] = mapped_column(String(4))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    purchaser_patient_id: Mapped[str] = mapped_column(String(64), index=True)
    invoice_id: Mapped[str] = mapped_column(ForeignKey("invoices.id"), unique=True)
    expires_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class BalanceShare(Base):
    """What one payment of a patient's balance (a `balance` payment, made from the portal
    for several bills at once) pays of one bill, oldest bill first (`position`): planned
    when the patient chose, shown before paying; `applied` once the money has gone there
    (the first bill through the card's charge, the others through the credit its excess
    became), with the payment that applied it. Never edited after `done_at`."""

    __tablename__ = "balance_shares"
    __table_args__ = (UniqueConstraint("payment_id", "invoice_id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("bsh"))
    payment_id: Mapped[str] = mapped_column(ForeignKey("payments.id"), index=True)
    invoice_id: Mapped[str] = mapped_column(ForeignKey("invoices.id"), index=True)
    position: Mapped[int]
    amount: Mapped[int] = mapped_column(BigInteger)  # planned
    applied: Mapped[int | None] = mapped_column(BigInteger)
    applied_payment_id: Mapped[str | None] = mapped_column(String(32))
    done_at: Mapped[datetime | None]
