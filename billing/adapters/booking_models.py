"""Bookings after the quote: the booking's current quote and state, one seat per patient
(attendance, cancellation and the fee it cost), and the consent with which a card was saved."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Boolean, Date, ForeignKey, Index, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from billing.adapters.models import Base, Invoice, Quote, utcnow


class Booking(Base):
    """A booking once invoiced: the quote in force (re-quoting supersedes the old one)."""

    __tablename__ = "bookings"

    booking_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    quote_id: Mapped[str] = mapped_column(ForeignKey("quotes.id"))
    session_type: Mapped[str] = mapped_column(String(32))
    currency: Mapped[str] = mapped_column(String(3))
    scheduled_at: Mapped[datetime]
    state: Mapped[str] = mapped_column(String(24))  # active, below_minimum, cancelled
    # The booking system that last acted on it: the scheduler settles in its name.
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    quote: Mapped[Quote] = relationship(lazy="selectin")


class Seat(Base):
    """One patient's place in one quote of a booking, and what became of it."""

    __tablename__ = "booking_seats"
    __table_args__ = (Index("ix_booking_seats_patient_attendance", "patient_id", "attendance"),)

    quote_id: Mapped[str] = mapped_column(ForeignKey("quotes.id"), primary_key=True)
    patient_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    booking_id: Mapped[str] = mapped_column(String(64), index=True)
    invoice_id: Mapped[str] = mapped_column(ForeignKey("invoices.id"))
    attendance: Mapped[str | None] = mapped_column(String(16))  # attended, no_show
    attendance_marked_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    cancelled_by: Mapped[str | None] = mapped_column(String(16))  # patient, clinic
    cancellation_late: Mapped[bool | None] = mapped_column(Boolean)
    fee_invoice_id: Mapped[str | None] = mapped_column(ForeignKey("invoices.id"))
    # Why no fee was charged although the policy asks one: the patient's payer class is
    # exempt (Medicaid: 42 CFR 447.15).
    fee_exempt_reason: Mapped[str | None] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    invoice: Mapped[Invoice] = relationship(foreign_keys=[invoice_id], lazy="selectin")
    fee_invoice: Mapped[Invoice | None] = relationship(
        foreign_keys=[fee_invoice_id], lazy="selectin"
    )

    @property
    def live(self) -> bool:
        return self.cancelled_at is None


class CardConsent(Base):
    """How a saved card came to be saved: the consent text the patient agreed to (or none),
    when, from which address and browser (the customer acceptance of Stripe's mandate data),
    set up by which SetupIntent or on which invoice's pay page, and whether it is an HSA/FSA
    card."""

    __tablename__ = "card_consents"

    payment_method_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    patient_id: Mapped[str] = mapped_column(String(64), index=True)
    consent_text: Mapped[str | None] = mapped_column(Text)
    agreed_at: Mapped[datetime | None]
    ip_address: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(500))
    setup_intent_id: Mapped[str | None] = mapped_column(String(255))
    invoice_id: Mapped[str | None] = mapped_column(String(32))
    hsa_fsa: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # A bank account's: the mandate Stripe keeps of the patient's acceptance, which each
    # debit names.
    mandate_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    removed_at: Mapped[datetime | None]
    # Limits the patient set on their consent, enforced before each charge: the most one
    # charge may be, the most charged in a calendar year (in the card's charges'
    # currency, minor units), and the last day it may be charged.
    max_per_charge: Mapped[int | None] = mapped_column(BigInteger)
    max_per_year: Mapped[int | None] = mapped_column(BigInteger)
    expires_on: Mapped[date | None] = mapped_column(Date)

    @property
    def allows_fees(self) -> bool:
        """Charged for fees off-session only with consent, never an HSA/FSA card."""
        return bool(self.consent_text) and not self.hsa_fsa and self.removed_at is None
