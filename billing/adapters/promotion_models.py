"""Promotion codes in the catalogue, and each quote line that redeemed one."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from billing.adapters.models import Base, new_id, utcnow


class Promotion(Base):
    """A code worth a percentage or an amount off, valid from `starts_at` to `ends_at`,
    at most `max_redemptions` quotes in all and `max_per_patient` per patient."""

    __tablename__ = "promotions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("promo"))
    code: Mapped[str] = mapped_column(String(40), unique=True)
    percent_off: Mapped[int | None] = mapped_column(Integer)
    amount_off: Mapped[int | None]
    currency: Mapped[str | None] = mapped_column(String(3))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    max_redemptions: Mapped[int | None] = mapped_column(Integer)
    max_per_patient: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Redemption(Base):
    __tablename__ = "promotion_redemptions"
    __table_args__ = (UniqueConstraint("promotion_id", "quote_id", "patient_id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    promotion_id: Mapped[str] = mapped_column(ForeignKey("promotions.id"))
    quote_id: Mapped[str] = mapped_column(String(32), index=True)
    booking_id: Mapped[str] = mapped_column(String(64))
    patient_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
