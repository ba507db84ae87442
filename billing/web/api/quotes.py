"""Quotes: booking systems price a booking and read it back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Response, current_app
from flask.views import MethodView

from billing.adapters import db
from billing.adapters.models import Quote
from billing.services.pricing import quotes
from billing.web.api.blueprint import Blueprint
from billing.web.api.common import BEARER, IDEMPOTENCY_HEADER, idempotency_request, price_book
from billing.web.api.spec import WITH_A_BODY, problems
from billing.web.auth import requires
from schemas.quotes import QuoteRequestSchema, QuoteSchema


def example_booking() -> dict[str, Any]:
    """A booking the service accepts, a week from when the app started (for the docs)."""
    when = (datetime.now(UTC) + timedelta(days=7)).replace(hour=17, minute=0, second=0)
    return {
        "booking_id": "BK-2026-0412",
        "session_type": "iv_individual",
        "scheduled_at": when.replace(microsecond=0).isoformat(),
        "currency": "usd",
        "patients": [{"patient_id": "P-1001", "name": "Ana Ruiz", "email": "ana@example.org"}],
    }


blp = Blueprint("quotes", __name__, url_prefix="/v1/quotes", description="Quotes for bookings")


@blp.route("")
class QuotesView(MethodView):
    @requires("quotes:write")
    @blp.doc(security=BEARER, parameters=[IDEMPOTENCY_HEADER])
    @blp.arguments(QuoteRequestSchema(), example=example_booking())
    @blp.response(201, QuoteSchema())
    @problems(blp, *WITH_A_BODY, 409)
    def post(self, booking: dict[str, Any]) -> Quote | Response:
        """Price a booking under the clinic's rules."""
        config = current_app.config
        made = quotes.create_quote(
            db.session(),
            booking,
            timedelta(hours=config["QUOTE_TTL_HOURS"]),
            price_book(),
            idempotency_request(),
            max_discount_percent=config["MAX_DISCOUNT_PERCENT"],
        )
        if isinstance(made, quotes.CreatedQuote):  # dumped once already, for its event
            return Response(made.body, status=201, mimetype="application/json")
        return made


@blp.route("/<quote_id>")
class QuoteView(MethodView):
    @requires("quotes:write", "invoices:read")
    @blp.doc(security=BEARER)
    @blp.response(200, QuoteSchema())
    @problems(blp, 404)
    def get(self, quote_id: str) -> Quote:
        """Read one quote."""
        return quotes.get_quote(db.session(), quote_id)
