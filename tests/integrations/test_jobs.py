"""Scheduled jobs run once at a time on every machine (a lease in the database), and the
expiry job announces quotes that lapsed without an invoice."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update

from billing.adapters import db
from billing.adapters.models import Quote, utcnow
from billing.services.integrations import expiry, jobs
from tests.integrations.feed import wait_until_settled


def test_a_job_held_by_one_runner_is_skipped_by_the_others_until_it_is_given_back(
    app: Flask,
) -> None:
    with app.app_context():
        session = db.session()
        first = jobs.take(session, "stripe-sync", timedelta(minutes=5))
        assert first is not None
        assert jobs.take(session, "stripe-sync", timedelta(minutes=5)) is None
        assert jobs.take(session, "reminders", timedelta(minutes=5)) is not None  # another job
        jobs.give_back(session, first)
        assert jobs.take(session, "stripe-sync", timedelta(minutes=5)) is not None


def test_a_crashed_runner_s_lease_runs_out_and_the_job_is_taken_again(app: Flask) -> None:
    with app.app_context():
        session = db.session()
        assert jobs.take(session, "expire", timedelta(seconds=0.2)) is not None  # then "crashes"
        assert jobs.take(session, "expire", timedelta(minutes=5)) is None
        time.sleep(0.3)
        assert jobs.take(session, "expire", timedelta(minutes=5)) is not None


def test_a_dead_relay_holds_deliveries_back_ten_seconds_at_most(app: Flask) -> None:
    """The relay's lease is short and renewed as it works: a relay killed while holding
    it stops the next one for RELAY_TTL (10 s), not minutes."""
    from billing.services.integrations.events import RELAY, RELAY_TTL

    assert RELAY_TTL <= timedelta(seconds=10)
    with app.app_context():
        session = db.session()
        started = utcnow()
        dead = jobs.take(session, RELAY, RELAY_TTL, now=started)  # then it is SIGKILLed
        assert dead is not None
        assert jobs.take(session, RELAY, RELAY_TTL, now=started + timedelta(seconds=9)) is None
        assert jobs.take(session, RELAY, RELAY_TTL, now=started + RELAY_TTL + timedelta(seconds=1))


def test_a_runner_whose_lease_was_taken_over_commits_none_of_its_work(app: Flask) -> None:
    """Renewing is saving progress: a runner that outlived its lease finds another holder
    and its work rolls back (LeaseLost), so two relays never both make deliveries."""
    with app.app_context():
        session = db.session()
        slow = jobs.take(session, "relay-test", timedelta(seconds=0.1))
        assert slow is not None
        time.sleep(0.2)
        assert jobs.take(session, "relay-test", timedelta(minutes=1)) is not None  # took over
        with pytest.raises(jobs.LeaseLost):
            jobs.move_cursor(session, slow, "1:1")
        session.rollback()


def test_runners_starting_together_run_the_job_once(app: Flask) -> None:
    ran: list[int] = []
    start = threading.Barrier(6)

    def runner(number: int) -> None:
        with app.app_context():
            start.wait()
            with jobs.exclusive(db.session(), "reconcile-pending", timedelta(minutes=1)) as lease:
                if lease is not None:
                    ran.append(number)
                    time.sleep(0.3)  # still running while the others look

    threads = [threading.Thread(target=runner, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(ran) == 1


def test_a_failed_run_is_recorded_and_gives_its_lease_back(app: Flask) -> None:
    from billing.adapters.outbox import JobLease

    with app.app_context():
        session = db.session()
        try:
            with jobs.exclusive(session, "stripe-sync", timedelta(minutes=1)):
                raise RuntimeError("Stripe was down")
        except RuntimeError:
            pass
        lease = session.get(JobLease, "stripe-sync")
        assert lease is not None and lease.until is None
        assert lease.last_error == "RuntimeError: Stripe was down"


def test_quotes_that_lapse_without_an_invoice_are_announced_once(
    app: Flask,
    client: FlaskClient,
    make_key: Callable[..., dict[str, str]],
    booking: Callable[..., Any],
) -> None:
    desk = make_key("quotes:write", "invoices:write", "events:read")
    lapsed = client.post("/v1/quotes", json=booking(), headers=desk).json
    invoiced = client.post("/v1/quotes", json=booking(), headers=desk).json
    client.post("/v1/invoices", json={"quote_id": invoiced["id"]}, headers=desk)
    fresh = client.post("/v1/quotes", json=booking(), headers=desk).json
    with app.app_context():
        session = db.session()
        session.execute(
            update(Quote)
            .where(Quote.id.in_([lapsed["id"], invoiced["id"]]))
            .values(expires_at=utcnow() - timedelta(minutes=1))
        )
        session.commit()
        assert expiry.expire(session, None).quotes == 1
        assert expiry.expire(session, None).quotes == 0  # once
    wait_until_settled(app)
    expired = client.get("/v1/events?type=quote.expired", headers=desk).json["data"]
    assert [e["data"]["object"]["id"] for e in expired] == [lapsed["id"]]
    assert fresh["id"] != lapsed["id"]
