"""Good Faith Estimates from quotes, the report of bills above them, disputes of a bill."""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, request
from flask.views import MethodView

from billing.adapters import db
from billing.adapters.estimate_models import BillDispute
from billing.services.invoicing import estimates
from billing.services.packages import packages
from billing.web.api.blueprint import Blueprint
from billing.web.api.common import BEARER
from billing.web.api.spec import WITH_A_BODY, problems
from billing.web.auth import current_key, requires
from billing.web.calendar import clinic_zone
from billing.web.estimates import pdf_response, view_of
from billing.web.exports import json_response, jsonable
from schemas.estimates import (
    BillDisputeRequestSchema,
    BillDisputeSchema,
    EstimateQuerySchema,
    EstimateRequestSchema,
    EstimateSchema,
    EstimateVarianceSchema,
)

blp = Blueprint(
    "estimates", __name__, url_prefix="/v1", description="Good Faith Estimates and bill disputes"
)


def _wants_pdf(query: dict[str, Any]) -> bool:
    if query.get("format"):
        return bool(query["format"] == "pdf")
    kinds = ["application/json", "application/pdf"]
    return request.accept_mimetypes.best_match(kinds) == "application/pdf"


def _course(query: dict[str, Any]) -> estimates.Course:
    package = query.get("package")
    return estimates.Course(
        query["sessions"],
        query["months"],
        packages.current_package(db.session(), package, "package") if package else None,
    )


def _clinical() -> bool:
    """Whether this request's key may see health information (a date of birth, codes)."""
    return bool({"clinical:read", "clinical:write"} & current_key().scopes)


@blp.route("/quotes/<quote_id>/estimate")
class EstimateView(MethodView):
    @requires("quotes:write")
    @blp.doc(security=BEARER)
    @blp.arguments(EstimateRequestSchema())
    @blp.response(201, EstimateSchema())
    @problems(blp, *WITH_A_BODY, 404)
    def post(self, body: dict[str, Any], quote_id: str) -> Response:
        """Issue the patient's Good Faith Estimate (self-pay), once: asked again, the same
        estimate comes back; for a planned course, `sessions` over `months`."""
        estimate = estimates.issue_estimate(
            db.session(),
            quote_id,
            body.get("patient_id"),
            _course(body),
            body["requested"],
            current_app.config["BILLING_CODES"],
            clinic_zone(),
            requested_at=body.get("requested_at"),
            provider_npi=current_app.config["CLINIC_NPI"],
        )
        answer = json_response(
            jsonable(EstimateSchema().dump(view_of(estimate, current_app.config, _clinical())))
        )
        answer.status_code = 201
        return answer

    @requires("quotes:write", "invoices:read")
    @blp.doc(security=BEARER)
    @blp.arguments(EstimateQuerySchema(), location="query")
    @blp.response(200, EstimateSchema())
    @blp.alt_response(
        200,
        schema={"type": "string", "format": "binary"},
        content_type="application/pdf",
        success=True,
        description="JSON; or the PDF the patient keeps, with Accept: application/pdf or "
        "format=pdf",
    )
    @problems(blp, 404, 422)
    def get(self, query: dict[str, Any], quote_id: str) -> Response:
        """The Good Faith Estimate issued for the patient and course, as it was given
        (reading never issues one: 404 until it is issued)."""
        estimate = estimates.read_estimate(
            db.session(), quote_id, query.get("patient_id"), _course(query), query["requested"]
        )
        if _wants_pdf(query):  # the document the patient keeps: all the rule asks
            return pdf_response(view_of(estimate, current_app.config))
        view = view_of(estimate, current_app.config, _clinical())
        return json_response(jsonable(EstimateSchema().dump(view)))


@blp.route("/reports/estimate-variance")
class EstimateVarianceView(MethodView):
    @requires("reports:read")
    @blp.doc(security=BEARER)
    @blp.response(200, EstimateVarianceSchema())
    @problems(blp)
    def get(self) -> dict[str, Any]:
        """Patients billed $400.00 (the configured threshold) or more above an estimate."""
        return estimates.variance(db.session(), current_app.config["ESTIMATE_DISPUTE_THRESHOLDS"])


@blp.route("/invoices/<invoice_id>/bill-disputes")
class BillDisputesView(MethodView):
    @requires("invoices:write")
    @blp.doc(security=BEARER)
    @blp.arguments(BillDisputeRequestSchema())
    @blp.response(200, BillDisputeSchema())
    @problems(blp, *WITH_A_BODY, 404, 409)
    def post(self, body: dict[str, Any], invoice_id: str) -> BillDispute:
        """The patient disputes this bill (`open`: no payment reminders while it is open),
        or the dispute is `resolved`."""
        return estimates.dispute_bill(db.session(), invoice_id, body["status"], body.get("note"))
