"""When a Good Faith Estimate is due (business days on the clinic's calendar), and the
dispute threshold per currency."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from billing.domain.estimates import (
    add_business_days,
    business_days_between,
    dispute_threshold,
    due_by,
)
from billing.domain.money import Money

LA = ZoneInfo("America/Los_Angeles")


def at(day: str, hour: int = 12) -> datetime:
    return datetime.fromisoformat(f"{day}T{hour:02d}:00:00").replace(tzinfo=LA)


def test_business_days_skip_weekends() -> None:
    assert business_days_between(date(2026, 12, 4), date(2026, 12, 7)) == 1  # Fri -> Mon
    assert add_business_days(date(2026, 12, 4), 1) == date(2026, 12, 7)
    assert add_business_days(date(2026, 12, 2), 3) == date(2026, 12, 7)  # Wed + 3 = Mon


def test_booked_three_to_nine_business_days_ahead_is_due_the_next_business_day() -> None:
    # Booked Friday for the next Thursday (4 business days): due by the end of Monday.
    assert due_by(at("2026-12-04"), at("2026-12-10"), LA, None) == at("2026-12-08", 0)


def test_booked_ten_business_days_ahead_is_due_in_three() -> None:
    # Booked Tuesday 1 December for the 16th: due by the end of Friday the 4th.
    assert due_by(at("2026-12-01"), at("2026-12-16"), LA, None) == at("2026-12-05", 0)


def test_booked_under_three_business_days_ahead_needs_none_unless_asked() -> None:
    assert due_by(at("2026-12-03"), at("2026-12-07"), LA, None) is None
    asked = at("2026-12-03")  # Thursday: three business days is Tuesday
    assert due_by(at("2026-12-03"), at("2026-12-07"), LA, asked) == at("2026-12-09", 0)


def test_the_dispute_threshold_is_400_in_each_currency_unless_configured() -> None:
    assert dispute_threshold("usd", {"usd": 40000}) == Money(40000, "usd")
    assert dispute_threshold("cad", {}) == Money(40000, "cad")
    assert dispute_threshold("jpy", {}) == Money(400, "jpy")
    assert dispute_threshold("usd", {"usd": 50000}) == Money(50000, "usd")


def test_business_days_skip_us_federal_holidays_in_thanksgiving_week() -> None:
    # Thanksgiving is Thursday 26 November 2026: Wednesday + 1 business day is Friday.
    assert add_business_days(date(2026, 11, 25), 1) == date(2026, 11, 27)
    assert business_days_between(date(2026, 11, 23), date(2026, 11, 30)) == 4  # Tue-Fri, Mon
    # Asked for on the Wednesday: three business days are Friday, Monday and Tuesday.
    assert due_by(at("2026-11-25"), at("2026-12-20"), LA, at("2026-11-25")) == at("2026-12-02", 0)
    # Booked that Monday for the next Thursday: Tue, Wed, Fri, Mon, Tue, Wed, Thu is 7
    # business days (not 8): due by the end of the next business day, Tuesday.
    assert due_by(at("2026-11-23"), at("2026-12-03"), LA, None) == at("2026-11-25", 0)


def test_christmas_day_and_new_years_day_are_not_business_days() -> None:
    assert add_business_days(date(2026, 12, 24), 1) == date(2026, 12, 28)  # Fri 25th off
    assert add_business_days(date(2026, 12, 31), 1) == date(2027, 1, 4)  # Fri 1 Jan off
