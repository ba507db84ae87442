"""The audit trail, for people and systems that must know who changed what."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from billing.adapters import db
from billing.services.access import audit
from billing.web.api.blueprint import Blueprint
from billing.web.api.common import BEARER
from billing.web.api.spec import problems
from billing.web.auth import requires
from schemas.audit import AuditEventListSchema, AuditQuerySchema

blp = Blueprint("audit", __name__, url_prefix="/v1/audit-events", description="Audit trail")


@blp.route("")
class AuditEventsView(MethodView):
    @requires("audit:read")
    @blp.doc(security=BEARER)
    @blp.arguments(AuditQuerySchema(), location="query")
    @blp.response(200, AuditEventListSchema())
    @problems(blp, 422)
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """Every change, newest first: filter by action, actor, object or time."""
        page = audit.list_events(db.session(), **query)
        return {
            "data": [audit.as_dict(event) for event in page.data],
            "has_more": page.has_more,
        }
