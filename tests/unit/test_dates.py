"""The clinic's one way of writing dates and times for people."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from billing.domain.dates import UTC_ZONE, clinic_date, day_of, days_span, month_span


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


LOS_ANGELES = ZoneInfo("America/Los_Angeles")


def test_a_moment_is_written_on_the_clinics_clock_with_its_abbreviation() -> None:
    halloween = datetime(2026, 11, 1, 6, 30, tzinfo=UTC)  # 23:30 the evening before there
    assert clinic_date(halloween, with_time=True, zone=LOS_ANGELES) == "31 Oct 2026 23:30 PDT"
    assert clinic_date(halloween, zone=LOS_ANGELES) == "31 Oct 2026"
    winter = datetime(2026, 11, 1, 9, 30, tzinfo=UTC)  # the second 01:30 of 1 Nov
    assert clinic_date(winter, with_time=True, zone=LOS_ANGELES) == "1 Nov 2026 01:30 PST"


def test_a_zone_without_an_abbreviation_is_written_as_its_offset() -> None:
    moment = datetime(2026, 12, 3, 15, 4, tzinfo=UTC)
    assert clinic_date(moment, True, ZoneInfo("America/Sao_Paulo")) == "3 Dec 2026 12:04 UTC-03"
    assert clinic_date(moment, True, ZoneInfo("Asia/Kathmandu")) == "3 Dec 2026 20:49 UTC+05:45"


def test_the_days_of_the_dst_changes_last_25_and_23_hours() -> None:
    november = days_span(date(2026, 11, 1), date(2026, 11, 1), LOS_ANGELES)
    march = days_span(date(2026, 3, 8), date(2026, 3, 8), LOS_ANGELES)
    assert november == (datetime(2026, 11, 1, 7, tzinfo=UTC), datetime(2026, 11, 2, 8, tzinfo=UTC))
    assert march == (datetime(2026, 3, 8, 8, tzinfo=UTC), datetime(2026, 3, 9, 7, tzinfo=UTC))
    assert [(end - start).total_seconds() / 3600 for start, end in (november, march)] == [25, 23]


def test_a_month_runs_from_the_clinics_midnight_to_the_next_months() -> None:
    assert month_span(2026, 10, LOS_ANGELES) == (
        datetime(2026, 10, 1, 7, tzinfo=UTC),
        datetime(2026, 11, 1, 7, tzinfo=UTC),
    )
    assert month_span(2026, 12, LOS_ANGELES)[1] == datetime(2027, 1, 1, 8, tzinfo=UTC)
    assert month_span(2026, 12, UTC_ZONE) == (
        datetime(2026, 12, 1, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    )
    assert day_of(datetime(2027, 1, 1, 7, 30, tzinfo=UTC), LOS_ANGELES) == date(2026, 12, 31)
