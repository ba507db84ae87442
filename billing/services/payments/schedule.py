"""The scheduler's run: every scheduled charge whose time has come is charged, once.

`run_due` is what beat runs every minute and what `flask --app billing schedule run
[--as-of]` runs by hand; both may run at once, on several machines, any number of times.
Each item is taken by one runner only: one conditional UPDATE moves it to `charging` with
a lease and a new attempt number. The attempt's Stripe idempotency key is derived from the
item and that number (`schedule:<item>:<n>`); the payment it makes names the item, and the
item names the payment, in the transaction that records it. A runner that dies at any step
leaves either nothing (taken over with the same number: the same key) or a payment that
the successor, the recovery job or Stripe's webhook settles by asking Stripe, never by
charging again. The item then follows its payment (`dunning.follow`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from billing.adapters.models import Invoice, Payment, utcnow
from billing.adapters.schedule_models import PaymentPlan, ScheduledCharge
from billing.adapters.stripe_gateway import StripeGateway
from billing.domain import schedules, statuses
from billing.domain.errors import ServiceError
from billing.domain.schedules import CHARGING, COVERED, DUE, LIVE
from billing.services.access import audit
from billing.services.idempotency import IdempotencyRequest
from billing.services.invoicing.invoices import get_invoice
from billing.services.payments import charges, dunning

log = logging.getLogger("billing.schedule")
LEASE = timedelta(minutes=5)  # a runner that dies holds its item this long
SCHEDULER = audit.Actor("system", "schedule")  # who beat's runs are in the audit trail


@dataclass(slots=True)
class Run:
    """What one run did."""

    charged: int = 0  # attempts sent (paid, declined or in progress)
    covered: int = 0  # owed nothing any more: paid otherwise
    deferred: int = 0  # something was in the way; tried again soon
    errors: int = 0  # Stripe could not be reached; the item is taken over later


def run_due(
    session: Session, gateway: StripeGateway, now: datetime | None = None, limit: int = 1000
) -> Run:
    """Charge what is due at `now` (by default the clock's now), within the clinic's
    hours; plans whose invoice was paid or voided otherwise are closed."""
    now = now or utcnow()
    config = dunning.settings()
    run = Run()
    _close_settled_plans(session)
    if not schedules.may_charge_now(now, config.zone, config.window):
        return run
    for item_id in due_items(session, now, limit):
        charge_item(session, gateway, item_id, now, run)
    return run


def due_items(session: Session, now: datetime, limit: int) -> list[str]:
    """Items due by `now`, and items whose runner died mid-charge (lease run out)."""
    ids = session.scalars(
        select(ScheduledCharge.id)
        .where(
            or_(
                ScheduledCharge.status.in_(DUE) & (ScheduledCharge.next_attempt_at <= now),
                (ScheduledCharge.status == CHARGING) & (ScheduledCharge.lease_until < now),
            )
        )
        .order_by(ScheduledCharge.next_attempt_at, ScheduledCharge.id)
        .limit(limit)
    ).all()
    session.commit()
    return list(ids)


def take(session: Session, item_id: str, now: datetime) -> int | None:
    """The attempt number this runner makes of the item, or None when another runner has
    it. A fresh attempt gets the next number; taking over a dead runner's keeps its number
    (and so its idempotency key)."""
    fresh = session.execute(
        update(ScheduledCharge)
        .where(
            ScheduledCharge.id == item_id,
            ScheduledCharge.status.in_(DUE),
            ScheduledCharge.next_attempt_at <= now,
        )
        .values(
            status=CHARGING,
            attempts=ScheduledCharge.attempts + 1,
            lease_until=utcnow() + LEASE,
            updated_at=utcnow(),
        )
        .returning(ScheduledCharge.attempts)
    ).scalar_one_or_none()
    if fresh is None:
        fresh = session.execute(
            update(ScheduledCharge)
            .where(
                ScheduledCharge.id == item_id,
                ScheduledCharge.status == CHARGING,
                ScheduledCharge.lease_until < now,
            )
            .values(lease_until=utcnow() + LEASE, updated_at=utcnow())
            .returning(ScheduledCharge.attempts)
        ).scalar_one_or_none()
    session.commit()
    return int(fresh) if fresh is not None else None


def charge_item(
    session: Session, gateway: StripeGateway, item_id: str, now: datetime, run: Run
) -> None:
    """Charge one item if this runner takes it; its payment's outcome moves it on."""
    attempt = take(session, item_id, now)
    if attempt is None:
        return
    item = session.get_one(ScheduledCharge, item_id, populate_existing=True)
    invoice = get_invoice(session, item.invoice_id)
    in_flight = _attempt_in_flight(session, item)
    # A dead runner's attempt is finished as it was made (its key replays it); else what
    # the item owes now.
    amount = in_flight.amount if in_flight is not None else _due(session, item, invoice)
    if amount <= 0:
        _covered(session, item_id)
        run.covered += 1
        return
    key = f"schedule:{item.id}:{attempt}"
    request = IdempotencyRequest(api_key_id=int(item.api_key_id or 0), key=key, fingerprint=key)
    card = (str(item.payment_method_id), *_card_shown(session, item))
    session.commit()
    try:
        charges.pay_scheduled(
            session, gateway, item.invoice_id, request, amount, charges.Scheduled(item.id, card)
        )
        run.charged += 1
    except ServiceError as error:
        session.rollback()
        if error.outcome_unknown:  # taken over with the same key once the lease runs out
            run.errors += 1
            log.warning("scheduled charge %s: outcome unknown (%s)", item_id, error.detail)
            return
        if _settled_by_payment(session, item_id):
            run.charged += 1  # declined, or an attempt that ended: the item followed it
            return
        _set_aside(session, item_id, error)
        run.deferred += 1


def _attempt_in_flight(session: Session, item: ScheduledCharge) -> Payment | None:
    """The payment of the item's attempt, when it is not settled yet."""
    if item.last_payment_id is None:
        return None
    payment = session.get(Payment, item.last_payment_id)
    return payment if payment is not None and payment.status in charges.IN_FLIGHT else None


def _due(session: Session, item: ScheduledCharge, invoice: Invoice) -> int:
    """What the item charges now: nothing once the invoice owes nothing, else its amount
    less what was paid outside the plan (which settles the earliest instalments)."""
    if invoice.status == statuses.VOID or invoice.balance_due <= 0:
        return 0
    collectable = charges.collectable_now(session, invoice, online_counts=False).amount
    owed_by_item = item.amount - item.amount_paid
    return schedules.due_now(owed_by_item, collectable, dunning.later_unpaid(session, item))


def _covered(session: Session, item_id: str) -> None:
    item = session.get_one(ScheduledCharge, item_id, with_for_update=True)
    invoice = get_invoice(session, item.invoice_id, for_update=True)
    item.status, item.lease_until, item.next_attempt_at = COVERED, None, None
    audit.record(session, "schedule.covered", "scheduled_charge", item.id)
    dunning.refresh_plan(session, item.plan_id, invoice)
    session.commit()


def _settled_by_payment(session: Session, item_id: str) -> bool:
    """Whether the item's attempt made a payment that settled it (it is no longer charging)."""
    session.commit()
    status = session.scalar(select(ScheduledCharge.status).where(ScheduledCharge.id == item_id))
    return status != CHARGING


def _set_aside(session: Session, item_id: str, error: ServiceError) -> None:
    """Nothing was charged and nothing will be without someone: the card was removed, the
    invoice is held by a dispute, another charge is in flight. Tried again within the hour
    when something was in the way, else given up (finance hears it)."""
    item = session.get_one(ScheduledCharge, item_id, with_for_update=True)
    invoice = get_invoice(session, item.invoice_id, for_update=True)
    if item.status != CHARGING:
        session.commit()
        return
    config = dunning.settings()
    if error.code in (*dunning.NOT_DECLINES, "idempotency_request_in_progress"):
        dunning.defer(item, dunning.soon(utcnow(), config))
    else:
        dunning.declined(session, invoice, item, error.code)
    dunning.refresh_plan(session, item.plan_id, invoice)
    session.commit()


def _card_shown(session: Session, item: ScheduledCharge) -> tuple[str | None, str | None]:
    plan = session.get(PaymentPlan, item.plan_id) if item.plan_id else None
    return (plan.card_brand, plan.card_last4) if plan is not None else (None, None)


def _close_settled_plans(session: Session) -> None:
    """Live plans whose invoice owes nothing now (paid otherwise) or was voided: closed."""
    settled = session.scalars(
        select(PaymentPlan.id)
        .join(Invoice, Invoice.id == PaymentPlan.invoice_id)
        .where(PaymentPlan.status.in_(LIVE), Invoice.status.not_in(statuses.PAYABLE))
    ).all()
    for plan_id in settled:
        plan = session.get_one(PaymentPlan, plan_id)
        invoice = get_invoice(session, plan.invoice_id, for_update=True)
        if invoice.status != statuses.PROCESSING:
            dunning.refresh_plan(session, plan_id, invoice)
        session.commit()
    session.commit()
