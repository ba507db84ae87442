"""Memberships: versions of each membership in the catalogue, a patient's membership of
one version, and the periods it was charged for (one invoice and one scheduled charge
each)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from billing.adapters.models import Base, new_id, utcnow

LIVE_MEMBERSHIP = text("status != 'cancelled'")


class MembershipPlan(Base):
    """A version of a catalogue membership: a fee each `interval` (month or year) and one
    benefit (`percent_off` sessions, an `iv_price` lower than the price list's P, or
    `included_half_credits` of IV each period). A new version of a code replaces the old
    one for new members; members keep the version they joined at (their consent names
    its fee)."""

    __tablename__ = "membership_plans"
    __table_args__ = (UniqueConstraint("code", "version"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("msp"))
    code: Mapped[str] = mapped_column(String(40))
    version: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    interval: Mapped[str] = mapped_column(String(8))  # month, year
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    benefit: Mapped[str] = mapped_column(String(24))  # percent_off, iv_price, included_iv_credits
    # The benefit's figure: a percent, an IV price in minor units, or half-credits.
    benefit_value: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    retired_at: Mapped[datetime | None]


class Membership(Base):
    """A patient's membership: charged each period to a saved card, with the consent to
    that fee; its benefits apply to sessions on days it is active. Periods follow each
    other from `anchor_on` (the day it started, or resumed after a pause), numbered on
    from `anchor_number`."""

    __tablename__ = "memberships"
    __table_args__ = (  # one membership at a time that is not cancelled, per patient
        Index(
            "uq_memberships_live_patient",
            "patient_id",
            unique=True,
            sqlite_where=LIVE_MEMBERSHIP,
            postgresql_where=LIVE_MEMBERSHIP,
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("mem"))
    patient_id: Mapped[str] = mapped_column(String(64), index=True)
    membership_plan_id: Mapped[str] = mapped_column(ForeignKey("membership_plans.id"))
    status: Mapped[str] = mapped_column(String(16))  # active, past_due, paused, cancelled
    starts_on: Mapped[date]
    anchor_on: Mapped[date]
    anchor_number: Mapped[int] = mapped_column(Integer, default=1)
    prorated: Mapped[bool]  # MEMBERSHIP_PRORATION when it was made: its periods keep it
    payment_method_id: Mapped[str] = mapped_column(String(255))
    card_brand: Mapped[str | None] = mapped_column(String(64))
    card_last4: Mapped[str | None] = mapped_column(String(4))
    consent_text: Mapped[str] = mapped_column(Text)
    consent_accepted: Mapped[str] = mapped_column(String(16))
    agreed_at: Mapped[datetime]
    ip_address: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(500))
    patient_name: Mapped[str] = mapped_column(String(200))
    patient_email: Mapped[str | None] = mapped_column(String(254))
    # The last day it holds, once cancelled (or to be cancelled at its period's end).
    ends_on: Mapped[date | None]
    cancelled_at: Mapped[datetime | None]
    cancel_reason: Mapped[str | None] = mapped_column(String(500))
    cancel_refund: Mapped[str | None] = mapped_column(String(8))  # prorated, none
    paused_from: Mapped[date | None]
    resumes_on: Mapped[date | None]
    api_key_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("api_keys.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    plan: Mapped[MembershipPlan] = relationship(lazy="selectin")
    periods: Mapped[list[MembershipPeriod]] = relationship(
        order_by="MembershipPeriod.number", lazy="selectin", viewonly=True
    )


class MembershipPeriod(Base):
    """One period of a membership, [starts_on, ends_on) in the clinic's days: its fee's
    invoice, the scheduled charge that collects it (its idempotency keys derive from it:
    one per membership and period), and the month-end revenue it has earned."""

    __tablename__ = "membership_periods"
    __table_args__ = (UniqueConstraint("membership_id", "number"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("mper"))
    membership_id: Mapped[str] = mapped_column(ForeignKey("memberships.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    starts_on: Mapped[date]
    ends_on: Mapped[date]
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    half_credits: Mapped[int] = mapped_column(Integer, default=0)
    invoice_id: Mapped[str] = mapped_column(ForeignKey("invoices.id"), unique=True)
    scheduled_charge_id: Mapped[str | None] = mapped_column(
        ForeignKey("scheduled_charges.id"), unique=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class MembershipRevenue(Base):
    """What a closed month's journal recognised of a period's fee (deferred until earned):
    later months earn the rest, whatever refunds changed meanwhile."""

    __tablename__ = "membership_revenue"

    period_id: Mapped[str] = mapped_column(ForeignKey("membership_periods.id"), primary_key=True)
    month: Mapped[str] = mapped_column(String(7), primary_key=True)
    amount: Mapped[int] = mapped_column(BigInteger)
