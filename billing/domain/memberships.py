"""Memberships, as pure rules: the periods a membership is charged for, what a period costs
when the clinic prorates, what a member pays for a session, what a cancelled period gives
back, and how a period's fee is earned day by day. Dates, integers and Money in and out.

A membership's periods follow each other without gaps, in the clinic's days. Without
proration a period starts on the day of the month (or year) the membership started, the
31st falling on shorter months' last day as a payment plan's instalments do. With
proration (MEMBERSHIP_PRORATION=on) periods run from the 1st of a month (or 1 January),
and a first period that starts later in the month is charged for its days only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, cast

from billing.domain.money import Money
from billing.domain.schedules import add_months

MONTH, YEAR = "month", "year"
INTERVALS = (MONTH, YEAR)

# A membership's statuses: active (charged each period, its benefits apply), past_due (its
# period's charge was given up: no benefits until paid; unpaid at the period's end, it is
# cancelled), paused (no charges and no benefits until it resumes), cancelled.
ACTIVE, PAST_DUE, PAUSED, CANCELLED = "active", "past_due", "paused", "cancelled"
STATUSES = (ACTIVE, PAST_DUE, PAUSED, CANCELLED)
LIVE = (ACTIVE, PAST_DUE, PAUSED)

# What a membership gives: a percent off each session, a lower price P for IV (a group
# seat then costing half of it), or IV credits included each period.
PERCENT_OFF, IV_PRICE, INCLUDED_CREDITS = "percent_off", "iv_price", "included_iv_credits"
BENEFITS = (PERCENT_OFF, IV_PRICE, INCLUDED_CREDITS)

# How a cancellation "now" treats the period paid for: the unused days back, or nothing.
PRORATED, NO_REFUND = "prorated", "none"


@dataclass(frozen=True, slots=True)
class Period:
    """The clinic's days [starts_on, ends_on) a membership fee pays for."""

    starts_on: date
    ends_on: date

    @property
    def days(self) -> int:
        return (self.ends_on - self.starts_on).days

    def holds(self, day: date) -> bool:
        return self.starts_on <= day < self.ends_on


def step(start: date, interval: str, count: int, day: int) -> date:
    """`count` intervals after `start`, on the day of the month `day` (or its last day)."""
    if interval == MONTH:
        return add_months(start, count, day)
    if interval == YEAR:
        return add_months(start, 12 * count, day)
    raise ValueError(f"unknown interval {interval!r}")


def aligned_start(day: date, interval: str) -> date:
    """The calendar period's first day holding `day`: the 1st of its month, or 1 January."""
    return day.replace(day=1) if interval == MONTH else date(day.year, 1, 1)


def period(starts_on: date, anchor: date, interval: str, number: int, prorated: bool) -> Period:
    """The `number`-th period (1 first) of a membership starting on `starts_on`, whose periods
    are counted from `anchor` (the day it started, or resumed after a pause)."""
    if prorated:
        first = aligned_start(anchor, interval)
        start = anchor if number == 1 else step(first, interval, number - 1, 1)
        return Period(start, step(first, interval, number, 1))
    return Period(
        step(anchor, interval, number - 1, anchor.day), step(anchor, interval, number, anchor.day)
    )


def full_days(span: Period, interval: str) -> int:
    """The days of the whole calendar period a (first, shorter) period lies in."""
    first = aligned_start(span.starts_on, interval)
    return (step(first, interval, 1, 1) - first).days


def fee(amount: Money, span: Period, interval: str, prorated: bool) -> Money:
    """What a period costs: the whole fee, or with proration its days' share of the fee
    (rounded half up) when it is shorter than the calendar period it lies in."""
    if not prorated:
        return amount
    whole = full_days(span, interval)
    if span.days >= whole:
        return amount
    return Money((amount.amount * span.days * 2 + whole) // (2 * whole), amount.currency)


def included_half_credits(half_credits: int, span: Period, interval: str, prorated: bool) -> int:
    """The half-credits a period includes: all, or with proration its days' share, rounded
    down to a half credit."""
    if not prorated:
        return half_credits
    whole = full_days(span, interval)
    return half_credits if span.days >= whole else half_credits * span.days // whole


def member_price(iv_individual: Money, benefit: str, value: int) -> Money:
    """A member's P: the price list's less `value` percent (rounded half up), or the
    membership's own IV price when it is lower. Included credits do not change P."""
    if benefit == PERCENT_OFF:
        return iv_individual.percent(100 - value)
    if benefit == IV_PRICE:
        return Money(min(iv_individual.amount, value), iv_individual.currency)
    return iv_individual


def unused(paid: int, span: Period, last_day: date) -> int:
    """What a period's fee gives back when the membership ends after `last_day` (the last
    day it held): the share of the days left, rounded down (never more than was paid)."""
    used = min(span.days, max(0, (last_day - span.starts_on).days + 1))
    return paid * (span.days - used) // span.days if span.days else 0


def earned_through(basis: int, span: Period, day: date) -> int:
    """How much of a period's fee (`basis`: what it kept) is earned by the end of `day`:
    its share of the period's days elapsed, rounded down, so that every day earns its part
    and the last day earns the rest."""
    if day < span.starts_on:
        return 0
    if day >= span.ends_on or span.days <= 0:
        return basis
    return basis * ((day - span.starts_on).days + 1) // span.days


def next_charge_on(membership: Any) -> date | None:
    """The clinic's day a membership's next period begins and is charged: none once it
    is cancelled or ending; its resume day while paused; its start before any period."""
    if membership.status == CANCELLED or membership.ends_on is not None:
        return None
    if membership.resumes_on is not None:
        return cast(date, membership.resumes_on)
    if not membership.periods:
        return cast(date, membership.starts_on)
    return cast(date, membership.periods[-1].ends_on)
