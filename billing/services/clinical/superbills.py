"""A superbill: what a patient sends their insurer to be reimbursed out of network for a
visit, with every field an out-of-network claim needs. Built from the session invoice,
the patient's profile, the visit's record (diagnoses, rendering clinician) and the
clinic's settings; refused (409 `superbill_incomplete`, naming what is missing) rather
than issued without a field an insurer rejects it for.

Lines: the session type's billing codes (`BILLING_CODES`), each with its units,
modifiers and share of the charge (`SUPERBILL_LINES`; by default one unit, no modifier,
equal shares), the charge split to the cent so that the lines add up to the invoice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing.adapters.booking_models import Seat
from billing.adapters.clinical_models import PatientProfile, Provider, VisitRecord
from billing.adapters.models import Invoice
from billing.domain import policy, statuses
from billing.domain.clinical import MAX_DIAGNOSES, POINTERS, icd10cm
from billing.domain.dates import day_of
from billing.domain.errors import Conflict
from billing.domain.money import Money
from billing.services.invoicing.invoices import get_invoice

OFFICE = "11"  # place of service: the clinic's office
SIGNATURE = "Provider's signature: ______________________________   Date: ____________"


@dataclass(frozen=True, slots=True)
class Clinic:
    """The billing provider, as the clinic's settings name it."""

    name: str
    npi: str
    tin: str
    taxonomy: str
    address: str
    phone: str


def clinic_of(config: Any) -> Clinic:
    return Clinic(
        name=config["CLINIC_NAME"],
        npi=config["CLINIC_NPI"],
        tin=config["CLINIC_TIN"],
        taxonomy=config["CLINIC_TAXONOMY"],
        address=config["CLINIC_ADDRESS"],
        phone=config["CLINIC_PHONE"],
    )


def superbill(
    session: Session,
    invoice_id: str,
    clinic: Clinic,
    codes: dict[str, list[str]],
    lines_config: dict[str, Any],
    zone: ZoneInfo,
) -> dict[str, Any]:
    """The visit's superbill (JSON-ready); 409 for an invoice that is not an attended visit's, or
    when a field an insurer needs is missing (`errors` names each)."""
    invoice, visit, rendering = visit_of(session, invoice_id, "superbills")
    profile = session.get(PatientProfile, invoice.patient_id)
    missing = _missing(profile, visit, rendering, clinic)
    if missing:
        raise Conflict(
            "superbill_incomplete",
            "A superbill needs " + ", ".join(missing) + ": record them first.",
            errors={name: ["Missing: record it first."] for name in missing},
        )
    assert profile is not None and visit is not None and rendering is not None
    diagnoses = visit.diagnoses[:MAX_DIAGNOSES]
    pointers = POINTERS[: min(len(diagnoses), 4)]  # a line points to at most four
    return {
        "invoice_id": invoice.id,
        "invoice_number": invoice.number,
        "currency": invoice.currency,
        "date_of_service": day_of(invoice.scheduled_at, zone).isoformat(),
        "place_of_service": place_of(lines_config, invoice.session_type),
        "patient": {
            "patient_id": invoice.patient_id,
            "name": invoice.patient_name,
            "date_of_birth": profile.date_of_birth.isoformat() if profile.date_of_birth else None,
            "address": _address(profile),
            "payer_class": profile.payer_class,
        },
        "billing_provider": {
            "name": clinic.name,
            "npi": clinic.npi,
            "tin": clinic.tin,
            "taxonomy": clinic.taxonomy,
            "address": clinic.address,
            "phone": clinic.phone,
        },
        "rendering_provider": {
            "name": rendering.name,
            "npi": rendering.npi,
            "credentials": rendering.credentials,
        },
        "diagnoses": [
            {"pointer": POINTERS[index], "code": code, "description": _described(code)}
            for index, code in enumerate(diagnoses)
        ],
        "lines": [
            {**line, "diagnosis_pointers": pointers}
            for line in lines_of(invoice, codes, lines_config)
        ],
        "total_charges": charged(invoice),
        "amount_paid": paid_net(invoice),
        "balance_due": invoice.balance_due,
        "signature": SIGNATURE,
    }


def _missing(
    profile: PatientProfile | None,
    visit: VisitRecord | None,
    rendering: Provider | None,
    clinic: Clinic,
) -> list[str]:
    missing = []
    if profile is None or profile.date_of_birth is None:
        missing.append("patient.date_of_birth")
    if profile is None or not profile.address_line1:
        missing.append("patient.address")
    if visit is None or not visit.diagnoses:
        missing.append("diagnosis_codes")
    if rendering is None:
        missing.append("rendering_provider")
    if not clinic.npi:
        missing.append("CLINIC_NPI")
    if not clinic.tin:
        missing.append("CLINIC_TIN")
    return missing


def lines_of(
    invoice: Invoice,
    codes: dict[str, list[str]],
    lines_config: dict[str, Any],
    amount: int | None = None,
) -> list[dict[str, Any]]:
    """The visit's billed lines: each code with its units, modifiers and charge; the
    charges add up to what the visit is billed at (`amount`, by default `charged`) to
    the cent."""
    listed = codes.get(invoice.session_type) or [invoice.lines[0].billing_code or "99499"]
    settings = (lines_config.get(invoice.session_type) or {}).get("lines", {})
    parsed = []
    for entry in listed:
        code, _, description = entry.partition(" ")
        each = settings.get(code, {})
        parsed.append(
            (
                code,
                description,
                int(each.get("units", 1)),
                list(each.get("modifiers", [])),
                int(each.get("share", 1)),
            )
        )
    weights = [share for *_, share in parsed]
    if sum(weights) <= 0:
        weights = [1] * len(parsed)
    billed = charged(invoice) if amount is None else amount
    charges = Money(billed, invoice.currency).allocate(weights)
    return [
        {
            "code": code,
            "description": description,
            "modifiers": modifiers,
            "units": units,
            "charge": charge.amount,
        }
        for (code, description, units, modifiers, _), charge in zip(parsed, charges, strict=True)
    ]


def visit_of(
    session: Session, invoice_id: str, what: str
) -> tuple[Invoice, VisitRecord | None, Provider | None]:
    """An attended visit's invoice, what was recorded of it, and its rendering clinician;
    409 `no_superbill` for any other invoice (`what`: the documents refused)."""
    invoice = get_invoice(session, invoice_id)
    if (
        invoice.kind != policy.SESSION
        or invoice.status == statuses.VOID
        or not attended(session, invoice.id)
    ):
        raise Conflict(
            "no_superbill",
            f"Invoice {invoice.number} is not an attended visit's ({invoice.kind}, "
            f"{invoice.status}): {what} are for sessions.",
        )
    visit = session.get(VisitRecord, invoice.id)
    rendering = None
    if visit is not None and visit.rendering_npi:
        rendering = session.get(Provider, visit.rendering_npi)
    return invoice, visit, rendering


def charged(invoice: Invoice) -> int:
    """What the visit is billed at: its total less credit notes and write-offs."""
    return int(invoice.amount_owed)


def paid_net(invoice: Invoice) -> int:
    """What the patient paid for the visit and kept paid: less what was refunded."""
    return max(0, invoice.amount_paid - invoice.amount_refunded)


def attended(session: Session, invoice_id: str) -> bool:
    """Whether the invoice is a visit the patient attended (marked so)."""
    found = session.scalar(select(Seat.attendance).where(Seat.invoice_id == invoice_id).limit(1))
    return found == policy.ATTENDED


def place_of(lines_config: dict[str, Any], session_type: str) -> str:
    return str((lines_config.get(session_type) or {}).get("place_of_service", OFFICE))


def _address(profile: PatientProfile) -> dict[str, str | None]:
    return {
        "line1": profile.address_line1,
        "line2": profile.address_line2,
        "city": profile.city,
        "state": profile.state,
        "postal_code": profile.postal_code,
        "country": profile.country,
    }


def _described(code: str) -> str:
    return str(icd10cm().get_description(code))
