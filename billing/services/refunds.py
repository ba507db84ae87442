"""Refunds: full or partial, several allowed, never more than was paid (Stripe's stand-in
does not check that; we do)."""

from __future__ import annotations

import time

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from billing.errors import Conflict, ServiceError, field_error
from billing.models import Payment, Refund, utcnow
from billing.money import Money
from billing.services import idempotency, ledger
from billing.services.idempotency import IdempotencyRequest
from billing.services.invoices import get_invoice
from billing.services.payments import REPLAY_WAIT, SUCCEEDED
from billing.stripe_gateway import RefundResult, StripeGateway

PENDING, UNKNOWN, FAILED = "pending", "unknown", "failed"


def get_refund(session: Session, refund_id: str) -> Refund:
    return session.scalars(
        select(Refund).where(Refund.id == refund_id).execution_options(populate_existing=True)
    ).one()


def refund_invoice(
    session: Session,
    gateway: StripeGateway,
    invoice_id: str,
    amount: int,
    reason: str,
    request: IdempotencyRequest,
) -> Refund:
    """Refund part or all of what an invoice's payment collected."""
    claim = idempotency.claim(session, request, "refund")
    if claim.replay_of is not None:
        session.commit()
        return _replay(session, gateway, claim.replay_of)

    invoice = get_invoice(session, invoice_id, for_update=True)
    payment = session.scalars(
        select(Payment)
        .where(Payment.invoice_id == invoice.id, Payment.status == SUCCEEDED)
        .order_by(Payment.created_at.desc())
    ).first()
    if payment is None or payment.stripe_payment_intent_id is None:
        raise Conflict("invoice_not_paid", f"Invoice {invoice.number} has no payment to refund.")
    money = ledger.amounts(session, invoice.id)
    in_flight = session.scalar(
        select(func.coalesce(func.sum(Refund.amount), 0)).where(
            Refund.invoice_id == invoice.id, Refund.status.in_((PENDING, UNKNOWN))
        )
    )
    currency = invoice.currency
    refundable = (
        Money(money.paid, currency)
        - Money(money.refunded, currency)
        - Money(int(in_flight or 0), currency)
    )
    if refundable < Money(amount, currency):
        raise field_error(
            "refund_exceeds_paid",
            "amount",
            f"At most {refundable.amount} can be refunded on invoice {invoice.number}.",
        )
    refund = Refund(
        invoice_id=invoice.id,
        payment_id=payment.id,
        amount=amount,
        currency=invoice.currency,
        reason=reason,
        status=PENDING,
    )
    session.add(refund)
    session.flush()
    idempotency.complete(session, claim, refund.id)
    session.commit()
    return _send(session, gateway, refund.id, str(payment.stripe_payment_intent_id))


def _send(session: Session, gateway: StripeGateway, refund_id: str, intent_id: str) -> Refund:
    refund = get_refund(session, refund_id)
    session.commit()
    try:
        result = gateway.refund(
            refund_id=refund.id, payment_intent_id=intent_id, amount=refund.amount
        )
    except ServiceError:
        session.execute(update(Refund).where(Refund.id == refund.id).values(status=UNKNOWN))
        session.commit()
        raise
    return apply_refund(session, refund.id, result)


def apply_refund(session: Session, refund_id: str, result: RefundResult) -> Refund:
    """Commit Stripe's refund with its ledger row and the invoice's new status."""
    refund = session.scalars(
        select(Refund)
        .where(Refund.id == refund_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    invoice = get_invoice(session, refund.invoice_id, for_update=True)
    refund.stripe_refund_id = refund.stripe_refund_id or result.id
    if result.status in ("succeeded", "pending"):
        refund.status = "succeeded"
        ledger.record(session, invoice, ledger.REFUND, result.amount, result.id, result.charge_id)
    elif refund.status != "succeeded":
        refund.status = FAILED
    session.commit()
    return refund


def _replay(session: Session, gateway: StripeGateway, refund_id: str) -> Refund:
    deadline = time.monotonic() + REPLAY_WAIT.total_seconds()
    while True:
        refund = get_refund(session, refund_id)
        session.commit()
        if refund.status == UNKNOWN:
            return _resolve(session, gateway, refund)
        if refund.status != PENDING:
            return refund
        if time.monotonic() > deadline:
            raise Conflict(
                "idempotency_request_in_progress",
                "The first request with this Idempotency-Key is still running; retry shortly.",
            )
        time.sleep(0.05)


def _resolve(session: Session, gateway: StripeGateway, refund: Refund) -> Refund:
    """An unknown refund: look it up at Stripe; send it again only if Stripe has none."""
    payment = session.get(Payment, refund.payment_id)
    intent_id = str(payment.stripe_payment_intent_id) if payment else ""
    session.commit()
    found = gateway.find_refund(refund.id, intent_id)
    if found is not None:
        return apply_refund(session, refund.id, found)
    taken = session.execute(
        update(Refund)
        .where(Refund.id == refund.id, Refund.status == UNKNOWN)
        .values(status=PENDING, updated_at=utcnow())
        .returning(Refund.id)
    ).scalar_one_or_none()
    session.commit()
    if taken is None:
        return _replay(session, gateway, refund.id)
    return _send(session, gateway, refund.id, intent_id)
