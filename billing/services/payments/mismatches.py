"""Stripe's word on a PaymentIntent is applied to a payment only when it is about that
payment: the PaymentIntent we made for it (or, before we learnt its id, one that names
the payment while its outcome is unknown to us), in its currency, for its amount.

Anything else is not applied. When it says money moved (a success, or a payment being
processed), it is kept for finance in the audit trail (`stripe.mismatch`), logged as an
error and counted (`billing_stripe_mismatches_total`): a signed event can still describe
money that was not ours to take, such as a PaymentIntent made in Stripe's dashboard with
our payment's id in its metadata, in another currency or for another amount.
"""

from __future__ import annotations

import json
import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing.adapters import metrics
from billing.adapters.models import AuditEvent, Payment
from billing.adapters.stripe_gateway import Intent
from billing.domain.statuses import PENDING, UNKNOWN
from billing.services.access import audit

log = logging.getLogger("billing.payments")
MONEY_MOVED = ("succeeded", "processing", "requires_capture")


def mismatch(payment: Payment, intent: Intent) -> tuple[str, str] | None:
    """(reason code, words) when `intent` is not about `payment`; None when it is."""
    if intent.id is None:  # our own word: a charge that was never sent
        return None
    ours = payment.stripe_payment_intent_id
    if ours and intent.id != ours:
        return "intent", f"PaymentIntent {intent.id} is not {ours}, the one made for it"
    if not ours and payment.status not in (PENDING, UNKNOWN):
        return "intent", f"PaymentIntent {intent.id} names a payment that made none"
    if intent.currency != payment.currency:
        return "currency", f"in {intent.currency}, the payment is in {payment.currency}"
    if intent.amount != payment.amount or (
        intent.status == "succeeded" and intent.amount_received != payment.amount
    ):
        return (
            "amount",
            f"for {intent.amount} (received {intent.amount_received}), the payment is for "
            f"{payment.amount}",
        )
    return None


def keep(session: Session, payment: Payment, intent: Intent, reason: tuple[str, str]) -> None:
    """In the caller's transaction (the payment locked): a mismatch that says money moved,
    for finance, once however often Stripe's event about it is handled."""
    if intent.status not in MONEY_MOVED or _kept(session, payment.id, intent):
        return  # nothing was taken, or finance has it already
    code, words = reason
    audit.record(
        session,
        "stripe.mismatch",
        "payment",
        payment.id,
        invoice_id=payment.invoice_id,
        reason=code,
        detail=words,
        intent_id=intent.id,
        intent_status=intent.status,
        amount=intent.amount,
        amount_received=intent.amount_received,
        currency=intent.currency,
        expected_amount=payment.amount,
        expected_currency=payment.currency,
    )
    log.error(
        "stripe mismatch on payment %s (invoice %s): %s; nothing applied, kept for finance",
        payment.id,
        payment.invoice_id,
        words,
    )
    metrics.stripe_mismatch(code)


def _kept(session: Session, payment_id: str, intent: Intent) -> bool:
    rows = session.scalars(
        select(AuditEvent.details).where(
            AuditEvent.action == "stripe.mismatch", AuditEvent.object_id == payment_id
        )
    )
    return any(
        (kept.get("intent_id"), kept.get("intent_status")) == (intent.id, intent.status)
        for kept in map(json.loads, rows)
    )
