"""The audit trail on the finance dashboard: who changed what, newest first."""

from __future__ import annotations

from flask import Blueprint, Flask, Response, request

from billing.adapters import db
from billing.adapters.models import AuditEvent, StaffUser
from billing.domain.money import Money
from billing.services.access import audit
from billing.web.pages import security_headers
from billing.web.pages.finance import render_page, signed_in

blp = Blueprint("finance_audit", __name__, url_prefix="/finance/audit")
FILTERS = ("action", "actor", "object_id")
PAGE_SIZE = 50


def init_app(app: Flask) -> None:
    app.register_blueprint(blp)


AMOUNTS = ("amount", "total", "iv_individual_amount")


def _readable(event: AuditEvent) -> list[tuple[str, str]]:
    """The event's details as a clerk reads them: amounts in their currency, no blanks."""
    details = audit.as_dict(event)["details"]
    currency = details.get("currency")
    shown = []
    for name, value in sorted(details.items()):
        if value is None or name == "invoice_id":  # the object column links the invoice
            continue
        if name == "currency" and any(key in details for key in AMOUNTS):
            continue
        if name in AMOUNTS and isinstance(value, int) and isinstance(currency, str):
            value = Money(value, currency).format()
        shown.append((name.replace("_", " "), str(value)))
    return shown


@blp.after_request
def _headers(response: Response) -> Response:
    return security_headers(response)


@blp.get("")
@signed_in
def trail(user: StaffUser) -> Response:
    """Fifty events a page, filtered by action (or `invoice.` for a kind), actor or object."""
    filters = {name: request.args.get(name, "").strip()[:254] for name in FILTERS}
    starting_after = request.args.get("starting_after", type=int)
    if starting_after is not None and not 0 <= starting_after < 2**63:
        starting_after = None  # no event has such an id (and the database's ints end there)
    page = audit.list_events(
        db.session(),
        limit=PAGE_SIZE,
        starting_after=starting_after,
        action=filters["action"] or None,
        actor=filters["actor"] or None,
        object_id=filters["object_id"] or None,
    )
    return render_page(
        "finance/audit.html",
        200,
        user=user,
        filters=filters,
        events=[{**audit.as_dict(event), "shown": _readable(event)} for event in page.data],
        older=page.data[-1].id if page.has_more else None,
    )
