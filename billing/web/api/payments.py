"""Payments and refunds of an invoice, and patients' saved cards."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import current_app
from flask.views import MethodView

from billing.adapters import db
from billing.adapters.models import Payment, Refund
from billing.adapters.providers import gateway, gateway_if_configured
from billing.adapters.stripe_gateway import Card
from billing.domain.money import Money
from billing.services.integrations.settings import can_email
from billing.services.invoicing import paylinks
from billing.services.payments import charges as payments
from billing.services.payments import online, patients, received, refunds
from billing.web.api.blueprint import Blueprint
from billing.web.api.common import BEARER, IDEMPOTENCY_HEADER, idempotency_request, public_url
from billing.web.api.spec import CALLS_STRIPE, WITH_A_BODY, problems
from billing.web.auth import check_scope, requires
from schemas.fields import EmptyBodySchema
from schemas.invoices import (
    BankAccountRequestSchema,
    BankAccountSchema,
    CardListSchema,
    CardPathSchema,
    CardRequestSchema,
    CardSchema,
    PatientPathSchema,
    PaymentPathSchema,
    PaymentRequestSchema,
    PaymentSchema,
    RefundRequestSchema,
    RefundSchema,
    ReversalRequestSchema,
    SetupIntentSchema,
)

blp = Blueprint("payments", __name__, url_prefix="/v1", description="Payments and refunds")
REQUIRED_KEY = [{**IDEMPOTENCY_HEADER, "required": True}]


@blp.route("/invoices/<invoice_id>/payments")
class PaymentsView(MethodView):
    @requires("payments:write", "payments:record")
    @blp.doc(security=BEARER, parameters=REQUIRED_KEY)
    @blp.arguments(PaymentRequestSchema())
    @blp.response(201, PaymentSchema())
    @problems(blp, *WITH_A_BODY, *CALLS_STRIPE, 404, 409)
    def post(self, body: dict[str, Any], invoice_id: str) -> Payment | dict[str, Any]:
        """Collect all or part of what the invoice owes: charge the card on file (402 when
        declined), debit the saved bank account (`bank_debit`: 201 `processing`, for days),
        make a pay link for the patient (`payments:write`), record money the
        desk received as cash, a check or through another terminal, or apply the
        patient's credit (`account_credit`) or a gift card (`gift_card` with its `code`)
        (`payments:record`)."""
        request = idempotency_request(required=True)
        assert request is not None
        if body["method"] in received.RECORDED_METHODS:
            check_scope("payments:record", "recording money received at the desk")
            return received.record_payment(
                db.session(),
                gateway_if_configured(),
                invoice_id,
                body["method"],
                body.get("amount"),
                body.get("reference"),
                body.get("received_at"),
                request,
                code=body.get("code"),
            )
        check_scope("payments:write", "charging a card or making a pay link")
        if body["method"] == "bank_debit":
            return payments.pay_by_bank_debit(
                db.session(), gateway(), invoice_id, request, amount=body.get("amount")
            )
        if body["method"] == "online":
            part = body.get("amount")  # the page opens asking for that much
            issued = paylinks.create_pay_link(
                db.session(),
                current_app.config["SECRET_KEY"],
                invoice_id,
                timedelta(days=current_app.config["PAY_LINK_TTL_DAYS"]),
                request,
                email=body["send_email"] and can_email(current_app.config),
                check=None
                if part is None
                else online.link_part_check(part, current_app.config["PAY_PAGE_MINIMUMS"]),
            )
            shown = Money(part, issued.invoice.currency) if part is not None else None
            return {
                "method": "online",
                "invoice_id": issued.invoice.id,
                "status": "awaiting_patient",
                "amount": part if part is not None else issued.invoice.balance_due,
                "currency": issued.invoice.currency,
                "invoice": issued.invoice,
                "pay_url": public_url(f"/pay/{issued.token}")
                + (f"?amount={shown.major_units()}" if shown else ""),
                "pay_url_expires_at": issued.link.expires_at,
                "created_at": issued.link.created_at,
                "email_queued": issued.emailed,
            }
        return payments.pay_with_card_on_file(
            db.session(), gateway(), invoice_id, request, amount=body.get("amount")
        )


@blp.route("/invoices/<invoice_id>/payments/<payment_id>/reversals")
class ReversalsView(MethodView):
    @requires("payments:record")
    @blp.doc(security=BEARER, parameters=REQUIRED_KEY)
    @blp.arguments(PaymentPathSchema(), location="path", as_kwargs=True)
    @blp.arguments(ReversalRequestSchema())
    @blp.response(201, PaymentSchema())
    @problems(blp, *WITH_A_BODY, 404, 409)
    def post(self, body: dict[str, Any], invoice_id: str, payment_id: str) -> Payment:
        """Money recorded as received that never arrived (a check that bounced): reverse
        it. What it paid is owed again; the payment reads `reversed`. Reversing twice
        changes nothing; a payment made through Stripe is refunded instead (409)."""
        request = idempotency_request(required=True)
        assert request is not None
        return received.reverse_payment(
            db.session(), invoice_id, payment_id, body["reason"], request
        )


@blp.route("/invoices/<invoice_id>/refunds")
class RefundsView(MethodView):
    @requires("refunds:write")
    @blp.doc(security=BEARER, parameters=REQUIRED_KEY)
    @blp.arguments(RefundRequestSchema())
    @blp.response(201, RefundSchema())
    @problems(blp, *WITH_A_BODY, *CALLS_STRIPE, 404, 409)
    def post(self, body: dict[str, Any], invoice_id: str) -> Refund:
        """Refund part or all of what was paid; never more."""
        request = idempotency_request(required=True)
        assert request is not None
        return refunds.refund_invoice(
            db.session(), gateway(), invoice_id, body["amount"], body["reason"], request
        )


def patient_in_path() -> Any:
    """The path's patient id, checked as bookings check it (never longer than we store)."""
    return blp.arguments(PatientPathSchema(), location="path", as_kwargs=True)


@blp.route("/patients/<patient_id>/setup-intents")
class SetupIntentsView(MethodView):
    @requires("payments:write")
    @blp.doc(security=BEARER)
    @patient_in_path()
    @blp.arguments(EmptyBodySchema())
    @blp.response(201, SetupIntentSchema())
    @problems(blp, *WITH_A_BODY, *CALLS_STRIPE, 404)
    def post(self, _body: dict[str, Any], patient_id: str) -> dict[str, str]:
        """Start saving a card: a SetupIntent whose client secret the patient's browser
        confirms with Stripe.js; then send its id to `payment-methods`."""
        setup = patients.start_setup_intent(db.session(), gateway(), patient_id)
        return {
            "patient_id": patient_id,
            "setup_intent": setup.id,
            "client_secret": setup.client_secret,
        }


@blp.route("/patients/<patient_id>/payment-methods")
class PaymentMethodsView(MethodView):
    @requires("payments:write")
    @blp.doc(security=BEARER)
    @patient_in_path()
    @blp.arguments(CardRequestSchema())
    @blp.response(201, CardSchema())
    @problems(blp, *WITH_A_BODY, *CALLS_STRIPE, 404, 409)
    def post(self, body: dict[str, Any], patient_id: str) -> dict[str, Any]:
        """Make a card set up with Stripe the patient's card on file: the SetupIntent the
        patient's browser confirmed, or a PaymentMethod that is set up now through one."""
        session = db.session()
        card = patients.save_card(
            session,
            gateway(),
            patient_id,
            payment_method_id=body.get("payment_method"),
            setup_intent_id=body.get("setup_intent"),
            consent=body.get("consent"),
            hsa_fsa=body["hsa_fsa"],
        )
        return _card(card, card.id, patients.consents(session, patient_id))

    @requires("payments:write")
    @blp.doc(security=BEARER)
    @patient_in_path()
    @blp.response(200, CardListSchema())
    @problems(blp, *CALLS_STRIPE)
    def get(self, patient_id: str) -> dict[str, Any]:
        """The patient's saved cards: brand, last four digits, expiry."""
        session = db.session()
        default_id = patients.default_card_id(session, patient_id)
        cards = patients.list_cards(session, gateway(), patient_id)
        consents = patients.consents(session, patient_id)
        return {"data": [_card(card, default_id, consents) for card in cards], "has_more": False}


@blp.route("/patients/<patient_id>/bank-accounts")
class BankAccountsView(MethodView):
    @requires("payments:write")
    @blp.doc(security=BEARER)
    @patient_in_path()
    @blp.arguments(BankAccountRequestSchema())
    @blp.response(201, BankAccountSchema())
    @problems(blp, *WITH_A_BODY, *CALLS_STRIPE, 404, 409)
    def post(self, body: dict[str, Any], patient_id: str) -> dict[str, Any]:
        """Make a US bank account (a PaymentMethod Stripe.js made through Financial
        Connections) the patient's bank account on file, set up at Stripe under the mandate
        the patient accepted; then `bank_debit` payments debit it (US dollars only)."""
        session = db.session()
        account = patients.save_bank_account(
            session, gateway(), patient_id, body["payment_method"], body["mandate"]
        )
        consent = patients.consents(session, patient_id)[account.id]
        return {
            "id": account.id,
            "bank_name": account.brand,
            "last4": account.last4,
            "mandate": consent.mandate_id,
        }


@blp.route("/patients/<patient_id>/payment-methods/<payment_method_id>")
class PaymentMethodView(MethodView):
    @requires("payments:write")
    @blp.doc(security=BEARER)
    @blp.arguments(CardPathSchema(), location="path", as_kwargs=True)
    @blp.response(204)
    @problems(blp, *CALLS_STRIPE, 404, 409)
    def delete(self, patient_id: str, payment_method_id: str) -> None:
        """Remove a saved card: detached at Stripe, never charged again. A card that a
        payment plan or a membership charges is kept: 409 `card_in_use`."""
        patients.remove_card(db.session(), gateway(), patient_id, payment_method_id)


def _card(card: Card, default_id: str | None, consents: dict[str, Any]) -> dict[str, Any]:
    consent = consents.get(card.id)
    agreed = None
    if consent is not None and consent.consent_text:
        agreed = {
            "text": consent.consent_text,
            "agreed_at": consent.agreed_at,
            "ip_address": consent.ip_address,
            "user_agent": consent.user_agent,
            "invoice_id": consent.invoice_id,
            "setup_intent": consent.setup_intent_id,
            "max_per_charge": consent.max_per_charge,
            "max_per_year": consent.max_per_year,
            "expires_on": consent.expires_on,
        }
    return {
        "id": card.id,
        "brand": card.brand,
        "last4": card.last4,
        "exp_month": card.exp_month,
        "exp_year": card.exp_year,
        "default": card.id == default_id,
        "consent": agreed,
        "hsa_fsa": bool(consent and consent.hsa_fsa),
    }
