"""The clinic's calendar for scheduled money: due days, the moments they are charged, and
retries, in two time zones (one north, one south of the equator: their DST changes fall
in opposite months), across month ends and leap years."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.domain import schedules
from billing.domain.money import Money
from billing.domain.schedules import Window

ZONES = [ZoneInfo("America/New_York"), ZoneInfo("Australia/Sydney")]
WINDOW = Window()


def test_a_monthly_plan_from_the_31st_takes_each_months_last_day_and_keeps_its_day() -> None:
    assert schedules.due_days(date(2027, 1, 31), 5, "month") == [
        date(2027, 1, 31),
        date(2027, 2, 28),
        date(2027, 3, 31),
        date(2027, 4, 30),
        date(2027, 5, 31),
    ]
    assert schedules.due_days(date(2028, 1, 31), 2, "month")[1] == date(2028, 2, 29)  # leap
    assert schedules.due_days(date(2027, 11, 30), 3, "month") == [
        date(2027, 11, 30),
        date(2027, 12, 30),
        date(2028, 1, 30),
    ]


def test_weekly_and_fortnightly_plans_step_by_days() -> None:
    assert schedules.due_days(date(2027, 3, 10), 3, "week") == [
        date(2027, 3, 10),
        date(2027, 3, 17),
        date(2027, 3, 24),
    ]
    assert schedules.due_days(date(2027, 12, 25), 2, "two_weeks")[1] == date(2028, 1, 8)


@pytest.mark.parametrize("zone", ZONES, ids=str)
def test_every_day_of_a_leap_year_is_charged_once_at_nine_whatever_dst_does(zone) -> None:
    days = [date(2028, 1, 1) + timedelta(days=n) for n in range(366)]
    moments = [schedules.first_attempt(day, zone, WINDOW) for day in days]
    for day, moment in zip(days, moments, strict=True):
        local = moment.astimezone(zone)
        assert (local.date(), local.hour, local.minute) == (day, 9, 0)
    gaps = {later - earlier for earlier, later in zip(moments, moments[1:], strict=False)}
    assert gaps == {timedelta(hours=23), timedelta(hours=24), timedelta(hours=25)}
    assert sorted(gaps)[0] == timedelta(hours=23)  # a DST change was crossed, both ways


@pytest.mark.parametrize("zone", ZONES, ids=str)
def test_a_moment_outside_the_clinics_hours_waits_for_eight(zone) -> None:
    late = datetime(2027, 3, 13, 22, 30, tzinfo=zone).astimezone(UTC)
    assert schedules.within(late, zone, WINDOW).astimezone(zone) == datetime(
        2027, 3, 14, 8, tzinfo=zone
    )
    early = datetime(2027, 3, 14, 6, tzinfo=zone).astimezone(UTC)
    assert schedules.within(early, zone, WINDOW).astimezone(zone).hour == 8
    open_now = datetime(2027, 3, 14, 20, 59, tzinfo=zone).astimezone(UTC)
    assert schedules.within(open_now, zone, WINDOW) == open_now
    assert not schedules.may_charge_now(late, zone, WINDOW)


@pytest.mark.parametrize("zone", ZONES, ids=str)
def test_retries_follow_the_days_after_the_first_decline_then_stop(zone) -> None:
    first = date(2027, 10, 31)
    when = [schedules.retry_at(first, n, (1, 3, 5, 7), zone, WINDOW) for n in range(1, 6)]
    assert [w.astimezone(zone).date() for w in when[:4] if w] == [
        date(2027, 11, 1),
        date(2027, 11, 3),
        date(2027, 11, 5),
        date(2027, 11, 7),
    ]
    assert all(w.astimezone(zone).hour == 9 for w in when[:4] if w)
    assert when[4] is None
    # A schedule that names day 0 still never retries on the day of the decline.
    same_day = schedules.retry_at(first, 1, (0,), zone, WINDOW)
    assert same_day is not None and same_day.astimezone(zone).date() == date(2027, 11, 1)


def test_only_declines_a_retry_can_change_are_retried() -> None:
    for code in ("insufficient_funds", "card_declined", "generic_decline", "processing_error"):
        assert schedules.retryable(code)
    for code in ("stolen_card", "lost_card", "fraudulent", "authentication_required"):
        assert not schedules.retryable(code)


@given(
    st.integers(min_value=1, max_value=10**9),
    st.integers(min_value=1, max_value=schedules.MAX_INSTALMENTS),
)
def test_instalments_add_up_to_the_balance_to_the_cent(amount: int, count: int) -> None:
    parts = schedules.split(Money(amount, "usd"), count)
    assert sum(part.amount for part in parts) == amount
    assert max(p.amount for p in parts) - min(p.amount for p in parts) <= 1
    assert [p.amount for p in parts] == sorted((p.amount for p in parts), reverse=True)


@given(
    st.integers(min_value=0, max_value=10**6),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.integers(min_value=0, max_value=10**6),
)
def test_an_instalment_charges_at_most_its_amount_and_never_below_nothing(
    item: int, collectable: int, later: int
) -> None:
    due = schedules.due_now(item, collectable, later)
    assert 0 <= due <= item
    assert due <= max(0, collectable - later) or due == 0


@given(st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 31)))
def test_monthly_days_never_drift_from_the_first(first: date) -> None:
    days = schedules.due_days(first, 14, "month")
    assert all(earlier < later for earlier, later in zip(days, days[1:], strict=False))
    for day in days:
        assert day.day == first.day or day.day < first.day and (day + timedelta(days=1)).day == 1


def test_the_schedules_settings_are_checked_at_start() -> None:
    from billing import create_app
    from billing.config import ConfigError, from_env, schedule_window

    assert schedule_window("8-21", 9) == Window(8, 21, 9)
    for hours, hour in (("21-8", 9), ("8-21", 22), ("eight-nine", 9), ("8", 9)):
        with pytest.raises(ConfigError, match="SCHEDULE_HOURS"):
            schedule_window(hours, hour)
    assert from_env({})["SCHEDULE_RETRY_DAYS"] == [1, 3, 5, 7]
    with pytest.raises(ConfigError, match="SCHEDULE_RETRY_DAYS"):
        from_env({"SCHEDULE_RETRY_DAYS": "0,2"})
    with pytest.raises(ConfigError, match="PLAN_PACKAGE_CREDITS"):
        from_env({"PLAN_PACKAGE_CREDITS": "sometimes"})
    with pytest.raises(ConfigError, match="AUTOPAY_HOUR"):
        create_app({"TESTING": True, "AUTOPAY_HOUR": 23})
