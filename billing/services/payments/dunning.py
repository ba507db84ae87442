"""What a scheduled charge does when its payment is settled: paid, tried again after a
decline that may yet succeed, or given up (and finance and the patient told).

A scheduled charge follows its payment in the transaction that settles the payment
(`follow`, called where every payment outcome is applied: the charge's own answer, a
webhook, the recovery job), so an outcome is acted on once, however it arrives.

Retries follow the clinic's schedule (SCHEDULE_RETRY_DAYS, by default 1, 3, 5 and 7 days
after the first decline), at the charge hour of the clinic's clock and never outside its
hours; only declines that a retry may turn into a payment are retried (never a lost or
stolen card, a fraud decline, or a bank asking the patient to authenticate: that patient
is emailed a pay link instead).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing.adapters.models import Invoice, Payment, utcnow
from billing.adapters.schedule_models import PaymentPlan, ScheduledCharge
from billing.domain import schedules, statuses
from billing.domain.dates import UTC_ZONE, day_of
from billing.domain.schedules import (
    ACTION_NEEDED,
    ACTIVE,
    CANCELLED,
    CHARGING,
    COMPLETED,
    COVERED,
    DUE,
    FAILED,
    GAVE_UP,
    LIVE,
    OWED,
    PAID,
    PAST_DUE,
    RETRYING,
    SCHEDULED,
)
from billing.services.access import audit
from billing.services.integrations import emails, events
from billing.services.payments import membership_periods

# Stripe's error codes of a card the bank declined (a decline_code says why, when given).
CARD_DECLINES = frozenset(
    {
        "card_declined",
        "expired_card",
        "incorrect_cvc",
        "incorrect_number",
        "processing_error",
        "authentication_required",
        "card_decline_rate_limit_exceeded",
        "insufficient_funds",
    }
)
# What no retry changes: the card was removed, Stripe refused the request as made (a
# payment method detached at Stripe), a few cents no card can be charged. Anything else
# that is not a decline passes (Stripe busy or misconfigured for a while, another charge of
# the bill in flight, a hold the booking's settling clears, money arriving meanwhile) and
# is tried again within the hour, never counted as a decline.
# A person's turn: the charge cannot succeed by trying again (the patient's consent to
# the card does not cover it, among others).
PERMANENT = frozenset(
    {"no_card_on_file", "stripe_invalid_request", "amount_too_small", "consent_limit"}
)


@dataclass(frozen=True, slots=True)
class Settings:
    zone: ZoneInfo = UTC_ZONE
    window: schedules.Window = field(default_factory=schedules.Window)
    retry_days: tuple[int, ...] = (1, 3, 5, 7)
    autopay_on: bool = False  # the clinic's AUTOPAY: cards saved with consent
    autopay_hour: int = 20  # AUTOPAY_HOUR: the nightly run's hour of the clinic's clock


def settings() -> Settings:
    """The clinic's settings for scheduled money (defaults outside an app)."""
    from flask import current_app, has_app_context

    if not has_app_context():
        return Settings()
    config = current_app.config
    return Settings(
        zone=config["CLINIC_ZONE"],
        window=config.get("SCHEDULE_WINDOW") or schedules.Window(),
        retry_days=tuple(config.get("SCHEDULE_RETRY_DAYS") or (1, 3, 5, 7)),
        autopay_on=config.get("AUTOPAY") == "on",
        autopay_hour=int(config.get("AUTOPAY_HOUR", 20)),
    )


def follow(session: Session, invoice: Invoice, payment: Payment) -> None:
    """In the caller's transaction, under the invoice's lock: the scheduled charge that
    made `payment` follows its new status."""
    item = session.scalars(
        select(ScheduledCharge)
        .where(ScheduledCharge.id == payment.scheduled_charge_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one_or_none()
    if item is None:
        return
    if payment.status == statuses.SUCCEEDED:
        _paid(session, item, payment)
    elif item.last_payment_id != payment.id or item.status not in (CHARGING, *DUE):
        return  # an earlier attempt's news; this attempt decides
    elif payment.status == statuses.REQUIRES_ACTION:
        _give_up(session, invoice, item, schedules.NEEDS_THE_PATIENT, ACTION_NEEDED)
    elif payment.status == statuses.FAILED:
        failed(session, invoice, item, payment.failure_code, payment.decline_code)
    refresh_plan(session, item.plan_id, invoice)


def _paid(session: Session, item: ScheduledCharge, payment: Payment) -> None:
    item.amount_paid += payment.amount
    recovered = item.declines > 0 or item.status in GAVE_UP
    if item.status not in (PAID, CANCELLED):
        item.status, item.paid_at = PAID, payment.paid_at or utcnow()
        item.next_attempt_at = item.lease_until = None
    audit.record(
        session,
        "schedule.recovered" if recovered else "schedule.paid",
        "scheduled_charge",
        item.id,
        payment_id=payment.id,
        amount=payment.amount,
        attempts=item.attempts,
    )
    if item.plan_id is not None:
        plan = session.get(PaymentPlan, item.plan_id)
        events.publish(session, "plan.instalment_paid", "plan", plan)


def failed(
    session: Session,
    invoice: Invoice,
    item: ScheduledCharge,
    code: str | None,
    decline_code: str | None = None,
) -> None:
    """In the caller's transaction: the item's attempt collected nothing. A card's decline
    follows the retry schedule; a card no longer saved is given up; anything else (Stripe
    busy or unreachable, another charge in flight, a hold on the bill) is tried again
    within the hour, without counting as a decline."""
    if decline_code is not None or (code or "card_declined") in CARD_DECLINES:
        declined(session, invoice, item, decline_code or code)
    elif code in PERMANENT:  # a person's turn: finance and the patient are told
        _give_up(session, invoice, item, str(code), FAILED)
    else:  # it passes (Stripe busy, a hold the booking's settling clears, money moving)
        defer(item, soon(utcnow(), settings()))


def declined(session: Session, invoice: Invoice, item: ScheduledCharge, code: str | None) -> None:
    """In the caller's transaction: a decline of the item's charge; retried on the clinic's
    schedule when it may succeed, else given up."""
    config = settings()
    today = day_of(utcnow(), config.zone)
    item.declines += 1
    item.first_declined_on = item.first_declined_on or today
    item.failure_code = (code or "card_declined")[:64]
    item.lease_until = None
    when = None
    if schedules.retryable(code):
        when = schedules.retry_at(
            item.first_declined_on, item.declines, config.retry_days, config.zone, config.window
        )
    if when is None:
        _give_up(session, invoice, item, item.failure_code, FAILED)
        return
    item.status = RETRYING
    # Never the day of this decline, however late the last attempt ran.
    tomorrow = schedules.first_attempt(today + timedelta(days=1), config.zone, config.window)
    item.next_attempt_at = schedules.within(max(when, tomorrow), config.zone, config.window)
    audit.record(
        session,
        "schedule.retry_scheduled",
        "scheduled_charge",
        item.id,
        failure_code=item.failure_code,
        next_attempt_at=item.next_attempt_at.isoformat(),
    )
    events.publish(session, "payment.retry_scheduled", "scheduled_charge", item)


def _give_up(
    session: Session, invoice: Invoice, item: ScheduledCharge, code: str, status: str
) -> None:
    """No more tries: finance hears it (event, audit, the dunning report), the patient is
    emailed a pay link (the charge's own email already asked, for a card needing them)."""
    item.status, item.failure_code = status, code[:64]
    item.next_attempt_at = item.lease_until = None
    audit.record(
        session,
        "schedule.gave_up",
        "scheduled_charge",
        item.id,
        failure_code=code,
        declines=item.declines,
    )
    events.publish(session, "payment.retries_exhausted", "scheduled_charge", item)
    membership_periods.charge_given_up(session, item)
    if item.plan_id is None and status == FAILED:  # AutoPay, membership: pay by link
        emails.queue(session, emails.ACTION_NEEDED, invoice, f"gave-up:{item.id}")


def refresh_plan(session: Session, plan_id: str | None, invoice: Invoice) -> None:
    """In the caller's transaction: the plan's status from its instalments; a plan whose
    invoice owes nothing more is complete (what is left of it was paid otherwise)."""
    if plan_id is None:
        return
    plan = session.scalars(
        select(PaymentPlan).where(PaymentPlan.id == plan_id).with_for_update()
    ).one()
    if plan.status not in LIVE:
        return
    session.flush()
    session.refresh(plan, ["items"])
    session.refresh(invoice, ["amount_paid"])
    if invoice.status in statuses.CLOSED:  # voided, or written off: nothing more is asked
        _close(session, plan, CANCELLED)
        return
    if invoice.balance_due <= 0 or all(i.status not in OWED for i in plan.items):
        _close(session, plan, COMPLETED)
        return
    _cover_paid_otherwise(session, plan, invoice)
    was = plan.status
    plan.status = PAST_DUE if any(i.status in GAVE_UP for i in plan.items) else ACTIVE
    if plan.status == PAST_DUE and was != PAST_DUE:
        audit.record(session, "plan.past_due", "plan", plan.id, invoice_id=invoice.id)
        events.publish(session, "plan.past_due", "plan", plan)
        # Once per set of instalments given up: a later one past due is emailed again.
        given_up = ",".join(i.id for i in plan.items if i.status in GAVE_UP)
        episode = hashlib.sha256(given_up.encode()).hexdigest()[:16]
        emails.queue(session, emails.PLAN_PAST_DUE, invoice, f"plan-past-due:{plan.id}:{episode}")


def _cover_paid_otherwise(session: Session, plan: PaymentPlan, invoice: Invoice) -> None:
    """Instalments given up that money paid outside the plan has since settled (a pay link,
    the desk): covered, so a plan paid up again is active again."""
    owed = invoice.balance_due
    for item in plan.items:
        if item.status not in GAVE_UP:
            continue
        if (
            schedules.due_now(item.amount - item.amount_paid, owed, _owed_after(plan.items, item))
            == 0
        ):
            item.status, item.next_attempt_at = COVERED, None
            audit.record(session, "schedule.covered", "scheduled_charge", item.id)
    session.flush()
    session.refresh(plan, ["items"])


def _close(session: Session, plan: PaymentPlan, status: str) -> None:
    now = utcnow()
    for item in plan.items:
        if item.status in OWED and item.status != CHARGING:
            item.status = COVERED if status == COMPLETED else CANCELLED
            item.next_attempt_at = None
            item.updated_at = now
    plan.status = status
    if status == CANCELLED:
        plan.cancelled_at, plan.cancel_reason = now, "The invoice was closed (void or written off)."
    session.flush()
    session.refresh(plan, ["items"])
    audit.record(session, f"plan.{status}", "plan", plan.id, invoice_id=plan.invoice_id)
    events.publish(session, f"plan.{status}", "plan", plan)


def defer(item: ScheduledCharge, when: datetime) -> None:
    """Back to waiting (something was in the way), tried again at `when`."""
    item.status = RETRYING if item.declines else SCHEDULED
    item.next_attempt_at, item.lease_until = when, None


def later_unpaid(session: Session, item: ScheduledCharge) -> int:
    """What the plan's later instalments still owe (they are charged on their own days)."""
    if item.plan_id is None:
        return 0
    plan = session.get_one(PaymentPlan, item.plan_id)
    session.refresh(plan, ["items"])
    return _owed_after(plan.items, item)


def _owed_after(items: list[ScheduledCharge], item: ScheduledCharge) -> int:
    """What the instalments after `item` still owe."""
    return sum(
        max(0, later.amount - later.amount_paid)
        for later in items
        if (later.number or 0) > (item.number or 0) and later.status in OWED
    )


def soon(now: datetime, config: Settings, minutes: int = 60) -> datetime:
    """A moment to try again after something in the way (another charge in flight), inside
    the clinic's hours."""
    return schedules.within(now + timedelta(minutes=minutes), config.zone, config.window)
