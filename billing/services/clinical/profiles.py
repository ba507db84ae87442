"""Patients' billing profiles: date of birth, address and payer class, set by clinical
staff (`clinical:write`), read for the documents insurers need. A change is recorded in
the audit trail; nothing here goes to Stripe, an email, an event or a webhook."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from billing.adapters.clinical_models import PatientProfile
from billing.adapters.models import utcnow
from billing.domain.clinical import SELF_PAY
from billing.domain.errors import NotFound
from billing.services.access import audit

ADDRESS = ("address_line1", "address_line2", "city", "state", "postal_code", "country")


def get_profile(session: Session, patient_id: str) -> PatientProfile:
    profile = session.get(PatientProfile, patient_id)
    if profile is None:
        raise NotFound("profile_not_found", f"Patient {patient_id} has no profile yet.")
    return profile


def payer_class_of(session: Session, patient_id: str) -> str:
    """The patient's payer class (self-pay until clinical staff say otherwise)."""
    profile = session.get(PatientProfile, patient_id)
    return profile.payer_class if profile is not None else SELF_PAY


def put_profile(session: Session, patient_id: str, body: dict[str, Any]) -> PatientProfile:
    """Set the patient's profile to `body` (date of birth, sex, address, insurance, payer
    class); fields left out are cleared, except the payer class (self-pay). The fields
    that changed go to the audit trail."""
    profile = session.get(PatientProfile, patient_id, with_for_update=True)
    created = profile is None
    if profile is None:
        profile = PatientProfile(patient_id=patient_id, payer_class=SELF_PAY)
        session.add(profile)
    address = body.get("address") or {}
    insurance = body.get("insurance") or {}
    wanted: dict[str, Any] = {
        "date_of_birth": body.get("date_of_birth"),
        "sex": body.get("sex"),
        "insurance_payer": insurance.get("payer_name"),
        "insurance_member_id": insurance.get("member_id"),
        "insurance_group": insurance.get("group_number"),
        "payer_class": body.get("payer_class", SELF_PAY),
        "address_line1": address.get("line1"),
        "address_line2": address.get("line2"),
        "city": address.get("city"),
        "state": address.get("state"),
        "postal_code": address.get("postal_code"),
        "country": address.get("country"),
    }
    changed = [name for name, value in wanted.items() if created or getattr(profile, name) != value]
    for name, value in wanted.items():
        setattr(profile, name, value)
    if changed:
        profile.updated_at = utcnow()
        audit.record(  # which fields, never their values (the trail is not clinical)
            session,
            "patient.profile_set" if created else "patient.profile_changed",
            "patient",
            patient_id,
            fields=", ".join(changed),
            payer_class=profile.payer_class,
        )
    session.commit()
    return profile
