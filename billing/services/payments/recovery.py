"""The recovery job: settle every payment and refund whose outcome a request left unknown.

`flask --app billing payments reconcile-pending` runs it (every few minutes in production,
well inside the 24 h for which Stripe replays an idempotency key). It only asks Stripe,
or repeats a call with the same idempotency key, so nothing is ever charged or refunded
twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing.adapters.models import Payment, Refund, utcnow
from billing.adapters.stripe_gateway import StripeGateway
from billing.domain.errors import ServiceError
from billing.domain.statuses import PENDING, UNKNOWN
from billing.services.idempotency import STALE_AFTER
from billing.services.packages import packages
from billing.services.payments import charges as payments
from billing.services.payments import refunds
from billing.services.payments.overpayments import OVERPAYMENT


@dataclass(frozen=True, slots=True)
class Recovered:
    payments: list[Payment]
    refunds: list[Refund]
    waiting: list[str]  # too recent to call: a lost call may still land at Stripe
    errors: list[str]  # what could not be settled this time (Stripe down): tried again next run


def reconcile_pending(
    session: Session,
    gateway: StripeGateway,
    older_than: timedelta = STALE_AFTER,
    on_each: Callable[[int, int], None] = lambda done, total: None,
) -> Recovered:
    """Settle payments left pending, unknown or in flight, and refunds left pending or
    unknown, idle for `older_than`: look each up at Stripe and commit what it says
    (`on_each(done, total)` after each, for a progress line)."""
    cutoff = utcnow() - older_than
    stuck_payments = list(
        session.scalars(
            select(Payment.id).where(
                Payment.status.in_(payments.IN_FLIGHT), Payment.updated_at <= cutoff
            )
        )
    )
    stuck_refunds = list(
        session.scalars(
            select(Refund).where(Refund.status.in_((PENDING, UNKNOWN)), Refund.updated_at <= cutoff)
        )
    )
    session.commit()
    settled_payments, settled_refunds, waiting, errors = [], [], [], []
    total = len(stuck_payments) + len(stuck_refunds)
    for done, payment_id in enumerate(stuck_payments, 1):
        on_each(done, total)
        try:
            settled_payments.append(payments.resolve(session, gateway, payment_id))
        except ServiceError as error:
            session.rollback()
            errors.append(f"payment {payment_id}: {error.detail}")
    for done, refund in enumerate(stuck_refunds, len(stuck_payments) + 1):
        on_each(done, total)
        try:
            resend = refund.kind == OVERPAYMENT  # money we owe goes back, whatever it takes
            settled = refunds.resolve(session, gateway, refund.id, resend)
            if settled.status in (PENDING, UNKNOWN):
                waiting.append(f"refund {refund.id}: not found at Stripe yet")
            else:
                settled_refunds.append(settled)
        except ServiceError as error:
            session.rollback()
            errors.append(f"refund {refund.id}: {error.detail}")
    # Refunds of package credits recorded but never linked to their Stripe refund (the
    # process died between the two): send them, or link the refund they made.
    for credit_refund_id in packages.stranded_credit_refunds(session, cutoff):
        try:
            packages.follow(session, gateway, credit_refund_id)
        except ServiceError as error:
            session.rollback()
            errors.append(f"credit refund {credit_refund_id}: {error.detail}")
    return Recovered(settled_payments, settled_refunds, waiting, errors)
