"""Charging an invoice: commit our intent, call Stripe, commit the outcome. Never twice.

A payment that Stripe may or may not have seen (a timeout, an outage, a crash between
the call and the outcome commit) is resolved by looking its PaymentIntent up by our
payment id, and only re-sent, with the same idempotency key, when Stripe has none.
"""

from __future__ import annotations

import time
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from billing import statuses
from billing.errors import Conflict, PaymentRequired, ServiceError
from billing.models import Invoice, Patient, Payment, utcnow
from billing.services import idempotency, ledger
from billing.services.idempotency import IdempotencyRequest
from billing.services.invoices import get_invoice
from billing.stripe_gateway import Card, Intent, StripeGateway

PENDING = "pending"  # recorded; Stripe's answer not yet committed
UNKNOWN = "unknown"  # the call to Stripe failed in transit: it may or may not have charged
REQUIRES_ACTION = "requires_action"  # 3-D Secure: the patient must authenticate
AWAITING_PATIENT = "awaiting_patient"  # an online payment: the pay page holds its intent
SUCCEEDED = "succeeded"
FAILED = "failed"
IN_FLIGHT = (PENDING, UNKNOWN, REQUIRES_ACTION)

REPLAY_WAIT = timedelta(seconds=20)  # a replay waits this long for the first request
STALE_AFTER = timedelta(minutes=2)  # a pending payment this old lost its request


def get_payment(session: Session, payment_id: str) -> Payment:
    return session.scalars(select(Payment).where(Payment.id == payment_id)).one()


def pay_with_card_on_file(
    session: Session, gateway: StripeGateway, invoice_id: str, request: IdempotencyRequest
) -> Payment:
    """Charge the patient's saved card off-session for the whole invoice."""
    claim = idempotency.claim(session, request, "payment")
    if claim.replay_of is not None:
        session.commit()
        return _replay(session, gateway, claim.replay_of)

    invoice = get_invoice(session, invoice_id, for_update=True)
    _check_payable(session, invoice)
    patient = session.scalars(
        select(Patient).where(Patient.patient_id == invoice.patient_id)
    ).first()
    if patient is None or not patient.default_payment_method_id or not patient.stripe_customer_id:
        raise Conflict(
            "no_card_on_file",
            f"Patient {invoice.patient_id} has no saved card; save one or send a pay link.",
        )
    payment = Payment(
        invoice_id=invoice.id,
        method="card_on_file",
        status=PENDING,
        amount=invoice.total,
        currency=invoice.currency,
        card_brand=patient.default_card_brand,
        card_last4=patient.default_card_last4,
    )
    session.add(payment)
    invoice.status = statuses.advance(invoice.status, statuses.PROCESSING)
    session.flush()
    idempotency.complete(session, claim, payment.id)
    session.commit()  # our intent is durable before Stripe hears of it
    return outcome(_send(session, gateway, payment.id))


def outcome(payment: Payment) -> Payment:
    """The payment, or the decline as a 402 that names it."""
    if payment.status == FAILED:
        raise PaymentRequired(
            payment.failure_code or "card_declined",
            payment.failure_message or "The card was declined.",
            extra={"payment_id": payment.id, "invoice_id": payment.invoice_id},
        )
    return payment


def _check_payable(session: Session, invoice: Invoice) -> None:
    in_flight = session.scalars(
        select(Payment.id).where(Payment.invoice_id == invoice.id, Payment.status.in_(IN_FLIGHT))
    ).first()
    if in_flight is not None:
        raise Conflict(
            "payment_in_progress",
            f"Payment {in_flight} for this invoice is still in progress.",
            extra={"payment_id": in_flight},
        )
    if not statuses.is_payable(invoice.status):
        raise Conflict(
            "invoice_not_payable", f"Invoice {invoice.number} is {invoice.status}, not open."
        )


def _send(session: Session, gateway: StripeGateway, payment_id: str) -> Payment:
    """Call Stripe for a recorded payment and commit what it answered."""
    payment = get_payment(session, payment_id)
    invoice = get_invoice(session, payment.invoice_id)
    patient = session.scalars(select(Patient).where(Patient.patient_id == invoice.patient_id)).one()
    session.commit()  # no transaction stays open across the call to Stripe
    try:
        intent = gateway.charge_card_on_file(
            payment_id=payment.id,
            invoice_ref=invoice.id,
            amount=payment.amount,
            currency=payment.currency,
            customer_id=str(patient.stripe_customer_id),
            payment_method_id=str(patient.default_payment_method_id),
        )
    except ServiceError:
        _set_status(session, payment.id, UNKNOWN)
        raise
    return apply_intent(session, payment.id, intent)


def apply_intent(
    session: Session, payment_id: str, intent: Intent, card: Card | None = None
) -> Payment:
    """Commit what Stripe says of a payment's PaymentIntent; statuses never go backwards."""
    payment = session.scalars(
        select(Payment)
        .where(Payment.id == payment_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    invoice = get_invoice(session, payment.invoice_id, for_update=True)
    if payment.status in (SUCCEEDED, FAILED) and intent.status != "succeeded":
        session.commit()
        return payment
    if intent.id and not payment.stripe_payment_intent_id:
        payment.stripe_payment_intent_id = intent.id
    if intent.status == "succeeded":
        payment.status = SUCCEEDED
        payment.stripe_charge_id = intent.charge_id or payment.stripe_charge_id
        payment.paid_at = payment.paid_at or utcnow()
        payment.failure_code = payment.failure_message = None
        if card is not None and payment.card_last4 is None:
            payment.card_brand, payment.card_last4 = card.brand, card.last4
        ledger.record(
            session, invoice, ledger.CHARGE, intent.amount, str(intent.id), intent.charge_id
        )
    elif intent.status == "requires_action":
        payment.status = REQUIRES_ACTION
        payment.client_secret = intent.client_secret
    elif intent.status in ("failed", "requires_payment_method", "canceled"):
        payment.status = FAILED
        payment.failure_code = intent.failure_code or "card_declined"
        payment.failure_message = intent.failure_message or "The card was declined."
        invoice.status = statuses.after_failed_attempt(invoice.status)
    session.commit()
    return payment


def _set_status(session: Session, payment_id: str, status: str) -> None:
    session.execute(
        update(Payment).where(Payment.id == payment_id).values(status=status, updated_at=utcnow())
    )
    session.commit()


def _take_over(session: Session, seen: Payment) -> bool:
    """Compare-and-set: move a payment as we last saw it back to pending; True if we won."""
    taken = session.execute(
        update(Payment)
        .where(
            Payment.id == seen.id,
            Payment.status == seen.status,
            Payment.updated_at == seen.updated_at,
        )
        .values(status=PENDING, updated_at=utcnow())
        .returning(Payment.id)
    ).scalar_one_or_none()
    session.commit()
    return taken is not None


def _replay(session: Session, gateway: StripeGateway, payment_id: str) -> Payment:
    """The same answer as the first request: wait for it, or finish what it left unknown."""
    deadline = time.monotonic() + REPLAY_WAIT.total_seconds()
    while True:
        payment = session.scalars(
            select(Payment)
            .where(Payment.id == payment_id)
            .execution_options(populate_existing=True)
        ).one()
        session.commit()
        stale = utcnow() - payment.updated_at > STALE_AFTER
        if payment.status == UNKNOWN or (payment.status == PENDING and stale):
            return outcome(resolve(session, gateway, payment.id, resend=True))
        if payment.status != PENDING:
            return outcome(payment)
        if time.monotonic() > deadline:
            raise Conflict(
                "idempotency_request_in_progress",
                "The first request with this Idempotency-Key is still running; retry shortly.",
            )
        time.sleep(0.05)


def resolve(session: Session, gateway: StripeGateway, payment_id: str, resend: bool) -> Payment:
    """Settle a payment whose outcome we do not know, by looking its PaymentIntent up.

    Only when Stripe has no PaymentIntent for it is it sent again (same idempotency
    key) if `resend`, or else marked failed: it never reached Stripe.
    """
    payment = get_payment(session, payment_id)
    session.commit()
    if payment.stripe_payment_intent_id:
        intent: Intent | None = gateway.retrieve_payment_intent(payment.stripe_payment_intent_id)
    else:
        intent = gateway.find_payment_intent(payment.id)
    if intent is not None:
        return apply_intent(session, payment.id, intent)
    if resend:
        if _take_over(session, payment):
            return _send(session, gateway, payment.id)
        return _replay(session, gateway, payment.id)  # another request is re-sending it
    never_sent = Intent(
        id=None,
        status="failed",
        amount=payment.amount,
        currency=payment.currency,
        failure_code="not_sent",
        failure_message="The charge never reached Stripe; nothing was collected.",
    )
    return apply_intent(session, payment.id, never_sent)


def reconcile_pending(
    session: Session, gateway: StripeGateway, older_than: timedelta = STALE_AFTER
) -> list[Payment]:
    """Settle every payment left pending, unknown or awaiting 3-D Secure, by lookup only."""
    cutoff = utcnow() - older_than
    stuck = list(
        session.scalars(
            select(Payment.id).where(Payment.status.in_(IN_FLIGHT), Payment.updated_at <= cutoff)
        )
    )
    session.commit()
    return [resolve(session, gateway, payment_id, resend=False) for payment_id in stuck]


def start_online_payment(session: Session, gateway: StripeGateway, invoice_id: str) -> Payment:
    """The invoice's online payment with a client secret for the pay page; made once.

    A patient whose card was declined tries again on the same PaymentIntent.
    """
    invoice = get_invoice(session, invoice_id, for_update=True)
    payment = session.scalars(
        select(Payment)
        .where(Payment.invoice_id == invoice.id, Payment.method == "online")
        .order_by(Payment.created_at.desc())
    ).first()
    if payment is None:
        payment = Payment(
            invoice_id=invoice.id,
            method="online",
            status=AWAITING_PATIENT,
            amount=invoice.total,
            currency=invoice.currency,
        )
        session.add(payment)
    session.commit()  # no transaction stays open across the call to Stripe
    if payment.client_secret:
        return payment
    intent = gateway.create_online_intent(
        payment_id=payment.id,
        invoice_ref=invoice.id,
        amount=payment.amount,
        currency=payment.currency,
    )
    session.execute(
        update(Payment)
        .where(Payment.id == payment.id, Payment.client_secret.is_(None))
        .values(client_secret=intent.client_secret, stripe_payment_intent_id=intent.id)
    )
    session.commit()
    return get_payment(session, payment.id)
