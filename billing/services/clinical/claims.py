"""A visit's CMS-1500 (02/12) claim data, keyed by the form's box numbers ("21" the
diagnoses, "24" the service lines, "33a" the billing NPI), as a clearinghouse import or a
patient filing it themselves needs it. Built from the same rows as the superbill, plus
what only a claim asks (the patient's sex and insurance); a claim missing a required box
is refused (409 `claim_incomplete`) with each box named. Electronic 837P submission is
out of scope.

The patient is the insured (box 6: self): a self-pay patient files for their own
reimbursement out of network, so the clinic does not accept assignment (box 27: no).
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from billing.adapters.clinical_models import PatientProfile, Provider
from billing.adapters.models import utcnow
from billing.domain.clinical import COMMERCIAL, MEDICAID, MEDICARE, POINTERS
from billing.domain.dates import day_of
from billing.domain.errors import Conflict
from billing.services.clinical.superbills import (
    Clinic,
    charged,
    lines_of,
    paid_net,
    place_of,
    visit_of,
)

SIGNATURE_ON_FILE = "Signature on file"
PROGRAM = {MEDICARE: "medicare", MEDICAID: "medicaid", COMMERCIAL: "group_health_plan"}
LINES_PER_FORM = 6  # box 24 has six lines
# Boxes a claim is refused without, and what each needs.
REQUIRED = {
    "1a": "the patient's insurance member id (profile: insurance.member_id)",
    "2": "the patient's name",
    "3": "the patient's date of birth and sex (profile: date_of_birth, sex)",
    "5": "the patient's address (profile: address)",
    "11c": "the insurance plan's name (profile: insurance.payer_name)",
    "21": "at least one diagnosis (attendance: diagnosis_codes)",
    "24": "service lines with a rendering clinician's NPI (attendance: rendering_provider)",
    "25": "the clinic's tax id (CLINIC_TIN)",
    "33": "the clinic's name, address and phone",
    "33a": "the clinic's NPI (CLINIC_NPI)",
}


def claim(
    session: Session,
    invoice_id: str,
    clinic: Clinic,
    codes: dict[str, list[str]],
    lines_config: dict[str, Any],
    zone: ZoneInfo,
) -> dict[str, Any]:
    """The visit's claim, box by box; 409 for an invoice that is not a visit's, or with
    every required box that cannot be filled named in `errors`."""
    invoice, visit, rendering = visit_of(session, invoice_id, "claims")
    profile = session.get(PatientProfile, invoice.patient_id) or PatientProfile(
        patient_id=invoice.patient_id, payer_class="self_pay"
    )
    diagnoses = visit.diagnoses[: len(POINTERS)] if visit is not None else []
    served = day_of(invoice.scheduled_at, zone).isoformat()
    name = _last_first(invoice.patient_name)
    address = _address(profile)
    pointers = POINTERS[: min(len(diagnoses), 4)]
    lines = [
        {
            "a_date_from": served,
            "a_date_to": served,
            "b_place_of_service": place_of(lines_config, invoice.session_type),
            "c_emg": None,
            "d_procedure": line["code"],
            "d_modifiers": line["modifiers"],
            "e_diagnosis_pointer": pointers,
            "f_charges": line["charge"],
            "g_units": line["units"],
            "j_rendering_npi": rendering.npi if rendering is not None else None,
        }
        for line in lines_of(invoice, codes, lines_config)
    ]
    boxes: dict[str, Any] = {
        "1": PROGRAM.get(profile.payer_class, "other"),
        "1a": profile.insurance_member_id,
        "2": name,
        "3": {
            "date_of_birth": profile.date_of_birth.isoformat() if profile.date_of_birth else None,
            "sex": profile.sex,
        },
        "4": name,  # the patient is the insured
        "5": address,
        "6": "self",
        "7": address,
        "11": profile.insurance_group,
        "11c": profile.insurance_payer,
        "12": SIGNATURE_ON_FILE,
        "13": SIGNATURE_ON_FILE,
        "21": {
            "icd_indicator": "0",  # ICD-10-CM
            "diagnoses": {POINTERS[index]: code for index, code in enumerate(diagnoses)},
        },
        "24": lines,
        "25": {"tax_id": clinic.tin, "type": "EIN"},
        "26": invoice.number,
        "27": False,  # out of network: the patient is paid, not the clinic
        "28": charged(invoice),
        "29": paid_net(invoice),
        "31": {
            "signed": _signed(rendering),
            "date": day_of(utcnow(), zone).isoformat(),
        },
        "32": {"name": clinic.name, "address": clinic.address},
        "32a": clinic.npi,
        "33": {"name": clinic.name, "address": clinic.address, "phone": clinic.phone},
        "33a": clinic.npi,
        "33b": f"ZZ{clinic.taxonomy}",
    }
    missing = _missing(boxes, rendering)
    if missing:
        raise Conflict(
            "claim_incomplete",
            "The claim cannot be filled without box " + ", ".join(missing) + ".",
            errors={box: [f"Missing: {REQUIRED[box]}."] for box in missing},
        )
    return {
        "invoice_id": invoice.id,
        "form": "CMS-1500 (02/12)",
        "currency": invoice.currency,
        "boxes": boxes,
    }


def _missing(boxes: dict[str, Any], rendering: Provider | None) -> list[str]:
    empty = {
        "1a": not boxes["1a"],
        "2": not boxes["2"],
        "3": not (boxes["3"]["date_of_birth"] and boxes["3"]["sex"]),
        "5": boxes["5"] is None,
        "11c": not boxes["11c"],
        "21": not boxes["21"]["diagnoses"],
        "24": not boxes["24"] or rendering is None or len(boxes["24"]) > LINES_PER_FORM,
        "25": not boxes["25"]["tax_id"],
        "33": not (boxes["33"]["name"] and boxes["33"]["address"] and boxes["33"]["phone"]),
        "33a": not boxes["33a"],
    }
    return [box for box in REQUIRED if empty[box]]


def _last_first(name: str) -> str:
    """`LAST, FIRST` as the form asks; a single name as it is."""
    parts = name.strip().split()
    if len(parts) < 2:
        return name.strip().upper()
    return f"{parts[-1]}, {' '.join(parts[:-1])}".upper()


def _address(profile: PatientProfile) -> dict[str, str | None] | None:
    if not profile.address_line1:
        return None
    street = ", ".join(p for p in (profile.address_line1, profile.address_line2) if p)
    return {
        "street": street,
        "city": profile.city,
        "state": profile.state,
        "zip": profile.postal_code,
    }


def _signed(rendering: Provider | None) -> str | None:
    if rendering is None:
        return None
    credentials = f", {rendering.credentials}" if rendering.credentials else ""
    return f"{rendering.name}{credentials}"
