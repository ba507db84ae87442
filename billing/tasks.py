"""Background work, each task a few lines over the same service functions the API and the
command line call. Every task is safe to run twice and on several machines at once:
deliveries and emails are claimed one by one, scheduled jobs hold a lease.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from celery import shared_task
from flask import current_app

from billing.adapters import db, providers
from billing.adapters.models import utcnow
from billing.domain.dates import day_of
from billing.services.access import audit
from billing.services.bookings import lifecycle
from billing.services.finance import stripe_sync as stripe_sync_service
from billing.services.integrations import emails, events, expiry, jobs, webhooks
from billing.services.integrations.settings import delivering, sending
from billing.services.invoicing import estimates
from billing.services.payments import balance, received, recovery, schedule
from billing.services.portal import statement_emails

log = logging.getLogger("billing.tasks")


@shared_task(name="billing.relay_events")
def relay_events() -> int:
    """Owe new events to the endpoints that want them, and send those deliveries."""
    made = events.relay(db.session())
    for delivery_id in made:
        deliver_webhook.delay(delivery_id)
    return len(made)


@shared_task(name="billing.deliver_webhook")
def deliver_webhook(delivery_id: str) -> str:
    return webhooks.deliver(db.session(), delivering(current_app.config), delivery_id)


@shared_task(name="billing.send_emails")
def send_emails() -> int:
    for message_id in emails.due(db.session()):
        send_email.delay(message_id)
    return 0


@shared_task(name="billing.send_email")
def send_email(message_id: str) -> str:
    return emails.send(db.session(), sending(current_app), message_id)


@shared_task(name="billing.sweep")
def sweep() -> int:
    """The backstop, every few seconds: relay what was not, resend what is due again
    (a retry, a worker that died mid-send, a message a broker lost)."""
    session = db.session()
    relay_events()
    due = webhooks.due(session)
    webhooks.resending(session, due)
    for delivery_id in due:
        deliver_webhook.delay(delivery_id)
    for message_id in emails.due(session):
        send_email.delay(message_id)
    return len(due)


def _exclusively(name: str, minutes: int, job: Callable[[], object]) -> None:
    """Run `job` unless another machine is running it now (its lease lasts `minutes`)."""
    with jobs.exclusive(db.session(), name, timedelta(minutes=minutes)) as lease:
        if lease is None:
            log.info("%s is running elsewhere; skipped", name)
            return
        job()


@shared_task(name="billing.stripe_sync")
def stripe_sync() -> None:
    _exclusively(
        "stripe-sync", 55, lambda: stripe_sync_service.sync(db.session(), providers.gateway())
    )


@shared_task(name="billing.reconcile_pending")
def reconcile_pending() -> None:
    _exclusively(
        "reconcile-pending",
        4,
        lambda: recovery.reconcile_pending(
            db.session(), providers.gateway(), timedelta(seconds=120)
        ),
    )


@shared_task(name="billing.settle_bookings")
def settle_bookings() -> None:
    """Cancelled places and re-quoted bookings whose money has not followed yet."""
    settings = lifecycle.settings_from(current_app.config, providers.gateway)
    _exclusively("settle-bookings", 4, lambda: lifecycle.settle_pending(db.session(), settings))


@shared_task(name="billing.apply_credit")
def apply_credit() -> None:
    """Payments of a balance pay the bills chosen, then patients' credit pays their
    oldest open invoices."""

    def run() -> None:
        balance.allocate_all(db.session(), providers.gateway())
        received.apply_all_credit(db.session())

    _exclusively("apply-credit", 4, run)


@shared_task(name="billing.update_estimates")
def update_estimates() -> None:
    """Re-quoted bookings' patients are given updated Good Faith Estimates."""
    config = current_app.config
    _exclusively(
        "update-estimates",
        4,
        lambda: estimates.update_all(
            db.session(), config["BILLING_CODES"], config["CLINIC_ZONE"], config["CLINIC_NPI"]
        ),
    )


@shared_task(name="billing.expire")
def expire() -> None:
    _exclusively("expire", 14, lambda: expiry.expire(db.session(), providers.gateway_or_none()))


@shared_task(name="billing.reminders")
def reminders() -> None:
    days = current_app.config["REMINDER_DAYS"]
    _exclusively("reminders", 55, lambda: emails.queue_reminders(db.session(), days))


@shared_task(name="billing.statements")
def statements() -> None:
    """Once a month has ended: the statement emails of addresses that owe something (each
    once, however often this runs)."""
    if current_app.config["STATEMENT_EMAILS"] != "on":
        return
    today = day_of(utcnow(), current_app.config["CLINIC_ZONE"])
    month = statement_emails.month_before(today)
    _exclusively("statements", 55, lambda: statement_emails.queue_month(db.session(), month))


@shared_task(name="billing.run_schedule")
def run_schedule() -> None:
    """Instalments, AutoPay charges and retries due now, handed to the workers one task
    each (each item's own claim makes a task delivered twice, or a second scheduler,
    harmless; the lease only saves the work of finding them twice)."""
    with audit.acting(schedule.SCHEDULER):
        _exclusively("run-schedule", 4, _hand_out_due)


def _hand_out_due() -> None:
    session = db.session()
    due = schedule.prepare(session, utcnow(), schedule.Run())
    handed: list[str] = []
    for index, item_id in enumerate(due):
        try:
            charge_scheduled.apply_async((item_id,), retry=False)
            handed.append(item_id)
        except Exception as error:  # the broker away: the rest are charged here
            log.warning("could not hand out scheduled charges (%s); charging them here", error)
            schedule.handed_out(session, handed)
            for left in due[index:]:
                schedule.charge_one(session, providers.gateway(), left)
            return
    schedule.handed_out(session, handed)


@shared_task(name="billing.charge_scheduled")
def charge_scheduled(item_id: str) -> None:
    with audit.acting(schedule.SCHEDULER):
        schedule.charge_one(db.session(), providers.gateway(), item_id)
