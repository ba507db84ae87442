"""The clinic's calendar as the web layer reads it: its zone (CLINIC_TIMEZONE) and today."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from flask import current_app

from billing.adapters.models import utcnow
from billing.domain.dates import clinic_date, day_of
from billing.services.payments.plans import Clinic


def clinic_contact() -> str:
    """How patients reach the clinic, as consents name it: `(555) 010-0100, billing@...`."""
    return f"{current_app.config['CLINIC_PHONE']}, {current_app.config['CLINIC_EMAIL']}"


def clinic_as_consents_name_it() -> Clinic:
    """The clinic as a plan's or a membership's consent names it, and its calendar."""
    return Clinic(
        name=current_app.config["CLINIC_NAME"], contact=clinic_contact(), zone=clinic_zone()
    )


def clinic_zone() -> ZoneInfo:
    zone: ZoneInfo = current_app.config["CLINIC_ZONE"]
    return zone


def clinic_today() -> date:
    """Today, as the clinic's calendar has it."""
    return day_of(utcnow(), clinic_zone())


def clinic_date_filter(value: date | datetime | None, with_time: bool = False) -> str:
    """The pages' `clinic_date` filter: dates and times as the clinic's clock reads them."""
    return clinic_date(value, with_time, clinic_zone())
