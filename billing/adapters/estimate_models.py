"""Good Faith Estimates as given to patients (kept: the rule asks for a copy), and
disputes of a bill a patient has opened."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from billing.adapters.models import Base, new_id, utcnow


class Estimate(Base):
    """One patient's estimate from one quote: a session, or a course of them."""

    __tablename__ = "estimates"
    __table_args__ = (
        Index("ix_estimates_patient_id", "patient_id"),
        UniqueConstraint(
            "quote_id", "patient_id", "sessions", "course_months", "requested", "package_code"
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("est"))
    quote_id: Mapped[str] = mapped_column(ForeignKey("quotes.id"), index=True)
    booking_id: Mapped[str] = mapped_column(String(64), index=True)
    patient_id: Mapped[str] = mapped_column(String(64))
    patient_name: Mapped[str] = mapped_column(String(200))
    session_type: Mapped[str] = mapped_column(String(32))
    currency: Mapped[str] = mapped_column(String(3))
    sessions: Mapped[int] = mapped_column(Integer)  # 1, or the course's sessions
    course_months: Mapped[int] = mapped_column(Integer)  # 0 for one session
    # A course from a package: its code ("" when the course is a count of sessions).
    package_code: Mapped[str] = mapped_column(String(40), default="", server_default="")
    unit_amount: Mapped[int]
    total: Mapped[int]
    items: Mapped[str] = mapped_column(Text)  # JSON: each item, its codes and charge
    scheduled_at: Mapped[datetime]
    booked_at: Mapped[datetime]  # when the quote was made
    requested: Mapped[bool] = mapped_column(Boolean, default=False)
    issued_at: Mapped[datetime] = mapped_column(default=utcnow)
    due_by: Mapped[datetime | None]
    on_time: Mapped[bool] = mapped_column(Boolean, default=True)
    # As they were when it was given: the patient's date of birth, the diagnoses known
    # (the patient's latest recorded visit), and the clinic's NPI as convening provider.
    date_of_birth: Mapped[date | None] = mapped_column(Date)
    diagnosis_codes: Mapped[str] = mapped_column(String(120), default="", server_default="")
    provider_npi: Mapped[str] = mapped_column(String(10), default="", server_default="")
    # An updated estimate (the booking was re-quoted with other items or charges): the
    # one it replaces, which stays kept as it was given.
    replaces_id: Mapped[str | None] = mapped_column(String(32))


class BillDispute(Base):
    """A patient disputing a bill (the No Surprises Act's patient-provider dispute):
    while it is open, the patient gets no payment reminders."""

    __tablename__ = "bill_disputes"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("bd"))
    invoice_id: Mapped[str] = mapped_column(ForeignKey("invoices.id"), index=True)
    patient_id: Mapped[str] = mapped_column(String(64), index=True)
    note: Mapped[str | None] = mapped_column(String(500))
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None]
