"""Membership fees earned over their periods: a period's fee is deferred when it is paid and
earned day by day across the period's days (to its last day held, when the membership was
cancelled during it).

A month's journal earns what each period earned by the month's end and no closed month's
journal earned yet (a closed month keeps what it earned, in membership_revenue): so a month
passed over at closing, or money that came late, is earned by the next month closed, and
nothing is earned twice. The month-end report shows what the month's own days earned."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from billing.adapters.membership_models import Membership, MembershipPeriod, MembershipRevenue
from billing.adapters.models import Invoice, LedgerEntry
from billing.domain import memberships as rules
from billing.domain.dates import first_day, next_month, span_of_month

PAID_BY = ("charge", "received", "from_credit", "gift_card")  # ledger kinds that pay


@dataclass(frozen=True, slots=True)
class Earned:
    period_id: str
    currency: str
    amount: int


def _last_day(month: str) -> date:
    return first_day(next_month(month)) - timedelta(days=1)


def _periods(
    session: Session, month: str, zone: ZoneInfo
) -> list[tuple[MembershipPeriod, rules.Period, int]]:
    """Periods begun by the month's end whose fee was paid by then: each with the days it
    held and what it kept (paid less refunded)."""
    _, month_end = span_of_month(month, zone)
    first_paid = (
        select(func.min(LedgerEntry.occurred_at))
        .where(LedgerEntry.invoice_id == Invoice.id, LedgerEntry.kind.in_(PAID_BY))
        .scalar_subquery()
    )
    rows = session.execute(
        select(MembershipPeriod, Membership.status, Membership.ends_on, Invoice)
        .join(Membership, Membership.id == MembershipPeriod.membership_id)
        .join(Invoice, Invoice.id == MembershipPeriod.invoice_id)
        .where(
            MembershipPeriod.starts_on <= _last_day(month),
            MembershipPeriod.amount > 0,
            first_paid < month_end,
        )
    ).all()
    found = []
    for period, status, ends_on, invoice in rows:
        kept = invoice.amount_paid - invoice.amount_refunded
        if kept <= 0:
            continue
        end = period.ends_on
        if status == rules.CANCELLED and ends_on is not None:
            end = max(period.starts_on + timedelta(days=1), min(end, ends_on + timedelta(days=1)))
        found.append((period, rules.Period(period.starts_on, end), kept))
    return found


def earned_in(session: Session, month: str, zone: ZoneInfo) -> list[Earned]:
    """What the open `month`'s journal earns of each period: its share through the month's
    last day, less what closed months' journals earned of it."""
    last = _last_day(month)
    stored = dict(
        session.execute(
            select(MembershipRevenue.period_id, func.sum(MembershipRevenue.amount)).group_by(
                MembershipRevenue.period_id
            )
        ).all()
    )
    made = []
    for period, span, kept in _periods(session, month, zone):
        share = rules.earned_through(kept, span, last) - int(stored.get(period.id, 0))
        if share > 0:
            made.append(Earned(period.id, period.currency, share))
    return made


def record(session: Session, month: str, earned: list[Earned]) -> None:
    """In the closing's transaction: what the closed month earned, kept."""
    session.add_all(
        MembershipRevenue(period_id=e.period_id, month=month, amount=e.amount) for e in earned
    )


def figures(
    session: Session, month: str, zone: ZoneInfo, closed_through: str | None
) -> dict[str, Any]:
    """Per currency: membership fees earned in the month, and still deferred at its end."""
    last = _last_day(month)
    earned: dict[str, int] = defaultdict(int)
    if closed_through is not None and month <= closed_through:
        for currency, amount in session.execute(
            select(MembershipPeriod.currency, func.sum(MembershipRevenue.amount))
            .join(MembershipPeriod, MembershipPeriod.id == MembershipRevenue.period_id)
            .where(MembershipRevenue.month == month)
            .group_by(MembershipPeriod.currency)
        ):
            earned[str(currency)] += int(amount)
    else:
        before = first_day(month) - timedelta(days=1)
        for period, span, kept in _periods(session, month, zone):
            own = rules.earned_through(kept, span, last) - rules.earned_through(kept, span, before)
            earned[period.currency] += own
    deferred: dict[str, int] = defaultdict(int)
    for period, span, kept in _periods(session, month, zone):
        deferred[period.currency] += kept - rules.earned_through(kept, span, last)
    return {
        currency: {
            "membership_revenue": earned.get(currency, 0),
            "membership_deferred": deferred.get(currency, 0),
        }
        for currency in sorted(set(earned) | set(deferred))
    }
