"""Quotes: price a booking under the rules and lock it to a price version until it expires."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from billing import pricing
from billing.errors import NotFound
from billing.models import Quote, QuoteLine, new_id, utcnow
from billing.money import Money
from billing.services import catalog, idempotency, invoices
from billing.services.idempotency import IdempotencyRequest


def get_quote(session: Session, quote_id: str) -> Quote:
    quote = session.get(Quote, quote_id)
    if quote is None:
        raise NotFound("quote_not_found", f"No quote {quote_id!r}.")
    return quote


def create_quote(
    session: Session,
    booking: dict[str, Any],
    ttl: timedelta,
    prices: catalog.PriceBook,
    idempotency_request: IdempotencyRequest | None = None,
    now: datetime | None = None,
) -> Quote:
    """Price a booking; a replayed Idempotency-Key returns the quote it made first."""
    now = now or utcnow()
    claim = idempotency.Claim()
    if idempotency_request is not None:
        claim = idempotency.claim(session, idempotency_request, "quote")
        if claim.replay_of is not None:
            return get_quote(session, claim.replay_of)

    price = prices.current(session, booking["currency"], now)
    patients = booking["patients"]
    completed = _completed_iv_sessions(session, booking["session_type"], patients)
    histories = [
        pricing.PatientHistory(
            patient_id=patient["patient_id"],
            prior_iv_sessions=patient.get("prior_iv_sessions", 0),
            completed_iv_sessions=completed.get(patient["patient_id"], 0),
            has_iv_exemption="iv_exemption" in patient,
        )
        for patient in patients
    ]
    amounts = pricing.price_booking(booking["session_type"], histories, price.iv_individual)

    quote_id = new_id("qt")
    quote = Quote(
        id=quote_id,
        booking_id=booking["booking_id"],
        session_type=booking["session_type"],
        currency=price.currency,
        price_version=price.version,
        total=Money.sum(amounts, price.currency).amount,
        scheduled_at=booking["scheduled_at"].astimezone(UTC),
        created_at=now,
        expires_at=pricing.quote_expiry(now, ttl),
        lines=[
            _line(quote_id, position, patient, amount, booking["session_type"])
            for position, (patient, amount) in enumerate(zip(patients, amounts, strict=True))
        ],
    )
    _insert(session, quote)
    if claim.row_id is not None:
        idempotency.complete(session, claim, quote.id)
    session.commit()
    return quote


def _completed_iv_sessions(
    session: Session, session_type: str, patients: list[dict[str, Any]]
) -> dict[str, int]:
    """Our own paid IV invoices, asked only for group patients the booking vouches nothing for."""
    unvouched = [
        patient["patient_id"]
        for patient in patients
        if not patient.get("prior_iv_sessions") and "iv_exemption" not in patient
    ]
    if session_type != pricing.IM_GROUP or not unvouched:
        return {}
    return invoices.completed_iv_sessions(session, unvouched)


def _insert(session: Session, quote: Quote) -> None:
    """Core INSERTs, not the unit of work: this is the booking systems' hot path."""
    connection = session.connection()
    connection.execute(insert(Quote), _columns(quote, Quote))
    connection.execute(insert(QuoteLine), [_columns(line, QuoteLine) for line in quote.lines])


def _columns(instance: Any, model: Any) -> dict[str, Any]:
    """An instance's column values, for a Core INSERT (the database numbers the id)."""
    values = {column.key: getattr(instance, column.key) for column in model.__table__.columns}
    if values.get("id") is None:
        values.pop("id", None)
    return values


def _line(
    quote_id: str, position: int, patient: dict[str, Any], amount: Money, session_type: str
) -> QuoteLine:
    exemption = patient.get("iv_exemption") or {}
    return QuoteLine(
        quote_id=quote_id,
        position=position,
        patient_id=patient["patient_id"],
        patient_name=patient["name"],
        patient_email=patient.get("email"),
        prior_iv_sessions=patient.get("prior_iv_sessions", 0),
        iv_exemption_reason=exemption.get("reason"),
        iv_exemption_approved_by=exemption.get("approved_by"),
        description=pricing.DESCRIPTIONS[session_type],
        amount=amount.amount,
    )
