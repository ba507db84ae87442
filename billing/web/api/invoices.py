"""Invoices: made from quotes, listed, read and voided."""

from __future__ import annotations

from typing import Any

from flask import Response, request
from flask.views import MethodView

from billing.adapters import db
from billing.adapters.models import Invoice
from billing.adapters.providers import gateway
from billing.adapters.schedule_models import PaymentPlan
from billing.services.bookings import lifecycle
from billing.services.invoicing import invoices, receipts
from billing.services.payments import online, plans
from billing.web.api.blueprint import Blueprint
from billing.web.api.bookings import settings
from billing.web.api.common import BEARER
from billing.web.api.spec import CALLS_STRIPE, WITH_A_BODY, problems
from billing.web.auth import current_key, requires
from billing.web.calendar import clinic_as_consents_name_it, clinic_zone
from billing.web.receipts import pdf_response
from schemas.fields import EmptyBodySchema
from schemas.invoices import (
    InvoiceListSchema,
    InvoiceQuerySchema,
    InvoiceRequestSchema,
    InvoiceSchema,
)
from schemas.plans import PlanRequestSchema, PlanSchema

blp = Blueprint("invoices", __name__, url_prefix="/v1/invoices", description="Invoices")


@blp.route("")
class InvoicesView(MethodView):
    @requires("invoices:write")
    @blp.doc(security=BEARER)
    @blp.arguments(InvoiceRequestSchema())
    @blp.response(201, InvoiceListSchema())
    @blp.alt_response(
        200,
        schema=InvoiceListSchema(),
        success=True,
        description="The quote was invoiced before: the same invoices",
    )
    @problems(blp, *WITH_A_BODY, 404, 409)
    def post(self, body: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """Invoice each patient of a quote; a second call returns the same invoices (200).

        A newer quote of a booking already invoiced supersedes the old one: its unpaid
        invoices are voided and its paid ones refunded in full."""
        session = db.session()
        batch = invoices.create_invoices(session, body["quote_id"], zone=clinic_zone())
        booking_id = batch.invoices[0].booking_id if batch.invoices else None
        if booking_id is not None:
            lifecycle.settle(session, settings(), booking_id, current_key().id)
        return {"data": batch.invoices, "has_more": False}, 201 if batch.created else 200

    @requires("invoices:read")
    @blp.doc(security=BEARER)
    @blp.arguments(InvoiceQuerySchema(), location="query")
    @blp.response(200, InvoiceListSchema())
    @problems(blp, 404, 422)
    def get(self, query: dict[str, Any]) -> invoices.InvoicePage:
        """List invoices, newest first, with filters and a `starting_after` cursor."""
        return invoices.list_invoices(db.session(), **query)


@blp.route("/<invoice_id>")
class InvoiceView(MethodView):
    @requires("invoices:read")
    @blp.doc(security=BEARER)
    @blp.response(200, InvoiceSchema())
    @problems(blp, 404)
    def get(self, invoice_id: str) -> Invoice:
        """Read one invoice with what has been paid and refunded."""
        return invoices.get_invoice(db.session(), invoice_id)


# The receipt is a PDF; asked for as application/octet-stream (the download type generated
# clients know), the same bytes come labelled so.
RECEIPT_TYPES = ["application/pdf", "application/octet-stream"]
BINARY = {"schema": {"type": "string", "format": "binary"}}


@blp.route("/<invoice_id>/receipt.pdf")
class ReceiptView(MethodView):
    @requires("invoices:read")
    @blp.doc(
        security=BEARER,
        responses={
            "200": {
                "description": "The receipt, a PDF (`Accept: application/octet-stream` labels "
                "the same bytes as such)",
                "content": dict.fromkeys(RECEIPT_TYPES, BINARY),
            }
        },
    )
    @problems(blp, 404, 409)
    def get(self, invoice_id: str) -> Response:
        """The receipt (superbill) of an invoice paid in all or in part, as a PDF: each
        payment, and what is still due."""
        response = pdf_response(*receipts.paid_invoice(db.session(), invoice_id))
        response.mimetype = request.accept_mimetypes.best_match(RECEIPT_TYPES, RECEIPT_TYPES[0])
        return response


@blp.route("/<invoice_id>/void")
class VoidView(MethodView):
    @requires("invoices:write")
    @blp.doc(security=BEARER)
    @blp.arguments(EmptyBodySchema())
    @blp.response(200, InvoiceSchema())
    @problems(blp, *WITH_A_BODY, 404, 409, 502)
    def post(self, _body: dict[str, Any], invoice_id: str) -> Invoice:
        """Void an invoice on which nothing has been paid; its pay page stops collecting."""
        return online.void_invoice(db.session(), gateway, invoice_id)


@blp.route("/<invoice_id>/plan")
class PlanView(MethodView):
    @requires("payments:write")
    @blp.doc(security=BEARER)
    @blp.arguments(PlanRequestSchema())
    @blp.response(201, PlanSchema())
    @problems(blp, *WITH_A_BODY, *CALLS_STRIPE, 404, 409)
    def post(self, body: dict[str, Any], invoice_id: str) -> PaymentPlan:
        """Put what the invoice owes on a payment plan, charged to a saved card on the
        instalments' days (a plan it had is replaced; what that one collected stays paid).
        The answer holds the consent's words, recorded with the card."""
        consent = body["consent"]
        terms = plans.Terms(
            card=body["payment_method"],
            count=body.get("instalments"),
            interval=body.get("interval"),
            first=body.get("first_at"),
            explicit=[(part["due_at"], part["amount"]) for part in body.get("schedule", [])],
            consent=plans.Consent(**consent),
        )
        clinic = clinic_as_consents_name_it()
        return plans.create_plan(
            db.session(), gateway(), invoice_id, terms, clinic, current_key().id
        )

    @requires("payments:write")
    @blp.doc(security=BEARER)
    @blp.response(200, PlanSchema())
    @problems(blp, 404, 409)
    def delete(self, invoice_id: str) -> PaymentPlan:
        """Cancel the invoice's plan: nothing more is charged; what it collected stays
        paid, and what is unpaid stays owed."""
        return plans.cancel_plan(db.session(), invoice_id)
