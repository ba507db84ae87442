"""What clinical staff record for the clinic's documents to insurers: a patient's billing
profile (date of birth, address, payer class), under scopes of their own."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from billing.adapters import db
from billing.adapters.clinical_models import PatientProfile
from billing.services.clinical import profiles
from billing.web.api.blueprint import Blueprint
from billing.web.api.common import BEARER
from billing.web.api.spec import WITH_A_BODY, problems
from billing.web.auth import requires
from schemas.clinical import ProfilePathSchema, ProfileRequestSchema, ProfileSchema

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
