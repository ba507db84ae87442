"""The clinic's calendar: its days and months in its own time zone (the service stores UTC),
and dates and times as the clinic writes them for people, on every page and receipt:
`3 Dec 2026`, `3 Dec 2026 15:04 PST`."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

UTC_ZONE = ZoneInfo("UTC")


def clinic_date(
    value: date | datetime | None, with_time: bool = False, zone: ZoneInfo = UTC_ZONE
) -> str:
    """`3 Dec 2026`; with_time, `3 Dec 2026 15:04 PST` (never seconds or microseconds), both
    as the clinic's clock reads a moment."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = value.astimezone(zone)
        if with_time:
            return f"{value.day} {value:%b %Y %H:%M} {zone_label(value)}"
    return f"{value.day} {value:%b %Y}"


def zone_label(moment: datetime) -> str:
    """The zone's abbreviation at that moment (PDT, PST, UTC), or its offset (UTC-03,
    UTC+05:45) where the zone has no abbreviation."""
    name = moment.tzname() or ""
    if name.isalpha():
        return name
    offset = moment.utcoffset() or timedelta()
    sign = "-" if offset < timedelta() else "+"
    hours, rest = divmod(abs(int(offset.total_seconds())), 3600)
    minutes = rest // 60
    return f"UTC{sign}{hours:02d}" + (f":{minutes:02d}" if minutes else "")


def day_of(moment: datetime, zone: ZoneInfo) -> date:
    """The clinic's day a moment falls on."""
    return moment.astimezone(zone).date()


def day_start(day: date, zone: ZoneInfo) -> datetime:
    """The moment (in UTC) the clinic's day begins: its midnight, whatever DST does."""
    return datetime.combine(day, time(), zone).astimezone(UTC)


def days_span(first: date, last: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """From the start of the clinic's day `first` to the end of `last` (both included), in
    UTC; a day of a DST change is 23 or 25 hours long."""
    return day_start(first, zone), day_start(last + timedelta(days=1), zone)


def month_span(year: int, month: int, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The clinic's month, from its first midnight to the next month's, in UTC."""
    following = date(year + month // 12, month % 12 + 1, 1)
    return day_start(date(year, month, 1), zone), day_start(following, zone)


def month_of(moment: datetime, zone: ZoneInfo) -> str:
    """`2026-10`: the clinic's month a moment falls in."""
    return f"{day_of(moment, zone):%Y-%m}"


def first_day(month: str) -> date:
    """The first day of a month written `2026-10`."""
    year, number = (int(part) for part in month.split("-"))
    return date(year, number, 1)


def span_of_month(month: str, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The clinic's month written `2026-10`, from its first midnight to the next month's."""
    day = first_day(month)
    return month_span(day.year, day.month, zone)


def month_name(month: str) -> str:
    """`October 2026` for `2026-10`."""
    return f"{first_day(month):%B %Y}"


def next_month(month: str) -> str:
    """`2026-11` after `2026-10`, `2027-01` after `2026-12`."""
    day = first_day(month)
    return f"{day.year + day.month // 12:04d}-{day.month % 12 + 1:02d}"
