"""The closed books: months finance has closed, the journal lines each held when it was
closed, and which ledger entry or Stripe transaction each closed journal posted. Append-only
(on PostgreSQL the database refuses updates and deletes, migration 0009)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from billing.adapters.models import Base, utcnow


class ClosedMonth(Base):
    """A month of the clinic's calendar whose journal no longer changes."""

    __tablename__ = "closed_months"

    month: Mapped[str] = mapped_column(String(7), primary_key=True)  # 2026-10
    closed_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_by: Mapped[str] = mapped_column(String(254))
    time_zone: Mapped[str] = mapped_column(String(64))  # the calendar it was closed in


class ClosedJournalLine(Base):
    """One line of a closed month's journal, with the account as it was named then."""

    __tablename__ = "closed_journal_lines"
    __table_args__ = (UniqueConstraint("month", "position"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    month: Mapped[str] = mapped_column(ForeignKey("closed_months.month"))
    position: Mapped[int] = mapped_column(Integer)
    journal_date: Mapped[date] = mapped_column(Date)
    currency: Mapped[str] = mapped_column(String(3))
    account: Mapped[str] = mapped_column(String(32))
    account_name: Mapped[str] = mapped_column(String(100))
    account_code: Mapped[str] = mapped_column(String(100))
    tax_rate: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(String(200))
    debit: Mapped[int]
    credit: Mapped[int]


class JournalPosting(Base):
    """A ledger entry, a Stripe balance transaction or a grant of goodwill credit, and the
    closed month that posted it;
    each is posted once, so what arrives after its month closed goes to the next open one."""

    __tablename__ = "journal_postings"
    __table_args__ = (Index("ix_journal_postings_month", "month"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    month: Mapped[str] = mapped_column(ForeignKey("closed_months.month"))
    ledger_entry_id: Mapped[int | None] = mapped_column(
        ForeignKey("ledger_entries.id"), unique=True
    )
    stripe_transaction_id: Mapped[str | None] = mapped_column(
        ForeignKey("stripe_balance_transactions.id"), unique=True
    )
    # ... or a grant of goodwill credit (money no one paid: it moves no ledger entry).
    account_movement_id: Mapped[str | None] = mapped_column(
        ForeignKey("account_movements.id"), unique=True
    )
