"""Packages of credits: the catalogue's, those sold to a patient, and the patient's credits."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from billing.adapters import db
from billing.adapters.credit_models import Package
from billing.adapters.models import Refund
from billing.adapters.providers import gateway
from billing.domain import credits as credit_rules
from billing.domain.access import ANY_KEY
from billing.services.packages import credits, packages
from billing.web.api.blueprint import Blueprint
from billing.web.api.common import BEARER, IDEMPOTENCY_HEADER, idempotency_request
from billing.web.api.spec import CALLS_STRIPE, WITH_A_BODY, problems
from billing.web.auth import requires
from billing.web.calendar import clinic_zone
from schemas.invoices import PatientPathSchema
from schemas.packages import (
    CreditRefundRequestSchema,
    CreditRefundSchema,
    CreditsSchema,
    PackageListSchema,
    PackageRequestSchema,
    PackageSchema,
    PatientPackagePathSchema,
    PatientPackageSchema,
    SellPackageRequestSchema,
)

blp = Blueprint("packages", __name__, url_prefix="/v1", description="Packages and credits")
REQUIRED_KEY = [{**IDEMPOTENCY_HEADER, "required": True}]


@blp.route("/catalog/packages")
class PackagesView(MethodView):
    @requires("catalog:write")
    @blp.doc(security=BEARER)
    @blp.arguments(PackageRequestSchema())
    @blp.response(201, PackageSchema())
    @problems(blp, *WITH_A_BODY)
    def post(self, body: dict[str, Any]) -> Package:
        """A package of IV credits for sale; the same code again makes its next version,
        and packages already sold keep theirs."""
        return packages.create_package(db.session(), body)

    @requires(ANY_KEY)
    @blp.doc(security=BEARER)
    @blp.response(200, PackageListSchema())
    @problems(blp)
    def get(self) -> dict[str, Any]:
        """The packages on sale: each code's current version."""
        return {"data": packages.list_packages(db.session()), "has_more": False}


@blp.route("/patients/<patient_id>/packages")
class PatientPackagesView(MethodView):
    @requires("invoices:write")
    @blp.doc(security=BEARER, parameters=[IDEMPOTENCY_HEADER])
    @blp.arguments(PatientPathSchema(), location="path", as_kwargs=True)
    @blp.arguments(SellPackageRequestSchema())
    @blp.response(201, PatientPackageSchema())
    @problems(blp, *WITH_A_BODY, 409)
    def post(self, body: dict[str, Any], patient_id: str) -> dict[str, Any]:
        """Sell a package to the patient: an invoice for it, to pay like any other; its
        credits can be used once it is paid."""
        session = db.session()
        sold = packages.sell(session, patient_id, body, idempotency_request(), zone=clinic_zone())
        return _sold(credits.statement(session, patient_id), sold.id)


@blp.route("/patients/<patient_id>/credits")
class CreditsView(MethodView):
    @requires("invoices:read")
    @blp.doc(security=BEARER)
    @blp.arguments(PatientPathSchema(), location="path", as_kwargs=True)
    @blp.response(200, CreditsSchema())
    @problems(blp)
    def get(self, patient_id: str) -> dict[str, Any]:
        """The patient's credits: what is available, held and when it expires, each
        package, and every movement that made the balance."""
        made = credits.statement(db.session(), patient_id)
        return {
            "patient_id": patient_id,
            "as_of": made.as_of,
            "available": credit_rules.as_credits(made.available),
            "reserved": credit_rules.as_credits(made.reserved),
            "next_expiry": made.next_expiry,
            "packages": [_package(held) for held in made.packages],
            "movements": made.movements,
        }


@blp.route("/patients/<patient_id>/packages/<package_id>/refunds")
class CreditRefundsView(MethodView):
    @requires("refunds:write")
    @blp.doc(security=BEARER, parameters=REQUIRED_KEY)
    @blp.arguments(PatientPackagePathSchema(), location="path", as_kwargs=True)
    @blp.arguments(CreditRefundRequestSchema())
    @blp.response(201, CreditRefundSchema())
    @problems(blp, *WITH_A_BODY, *CALLS_STRIPE, 404, 409)
    def post(self, body: dict[str, Any], patient_id: str, package_id: str) -> dict[str, Any]:
        """Refund the package's unused credits (neither held, used nor expired) as their
        share of what was paid; never more than was paid."""
        request = idempotency_request(required=True)
        assert request is not None
        session = db.session()
        made = packages.refund_unused(
            session, gateway(), patient_id, package_id, body["reason"], request
        ).refund
        return {
            "id": made.id,
            "patient_package_id": made.patient_package_id,
            "credits": credit_rules.as_credits(made.half_credits),
            "amount": made.amount,
            "currency": made.currency,
            "reason": made.reason,
            "refund": session.get(Refund, made.refund_id) if made.refund_id else None,
            "created_at": made.created_at,
        }


def _sold(made: credits.Statement, package_id: str) -> dict[str, Any]:
    return next(_package(held) for held in made.packages if held.package.id == package_id)


def _package(held: credits.PackageCredits) -> dict[str, Any]:
    sold, balance = held.package, held.balance
    total = sold.half_credits
    return {
        "id": sold.id,
        "patient_id": sold.patient_id,
        "code": sold.code,
        "name": sold.name,
        "status": held.status,
        "iv_credits": credit_rules.as_credits(total),
        "amount": sold.amount,
        "currency": sold.currency,
        "invoice_id": sold.invoice_id,
        "invoice": sold.invoice,
        "sold_at": sold.sold_at,
        "paid_at": sold.paid_at,
        "expires_at": sold.expires_at,
        "credits": {
            "total": credit_rules.as_credits(balance.total),  # 0 until it is paid
            "available": credit_rules.as_credits(balance.available),
            "reserved": credit_rules.as_credits(balance.reserved),
            "used": credit_rules.as_credits(balance.used),
            "refunded": credit_rules.as_credits(balance.refunded),
            "expired": credit_rules.as_credits(balance.expired),
            "withdrawn": credit_rules.as_credits(balance.withdrawn),
        },
    }
