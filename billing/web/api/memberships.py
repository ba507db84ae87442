"""Memberships: the catalogue's, a patient's, and cancelling or pausing one."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask.views import MethodView

from billing.adapters import db
from billing.adapters.membership_models import Membership, MembershipPlan
from billing.adapters.providers import gateway
from billing.domain.access import ANY_KEY
from billing.services.payments import memberships, plans
from billing.services.pricing import memberships as catalog
from billing.web.api.blueprint import Blueprint
from billing.web.api.common import BEARER, IDEMPOTENCY_HEADER, idempotency_request, price_book
from billing.web.api.spec import CALLS_STRIPE, WITH_A_BODY, problems
from billing.web.auth import current_key, requires
from billing.web.calendar import clinic_as_consents_name_it, clinic_zone
from schemas.invoices import PatientPathSchema
from schemas.memberships import (
    CancelRequestSchema,
    JoinRequestSchema,
    MembershipListSchema,
    MembershipPathSchema,
    MembershipPlanListSchema,
    MembershipPlanRequestSchema,
    MembershipPlanSchema,
    MembershipSchema,
    PauseRequestSchema,
)

blp = Blueprint("memberships", __name__, url_prefix="/v1", description="Memberships")


def _prorated() -> bool:
    return bool(current_app.config.get("MEMBERSHIP_PRORATION") == "on")


@blp.route("/catalog/memberships")
class MembershipPlansView(MethodView):
    @requires("catalog:write")
    @blp.doc(security=BEARER)
    @blp.arguments(MembershipPlanRequestSchema())
    @blp.response(201, MembershipPlanSchema())
    @problems(blp, *WITH_A_BODY)
    def post(self, body: dict[str, Any]) -> MembershipPlan:
        """A membership patients can join: a fee each month or year and one benefit. The
        same code again makes its next version; members keep the version they joined."""
        return catalog.create_membership_plan(db.session(), body)

    @requires(ANY_KEY)
    @blp.doc(security=BEARER)
    @blp.response(200, MembershipPlanListSchema())
    @problems(blp)
    def get(self) -> dict[str, Any]:
        """The memberships offered: each code's current version."""
        return {"data": catalog.list_membership_plans(db.session()), "has_more": False}


@blp.route("/patients/<patient_id>/memberships")
class PatientMembershipsView(MethodView):
    @requires("payments:write")
    @blp.doc(security=BEARER, parameters=[IDEMPOTENCY_HEADER])
    @blp.arguments(PatientPathSchema(), location="path", as_kwargs=True)
    @blp.arguments(JoinRequestSchema())
    @blp.response(201, MembershipSchema())
    @problems(blp, *WITH_A_BODY, *CALLS_STRIPE, 409)
    def post(self, body: dict[str, Any], patient_id: str) -> Membership:
        """The patient joins a membership: its fee is charged to the saved card each
        period (the first on its first day), with the consent's words recorded."""
        joining = memberships.Joining(
            code=body["code"],
            card=body["payment_method"],
            starts_on=body.get("starts_at"),
            consent=plans.Consent(**body["consent"]),
            name=body.get("name"),
            email=body.get("email"),
        )
        clinic = clinic_as_consents_name_it()
        joined = memberships.join(
            db.session(),
            gateway(),
            patient_id,
            joining,
            clinic,
            current_key().id,
            idempotency_request(),
            prorated=_prorated(),
        )
        price_book().forget()  # quotes look for members' prices from now
        return joined

    @requires("invoices:read")
    @blp.doc(security=BEARER)
    @blp.arguments(PatientPathSchema(), location="path", as_kwargs=True)
    @blp.response(200, MembershipListSchema())
    @problems(blp)
    def get(self, patient_id: str) -> dict[str, Any]:
        """The patient's memberships, oldest first (cancelled ones too)."""
        return {"data": memberships.memberships_of(db.session(), patient_id), "has_more": False}


@blp.route("/memberships/<membership_id>")
class MembershipView(MethodView):
    @requires("invoices:read")
    @blp.doc(security=BEARER)
    @blp.arguments(MembershipPathSchema(), location="path", as_kwargs=True)
    @blp.response(200, MembershipSchema())
    @problems(blp, 404)
    def get(self, membership_id: str) -> Membership:
        """A membership: its fee, benefit, periods and consent."""
        return memberships.get_membership(db.session(), membership_id)


@blp.route("/memberships/<membership_id>/cancel")
class CancelView(MethodView):
    @requires("payments:write")
    @blp.doc(security=BEARER)
    @blp.arguments(MembershipPathSchema(), location="path", as_kwargs=True)
    @blp.arguments(CancelRequestSchema())
    @blp.response(200, MembershipSchema())
    @problems(blp, *WITH_A_BODY, *CALLS_STRIPE, 404, 409)
    def post(self, body: dict[str, Any], membership_id: str) -> Membership:
        """Cancel at the end of the period paid for (the default), or now, with the unused
        days refunded or not. Asking again changes nothing."""
        cancelled = memberships.cancel(
            db.session(),
            gateway(),
            membership_id,
            body["at"],
            body.get("refund"),
            body.get("reason"),
            clinic_zone(),
        )
        price_book().forget()
        return cancelled


@blp.route("/memberships/<membership_id>/pause")
class PauseView(MethodView):
    @requires("payments:write")
    @blp.doc(security=BEARER)
    @blp.arguments(MembershipPathSchema(), location="path", as_kwargs=True)
    @blp.arguments(PauseRequestSchema())
    @blp.response(200, MembershipSchema())
    @problems(blp, *WITH_A_BODY, 404, 409)
    def post(self, body: dict[str, Any], membership_id: str) -> Membership:
        """Pause from the end of the period paid for until `resumes_at`: nothing is charged
        and the benefit does not apply meanwhile."""
        return memberships.pause(db.session(), membership_id, body["resumes_at"], clinic_zone())
