"""Good Faith Estimates (the No Surprises Act's rule for uninsured and self-pay patients,
45 CFR 149.610), as pure functions: when one is due, and what a bill may exceed it by.

- Booked at least 3 business days ahead: the estimate is due within 1 business day of
  booking; booked at least 10 business days ahead, within 3 business days.
- Asked for by the patient: within 3 business days of the request.
- Booked less than 3 business days ahead: the rule asks for none (one is still given).
Business days are Monday to Friday on the clinic's calendar, less US federal holidays
(the holidays package: Thanksgiving, Christmas Day, and the others as observed).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import holidays

from billing.domain.dates import day_of, day_start
from billing.domain.money import CURRENCY_EXPONENTS, Money

DISPUTE_THRESHOLD_MAJOR_UNITS = 400  # $400.00 above the estimate opens the right to dispute
MAX_COURSE_MONTHS = 12
NOTICE = (
    "You have the right to receive a Good Faith Estimate for the total expected cost of "
    "any non-emergency items or services. This estimate lists the items and services "
    "reasonably expected for your care, with their expected charges. It is not a contract "
    "and does not oblige you to obtain them. If you are billed $400 or more above this "
    "Good Faith Estimate, you can dispute the bill: you may start the patient-provider "
    "dispute resolution process within 120 calendar days of the date on the bill. "
    "Starting a dispute resolution process will not adversely affect the quality of the "
    "care you receive. Keep a copy of this estimate. For questions or more information "
    "about your right to a Good Faith Estimate, visit www.cms.gov/nosurprises or call "
    "1-800-985-3059. You may ask the clinic for an updated estimate at any time."
)
# 45 CFR 149.610(c): what the estimate must say besides its items and the notice.
MAY_DIFFER = (
    "This Good Faith Estimate shows the costs of items and services that are reasonably "
    "expected for your health care needs, based on the information known to the clinic when "
    "it was created. The actual items, services, or charges may differ from this estimate."
)
SEPARATELY = (
    "Items or services you may have to schedule separately are not included in this "
    "estimate: for example, an evaluation by another provider, laboratory tests another "
    "provider orders, or care for a new condition. Ask for a separate Good Faith Estimate "
    "for any of them."
)


@cache
def _federal_holidays() -> holidays.HolidayBase:
    return holidays.country_holidays("US")


def is_business_day(day: date) -> bool:
    """Monday to Friday, and not a US federal holiday (as observed)."""
    return day.weekday() < 5 and day not in _federal_holidays()


def business_days_between(first: date, last: date) -> int:
    """Business days after `first` up to and including `last` (0 when last <= first)."""
    count, day = 0, first
    while day < last:
        day += timedelta(days=1)
        if is_business_day(day):
            count += 1
    return count


def add_business_days(day: date, days: int) -> date:
    while days > 0:
        day += timedelta(days=1)
        if is_business_day(day):
            days -= 1
    return day


def due_by(
    booked_at: datetime, scheduled_at: datetime, zone: ZoneInfo, requested_at: datetime | None
) -> datetime | None:
    """The end of the clinic's business day by which the estimate must be given, or None
    when the rule asks for none (booked less than 3 business days ahead, not requested)."""
    if requested_at is not None:
        deadline = add_business_days(day_of(requested_at, zone), 3)
    else:
        ahead = business_days_between(day_of(booked_at, zone), day_of(scheduled_at, zone))
        if ahead < 3:
            return None
        deadline = add_business_days(day_of(booked_at, zone), 3 if ahead >= 10 else 1)
    return day_start(deadline + timedelta(days=1), zone)  # the end of that day


def update_due_by(scheduled_at: datetime, zone: ZoneInfo) -> datetime:
    """An updated estimate (the scope, charges or providers changed) is due no later than
    one business day before the visit: by the end of the last business day before it."""
    day = day_of(scheduled_at, zone) - timedelta(days=1)
    while not is_business_day(day):
        day -= timedelta(days=1)
    return day_start(day + timedelta(days=1), zone)


def dispute_threshold(currency: str, configured: dict[str, int]) -> Money:
    """$400.00 for usd unless configured; 400 major units of any other currency."""
    if currency in configured:
        return Money(int(configured[currency]), currency)
    return Money(DISPUTE_THRESHOLD_MAJOR_UNITS * 10 ** CURRENCY_EXPONENTS[currency], currency)
