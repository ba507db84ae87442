"""Stripe webhooks: each event stored once, handled in any order, any number of times.

Every effect is idempotent (ledger rows are unique per Stripe object, statuses only
move forward, and a refund Stripe reported failed stays failed), so an event is marked
processed only after its effect is committed.
An event that names a payment we do not know yet is kept and retried later.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from billing.adapters import metrics
from billing.adapters.db import dialect_insert
from billing.adapters.models import Payment, Refund, StripeEvent, utcnow
from billing.adapters.stripe_gateway import (
    BANK_ACCOUNT,
    Event,
    RefundResult,
    StripeGateway,
    dispute_from_event,
    intent_from_event,
    object_id,
    refund_from_event,
    refunds_from_charge,
)
from billing.domain.statuses import SUCCEEDED
from billing.services.access import audit
from billing.services.integrations import events
from billing.services.invoicing import ledger
from billing.services.invoicing.invoices import get_invoice
from billing.services.payments import balance, refunds
from billing.services.payments import charges as payments

log = logging.getLogger("billing.webhooks")
RETRY_BATCH = 50
RETRY_WINDOW = timedelta(days=1)


def record_stripe_event(session: Session, gateway: StripeGateway, event: Event) -> bool:
    """Store and handle one verified event; False when it had been handled before.

    An event rendered in another API version than ours (a webhook endpoint on another
    version, as while upgrading) is handled all the same: what we read of it (ids, status,
    amount, currency, metadata, refunds) is the same in every version since 2022-11-15,
    which leaves a charge's refunds out (then they are fetched).
    """
    insert = dialect_insert(session)
    session.execute(
        insert(StripeEvent)
        .values(id=event.id, type=event.type, payload=event.payload, received_at=utcnow())
        .on_conflict_do_nothing(index_elements=["id"])
    )
    session.commit()
    stored = session.get(StripeEvent, event.id)
    if stored is not None and stored.processed_at is not None:
        session.commit()
        metrics.webhook_event(event.type, "duplicate", event.created)
        return False
    session.commit()
    applied = _handle(session, gateway, event.id, event.type, event.object)
    metrics.webhook_event(event.type, "applied" if applied else "waiting", event.created)
    if applied:
        _retry_unmatched(session, gateway)
    return True


def _handle(
    session: Session, gateway: StripeGateway, event_id: str, event_type: str, obj: dict[str, Any]
) -> bool:
    """Apply one event's effect; True once it is settled (or needs nothing from us)."""
    handler = HANDLERS.get(event_type)
    matched = handler(session, gateway, obj) if handler else True
    if matched:
        session.execute(
            update(StripeEvent).where(StripeEvent.id == event_id).values(processed_at=utcnow())
        )
    return matched


def _payment_for(session: Session, intent_id: str | None, payment_id: str | None) -> Payment | None:
    conditions = []
    if payment_id:
        conditions.append(Payment.id == payment_id)
    if intent_id:
        conditions.append(Payment.stripe_payment_intent_id == intent_id)
    if not conditions:
        return None
    return session.scalars(select(Payment).where(or_(*conditions))).first()


def _on_payment_intent(session: Session, gateway: StripeGateway, obj: dict[str, Any]) -> bool:
    intent = intent_from_event(obj)
    payment = _payment_for(session, intent.id, intent.metadata.get("payment_id"))
    session.commit()
    if payment is None:
        return False
    card = payments.card_for_receipt(gateway, payment, intent)
    payment = payments.apply_intent(session, gateway, payment.id, intent, card)
    if payment.method == payments.BALANCE:  # its credit pays the other bills chosen
        balance.allocate(session, gateway, payment.id)
    return True


def _on_charge_refunded(session: Session, gateway: StripeGateway, obj: dict[str, Any]) -> bool:
    intent_id = object_id(obj.get("payment_intent"))
    payment = _payment_for(session, intent_id, None)
    session.commit()  # no transaction stays open if Stripe must be asked
    if payment is None or intent_id is None:
        return False
    listed = refunds_from_charge(obj)
    if listed is None:
        listed = gateway.list_refunds(intent_id)
    for result, our_refund_id in listed:
        _apply_refund(session, payment, result, our_refund_id)
    return True


def _on_refund(session: Session, _gateway: StripeGateway, obj: dict[str, Any]) -> bool:
    """One Refund's new status: `charge.refund.updated`, and in newer API versions
    `refund.updated` and `refund.failed` (the same Refund object)."""
    result, our_refund_id = refund_from_event(obj)
    payment = _payment_for(session, object_id(obj.get("payment_intent")), None)
    if payment is None and result.charge_id:
        payment = session.scalars(
            select(Payment).where(Payment.stripe_charge_id == result.charge_id)
        ).first()
    session.commit()
    if payment is None:
        return False
    _apply_refund(session, payment, result, our_refund_id)
    return True


def _apply_refund(
    session: Session, payment: Payment, result: RefundResult, our_refund_id: str | None
) -> None:
    """What Stripe says of one Refund of `payment`, applied to our refund of it (made for
    it here when it was made outside this service, e.g. in Stripe's dashboard)."""
    refund = session.get(Refund, our_refund_id) if our_refund_id else None
    if refund is None:
        refund = session.scalars(select(Refund).where(Refund.stripe_refund_id == result.id)).first()
    if refund is None:  # made outside this service, e.g. in Stripe's dashboard
        refund = Refund(
            invoice_id=payment.invoice_id,
            payment_id=payment.id,
            amount=result.amount,
            currency=payment.currency,
            reason="refunded in Stripe",
            kind="external",
            status="pending",
            stripe_refund_id=result.id,
        )
        session.add(refund)
        try:
            session.flush()
        except IntegrityError:  # another delivery of it recorded it at this very moment
            session.rollback()
            refund = session.scalars(
                select(Refund).where(Refund.stripe_refund_id == result.id)
            ).one()
    session.commit()
    refunds.apply_refund(session, refund.id, result)


def _on_dispute_created(session: Session, _gateway: StripeGateway, obj: dict[str, Any]) -> bool:
    dispute = dispute_from_event(obj)
    payment = _payment_for(session, dispute.payment_intent_id, None)
    if payment is None and dispute.charge_id:
        payment = session.scalars(
            select(Payment).where(Payment.stripe_charge_id == dispute.charge_id)
        ).first()
    if payment is None:
        session.commit()
        return False
    invoice = get_invoice(session, payment.invoice_id, for_update=True)
    if payment.source == BANK_ACCOUNT:  # a bank debit's return: final, and owed again
        if payment.status != SUCCEEDED:  # its success not heard yet: that comes first
            session.commit()
            return False
        payments.bank_debit_returned(session, invoice, payment.id, dispute)
        session.commit()
        return True
    if ledger.record(
        session, invoice, ledger.DISPUTE, dispute.amount, dispute.id, dispute.charge_id
    ):
        audit.record(
            session,
            "dispute.created",
            "invoice",
            invoice.id,
            dispute_id=dispute.id,
            amount=dispute.amount,
            currency=invoice.currency,
        )
        disputed = {
            "id": dispute.id,
            "invoice_id": invoice.id,
            "amount": dispute.amount,
            "currency": invoice.currency,
            "created_at": utcnow(),
        }
        events.publish(session, "dispute.created", "dispute", disputed)
    invoice.disputed_at = invoice.disputed_at or utcnow()
    session.commit()
    return True


def _retry_unmatched(session: Session, gateway: StripeGateway) -> None:
    """Events of the last day that arrived before what they name: try them again."""
    waiting = list(
        session.scalars(
            select(StripeEvent)
            .where(
                StripeEvent.processed_at.is_(None),
                StripeEvent.received_at >= utcnow() - RETRY_WINDOW,
            )
            .order_by(StripeEvent.received_at.desc())
            .limit(RETRY_BATCH)
        )
    )
    session.commit()
    for stored in waiting:
        obj = json.loads(stored.payload)["data"]["object"]
        _handle(session, gateway, stored.id, stored.type, obj)
        session.commit()


HANDLERS: dict[str, Callable[[Session, StripeGateway, dict[str, Any]], bool]] = {
    "payment_intent.succeeded": _on_payment_intent,
    "payment_intent.payment_failed": _on_payment_intent,
    "payment_intent.requires_action": _on_payment_intent,
    "payment_intent.processing": _on_payment_intent,
    "payment_intent.canceled": _on_payment_intent,
    "charge.refunded": _on_charge_refunded,
    "charge.refund.updated": _on_refund,
    "refund.updated": _on_refund,
    "refund.failed": _on_refund,
    "charge.dispute.created": _on_dispute_created,
}
