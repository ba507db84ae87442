"""What the clinic's documents for insurers need about a patient beyond a bill: date of
birth, address and how they pay (payer class). Kept in our database only: never sent to
Stripe, in an email, an event or a webhook."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, String
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
    # What a claim form asks besides: sex (CMS-1500 box 3) and the patient's insurance
    # (the insured's id, group and the payer's name: boxes 1a, 11, 11c), the patient
    # being the insured.
    sex: Mapped[str | None] = mapped_column(String(1))
    insurance_payer: Mapped[str | None] = mapped_column(String(100))
    insurance_member_id: Mapped[str | None] = mapped_column(String(40))
    insurance_group: Mapped[str | None] = mapped_column(String(40))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Provider(Base):
    """A clinician who renders sessions (named on superbills and claims by NPI)."""

    __tablename__ = "providers"

    npi: Mapped[str] = mapped_column(String(10), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    credentials: Mapped[str | None] = mapped_column(String(50))  # MD, DO, NP, LCSW ...
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class VisitRecord(Base):
    """What clinical staff recorded of one patient's visit at attendance: its diagnoses
    (ICD-10-CM, in order: the first is the primary) and the clinician who rendered it.
    Keyed by the visit's session invoice; read only for the documents insurers need."""

    __tablename__ = "visit_records"

    invoice_id: Mapped[str] = mapped_column(ForeignKey("invoices.id"), primary_key=True)
    patient_id: Mapped[str] = mapped_column(String(64), index=True)
    diagnosis_codes: Mapped[str] = mapped_column(String(120), default="")  # comma-separated
    rendering_npi: Mapped[str | None] = mapped_column(ForeignKey("providers.npi"))
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)

    @property
    def diagnoses(self) -> list[str]:
        return [code for code in self.diagnosis_codes.split(",") if code]
