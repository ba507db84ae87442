"""Dates and times as the clinic writes them for people, on every page and receipt:
`3 Dec 2026`, `3 Dec 2026 15:04 UTC` (the service keeps UTC)."""

from __future__ import annotations

from datetime import UTC, date, datetime


def clinic_date(value: date | datetime | None, with_time: bool = False) -> str:
    """`3 Dec 2026`; with_time, `3 Dec 2026 15:04 UTC` (never seconds or microseconds)."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = value.astimezone(UTC)
        if with_time:
            return f"{value.day} {value:%b %Y %H:%M} UTC"
    return f"{value.day} {value:%b %Y}"
