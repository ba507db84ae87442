"""Promotion codes: made by finance, redeemed by quotes within their limits."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import exists, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from billing.adapters.db import lock_for_write
from billing.adapters.models import Invoice, Quote, utcnow
from billing.adapters.promotion_models import Promotion, Redemption
from billing.domain import statuses
from billing.domain.discounts import PromotionTerms
from billing.domain.errors import Conflict, field_error
from billing.domain.money import Money
from billing.services.access import audit


def create_promotion(session: Session, body: dict[str, Any]) -> Promotion:
    promotion = Promotion(
        code=body["code"].upper(),
        percent_off=body.get("percent_off"),
        amount_off=body.get("amount_off"),
        currency=body.get("currency"),
        starts_at=body["starts_at"],
        ends_at=body["ends_at"],
        max_redemptions=body.get("max_redemptions"),
        max_per_patient=body.get("max_per_patient"),
        created_at=utcnow(),
    )
    session.add(promotion)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise Conflict(
            "promotion_exists", f"There is a promotion {promotion.code!r} already."
        ) from None
    audit.record(
        session,
        "promotion.created",
        "promotion",
        promotion.id,
        code=promotion.code,
        percent_off=promotion.percent_off,
        amount_off=promotion.amount_off,
        currency=promotion.currency,
        starts_at=promotion.starts_at.isoformat(),
        ends_at=promotion.ends_at.isoformat(),
        max_redemptions=promotion.max_redemptions,
        max_per_patient=promotion.max_per_patient,
    )
    session.commit()
    return promotion


def list_promotions(session: Session) -> list[Promotion]:
    return list(session.scalars(select(Promotion).order_by(Promotion.created_at, Promotion.id)))


def redemptions_of(
    session: Session, promotion: Promotion, now: datetime, but_booking: str | None = None
) -> int:
    """Bookings that hold the code (a re-quote of a booking holds it once)."""
    return _held(session, promotion, now, but_booking)


def _held(
    session: Session,
    promotion: Promotion,
    now: datetime,
    but_booking: str | None,
    patient_id: str | None = None,
) -> int:
    statement = (
        select(func.count(func.distinct(Redemption.booking_id)))
        .join(Quote, Quote.id == Redemption.quote_id)
        .where(Redemption.promotion_id == promotion.id, _live(now))
    )
    if but_booking is not None:
        statement = statement.where(Redemption.booking_id != but_booking)
    if patient_id is not None:
        statement = statement.where(Redemption.patient_id == patient_id)
    return int(session.scalar(statement) or 0)


def _live(now: datetime) -> Any:
    """A quote holds its redemption while it can still be invoiced (not expired, never
    invoiced), or once invoiced while one of its invoices stands (not voided)."""
    invoiced = exists().where(Invoice.quote_id == Quote.id)
    standing = exists().where(Invoice.quote_id == Quote.id, Invoice.status != statuses.VOID)
    return or_((Quote.expires_at > now) & ~invoiced, standing)


def redeem(
    session: Session,
    code: str,
    quote_id: str,
    booking_id: str,
    patient_ids: Sequence[str],
    currency: str,
    now: datetime,
) -> PromotionTerms:
    """In the quote's transaction: take one redemption of `code` for the quote (one per
    patient of it). A code with limits is counted under the promotion's row lock, so two
    quotes racing for the last one cannot both have it; a booking re-quoted with the same
    code keeps the one it holds."""
    promotion = session.scalars(select(Promotion).where(Promotion.code == code.upper())).first()
    if promotion is not None and (promotion.max_redemptions or promotion.max_per_patient):
        lock_for_write(session)  # SQLite ignores the row lock below: its write lock instead
        promotion = session.scalars(
            select(Promotion).where(Promotion.id == promotion.id).with_for_update()
        ).one()
    if promotion is None or not promotion.starts_at <= now < promotion.ends_at:
        raise field_error(
            "promotion_invalid", "promotion_code", f"{code!r} is not a promotion code valid now."
        )
    if promotion.amount_off is not None and promotion.currency != currency:
        raise field_error(
            "promotion_not_applicable",
            "promotion_code",
            f"{promotion.code} takes an amount off in {promotion.currency}, not {currency}.",
        )
    if promotion.max_redemptions is not None and (
        _held(session, promotion, now, booking_id) >= promotion.max_redemptions
    ):
        raise Conflict("promotion_exhausted", f"{promotion.code} has been used up.")
    if promotion.max_per_patient is not None:
        for patient_id in patient_ids:
            if _held(session, promotion, now, booking_id, patient_id) >= promotion.max_per_patient:
                raise Conflict(
                    "promotion_exhausted",
                    f"Patient {patient_id} has used {promotion.code} as often as it allows.",
                )
    session.add_all(
        Redemption(
            promotion_id=promotion.id,
            quote_id=quote_id,
            booking_id=booking_id,
            patient_id=p,
            created_at=now,
        )
        for p in patient_ids
    )
    amount = Money(promotion.amount_off, currency) if promotion.amount_off is not None else None
    return PromotionTerms(promotion.code, promotion.percent_off, amount)


def lock_for_invoicing(session: Session, code: str | None) -> None:
    """Invoicing a quote that holds a code takes the code's lock: a quote expiring while
    it is being invoiced is counted by whoever comes next."""
    if code:
        session.execute(select(Promotion.id).where(Promotion.code == code).with_for_update())
