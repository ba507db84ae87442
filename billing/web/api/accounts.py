"""Credit notes and write-offs of an invoice, a patient's account, and gift cards."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import current_app
from flask.views import MethodView

from billing.adapters import db
from billing.adapters.account_models import AccountMovement
from billing.adapters.models import InvoiceAdjustment, Refund
from billing.adapters.providers import gateway, gateway_if_configured
from billing.domain.errors import Conflict
from billing.services.integrations.settings import can_email
from billing.services.payments import account, adjustments, autopay, credit_requests, gift_cards
from billing.services.portal import access as portal
from billing.web.api.blueprint import Blueprint
from billing.web.api.common import BEARER, IDEMPOTENCY_HEADER, idempotency_request
from billing.web.api.payments import patient_in_path
from billing.web.api.spec import CALLS_STRIPE, WITH_A_BODY, problems
from billing.web.auth import requires
from billing.web.calendar import clinic_contact, clinic_zone
from schemas.accounts import (
    AccountMovementSchema,
    AccountRefundRequestSchema,
    AccountSchema,
    GoodwillRequestSchema,
)
from schemas.fields import EmptyBodySchema
from schemas.gift_cards import GiftCardPathSchema, GiftCardRequestSchema, GiftCardSchema
from schemas.invoices import (
    AdjustmentSchema,
    CreditNoteRequestSchema,
    RefundSchema,
    WriteOffRequestSchema,
)
from schemas.plans import AutopayRequestSchema, AutopaySchema
from schemas.portal import (
    CreditBackRequestListSchema,
    CreditBackRequestPathSchema,
    CreditBackRequestQuerySchema,
    CreditBackRequestSchema,
    DeclineRequestSchema,
    PortalLinkSchema,
)

blp = Blueprint(
    "accounts",
    __name__,
    url_prefix="/v1",
    description="Credit notes, write-offs, patients' accounts and gift cards",
)
REQUIRED_KEY = [{**IDEMPOTENCY_HEADER, "required": True}]


@blp.route("/invoices/<invoice_id>/credit-notes")
class CreditNotesView(MethodView):
    @requires("invoices:adjust")
    @blp.doc(security=BEARER, parameters=REQUIRED_KEY)
    @blp.arguments(CreditNoteRequestSchema())
    @blp.response(201, AdjustmentSchema())
    @problems(blp, *WITH_A_BODY, *CALLS_STRIPE, 404, 409)
    def post(self, body: dict[str, Any], invoice_id: str) -> InvoiceAdjustment:
        """Lower what an issued invoice owes (it is never edited). What was already paid
        beyond the new amount goes back to the cards it came from, or stays with the
        patient as credit, as the clinic's OVERPAYMENTS setting says (money received at
        the desk always becomes credit)."""
        request = idempotency_request(required=True)
        assert request is not None
        return adjustments.credit_note(
            db.session(),
            gateway_if_configured(),
            invoice_id,
            body["amount"],
            body["reason"],
            body["approved_by"],
            request,
        )


@blp.route("/invoices/<invoice_id>/write-offs")
class WriteOffsView(MethodView):
    @requires("invoices:adjust")
    @blp.doc(security=BEARER, parameters=REQUIRED_KEY)
    @blp.arguments(WriteOffRequestSchema())
    @blp.response(201, AdjustmentSchema())
    @problems(blp, *WITH_A_BODY, *CALLS_STRIPE, 404, 409)
    def post(self, body: dict[str, Any], invoice_id: str) -> InvoiceAdjustment:
        """Write off what an invoice still owes (by default all of it): a balance the
        clinic will not collect. Once nothing is owed the invoice reads `written_off` and
        takes no more payments."""
        request = idempotency_request(required=True)
        assert request is not None
        return adjustments.write_off(
            db.session(),
            gateway_if_configured(),
            invoice_id,
            body.get("amount"),
            body["category"],
            body["reason"],
            body["approved_by"],
            request,
        )


@blp.route("/patients/<patient_id>/account")
class AccountView(MethodView):
    @requires("invoices:read")
    @blp.doc(security=BEARER)
    @patient_in_path()
    @blp.response(200, AccountSchema())
    @problems(blp)
    def get(self, patient_id: str) -> account.AccountView:
        """What the patient owes (open invoices, each with its balance due) and the credit
        they hold, per currency, with the latest movements of that credit. Credit pays
        their oldest open invoices within a minute; staff may apply it to any with the
        payment method `account_credit`."""
        return account.account(db.session(), patient_id)


@blp.route("/patients/<patient_id>/autopay")
class AutopayView(MethodView):
    @requires("payments:write")
    @blp.doc(security=BEARER)
    @patient_in_path()
    @blp.arguments(AutopayRequestSchema())
    @blp.response(200, AutopaySchema())
    @problems(blp, *WITH_A_BODY, *CALLS_STRIPE, 404)
    def put(self, body: dict[str, Any], patient_id: str) -> autopay.AutopayView:
        """Turn the patient's AutoPay on or off: their open balances charged to the card
        when attendance is marked, and nightly for bills whose visit has passed (the
        consent's words are recorded; the answer shows them)."""
        return autopay.set_autopay(
            db.session(),
            lambda card: gateway().card_of(card),  # Stripe is asked only when turning it on
            patient_id,
            body["enabled"],
            body.get("payment_method"),
            autopay.Consent(**body["consent"]),
            current_app.config["CLINIC_NAME"],
            clinic_contact(),
        )

    @requires("invoices:read")
    @blp.doc(security=BEARER)
    @patient_in_path()
    @blp.response(200, AutopaySchema())
    @problems(blp, 404)
    def get(self, patient_id: str) -> autopay.AutopayView:
        """Whether the patient is on AutoPay (their own setting, or the clinic's)."""
        return autopay.autopay_of(db.session(), patient_id)


@blp.route("/gift-cards")
class GiftCardsView(MethodView):
    @requires("invoices:write")
    @blp.doc(security=BEARER, parameters=REQUIRED_KEY)
    @blp.arguments(GiftCardRequestSchema())
    @blp.response(201, GiftCardSchema())
    @problems(blp, *WITH_A_BODY, 409)
    def post(self, body: dict[str, Any]) -> gift_cards.GiftCardView:
        """Sell a gift card: the answer holds its `code`, shown this once (only a hash is
        kept: give it to the buyer now), and the `invoice_id` the buyer pays. It can be
        spent once that invoice is paid, on any invoice, by whoever holds the code."""
        request = idempotency_request(required=True)
        assert request is not None
        return gift_cards.sell(db.session(), body, request, zone=clinic_zone())


@blp.route("/gift-cards/<code>")
class GiftCardView(MethodView):
    @requires("invoices:read")
    @blp.doc(security=BEARER)
    @blp.arguments(GiftCardPathSchema(), location="path", as_kwargs=True)
    @blp.response(200, GiftCardSchema())
    @problems(blp, 404)
    def get(self, code: str) -> gift_cards.GiftCardView:
        """A gift card by its code: what is left on it and whether it can be spent."""
        session = db.session()
        found = gift_cards.view(session, gift_cards.find(session, code))
        session.commit()
        return found


@blp.route("/patients/<patient_id>/account/credits")
class AccountCreditsView(MethodView):
    @requires("invoices:adjust")
    @blp.doc(security=BEARER, parameters=REQUIRED_KEY)
    @patient_in_path()
    @blp.arguments(GoodwillRequestSchema())
    @blp.response(201, AccountMovementSchema())
    @problems(blp, *WITH_A_BODY, 409)
    def post(self, body: dict[str, Any], patient_id: str) -> AccountMovement:
        """Grant the patient goodwill credit (a service recovery): no money paid it, so it
        pays their bills like any credit but is never refunded to a card; with a reason
        and who approved it, in the audit trail, and in the journal as Goodwill Credits."""
        request = idempotency_request(required=True)
        assert request is not None
        return account.grant_goodwill(
            db.session(),
            patient_id,
            body["currency"],
            body["amount"],
            body["reason"],
            body["approved_by"],
            request,
        )


@blp.route("/patients/<patient_id>/account/refunds")
class AccountRefundsView(MethodView):
    @requires("refunds:write")
    @blp.doc(security=BEARER, parameters=REQUIRED_KEY)
    @patient_in_path()
    @blp.arguments(AccountRefundRequestSchema())
    @blp.response(201, RefundSchema())
    @problems(blp, *WITH_A_BODY, *CALLS_STRIPE, 409)
    def post(self, body: dict[str, Any], patient_id: str) -> Refund:
        """Give part or all of the patient's credit back to a card it came from (the card
        that paid an invoice whose overpayment or credit note made the credit), never more
        than that payment can give back: one card per refund. Credit from cash or a gift
        card is not refunded to a card."""
        request = idempotency_request(required=True)
        assert request is not None
        return account.refund_credit(
            db.session(),
            gateway(),
            patient_id,
            body["currency"],
            body["amount"],
            body["reason"],
            request,
        )


@blp.route("/patients/<patient_id>/portal-link")
class PortalLinkView(MethodView):
    @requires("payments:write")
    @blp.doc(security=BEARER)
    @patient_in_path()
    @blp.arguments(EmptyBodySchema())
    @blp.response(201, PortalLinkSchema())
    @problems(blp, *WITH_A_BODY, 404, 409)
    def post(self, _body: dict[str, Any], patient_id: str) -> portal.Invitation:
        """Email the patient a link that signs them in to their billing account (/account),
        at the address on their newest bill. It works once, within PORTAL_INVITE_HOURS,
        in any browser; the answer shows the address partly hidden. 409 `no_email` when
        the patient's bills have no address."""
        if not can_email(current_app.config):
            raise Conflict(
                "email_not_configured",
                "This service cannot send email now: set PUBLIC_BASE_URL (and SMTP_URL).",
            )
        lasts = timedelta(hours=current_app.config["PORTAL_INVITE_HOURS"])
        return portal.invite(db.session(), patient_id, lasts)


@blp.route("/credit-refund-requests")
class CreditRefundRequestsView(MethodView):
    @requires("refunds:write")
    @blp.doc(security=BEARER)
    @blp.arguments(CreditBackRequestQuerySchema(), location="query")
    @blp.response(200, CreditBackRequestListSchema())
    @problems(blp, 404, 422)
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """Patients' requests for their credit back (asked in the portal), oldest first,
        a page at a time (`limit`, `starting_after`): `?status=open` for those to
        answer. Refunding the credit (POST /v1/patients/{id}/account/refunds) answers a
        patient's open request."""
        found, more = credit_requests.listed(
            db.session(), query.get("status"), query["limit"], query.get("starting_after")
        )
        return {"data": found, "has_more": more}


@blp.route("/credit-refund-requests/<request_id>/decline")
class DeclineCreditRefundRequestView(MethodView):
    @requires("refunds:write")
    @blp.doc(security=BEARER)
    @blp.arguments(CreditBackRequestPathSchema(), location="path", as_kwargs=True)
    @blp.arguments(DeclineRequestSchema())
    @blp.response(200, CreditBackRequestSchema())
    @problems(blp, *WITH_A_BODY, 404, 409)
    def post(self, body: dict[str, Any], request_id: str) -> Any:
        """Answer a request without a refund (the credit stays the patient's, and pays
        their next bills), with a note saying why."""
        return credit_requests.decline(db.session(), request_id, body["note"])
