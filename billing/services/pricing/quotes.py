"""Quotes: price a booking under the rules and lock it to a price version until it expires."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select, text
from sqlalchemy.orm import Session

from billing.adapters import db, jsontext
from billing.adapters.booking_models import Booking, Seat
from billing.adapters.models import AuditEvent, Quote, QuoteLine, new_id, utcnow
from billing.adapters.outbox import Event
from billing.domain import credits as credit_rules
from billing.domain import discounts, policy, pricing
from billing.domain import memberships as membership_rules
from billing.domain.errors import NotFound, field_error
from billing.domain.money import STRIPE_MINIMUM_CHARGE, Money
from billing.services import idempotency
from billing.services.access import audit
from billing.services.bookings import seats
from billing.services.idempotency import IdempotencyRequest
from billing.services.integrations import events
from billing.services.packages import credits
from billing.services.pricing import catalog, memberships, promotions
from schemas.quotes import dump_new_quote


def get_quote(session: Session, quote_id: str) -> Quote:
    quote = session.get(Quote, quote_id)
    if quote is None:
        raise NotFound("quote_not_found", f"No quote {quote_id!r}.")
    return quote


@dataclass(frozen=True, slots=True)
class CreatedQuote:
    """A quote just made: as the API shows it (`made`), and that as JSON text (`body`);
    its event carries less of it (schemas.events.WITHHELD)."""

    made: dict[str, Any]
    body: str


def create_quote(
    session: Session,
    booking: dict[str, Any],
    ttl: timedelta,
    prices: catalog.PriceBook,
    idempotency_request: IdempotencyRequest | None = None,
    now: datetime | None = None,
    max_discount_percent: int = 50,
) -> Quote | CreatedQuote:
    """Price a booking; a replayed Idempotency-Key returns the quote it made first."""
    now = now or utcnow()
    alone = _alone(session, booking, idempotency_request)
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
    paying = [patient.get("pay_with") == pricing.CREDITS for patient in patients]
    members = _member_prices(session, booking, prices, price.iv_individual, paying)
    amounts = [amount - saving for amount, (_, saving) in zip(amounts, members, strict=True)]
    priced = _discounted(session, booking, quote_id, amounts, paying, max_discount_percent, now)
    expires_at = pricing.quote_expiry(now, ttl)
    units = credit_rules.half_credits_for(booking["session_type"])
    if any(paying):
        credits.lock_all(
            session, [p["patient_id"] for p, pays in zip(patients, paying, strict=True) if pays]
        )
    for index, patient in enumerate(patients):
        if paying[index]:
            credits.hold(
                session,
                quote_id,
                patient["patient_id"],
                price.currency,
                units,
                expires_at,
                now,
                f"patients.{index}.pay_with",
                booking_id=booking["booking_id"],
            )
    quote = {
        "id": quote_id,
        "booking_id": booking["booking_id"],
        "session_type": booking["session_type"],
        "currency": price.currency,
        "price_version": price.version,
        "total": Money.sum([line.net for line in priced], price.currency).amount,
        "scheduled_at": booking["scheduled_at"].astimezone(UTC),
        "created_at": now,
        "expires_at": expires_at,
        "promotion_code": booking.get("promotion_code", "").upper() or None,
    }
    deposits = _deposits(session, price.policy.deposit, patients, priced, paying, now)
    lines = [
        _line(
            quote_id,
            position,
            patient,
            line,
            booking["session_type"],
            units * paid,
            deposit,
            member,
        )
        for position, (patient, line, paid, deposit, member) in enumerate(
            zip(patients, priced, paying, deposits, members, strict=True)
        )
    ]
    # Plain data, dumped like a Quote: no ORM objects on the hot path.
    made = {
        **quote,
        "lines": [
            {
                **line,
                "iv_exemption": _exemption(line),
                "promotion_code": quote["promotion_code"],
                "credits_used": line["credit_units"] / 2,
            }
            for line in lines
        ],
        "cancellation_policy": price.policy,
    }
    # Written as Flask writes a response (sorted keys, compact), so that a replay of the
    # same Idempotency-Key, which Flask writes, answers the very same bytes.
    shown = dump_new_quote(made)
    body = jsontext.flask_compact(shown)
    event = events.row("quote.created", "quote", shown)
    audits = [row for row in (_exemptions(quote, lines), _discounts(quote, lines)) if row]
    if alone:
        # One INSERT statement of the quote, its lines, its event and its audit rows:
        # atomic on its own, it needs no transaction around it (no BEGIN, no COMMIT: one
        # round trip in all). The session wrote nothing: it has nothing to commit.
        events.published(session)
        db.execute_alone(
            session, _IN_ONE_FOR_DRIVER, _in_one_parameters(quote, lines, event, audits)
        )
        return CreatedQuote(made, body + "\n")
    if session.get_bind().dialect.name == "postgresql":
        session.connection().execute(
            _INSERT_IN_ONE, _in_one_parameters(quote, lines, event, audits)
        )
    else:
        connection = session.connection()
        connection.execute(insert(Quote), quote)
        connection.execute(insert(QuoteLine), lines)
        connection.execute(insert(Event).values(**event))
        if audits:
            connection.execute(insert(AuditEvent), audits)
    events.published(session)
    if claim.row_id is not None:
        idempotency.complete(session, claim, quote_id)
    session.commit()
    return CreatedQuote(made, body + "\n")


def _member_prices(
    session: Session,
    booking: dict[str, Any],
    prices: catalog.PriceBook,
    iv_individual: Money,
    paying: list[bool],
) -> list[tuple[str | None, Money]]:
    """Each line's membership and what its member price takes off the price list's: a
    member's P (a percent off, or the membership's lower IV price) for a session on a day
    the membership holds; a group seat costs exactly half of the member's P. A line paid
    with credits, or a patient without a membership, takes nothing off."""
    nothing = Money.zero(iv_individual.currency)
    none: list[tuple[str | None, Money]] = [(None, nothing)] * len(paying)
    if all(paying) or not prices.has_members(session):
        return none
    patients = booking["patients"]
    found = memberships.benefits(
        session,
        [patient["patient_id"] for patient in patients],
        booking["scheduled_at"],
        iv_individual.currency,
    )
    if not found:
        return none
    session_type = booking["session_type"]
    listed = pricing.session_price(session_type, iv_individual)
    made: list[tuple[str | None, Money]] = []
    for patient, by_credits in zip(patients, paying, strict=True):
        benefit = found.get(patient["patient_id"])
        if benefit is None or by_credits:
            made.append((None, nothing))
            continue
        member_p = membership_rules.member_price(iv_individual, benefit.kind, benefit.value)
        saving = listed - pricing.session_price(session_type, member_p)
        made.append((benefit.membership_id, saving) if nothing < saving else (None, nothing))
    return made


def _alone(session: Session, booking: dict[str, Any], request: IdempotencyRequest | None) -> bool:
    """PostgreSQL, and nothing to take under a lock first (an Idempotency-Key, a promotion
    code's limits, credits): the booking systems' everyday quote."""
    return (
        session.get_bind().dialect.name == "postgresql"
        and request is None
        and not booking.get("promotion_code")
        and not any(patient.get("pay_with") == pricing.CREDITS for patient in booking["patients"])
    )


def _discounted(
    session: Session,
    booking: dict[str, Any],
    quote_id: str,
    amounts: list[Money],
    paying: list[bool],
    max_percent: int,
    now: datetime,
) -> list[discounts.DiscountedLine]:
    """Each line at its session price, less its sliding scale and its share of the
    promotion; refused when a discount is above the maximum or leaves less than Stripe
    can charge. A line paid with credits costs nothing and takes no share of a promotion."""
    patients = booking["patients"]
    percents = []
    for index, patient in enumerate(patients):
        percent = (patient.get("discount") or {}).get("percent")
        if percent is not None and percent > max_percent:
            raise field_error(
                "discount_above_maximum",
                f"patients.{index}.discount.percent",
                f"A sliding-scale discount is at most {max_percent}%.",
            )
        percents.append(percent)
    terms = None
    if booking.get("promotion_code"):
        terms = promotions.redeem(
            session,
            booking["promotion_code"],
            quote_id,
            booking["booking_id"],
            [patient["patient_id"] for patient in patients],
            amounts[0].currency,
            now,
        )
    cash = [index for index, by_credits in enumerate(paying) if not by_credits]
    by_cash = iter(
        discounts.apply([amounts[i] for i in cash], [percents[i] for i in cash], terms)
        if cash
        else []
    )
    zero = Money.zero(amounts[0].currency)
    priced = [
        discounts.DiscountedLine(amount, zero, zero, zero) if by_credits else next(by_cash)
        for amount, by_credits in zip(amounts, paying, strict=True)
    ]
    minimum = STRIPE_MINIMUM_CHARGE.get(amounts[0].currency, 1)
    for index, line in enumerate(priced):
        if line.discounted and not paying[index] and line.net.amount < minimum:
            field = "promotion_code" if line.promotion.amount else f"patients.{index}.discount"
            raise field_error(
                "discount_too_large",
                field,
                f"Patient {patients[index]['patient_id']}'s line would be "
                f"{line.net.format()}, less than can be charged by card.",
            )
    return priced


def _discounts(quote: dict[str, Any], lines: list[dict[str, Any]]) -> dict[str, Any] | None:
    """A sliding-scale discount is in the audit trail with who approved it and why."""
    discounted = [
        {
            "patient_id": line["patient_id"],
            "percent": line["sliding_percent"],
            "amount": line["sliding_amount"],
            "reason": line["sliding_reason"],
            "approved_by": line["sliding_approved_by"],
        }
        for line in lines
        if line["sliding_percent"]
    ]
    if not (discounted or quote["promotion_code"]):
        return None
    return audit.row(
        "quote.discounted",
        "quote",
        quote["id"],
        booking_id=quote["booking_id"],
        sliding_scale=discounted,
        promotion_code=quote["promotion_code"],
    )


def _exemptions(quote: dict[str, Any], lines: list[dict[str, Any]]) -> dict[str, Any] | None:
    """A quote that waives the first-session rule is in the audit trail, with who approved."""
    exempted = [
        {"patient_id": line["patient_id"], **(_exemption(line) or {})}
        for line in lines
        if line["iv_exemption_reason"] is not None
    ]
    if not exempted:
        return None
    return audit.row(
        "quote.created_with_exemption",
        "quote",
        quote["id"],
        booking_id=quote["booking_id"],
        session_type=quote["session_type"],
        exemptions=exempted,
    )


def _completed_iv_sessions(
    session: Session, session_type: str, patients: list[dict[str, Any]]
) -> dict[str, int]:
    """IV sessions attended, asked only for group patients the booking vouches nothing for."""
    unvouched = [
        patient["patient_id"]
        for patient in patients
        if not patient.get("prior_iv_sessions") and "iv_exemption" not in patient
    ]
    if session_type != pricing.IM_GROUP or not unvouched:
        return {}
    return seats.completed_iv_sessions(session, unvouched)


# On PostgreSQL the quote, its lines, its event and its audit rows are one statement: one
# round trip. The everyday quote sends it alone, outside a transaction (autocommit); one
# with an Idempotency-Key, a promotion or credits sends it in the transaction that took
# their locks. psycopg prepares it on each connection after its fifth use (planning it
# every time cost PostgreSQL as much again). A quote is an offer, not money: its commit
# need not wait for the WAL to reach disk (a database crash could lose the last fraction
# of a second of quotes, which a retry makes again; invoices, payments and the ledger
# always commit synchronously).
_INSERT_IN_ONE = text(
    """
    WITH relaxed AS (
        SELECT set_config('synchronous_commit', 'off', true)
    ),
    new_quote AS (
        INSERT INTO quotes (id, booking_id, session_type, currency, price_version, total,
                            scheduled_at, created_at, expires_at, promotion_code)
        VALUES (:id, :booking_id, :session_type, :currency, :price_version,
                :total, :scheduled_at, :created_at, :expires_at,
                :promotion_code)
    ),
    new_lines AS (
        INSERT INTO quote_lines (quote_id, position, patient_id, patient_name, patient_email,
                                 prior_iv_sessions, iv_exemption_reason,
                                 iv_exemption_approved_by, description, amount, base_amount,
                                 sliding_percent, sliding_reason, sliding_approved_by,
                                 sliding_amount, promotion_amount, credit_units, deposit,
                                 membership_id, member_saving)
        SELECT :id, line.position, line.patient_id, line.patient_name, line.patient_email,
               line.prior_iv_sessions, line.iv_exemption_reason, line.iv_exemption_approved_by,
               line.description, line.amount, line.base_amount, line.sliding_percent,
               line.sliding_reason, line.sliding_approved_by, line.sliding_amount,
               line.promotion_amount, line.credit_units, line.deposit, line.membership_id,
               line.member_saving
        FROM json_to_recordset(CAST(:lines AS json)) AS line(
            position int, patient_id text, patient_name text, patient_email text,
            prior_iv_sessions int, iv_exemption_reason text, iv_exemption_approved_by text,
            description text, amount bigint, base_amount bigint, sliding_percent int,
            sliding_reason text, sliding_approved_by text, sliding_amount bigint,
            promotion_amount bigint, credit_units int, deposit bigint, membership_id text,
            member_saving bigint), relaxed
    ),
    new_event AS (
        INSERT INTO events (public_id, type, created_at, data)
        VALUES (:event_id, :event_type, :event_created_at, :event_data)
    )
    INSERT INTO audit_events (occurred_at, actor_type, actor, action, object_type, object_id,
                              request_id, details)
    SELECT row.occurred_at, row.actor_type, row.actor, row.action, row.object_type,
           row.object_id, row.request_id, row.details
    FROM json_to_recordset(CAST(:audits AS json)) AS row(
        occurred_at timestamptz, actor_type text, actor text, action text, object_type text,
        object_id text, request_id text, details text)
    """
)


# The same statement with the driver's placeholders, for db.execute_alone.
_IN_ONE_FOR_DRIVER = re.sub(r"(?<![:\w]):(\w+)", r"%(\1)s", _INSERT_IN_ONE.text)


def _in_one_parameters(
    quote: dict[str, Any],
    lines: list[dict[str, Any]],
    event: dict[str, Any],
    audits: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        **quote,
        "lines": jsontext.for_database(lines),
        "event_id": event["public_id"],
        "event_type": event["type"],
        "event_created_at": event["created_at"],
        "event_data": event["data"],
        "audits": jsontext.for_database(audits),
    }


def _deposits(
    session: Session,
    rule: policy.DepositRule | None,
    patients: list[dict[str, Any]],
    priced: list[discounts.DiscountedLine],
    paying: list[bool],
    now: datetime,
) -> list[int]:
    """The deposit each patient is asked for when booking, as the price version says
    (none for a place paid with credits); no-shows are counted only when the rule asks."""
    if rule is None:
        return [0] * len(patients)
    missed: dict[str, int] = {}
    if rule.applies_to == "no_shows":
        ids = [patient["patient_id"] for patient in patients]
        missed = dict(
            session.execute(
                select(Seat.patient_id, func.count())
                .join(Booking, Booking.booking_id == Seat.booking_id)
                .where(
                    Seat.patient_id.in_(ids),
                    Seat.attendance == policy.NO_SHOW,
                    Booking.scheduled_at >= now - policy.NO_SHOW_MEMORY,
                )
                .group_by(Seat.patient_id)
            ).all()
        )
    return [
        0
        if credits_pay
        else rule.of(
            line.net, patient.get("prior_iv_sessions", 0), missed.get(patient["patient_id"], 0)
        ).amount
        for patient, line, credits_pay in zip(patients, priced, paying, strict=True)
    ]


def _line(
    quote_id: str,
    position: int,
    patient: dict[str, Any],
    line: discounts.DiscountedLine,
    session_type: str,
    credit_units: int,
    deposit: int = 0,
    member: tuple[str | None, Money] | None = None,
) -> dict[str, Any]:
    exemption = patient.get("iv_exemption") or {}
    discount = patient.get("discount") or {}
    membership_id, saving = member or (None, Money.zero(line.net.currency))
    base = (line.base + saving).amount if (line.discounted or saving.amount) else None
    return {
        "quote_id": quote_id,
        "position": position,
        "patient_id": patient["patient_id"],
        "patient_name": patient["name"],
        "patient_email": patient.get("email"),
        "prior_iv_sessions": patient.get("prior_iv_sessions", 0),
        "iv_exemption_reason": exemption.get("reason"),
        "iv_exemption_approved_by": exemption.get("approved_by"),
        "description": pricing.DESCRIPTIONS[session_type],
        "amount": line.net.amount,
        "base_amount": base,
        "sliding_percent": discount.get("percent"),
        "sliding_reason": discount.get("reason"),
        "sliding_approved_by": discount.get("approved_by"),
        "sliding_amount": line.sliding.amount,
        "promotion_amount": line.promotion.amount,
        "credit_units": credit_units,
        "deposit": deposit,
        "membership_id": membership_id,
        "member_saving": saving.amount,
    }


def _exemption(line: dict[str, Any]) -> dict[str, str] | None:
    if line["iv_exemption_reason"] is None:
        return None
    return {"reason": line["iv_exemption_reason"], "approved_by": line["iv_exemption_approved_by"]}
