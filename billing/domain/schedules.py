"""Money on a schedule, as the clinic's calendar reads it: when each instalment of a plan
falls due, when a scheduled charge is made, when a declined one is tried again, and which
declines are worth trying again. Pure: dates, zones and integers in, the same out.

A plan's dates are days in the clinic's time zone. A monthly plan keeps the day of the
month it started on: one started on the 31st is due on the last day of shorter months
(30 April, 28 or 29 February) and on the 31st again where there is one, never drifting. A
due day is charged at a set hour of that day's clock; combining a day with a wall-clock
hour through the zone, DST never skips a day or charges one twice (the hours DST skips or
repeats are at night, outside the hours charges are made).
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from billing.domain.money import Money

# A plan's statuses: past_due once an instalment was given up; completed once the invoice
# owes nothing more; cancelled by staff, or when its invoice was voided or written off.
ACTIVE, PAST_DUE, COMPLETED, CANCELLED = "active", "past_due", "completed", "cancelled"
LIVE = (ACTIVE, PAST_DUE)
PLAN_STATUSES = (ACTIVE, PAST_DUE, COMPLETED, CANCELLED)
# A scheduled charge's: waiting for its day, being charged, waiting for a retry; paid,
# covered (the invoice owed nothing more of it), action_needed (the bank wants the patient),
# failed (retries used up, or a decline no retry can change), cancelled.
SCHEDULED, CHARGING, RETRYING = "scheduled", "charging", "retrying"
PAID, COVERED, ACTION_NEEDED, FAILED = "paid", "covered", "action_needed", "failed"
ITEM_STATUSES = (SCHEDULED, CHARGING, RETRYING, PAID, COVERED, ACTION_NEEDED, FAILED, CANCELLED)
OWED = (SCHEDULED, CHARGING, RETRYING, ACTION_NEEDED, FAILED)  # not paid, not cancelled
DUE = (SCHEDULED, RETRYING)  # charged when their time comes
GAVE_UP = (ACTION_NEEDED, FAILED)

MONTH, WEEK, TWO_WEEKS = "month", "week", "two_weeks"
INTERVALS = (MONTH, WEEK, TWO_WEEKS)
MAX_INSTALMENTS = 36

# Declines a retry cannot turn into a payment (Stripe: "do not retry" codes): the card is
# gone or the bank refuses the merchant; authentication_required needs the patient.
NEVER_RETRIED = frozenset(
    {
        "authentication_required",
        "card_not_supported",
        "currency_not_supported",
        "do_not_try_again",
        "expired_card",
        "fraudulent",
        "incorrect_number",
        "invalid_account",
        "lost_card",
        "merchant_blacklist",
        "pickup_card",
        "restricted_card",
        "revocation_of_all_authorizations",
        "revocation_of_authorization",
        "security_violation",
        "stolen_card",
        "stop_payment_order",
        "transaction_not_allowed",
    }
)
NEEDS_THE_PATIENT = "authentication_required"


@dataclass(frozen=True, slots=True)
class Window:
    """The hours of the clinic's clock within which scheduled charges are made: from
    `opens` (inclusive) to `closes` (exclusive), and the hour a due day is charged."""

    opens: int = 8
    closes: int = 21
    charge_hour: int = 9

    def __post_init__(self) -> None:
        if not 0 <= self.opens <= self.charge_hour < self.closes <= 24:
            raise ValueError("the charge hour must lie within the window's hours")


def add_months(start: date, months: int, day: int | None = None) -> date:
    """`months` after `start`, on the day `day` (by default start's) or the month's last."""
    index = start.year * 12 + start.month - 1 + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day or start.day, last))


def due_days(first: date, count: int, interval: str) -> list[date]:
    """The `count` days a plan's instalments fall due, from `first`."""
    if interval not in INTERVALS:
        raise ValueError(f"unknown interval {interval!r}")
    if interval == MONTH:
        return [add_months(first, n, first.day) for n in range(count)]
    step = 7 if interval == WEEK else 14
    return [first + timedelta(days=step * n) for n in range(count)]


def split(balance: Money, count: int) -> list[Money]:
    """`balance` in `count` instalments that add up to it to the cent, the earlier ones
    taking the leftover cents (equal weights, allocated)."""
    return balance.allocate([1] * count)


def moment(day: date, hour: int, zone: ZoneInfo) -> datetime:
    """`hour` o'clock of the clinic's day `day`, in UTC."""
    return datetime.combine(day, time(hour), zone).astimezone(UTC)


def first_attempt(day: date, zone: ZoneInfo, window: Window) -> datetime:
    """When an item due on `day` is first charged."""
    return moment(day, window.charge_hour, zone)


def within(now: datetime, zone: ZoneInfo, window: Window) -> datetime:
    """`now`, or the next moment the window opens when `now` is outside it."""
    local = now.astimezone(zone)
    if window.opens <= local.hour < window.closes:
        return now
    day = local.date() if local.hour < window.opens else local.date() + timedelta(days=1)
    return moment(day, window.opens, zone)


def may_charge_now(now: datetime, zone: ZoneInfo, window: Window) -> bool:
    """Whether the clinic's clock reads inside the window at `now`."""
    return within(now, zone, window) == now


def retry_at(
    declined_on: date, declines: int, retry_days: Sequence[int], zone: ZoneInfo, window: Window
) -> datetime | None:
    """When to try again after the `declines`-th decline of an item first declined on the
    clinic's day `declined_on`: `retry_days[declines - 1]` days after that first decline
    (never the same day), at the charge hour; None when the schedule is used up."""
    if declines > len(retry_days):
        return None
    days = max(1, retry_days[declines - 1])
    return moment(declined_on + timedelta(days=days), window.charge_hour, zone)


def retryable(code: str | None) -> bool:
    """Whether a decline with this code (Stripe's decline_code, else its error code) may
    succeed if tried again later (insufficient funds, a generic decline, a processing
    error), as opposed to one that never will."""
    return (code or "card_declined") not in NEVER_RETRIED


def due_now(item_amount: int, collectable: int, later_unpaid: int) -> int:
    """What an instalment charges now: its amount, less what the bill no longer owes of it.
    Money paid outside the plan (a pay link, the desk, credit) settles the earliest
    instalments first, so an instalment charges what the bill still owes beyond the later
    instalments, never more than its own amount and never below nothing."""
    return max(0, min(item_amount, collectable - later_unpaid))


# How each kind of scheduled charge is said to the card networks (Stripe's
# stored_credential_usage): a plan's instalments, and AutoPay's unscheduled charges.
CARD_USAGE: dict[str, Literal["installment", "recurring", "unscheduled"]] = {
    "instalment": "installment",
    "membership": "recurring",
    "autopay": "unscheduled",
}
