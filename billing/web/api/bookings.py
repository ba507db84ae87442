"""Bookings after the quote: attendance, cancellations, and the booking as it stands."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask.views import MethodView

from billing.adapters import db
from billing.adapters.providers import gateway
from billing.services.bookings import lifecycle
from billing.web.api.blueprint import Blueprint
from billing.web.api.common import BEARER, IDEMPOTENCY_HEADER, idempotency_request
from billing.web.api.spec import CALLS_STRIPE, WITH_A_BODY, problems
from billing.web.auth import check_scope, requires
from schemas.bookings import AttendanceRequestSchema, BookingSchema, CancellationRequestSchema

blp = Blueprint(
    "bookings", __name__, url_prefix="/v1/bookings", description="Bookings after the quote"
)
REQUIRED_KEY = [{**IDEMPOTENCY_HEADER, "required": True}]


def settings() -> lifecycle.Settings:
    """Stripe, and how fee invoices' pay links are made, from the app's configuration."""
    return lifecycle.settings_from(current_app.config, gateway)


@blp.route("/<booking_id>")
class BookingView(MethodView):
    @requires("bookings:write", "invoices:read")
    @blp.doc(security=BEARER)
    @blp.response(200, BookingSchema())
    @problems(blp, 404)
    def get(self, booking_id: str) -> lifecycle.BookingView:
        """The booking's state, patients, invoices, attendance, cancellations and fees."""
        return lifecycle.get_booking(db.session(), booking_id)


@blp.route("/<booking_id>/attendance")
class AttendanceView(MethodView):
    @requires("bookings:write")
    @blp.doc(security=BEARER, parameters=REQUIRED_KEY)
    @blp.arguments(AttendanceRequestSchema())
    @blp.response(200, BookingSchema())
    @problems(blp, *WITH_A_BODY, *CALLS_STRIPE, 404, 409)
    def post(self, body: dict[str, Any], booking_id: str) -> lifecycle.BookingView:
        """Mark patients attended or no-show (a no-show costs the policy's fee); marking
        again with the other status corrects it and reverses the fee. Clinical staff may
        record each visit's `diagnosis_codes` (ICD-10-CM) and `rendering_provider` (an
        NPI) at the same time, with a key that also holds clinical:write: kept for the
        visit's superbill and claim, never in the booking's events."""
        if any("diagnosis_codes" in m or "rendering_provider" in m for m in body["patients"]):
            check_scope("clinical:write", "recording diagnoses")
        request = idempotency_request(required=True)
        assert request is not None
        return lifecycle.mark_attendance(
            db.session(), settings(), booking_id, body["patients"], request
        )


@blp.route("/<booking_id>/cancellations")
class CancellationsView(MethodView):
    @requires("bookings:write")
    @blp.doc(security=BEARER, parameters=REQUIRED_KEY)
    @blp.arguments(CancellationRequestSchema())
    @blp.response(200, BookingSchema())
    @problems(blp, *WITH_A_BODY, *CALLS_STRIPE, 404, 409)
    def post(self, body: dict[str, Any], booking_id: str) -> lifecycle.BookingView:
        """Cancel one patient's place or the whole booking: unpaid invoices are voided, paid
        ones refunded in full; a patient's late cancellation costs the policy's fee."""
        request = idempotency_request(required=True)
        assert request is not None
        return lifecycle.cancel(db.session(), settings(), booking_id, body, request)
