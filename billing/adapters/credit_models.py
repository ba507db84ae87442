"""Packages in the catalogue, each one sold to a patient, and what became of its credits:
held by quotes, used by invoices, given back as money."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from billing.adapters.models import Base, Invoice, new_id, utcnow


class Package(Base):
    """A version of a catalogue package: `iv_credits` IV credits for `amount`, usable for
    `valid_days` from the day it is paid. A new version of a code replaces the old one
    for sales; packages sold keep the version they were sold at."""

    __tablename__ = "packages"
    __table_args__ = (UniqueConstraint("code", "version"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("pkg"))
    code: Mapped[str] = mapped_column(String(40))
    version: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    iv_credits: Mapped[int] = mapped_column(Integer)
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    valid_days: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    retired_at: Mapped[datetime | None]  # when a newer version replaced it


class PatientPackage(Base):
    """One package sold to one patient: its invoice, and its credits in half-credits.
    The credits count from when the invoice is paid (`paid_at`) until `expires_at`."""

    __tablename__ = "patient_packages"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("pp"))
    patient_id: Mapped[str] = mapped_column(String(64), index=True)
    # The catalogue package sold; None for the IV credits a membership period includes.
    package_id: Mapped[str | None] = mapped_column(ForeignKey("packages.id"))
    code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(200))
    half_credits: Mapped[int] = mapped_column(Integer)
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    valid_days: Mapped[int] = mapped_column(Integer)
    invoice_id: Mapped[str] = mapped_column(ForeignKey("invoices.id"), unique=True)
    sold_at: Mapped[datetime] = mapped_column(default=utcnow)
    paid_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    invoice: Mapped[Invoice] = relationship(lazy="selectin")


class CreditHold(Base):
    """Half-credits of one package that pay one patient's place in a quote: held while
    the quote can be invoiced (until `expires_at`), used once it is, and given back
    (`returned_at`) when the place is cancelled in time or re-quoted."""

    __tablename__ = "credit_holds"
    __table_args__ = (UniqueConstraint("quote_id", "patient_id", "patient_package_id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    patient_package_id: Mapped[str] = mapped_column(ForeignKey("patient_packages.id"), index=True)
    patient_id: Mapped[str] = mapped_column(String(64), index=True)
    quote_id: Mapped[str] = mapped_column(String(32), index=True)
    half_credits: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[datetime]
    invoice_id: Mapped[str | None] = mapped_column(String(32), index=True)
    used_at: Mapped[datetime | None]
    returned_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CreditRefund(Base):
    """Unused half-credits of a package given back as money: their share of what was paid.
    Counted from when it is asked for; `failed_at` frees the credits again when Stripe
    refused the refund."""

    __tablename__ = "credit_refunds"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("crf"))
    patient_package_id: Mapped[str] = mapped_column(ForeignKey("patient_packages.id"), index=True)
    half_credits: Mapped[int] = mapped_column(Integer)
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str] = mapped_column(String(500))
    refund_id: Mapped[str | None] = mapped_column(ForeignKey("refunds.id"))
    failed_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
