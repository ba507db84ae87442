"""Payment plans at scale: 1,000 instalments due at the same minute, charged by two Celery
workers (each with its own beat scheduler: two schedulers at once), each exactly once,
all within 2 minutes. Run it on demand, never from the test suite:

    .venv/bin/python bench/plans.py [--plans 1000] [--concurrency 2] [--kill] [--memberships]

It needs the local PostgreSQL (127.0.0.1:5432, user postgres) and Redis (127.0.0.1:6379,
the broker here; `--broker amqp://...` for RabbitMQ). It creates a throwaway database and
a queue of its own, starts the Stripe stand-in in this process, makes `--plans` invoices,
each with a saved card and a two-instalment plan, makes every first instalment due now,
starts two workers with `--concurrency` processes each and a scheduler each, hands the
due instalments out once, and waits until every one is paid. With `--kill` the second
worker is SIGKILLed a third of the way through and a new one started: what it held is
taken over once its lease runs out (5 minutes), so only exactly-once is checked then.

Valid only if every instalment is paid exactly once: one succeeded PaymentIntent per
invoice at the stand-in, one succeeded payment per invoice in the ledger (exit 2
otherwise); the target is all of them within 120 s (exit 1 otherwise).

With `--memberships` the same is done with memberships: `--plans` patients each join a
monthly membership from today, and every first period's fee, due this minute, is charged
by the workers in the same way (a membership's scheduled charge), each exactly once.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import signal
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from common import (  # noqa: E402
    EXIT_INVALID,
    EXIT_MET,
    EXIT_MISSED,
    BenchError,
    run_bench,
    throwaway_database,
)
from sqlalchemy import select  # noqa: E402
from webhooks import DEFAULT_POSTGRES, start_worker  # noqa: E402

from billing import create_app  # noqa: E402
from billing.adapters import db  # noqa: E402
from billing.adapters.migrate import upgrade  # noqa: E402
from billing.adapters.models import Payment  # noqa: E402
from billing.adapters.schedule_models import ScheduledCharge  # noqa: E402
from billing.adapters.standin import StripeStandIn  # noqa: E402
from billing.services.access import keys  # noqa: E402
from billing.services.pricing import catalog  # noqa: E402

TARGET_SECONDS = 120.0
SECRET_KEY = "sk_test_bench_plans"


def quoted_with_card(client, staff: dict[str, str], patient: str) -> tuple[str, str]:
    """A quote of an IV session in three days for `patient` (so billing knows them), and a
    card saved for them: the quote's id and the card's."""
    when = (dt.datetime.now(dt.UTC) + dt.timedelta(days=3)).replace(microsecond=0).isoformat()
    quote = client.post(
        "/v1/quotes",
        headers=staff,
        json={
            "booking_id": f"BK-{patient}",
            "session_type": "iv_individual",
            "scheduled_at": when,
            "currency": "usd",
            "patients": [{"patient_id": patient, "name": "Bench Patient"}],
        },
    ).json
    card = client.post(
        f"/v1/patients/{patient}/payment-methods",
        headers=staff,
        json={"payment_method": "pm_card_visa"},
    ).json["id"]
    return str(quote["id"]), str(card)


def make_plans(app, count: int) -> list[str]:
    """`count` invoices, each with a saved card and a plan of two weekly instalments from
    today; their ids."""
    with app.app_context():
        catalog.seed_default(db.session())
        _, plain = keys.create_key(
            db.session(), "bench", ["quotes:write", "invoices:write", "payments:write"]
        )
    staff = {"Authorization": f"Bearer {plain}"}
    client = app.test_client()
    today = dt.datetime.now(dt.UTC).date()
    invoices = []
    for n in range(count):
        patient = f"P-{n:05d}"
        quote_id, card = quoted_with_card(client, staff, patient)
        invoice = client.post("/v1/invoices", headers=staff, json={"quote_id": quote_id})
        invoice_id = invoice.json["data"][0]["id"]
        plan = client.post(
            f"/v1/invoices/{invoice_id}/plan",
            headers=staff,
            json={
                "instalments": 2,
                "interval": "week",
                "first_at": today.isoformat(),
                "payment_method": card,
            },
        )
        if plan.status_code != 201:
            raise BenchError(f"plan {n}: {plan.status_code} {plan.json}")
        invoices.append(invoice_id)
        if (n + 1) % 100 == 0:
            print(f"  {n + 1} plans made", flush=True)
    return invoices


def make_memberships(app, count: int) -> list[str]:
    """`count` patients, each with a saved card and a monthly membership from today; the
    invoices of their first periods."""
    with app.app_context():
        catalog.seed_default(db.session())
        _, plain = keys.create_key(
            db.session(), "bench", ["quotes:write", "payments:write", "catalog:write"]
        )
    staff = {"Authorization": f"Bearer {plain}"}
    client = app.test_client()
    offered = client.post(
        "/v1/catalog/memberships",
        headers=staff,
        json={
            "code": "BENCH",
            "name": "Bench",
            "interval": "month",
            "amount": 9900,
            "currency": "usd",
            "percent_off": 10,
        },
    )
    if offered.status_code != 201:
        raise BenchError(f"membership: {offered.status_code} {offered.json}")
    invoices = []
    for n in range(count):
        patient = f"P-{n:05d}"
        _, card = quoted_with_card(client, staff, patient)
        joined = client.post(
            f"/v1/patients/{patient}/memberships",
            headers=staff,
            json={"code": "BENCH", "payment_method": card},
        )
        if joined.status_code != 201:
            raise BenchError(f"membership {n}: {joined.status_code} {joined.json}")
        invoices.append(joined.json["periods"][0]["invoice_id"])
        if (n + 1) % 100 == 0:
            print(f"  {n + 1} memberships made", flush=True)
    return invoices


def paid_count(app, invoices: set[str]) -> int:
    with app.app_context():
        session = db.session()
        rows = session.execute(
            ScheduledCharge.__table__.select().where(
                (ScheduledCharge.number == 1) | (ScheduledCharge.kind == "membership"),
                ScheduledCharge.status == "paid",
            )
        ).all()
        session.commit()
        return sum(1 for row in rows if row.invoice_id in invoices)


def check_once(app, invoices: list[str]) -> list[str]:
    """What is wrong: an invoice charged other than exactly once, here or at Stripe."""
    from localstripe import resources

    at_stripe = Counter(
        intent.metadata.get("invoice_ref")
        for key, intent in list(resources.store.items())
        if key.startswith("payment_intent:") and intent.status == "succeeded"
    )
    with app.app_context():
        ours = Counter(
            db.session().scalars(select(Payment.invoice_id).where(Payment.status == "succeeded"))
        )
    wrong = []
    for invoice_id in invoices:
        if at_stripe[invoice_id] != 1 or ours[invoice_id] != 1:
            wrong.append(
                f"{invoice_id}: {at_stripe[invoice_id]} at Stripe, {ours[invoice_id]} ours"
            )
    return wrong


def run(args: argparse.Namespace) -> int:
    standin = StripeStandIn().start()
    queue = f"billing-bench-{uuid.uuid4().hex[:8]}"
    with throwaway_database(args.postgres, "billing_bench_plans") as url:
        upgrade(url)
        settings = {
            "DATABASE_URL": url,
            "CELERY_BROKER_URL": args.broker,
            "TASK_QUEUE": queue,
            "STRIPE_SECRET_KEY": SECRET_KEY,
            "STRIPE_API_BASE": standin.url,
            "STRIPE_MAX_NETWORK_RETRIES": "0",
            "SCHEDULE_HOURS": "0-24",  # any hour of the day, for the bench
            "SECRET_KEY": "bench",
            "LOG_LEVEL": "WARNING",
            "DB_POOL_SIZE": "4",
        }
        app = create_app(
            {
                "TESTING": True,
                **settings,
                "API_RATE_LIMIT": "1000000 per minute",
                "STRIPE_MAX_NETWORK_RETRIES": 0,
                "DB_POOL_SIZE": 4,
            }
        )
        what = "memberships" if args.memberships else "plans"
        print(f"making {args.plans} {what} ...", flush=True)
        invoices = (make_memberships if args.memberships else make_plans)(app, args.plans)
        with app.app_context():  # every first instalment (or fee) due this minute
            session = db.session()
            session.execute(
                ScheduledCharge.__table__.update()
                .where((ScheduledCharge.number == 1) | (ScheduledCharge.kind == "membership"))
                .values(next_attempt_at=dt.datetime.now(dt.UTC))
            )
            session.commit()
        workers = [
            start_worker(settings, args.concurrency, name, beat=True) for name in ("w1", "w2")
        ]
        try:
            time.sleep(3)
            started = time.monotonic()
            app.extensions["celery"].send_task("billing.run_schedule", queue=queue)
            killed = False
            wanted = set(invoices)
            deadline = started + (TARGET_SECONDS + 420 if args.kill else TARGET_SECONDS + 60)
            done = 0
            while time.monotonic() < deadline:
                done = paid_count(app, wanted)
                if done == len(invoices):
                    break
                if args.kill and not killed and done >= len(invoices) // 3:
                    os.killpg(workers[1].pid, signal.SIGKILL)
                    workers.append(start_worker(settings, args.concurrency, "w3", beat=True))
                    killed = True
                    print(f"  worker w2 SIGKILLed at {done} paid; w3 started", flush=True)
                time.sleep(0.5)
            elapsed = time.monotonic() - started
        finally:
            for worker in workers:
                if worker.poll() is None:
                    os.killpg(worker.pid, signal.SIGTERM)
            for worker in workers:
                worker.wait(timeout=30)
        wrong = check_once(app, invoices)
        app.extensions["billing.db"].engine.dispose()
    charged = "membership fees" if args.memberships else "first instalments"
    print(f"{done} of {len(invoices)} {charged} paid in {elapsed:.1f} s")
    if wrong or done != len(invoices):
        for line in wrong[:20]:
            print(f"  {line}")
        print("not valid: an instalment was charged other than exactly once")
        return EXIT_INVALID
    print("each charged exactly once (at Stripe and in the ledger)")
    if args.kill:
        return EXIT_MET
    met = elapsed <= TARGET_SECONDS
    print(f"target {TARGET_SECONDS:.0f} s: {'met' if met else 'missed'}")
    return EXIT_MET if met else EXIT_MISSED


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES)
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--plans", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--kill", action="store_true")
    parser.add_argument("--memberships", action="store_true")
    return run_bench(parser, run)


if __name__ == "__main__":
    sys.exit(main())
