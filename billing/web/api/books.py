"""Closing the books: a month whose accounting journal no longer changes."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from billing.adapters import db
from billing.services.finance import journal
from billing.web.api.blueprint import Blueprint
from billing.web.api.common import BEARER
from billing.web.api.spec import WITH_A_BODY, problems
from billing.web.auth import requires
from billing.web.calendar import clinic_zone
from billing.web.exports import journal_chart
from schemas.journal import ClosedMonthSchema, CloseMonthRequestSchema

blp = Blueprint("books", __name__, url_prefix="/v1/closed-months", description="Closing the books")


@blp.route("")
class ClosedMonthsView(MethodView):
    @requires("books:close")
    @blp.doc(security=BEARER)
    @blp.arguments(CloseMonthRequestSchema())
    @blp.response(201, ClosedMonthSchema())
    @blp.alt_response(
        200,
        schema=ClosedMonthSchema(),
        success=True,
        description="The month was closed before: that closing",
    )
    @problems(blp, *WITH_A_BODY, 409)
    def post(self, body: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """Close a month that is over: its journal is stored and never changes; what comes
        later for it goes to the first open month. Months with money close in order."""
        closing = journal.close_month(db.session(), body["month"], clinic_zone(), journal_chart())
        answer = {
            "month": closing.month,
            "status": "closed",
            "closed_at": closing.closed_at,
            "closed_by": closing.closed_by,
            "time_zone": closing.time_zone,
        }
        return answer, 201 if closing.created else 200
