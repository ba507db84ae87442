"""Clinicians who render sessions, and what clinical staff record of each visit at
attendance (its diagnoses, its rendering clinician): read only for superbills and claims,
never sent to Stripe, an email, an event or a webhook."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing.adapters.clinical_models import Provider, VisitRecord
from billing.adapters.models import utcnow
from billing.domain.errors import Conflict, field_error
from billing.services.access import audit


def add_provider(session: Session, npi: str, name: str, credentials: str | None) -> Provider:
    """A rendering clinician, by NPI (the NPI is checked by the schema); 409 if that NPI
    is listed under another name."""
    found = session.get(Provider, npi)
    if found is not None:
        if (found.name, found.credentials) != (name, credentials):
            raise Conflict("provider_exists", f"NPI {npi} is listed already, as {found.name}.")
        return found
    provider = Provider(npi=npi, name=name, credentials=credentials)
    session.add(provider)
    audit.record(session, "provider.added", "provider", npi, name=name, credentials=credentials)
    session.commit()
    return provider


def providers(session: Session) -> list[Provider]:
    return list(session.scalars(select(Provider).order_by(Provider.name, Provider.npi)))


def record(
    session: Session,
    invoice_id: str,
    patient_id: str,
    diagnoses: Sequence[str] | None,
    rendering_npi: str | None,
    field: str,
) -> None:
    """In the caller's transaction: the visit's diagnoses and rendering clinician, as
    given (either may be left out: what was recorded before stays). 422 naming `field`
    for a clinician not listed."""
    if rendering_npi is not None and session.get(Provider, rendering_npi) is None:
        raise field_error(
            "provider_not_found",
            f"{field}.rendering_provider",
            f"No clinician with NPI {rendering_npi}: add them with POST /v1/catalog/providers.",
        )
    visit = session.get(VisitRecord, invoice_id)
    if visit is None:
        visit = VisitRecord(invoice_id=invoice_id, patient_id=patient_id, diagnosis_codes="")
        session.add(visit)
    if diagnoses is not None:
        visit.diagnosis_codes = ",".join(dict.fromkeys(diagnoses))  # in order, once each
    if rendering_npi is not None:
        visit.rendering_npi = rendering_npi
    visit.recorded_at = utcnow()
    audit.record(  # who recorded it; the codes themselves stay in the visit's row
        session,
        "visit.recorded",
        "invoice",
        invoice_id,
        diagnoses=len(visit.diagnoses),
        rendering_npi=visit.rendering_npi,
    )


def forget(session: Session, invoice_id: str) -> None:
    """In the caller's transaction: the visit did not happen after all (marked a no-show):
    what was recorded of it goes, so no superbill or claim is made for it."""
    visit = session.get(VisitRecord, invoice_id)
    if visit is not None:
        session.delete(visit)
        audit.record(session, "visit.forgotten", "invoice", invoice_id)
