"""What the clinic's documents for insurers need about a patient beyond a bill: date of
birth, address and how they pay (payer class). Kept in our database only: never sent to
Stripe, in an email, an event or a webhook."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, String
from sqlalchemy.orm import Mapped, mapped_column

from billing.adapters.models import Base, utcnow


class PatientProfile(Base):
    """One patient's billing profile (clinical staff keep it; changes are audited)."""

    __tablename__ = "patient_profiles"

    patient_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    date_of_birth: Mapped[date | None] = mapped_column(Date)
    address_line1: Mapped[str | None] = mapped_column(String(200))
    address_line2: Mapped[str | None] = mapped_column(String(200))
    city: Mapped[str | None] = mapped_column(String(100))
    state: Mapped[str | None] = mapped_column(String(50))
    postal_code: Mapped[str | None] = mapped_column(String(20))
    country: Mapped[str | None] = mapped_column(String(2))
    payer_class: Mapped[str] = mapped_column(String(16), default="self_pay")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
