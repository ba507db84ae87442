"""The clinic's pricing rules, as pure functions: plain values in, plain values out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from billing.domain.errors import field_error
from billing.domain.money import Money

IV_INDIVIDUAL = "iv_individual"
IM_GROUP = "im_group"
SESSION_TYPES = (IV_INDIVIDUAL, IM_GROUP)

DESCRIPTIONS = {
    IV_INDIVIDUAL: "Individual IV ketamine session",
    IM_GROUP: "Group IM ketamine session",
}

# How a patient's line is paid: invoiced (by card, on file or online), or by credits.
CARD = "card"
CREDITS = "credits"
PAY_WITH = (CARD, CREDITS)

# What people call each session type, on pages and in charts.
SESSION_NAMES = {IV_INDIVIDUAL: "Individual IV", IM_GROUP: "Group IM"}


def session_name(session_type: str) -> str:
    """`Individual IV` for `iv_individual`; an unknown type as it is."""
    return SESSION_NAMES.get(session_type, session_type)


# How many patients each session type takes (inclusive bounds).
PATIENTS_PER_SESSION = {IV_INDIVIDUAL: (1, 1), IM_GROUP: (2, 5)}


@dataclass(frozen=True, slots=True)
class PatientHistory:
    """What the rules need to know of one patient in a booking."""

    patient_id: str
    prior_iv_sessions: int = 0  # stated by the booking system (treated before this service)
    completed_iv_sessions: int = 0  # attended here, as the clinic marked them
    has_iv_exemption: bool = False


def session_price(session_type: str, iv_individual: Money) -> Money:
    """Price per patient: IV is the base price P, group IM is P / 2 rounded half up."""
    if session_type == IV_INDIVIDUAL:
        return iv_individual
    if session_type == IM_GROUP:
        return iv_individual.halve()
    raise ValueError(f"unknown session type {session_type!r}")


def check_group_size(session_type: str, patient_count: int) -> None:
    """Rule 2: IV individual names exactly one patient, group IM two to five."""
    low, high = PATIENTS_PER_SESSION[session_type]
    if not low <= patient_count <= high:
        expected = "exactly 1 patient" if low == high else f"{low} to {high} patients"
        raise field_error(
            "invalid_group_size",
            "patients",
            f"A {session_type} session takes {expected}; this booking names {patient_count}.",
        )


def check_first_session(session_type: str, patients: Sequence[PatientHistory]) -> None:
    """Rule 3: a patient with no completed IV session must start with IV, unless exempt."""
    if session_type != IM_GROUP:
        return
    for index, patient in enumerate(patients):
        has_had_iv = patient.prior_iv_sessions + patient.completed_iv_sessions > 0
        if not has_had_iv and not patient.has_iv_exemption:
            raise field_error(
                "first_session_must_be_iv",
                f"patients.{index}",
                f"Patient {patient.patient_id} has no completed IV session and no IV "
                "exemption; a new patient's first session must be iv_individual.",
            )


def check_distinct_patients(patients: Sequence[PatientHistory]) -> None:
    """A patient appears at most once in a booking."""
    seen: set[str] = set()
    for index, patient in enumerate(patients):
        if patient.patient_id in seen:
            raise field_error(
                "duplicate_patient",
                f"patients.{index}.patient_id",
                f"Patient {patient.patient_id} appears more than once in this booking.",
            )
        seen.add(patient.patient_id)


def price_booking(
    session_type: str, patients: Sequence[PatientHistory], iv_individual: Money
) -> list[Money]:
    """Apply every booking rule and return one line amount per patient, in order."""
    check_group_size(session_type, len(patients))
    check_distinct_patients(patients)
    check_first_session(session_type, patients)
    price = session_price(session_type, iv_individual)
    return [price for _ in patients]


def quote_expiry(created_at: datetime, ttl: timedelta) -> datetime:
    """Rule 5: a quote is binding until created_at + ttl."""
    return created_at + ttl


def is_expired(expires_at: datetime, now: datetime) -> bool:
    """True once the quote can no longer become an invoice."""
    return now >= expires_at
