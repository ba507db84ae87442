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

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from billing.adapters.membership_models import Membership, MembershipPeriod
from billing.adapters.models import Invoice, Payment, utcnow
from billing.adapters.schedule_models import PaymentPlan, ScheduledCharge
from billing.adapters.stripe_gateway import StripeGateway
from billing.domain import schedules, statuses
from billing.domain.errors import Conflict, ServiceError
from billing.domain.money import STRIPE_MINIMUM_CHARGE
from billing.domain.schedules import CANCELLED, CHARGING, COVERED, DUE, LIVE, PAST_DUE
from billing.services.access import audit, keys
from billing.services.idempotency import IdempotencyRequest
from billing.services.invoicing.invoices import get_invoice
from billing.services.payments import autopay, charges, dunning, memberships

log = logging.getLogger("billing.schedule")
LEASE = timedelta(minutes=5)  # a runner that dies holds its item this long
HANDED_OUT = timedelta(minutes=2)  # an item handed to a worker is not handed out again
SCHEDULER = audit.Actor("system", "schedule")  # who beat's runs are in the audit trail


@dataclass(slots=True)
class Run:
    """What one run did."""

    charged: int = 0  # attempts sent (paid, declined or in progress)
    covered: int = 0  # owed nothing any more: paid otherwise
    deferred: int = 0  # something was in the way; tried again soon
    errors: int = 0  # Stripe could not be reached; the item is taken over later
    queued: int = 0  # AutoPay charges queued by the nightly run
    opened: int = 0  # membership periods begun (each charged as it falls due)


def run_due(
    session: Session, gateway: StripeGateway, now: datetime | None = None, limit: int = 5000
) -> Run:
    """Charge what is due at `now` (by default the clock's now), within the clinic's
    hours, one after the other (`schedule run`; beat hands them to workers instead)."""
    now = now or utcnow()
    run = Run()
    for item_id in prepare(session, now, run, limit):
        charge_item(session, gateway, item_id, now, run)
    return run


def prepare(session: Session, now: datetime, run: Run, limit: int = 5000) -> list[str]:
    """What is due at `now`, inside the clinic's hours (else nothing): plans whose invoice
    was paid or voided otherwise are closed first, and AutoPay's nightly run queues its
    charges at its hour."""
    config = dunning.settings()
    _close_settled_plans(session)
    if not schedules.may_charge_now(now, config.zone, config.window):
        return []
    run.opened = memberships.renew_due(session, now)
    if now.astimezone(config.zone).hour == config.autopay_hour:  # once a day, idempotent
        run.queued = autopay.queue_nightly(session, now)
    return due_items(session, now, limit)


def handed_out(session: Session, item_ids: list[str]) -> None:
    """The items were handed to workers: not handed out again for two minutes (a worker's
    claim ignores this; it only keeps a slow queue from filling with copies)."""
    if item_ids:
        session.execute(
            update(ScheduledCharge)
            .where(ScheduledCharge.id.in_(item_ids), ScheduledCharge.status.in_(DUE))
            .values(lease_until=utcnow() + HANDED_OUT)
        )
    session.commit()


def charge_one(session: Session, gateway: StripeGateway, item_id: str) -> Run:
    """One item, if it is (still) due now and this runner takes it: a worker's task."""
    run = Run()
    now = utcnow()
    config = dunning.settings()
    if schedules.may_charge_now(now, config.zone, config.window):
        charge_item(session, gateway, item_id, now, run)
    return run


def due_items(session: Session, now: datetime, limit: int) -> list[str]:
    """Items due by `now`, and items whose runner died mid-charge (lease run out)."""
    recently_handed_out = ScheduledCharge.lease_until >= utcnow()  # see handed_out
    ids = session.scalars(
        select(ScheduledCharge.id)
        .where(
            or_(
                ScheduledCharge.status.in_(DUE)
                & (ScheduledCharge.next_attempt_at <= now)
                & ~func.coalesce(recently_handed_out, False),
                (ScheduledCharge.status == CHARGING) & (ScheduledCharge.lease_until < utcnow()),
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
            .where(  # the clock's now, never --as-of: a live runner's lease is its own
                ScheduledCharge.id == item_id,
                ScheduledCharge.status == CHARGING,
                ScheduledCharge.lease_until < utcnow(),
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
    if _in_the_way(session, item_id, now):
        run.deferred += 1
        return
    attempt = take(session, item_id, now)
    if attempt is None:
        return
    item = session.get_one(ScheduledCharge, item_id, populate_existing=True)
    invoice = get_invoice(session, item.invoice_id)
    in_flight = _attempt_in_flight(session, item)
    if in_flight is None and item.kind == autopay.AUTOPAY:
        why_not = autopay.still_charges(session, invoice, item)
        if why_not == "withdrawn":
            _withdrawn(session, item_id)
            return
        if why_not is not None:
            removed = Conflict(why_not, "The card AutoPay charges was removed.")
            _set_aside(session, item_id, removed)
            run.deferred += 1
            return
    # A dead runner's attempt is finished as it was made (its key replays it); else what
    # the item owes now.
    amount = in_flight.amount if in_flight is not None else _due(session, item, invoice)
    if amount <= 0:
        _covered(session, item_id)
        run.covered += 1
        return
    if in_flight is None and _too_small(invoice, amount):
        _fold_into_next(session, item_id, amount)
        run.covered += 1
        return
    key = f"schedule:{item.id}:{attempt}"
    owner = item.api_key_id or keys.system_key_id(session)
    request = IdempotencyRequest(api_key_id=owner, key=key, fingerprint=key)
    card = (str(item.payment_method_id), *_card_shown(session, item))
    session.commit()
    try:
        charges.pay_scheduled(
            session,
            gateway,
            item.invoice_id,
            request,
            amount,
            charges.Scheduled(item.id, attempt, card),
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
    if item.kind == autopay.AUTOPAY:
        return collectable  # the bill's balance as it is now
    owed_by_item = item.amount - item.amount_paid
    return schedules.due_now(owed_by_item, collectable, dunning.later_unpaid(session, item))


def _locked_charging(session: Session, item_id: str) -> tuple[ScheduledCharge, Invoice] | None:
    """The item and its invoice, locked invoice first (as everywhere), while the item is
    still this runner's (charging); None once it is not."""
    invoice_id = session.scalar(
        select(ScheduledCharge.invoice_id).where(ScheduledCharge.id == item_id)
    )
    invoice = get_invoice(session, str(invoice_id), for_update=True)
    item = session.scalars(
        select(ScheduledCharge)
        .where(ScheduledCharge.id == item_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    return (item, invoice) if item.status == CHARGING else None


def _covered(session: Session, item_id: str) -> None:
    locked = _locked_charging(session, item_id)
    if locked is not None:
        item, invoice = locked
        item.status, item.lease_until, item.next_attempt_at = COVERED, None, None
        audit.record(session, "schedule.covered", "scheduled_charge", item.id)
        dunning.refresh_plan(session, item.plan_id, invoice)
    session.commit()


def _withdrawn(session: Session, item_id: str) -> None:
    """AutoPay no longer charges this bill (turned off, another card, a plan now pays it):
    its charge is cancelled before it is made."""
    locked = _locked_charging(session, item_id)
    if locked is not None:
        item, _ = locked
        item.status, item.lease_until, item.next_attempt_at = CANCELLED, None, None
        audit.record(session, "schedule.withdrawn", "scheduled_charge", item.id)
    session.commit()


def _too_small(invoice: Invoice, amount: int) -> bool:
    """Less than a card can be charged, and not all that is owed (which a card may pay)."""
    least = STRIPE_MINIMUM_CHARGE.get(invoice.currency, 0)
    return amount < least and amount != invoice.balance_due


def _fold_into_next(session: Session, item_id: str, amount: int) -> None:
    """A few cents left of an instalment (the rest paid otherwise): moved onto the next
    instalment, which a card can pay, rather than charged alone (no card can)."""
    locked = _locked_charging(session, item_id)
    if locked is not None:
        item, invoice = locked
        following = session.scalars(
            select(ScheduledCharge)
            .where(
                ScheduledCharge.plan_id == item.plan_id,
                ScheduledCharge.number > (item.number or 0),
                ScheduledCharge.status.in_(DUE),
            )
            .order_by(ScheduledCharge.number)
            .with_for_update()
        ).first()
        if following is None or item.plan_id is None:
            dunning.failed(session, invoice, item, "amount_too_small")
        else:
            following.amount += amount
            item.amount -= amount
            item.status, item.lease_until, item.next_attempt_at = COVERED, None, None
            audit.record(
                session,
                "schedule.folded",
                "scheduled_charge",
                item.id,
                into=following.id,
                amount=amount,
            )
        dunning.refresh_plan(session, item.plan_id, invoice)
    session.commit()


def _settled_by_payment(session: Session, item_id: str) -> bool:
    """Whether the item's attempt made a payment that settled it (it is no longer charging)."""
    session.commit()
    status = session.scalar(select(ScheduledCharge.status).where(ScheduledCharge.id == item_id))
    return status != CHARGING


def _set_aside(session: Session, item_id: str, error: ServiceError) -> None:
    """Nothing was charged: a card removed is given up (finance hears it); anything else in
    the way (a hold on the bill, Stripe busy) is tried again within the hour. An attempt
    another runner is still making is left to it (its lease)."""
    if error.code == "idempotency_request_in_progress":
        return
    locked = _locked_charging(session, item_id)
    if locked is not None:
        item, invoice = locked
        dunning.failed(session, invoice, item, error.code)
        dunning.refresh_plan(session, item.plan_id, invoice)
    session.commit()


def _in_the_way(session: Session, item_id: str, now: datetime) -> bool:
    """Another charge of the invoice is in flight (a card on file, a bank debit, the pay
    page's payment Stripe is processing): the item waits an hour, with no attempt used."""
    item = session.get_one(ScheduledCharge, item_id, populate_existing=True)
    if item.status not in DUE or item.next_attempt_at is None or item.next_attempt_at > now:
        session.commit()
        return False  # not due (a runner moved it on): nothing to defer
    other = session.scalar(
        select(Payment.id).where(
            Payment.invoice_id == item.invoice_id,
            (Payment.method.in_(charges.OFF_SESSION) & Payment.status.in_(charges.IN_FLIGHT))
            | ((Payment.method == "online") & (Payment.status == statuses.PROCESSING)),
        )
    ) or charges.balance_charging(session, item.invoice_id)
    if other is None:
        session.commit()
        return False
    session.execute(
        update(ScheduledCharge)
        .where(  # as it was read: a runner that took it meanwhile decides its next try
            ScheduledCharge.id == item_id,
            ScheduledCharge.status == item.status,
            ScheduledCharge.attempts == item.attempts,
            ScheduledCharge.next_attempt_at == item.next_attempt_at,
        )
        .values(next_attempt_at=dunning.soon(now, dunning.settings()), updated_at=utcnow())
    )
    session.commit()
    return True


def _card_shown(session: Session, item: ScheduledCharge) -> tuple[str | None, str | None]:
    """The brand and last four digits of the card the item charges, for the receipt."""
    plan = session.get(PaymentPlan, item.plan_id) if item.plan_id else None
    if plan is not None:
        return plan.card_brand, plan.card_last4
    member = session.execute(
        select(Membership.card_brand, Membership.card_last4)
        .join(MembershipPeriod, MembershipPeriod.membership_id == Membership.id)
        .where(MembershipPeriod.scheduled_charge_id == item.id)
    ).first()
    if member is not None:
        return member[0], member[1]
    return autopay.card_shown(session, item.patient_id, str(item.payment_method_id))


def _close_settled_plans(session: Session) -> None:
    """Live plans whose invoice owes nothing now (paid otherwise) or was voided: closed."""
    settled = session.scalars(
        select(PaymentPlan.id)
        .join(Invoice, Invoice.id == PaymentPlan.invoice_id)
        .where(
            PaymentPlan.status.in_(LIVE),
            Invoice.status.not_in(statuses.PAYABLE) | (PaymentPlan.status == PAST_DUE),
        )
    ).all()
    for plan_id in settled:
        plan = session.get_one(PaymentPlan, plan_id)
        invoice = get_invoice(session, plan.invoice_id, for_update=True)
        if invoice.status != statuses.PROCESSING:
            dunning.refresh_plan(session, plan_id, invoice)
        session.commit()
    session.commit()
