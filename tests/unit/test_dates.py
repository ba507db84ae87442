"""The clinic's one way of writing dates and times for people."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

from billing.domain.dates import clinic_date


def test_a_day_is_written_day_month_year_without_a_leading_zero() -> None:
    assert clinic_date(date(2026, 12, 3)) == "3 Dec 2026"
    assert clinic_date(date(2026, 1, 31)) == "31 Jan 2026"


def test_a_moment_is_written_in_utc_to_the_minute() -> None:
    moment = datetime(2026, 12, 3, 15, 4, 59, 987654, tzinfo=UTC)
    assert clinic_date(moment, with_time=True) == "3 Dec 2026 15:04 UTC"
    assert clinic_date(moment) == "3 Dec 2026"


def test_a_moment_with_another_offset_is_written_as_its_utc_day_and_time() -> None:
    pacific = timezone(timedelta(hours=-8))
    evening = datetime(2026, 12, 2, 22, 30, tzinfo=pacific)
    assert clinic_date(evening, with_time=True) == "3 Dec 2026 06:30 UTC"
    assert clinic_date(evening) == "3 Dec 2026"


def test_nothing_is_written_as_nothing() -> None:
    assert clinic_date(None) == ""
