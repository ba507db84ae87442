"""Money on a schedule: payment plans and the charges the scheduler makes (each
instalment, later each membership period and AutoPay run), with their retries."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from billing.adapters.models import Base, new_id, utcnow

LIVE_PLAN = text("status != 'cancelled'")
AUTOPAY = text("kind = 'autopay' AND status != 'cancelled'")


class PaymentPlan(Base):
    """An invoice's balance split into instalments charged to a saved card on their days,
    with the patient's consent to exactly that (the words, when and how it was given).
    An invoice has at most one plan that is not cancelled."""

    __tablename__ = "payment_plans"
    __table_args__ = (
        Index(
            "uq_payment_plans_live_invoice",
            "invoice_id",
            unique=True,
            sqlite_where=LIVE_PLAN,
            postgresql_where=LIVE_PLAN,
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("plan"))
    invoice_id: Mapped[str] = mapped_column(ForeignKey("invoices.id"), index=True)
    patient_id: Mapped[str] = mapped_column(String(64), index=True)
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[int] = mapped_column(BigInteger)  # the balance it was made for
    interval: Mapped[str] = mapped_column(String(16))  # month, week, two_weeks, or custom
    status: Mapped[str] = mapped_column(String(16))  # active, past_due, completed, cancelled
    payment_method_id: Mapped[str] = mapped_column(String(255))
    card_brand: Mapped[str | None] = mapped_column(String(64))
    card_last4: Mapped[str | None] = mapped_column(String(4))
    consent_text: Mapped[str] = mapped_column(Text)
    consent_accepted: Mapped[str] = mapped_column(String(16))  # online, offline
    agreed_at: Mapped[datetime]
    ip_address: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(500))
    # The client whose key made it: the scheduler's charges are that client's requests.
    api_key_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("api_keys.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    cancelled_at: Mapped[datetime | None]
    cancel_reason: Mapped[str | None] = mapped_column(String(500))
    items: Mapped[list[ScheduledCharge]] = relationship(
        order_by="ScheduledCharge.number", lazy="selectin", viewonly=True
    )

    @property
    def amount_paid(self) -> int:
        """What its instalments collected."""
        return sum(item.amount_paid for item in self.items)


class ScheduledCharge(Base):
    """One charge the scheduler owes: an instalment of a plan (`plan_id`, `number`). It is
    charged off-session from `next_attempt_at`, by one runner at a time (the status moves
    to `charging` in one conditional UPDATE, with a lease a dead runner's successor waits
    out); each attempt's Stripe idempotency key is `schedule:<id>:<attempt>`, and a runner
    that takes over a dead one's attempt repeats that attempt's key, never a new one.
    A decline worth retrying moves it to `retrying` with its next attempt; the last one,
    or one never worth retrying, to `failed`."""

    __tablename__ = "scheduled_charges"
    __table_args__ = (
        UniqueConstraint("plan_id", "number"),
        Index("ix_scheduled_charges_status_next_attempt_at", "status", "next_attempt_at"),
        # AutoPay charges a balance once: one live item per invoice, whatever queued it.
        Index(
            "uq_scheduled_charges_autopay_invoice",
            "invoice_id",
            unique=True,
            sqlite_where=AUTOPAY,
            postgresql_where=AUTOPAY,
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("sch"))
    kind: Mapped[str] = mapped_column(String(16))  # instalment, autopay
    # What queued it: a plan, attendance marked, the nightly AutoPay run.
    reason: Mapped[str | None] = mapped_column(String(32))
    invoice_id: Mapped[str] = mapped_column(ForeignKey("invoices.id"), index=True)
    patient_id: Mapped[str] = mapped_column(String(64))
    plan_id: Mapped[str | None] = mapped_column(ForeignKey("payment_plans.id"))
    number: Mapped[int | None]
    due_on: Mapped[date]  # the clinic's day it falls due
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    # scheduled, charging, retrying, paid, covered (paid otherwise), action_needed,
    # failed (given up), cancelled
    status: Mapped[str] = mapped_column(String(16))
    payment_method_id: Mapped[str | None] = mapped_column(String(255))
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    declines: Mapped[int] = mapped_column(default=0, server_default="0")
    first_declined_on: Mapped[date | None]
    next_attempt_at: Mapped[datetime | None]
    lease_until: Mapped[datetime | None]
    last_payment_id: Mapped[str | None] = mapped_column(String(32))
    failure_code: Mapped[str | None] = mapped_column(String(64))
    amount_paid: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    paid_at: Mapped[datetime | None]
    api_key_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("api_keys.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class AutopaySetting(Base):
    """A patient's AutoPay: on or off (overriding the clinic's AUTOPAY), the card it
    charges (by default the patient's default card), and the consent to it."""

    __tablename__ = "autopay_settings"

    patient_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    enabled: Mapped[bool]
    payment_method_id: Mapped[str | None] = mapped_column(String(255))
    card_brand: Mapped[str | None] = mapped_column(String(64))
    card_last4: Mapped[str | None] = mapped_column(String(4))
    consent_text: Mapped[str | None] = mapped_column(Text)
    consent_accepted: Mapped[str | None] = mapped_column(String(16))
    agreed_at: Mapped[datetime | None]
    ip_address: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(500))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
