"""What clinical staff record for the clinic's documents to insurers: a patient's billing
profile (date of birth, address, payer class), under scopes of their own."""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, request
from flask.views import MethodView

from billing.adapters import db
from billing.adapters.clinical_models import PatientProfile, Provider
from billing.services.clinical import claims, profiles, superbills, visits
from billing.web.api.blueprint import Blueprint
from billing.web.api.common import BEARER
from billing.web.api.invoices import BINARY, RECEIPT_TYPES
from billing.web.api.spec import WITH_A_BODY, problems
from billing.web.auth import requires
from billing.web.claims import pdf_response as claim_pdf
from billing.web.superbills import pdf_response as superbill_pdf
from schemas.clinical import (
    ClaimSchema,
    ClinicianListSchema,
    ClinicianSchema,
    ProfilePathSchema,
    ProfileRequestSchema,
    ProfileSchema,
    SuperbillPathSchema,
    SuperbillSchema,
)

blp = Blueprint("clinical", __name__, url_prefix="/v1", description="Patients' billing profiles")


@blp.route("/patients/<patient_id>/profile")
class ProfileView(MethodView):
    @requires("clinical:read", "clinical:write")
    @blp.doc(security=BEARER)
    @blp.arguments(ProfilePathSchema(), location="path", as_kwargs=True)
    @blp.response(200, ProfileSchema())
    @problems(blp, 404)
    def get(self, patient_id: str) -> PatientProfile:
        """The patient's date of birth, address and payer class."""
        return profiles.get_profile(db.session(), patient_id)

    @requires("clinical:write")
    @blp.doc(security=BEARER)
    @blp.arguments(ProfilePathSchema(), location="path", as_kwargs=True)
    @blp.arguments(ProfileRequestSchema())
    @blp.response(200, ProfileSchema())
    @problems(blp, *WITH_A_BODY)
    def put(self, body: dict[str, Any], patient_id: str) -> PatientProfile:
        """Set the patient's date of birth, address and payer class (fields left out are
        cleared; the payer class is then self-pay). Kept here only: never sent to Stripe,
        in an email, an event or a webhook; each change is in the audit trail. The payer
        class decides whether missed-appointment and late-cancellation fees are charged
        (FEE_EXEMPT_PAYER_CLASSES)."""
        return profiles.put_profile(db.session(), patient_id, body)


@blp.route("/catalog/providers")
class ProvidersView(MethodView):
    @requires("catalog:write", "clinical:write", "clinical:read")
    @blp.doc(security=BEARER)
    @blp.response(200, ClinicianListSchema())
    @problems(blp)
    def get(self) -> dict[str, Any]:
        """The clinicians who render sessions, by name."""
        return {"data": visits.providers(db.session())}

    @requires("catalog:write")
    @blp.doc(security=BEARER)
    @blp.arguments(ClinicianSchema())
    @blp.response(201, ClinicianSchema())
    @problems(blp, *WITH_A_BODY, 409)
    def post(self, body: dict[str, Any]) -> Provider:
        """List a clinician who renders sessions: their NPI (checked), name and
        credentials. Listing them again as they are changes nothing."""
        return visits.add_provider(db.session(), body["npi"], body["name"], body.get("credentials"))


def _pdf_doc(what: str) -> dict[str, Any]:
    """A PDF operation's documented answer (labelled as the receipt's is)."""
    return {
        "200": {
            "description": f"{what}, a PDF (`Accept: application/octet-stream` labels the "
            "same bytes as such)",
            "content": dict.fromkeys(RECEIPT_TYPES, BINARY),
        }
    }


def _as_asked(response: Response) -> Response:
    response.mimetype = request.accept_mimetypes.best_match(RECEIPT_TYPES, RECEIPT_TYPES[0])
    return response


def _superbill(invoice_id: str) -> dict[str, Any]:
    config = current_app.config
    return superbills.superbill(
        db.session(),
        invoice_id,
        superbills.clinic_of(config),
        config["BILLING_CODES"],
        config["SUPERBILL_LINES"],
        config["CLINIC_ZONE"],
    )


@blp.route("/invoices/<invoice_id>/superbill")
class SuperbillView(MethodView):
    @requires("clinical:read", "clinical:write")
    @blp.doc(security=BEARER)
    @blp.arguments(SuperbillPathSchema(), location="path", as_kwargs=True)
    @blp.response(200, SuperbillSchema())
    @problems(blp, 404, 409)
    def get(self, invoice_id: str) -> dict[str, Any]:
        """The visit's superbill, for the patient's out-of-network claim: the patient
        (with date of birth and address), the billing and rendering providers with their
        NPIs and the tax id, the date and place of service, the diagnoses (ICD-10-CM) with
        pointers, each line's code, modifiers, units and charge (adding up to the
        invoice), and what was paid. 409 `superbill_incomplete` names what is missing
        (in `errors`); `no_superbill` for an invoice that is not an attended visit's."""
        return _superbill(invoice_id)


@blp.route("/invoices/<invoice_id>/superbill.pdf")
class SuperbillPdfView(MethodView):
    @requires("clinical:read", "clinical:write")
    @blp.doc(security=BEARER, responses=_pdf_doc("The superbill"))
    @blp.arguments(SuperbillPathSchema(), location="path", as_kwargs=True)
    @problems(blp, 404, 409)
    def get(self, invoice_id: str) -> Response:
        """The same superbill as a PDF the patient sends their insurer."""
        return _as_asked(superbill_pdf(_superbill(invoice_id)))


def _claim(invoice_id: str) -> dict[str, Any]:
    config = current_app.config
    return claims.claim(
        db.session(),
        invoice_id,
        superbills.clinic_of(config),
        config["BILLING_CODES"],
        config["SUPERBILL_LINES"],
        config["CLINIC_ZONE"],
    )


@blp.route("/invoices/<invoice_id>/claim")
class ClaimView(MethodView):
    @requires("clinical:read", "clinical:write")
    @blp.doc(security=BEARER)
    @blp.arguments(SuperbillPathSchema(), location="path", as_kwargs=True)
    @blp.response(200, ClaimSchema())
    @problems(blp, 404, 409)
    def get(self, invoice_id: str) -> dict[str, Any]:
        """The visit's CMS-1500 (02/12) claim data, keyed by the form's box numbers
        (`"21"` the diagnoses, `"24"` the service lines, `"33a"` the billing NPI), as a
        clearinghouse import needs it. 409 `claim_incomplete` names each required box
        that cannot be filled (in `errors`, by box number)."""
        return _claim(invoice_id)


@blp.route("/invoices/<invoice_id>/claim.pdf")
class ClaimPdfView(MethodView):
    @requires("clinical:read", "clinical:write")
    @blp.doc(security=BEARER, responses=_pdf_doc("The claim's boxes"))
    @blp.arguments(SuperbillPathSchema(), location="path", as_kwargs=True)
    @problems(blp, 404, 409)
    def get(self, invoice_id: str) -> Response:
        """The same claim as a PDF, each box by its number and the form's label."""
        return _as_asked(claim_pdf(_claim(invoice_id)))
