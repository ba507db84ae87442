"""A runner that dies at any step of charging an instalment leaves it to the next runner
(or Stripe's webhook) to finish, with the same idempotency key: the instalment is charged
once. Each death here is a real one where it can be (a `schedule run` process killed with
SIGKILL while Stripe is acting), and a BaseException at the exact step elsewhere (nothing
in the service catches it, as nothing catches a SIGKILL)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from billing.services.payments import charges, schedule
from tests.fixtures_stripe import SECRET_KEY, WEBHOOK_SECRET, eventually
from tests.stripe.collect import collected_at_stripe
from tests.stripe.plans import Died, charges_sent, dies_once, items, local, make_plan, run_at


def one_instalment_due(stripe_app, stripe_client, staff, open_invoice):
    invoice_id = open_invoice("pm_card_visa")
    with time_machine.travel(local("UTC", 2027, 4, 1, 8), tick=True):
        make_plan(
            stripe_client, staff, invoice_id, instalments=2, interval="month", first_at="2027-04-01"
        )
    return invoice_id


@pytest.mark.parametrize(
    ("owner", "step"),
    [
        (schedule, "_due"),  # taken, nothing recorded
        (charges, "cancel_online"),  # the payment recorded, Stripe not called
        (charges, "apply_intent"),  # Stripe charged the card; its answer lost
    ],
    ids=["after-taking", "before-stripe", "after-stripe-answered"],
)
def test_a_runner_dying_at_each_step_never_charges_twice(
    stripe_app, stripe_client, staff, open_invoice, standin, proxy, monkeypatch, owner, step
) -> None:
    invoice_id = one_instalment_due(stripe_app, stripe_client, staff, open_invoice)
    dies_once(monkeypatch, owner, step)
    proxy.requests.clear()
    with pytest.raises(Died):
        with time_machine.travel(local("UTC", 2027, 4, 1, 9, 5), tick=True):
            stripe_app.test_cli_runner().invoke(args=["schedule", "run"], catch_exceptions=False)
    [first, _] = items(stripe_app, invoice_id)
    assert first.status == "charging"
    run_at(stripe_app, local("UTC", 2027, 4, 1, 9, 6))  # its lease still holds it
    assert [i.status for i in items(stripe_app, invoice_id)][0] in ("charging", "paid")
    run_at(stripe_app, local("UTC", 2027, 4, 1, 9, 15))  # the lease ran out: taken over
    [first, second] = items(stripe_app, invoice_id)
    assert (first.status, first.amount_paid, first.attempts) == ("paid", 25000, 1)
    assert second.status == "scheduled"
    assert len(set(charges_sent(proxy))) <= 1  # one key, however often it was sent
    assert collected_at_stripe(standin, invoice_id) == (25000, 0)


@pytest.mark.parametrize(  # a real process and PostgreSQL, as in production
    "stripe_app", [pytest.param("postgresql", marks=pytest.mark.postgresql)], indirect=True
)
def test_a_schedule_run_killed_while_stripe_charges_is_finished_once(
    stripe_app, stripe_client, staff, open_invoice, standin, proxy
) -> None:
    """A real `flask schedule run` process, SIGKILLed while its charge is at Stripe (the
    proxy holds the request, then lets Stripe act on it): Stripe's webhook or the next
    run finish the instalment, and the card is charged once."""
    today = datetime.now(UTC).date()
    invoice_id = open_invoice("pm_card_visa")
    make_plan(
        stripe_client,
        staff,
        invoice_id,
        instalments=2,
        interval="month",
        first_at=today.isoformat(),
    )
    proxy.requests.clear()
    proxy.fault, proxy.delay = "slow", 1.5
    env = {
        **os.environ,
        "DATABASE_URL": stripe_app.config["DATABASE_URL"],
        "STRIPE_SECRET_KEY": SECRET_KEY,
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "STRIPE_API_BASE": proxy.url,
        "STRIPE_MAX_NETWORK_RETRIES": "0",
        "LOG_LEVEL": "WARNING",
    }
    as_of = datetime.combine(today, datetime.min.time(), UTC) + timedelta(hours=12)
    runner = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flask",
            "--app",
            "billing",
            "schedule",
            "run",
            "--as-of",
            as_of.isoformat(),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        eventually(lambda: charges_sent(proxy), timeout=30)  # at Stripe's door
        runner.send_signal(signal.SIGKILL)
        runner.wait(timeout=10)
    finally:
        if runner.poll() is None:
            runner.kill()
    proxy.fault = None
    time.sleep(proxy.delay + 0.5)  # the held request reaches Stripe, which charges
    [first, _] = items(stripe_app, invoice_id)
    assert first.last_payment_id is not None  # recorded before Stripe was called
    run_at(stripe_app, as_of + timedelta(days=1))  # the next run, long after the lease
    eventually(lambda: items(stripe_app, invoice_id)[0].status == "paid")
    assert collected_at_stripe(standin, invoice_id) == (25000, 0)
    assert len(set(charges_sent(proxy))) == 1
