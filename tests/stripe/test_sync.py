"""`stripe sync` against the Stripe stand-in: Stripe's balance transactions copied into our
table, once each, resumable after an interruption, and reconciling with our ledger."""

from __future__ import annotations

import csv
import gc
import io
import json
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from billing.adapters import db
from billing.adapters.models import (
    Payment,
    Refund,
    StripeBalanceTransaction,
    StripeEvent,
    StripePayout,
    SyncState,
)
from billing.adapters.standin import StripeStandIn
from billing.domain.errors import ServiceUnavailable
from billing.services.access import keys
from billing.services.finance.stripe_sync import BALANCE, sync
from tests.fixtures_stripe import SECRET_KEY, eventually


@pytest.fixture(autouse=True)
def own_stand_in(stripe_app: Flask, standin: StripeStandIn) -> Iterator[None]:
    """The stand-in lives for the whole session: start each test with no Stripe objects,
    so that what the sync finds is exactly what this test made. Afterwards, wait until
    the app has taken every webhook the stand-in sends (a second late) and finished with
    it, so that no webhook is still using the database when the app is disposed."""
    standin.reset()
    yield
    events = stand_in_get(standin, "/v1/events?limit=100")["data"]
    sent = {event["id"] for event in events}
    engine = stripe_app.extensions["billing.db"].engine

    def all_taken() -> bool:
        with engine.connect() as connection:
            taken = set(connection.scalars(select(StripeEvent.id)))
        return sent <= taken and engine.pool.checkedout() == 0

    eventually(all_taken)


@pytest.fixture
def finance(stripe_app: Flask) -> dict[str, str]:
    with stripe_app.app_context():
        _, plain = keys.create_key(db.session(), "finance", ["reports:read"])
    return {"Authorization": f"Bearer {plain}"}


def pay(client, staff, invoice_id: str) -> None:
    response = client.post(
        f"/v1/invoices/{invoice_id}/payments",
        headers={**staff, "Idempotency-Key": f"pay-{invoice_id}"},
        json={"method": "card_on_file"},
    )
    assert response.status_code == 201, response.json
    assert response.json["status"] == "succeeded"


def refund(client, staff, invoice_id: str, amount: int) -> None:
    response = client.post(
        f"/v1/invoices/{invoice_id}/refunds",
        headers={**staff, "Idempotency-Key": f"refund-{invoice_id}"},
        json={"amount": amount, "reason": "x"},
    )
    assert response.status_code == 201, response.json
    assert response.json["status"] == "succeeded"


@pytest.fixture
def paid_and_refunded(stripe_client, staff, open_invoice) -> list[str]:
    """Three invoices paid by card on file, the first refunded 100.00 of its 500.00."""
    invoice_ids = [open_invoice("pm_card_visa") for _ in range(3)]
    for invoice_id in invoice_ids:
        pay(stripe_client, staff, invoice_id)
    refund(stripe_client, staff, invoice_ids[0], 10000)
    return invoice_ids


def stripe_ids(app: Flask) -> tuple[list[str], list[str]]:
    """Our payments' charge ids and our refunds' refund ids, as Stripe named them."""
    with app.app_context():
        session = db.session()
        charges = list(session.scalars(select(Payment.stripe_charge_id)))
        refunds = list(session.scalars(select(Refund.stripe_refund_id)))
    assert None not in charges and None not in refunds
    return charges, refunds


def stored(app: Flask) -> dict[str, StripeBalanceTransaction]:
    with app.app_context():
        rows = db.session().scalars(select(StripeBalanceTransaction)).all()
    return {row.id: row for row in rows}


def stored_count(app: Flask) -> int:
    with app.app_context():
        return int(
            db.session().scalar(select(func.count()).select_from(StripeBalanceTransaction)) or 0
        )


def run_cli(app: Flask, *args: str) -> Any:
    return app.test_cli_runner().invoke(args=["stripe", "sync", *args])


def today() -> str:
    return datetime.now(UTC).date().isoformat()


def reconciliation(client, finance, day: str, **query: str) -> Any:
    response = client.get(
        "/v1/reports/reconciliation",
        query_string={"from": day, "to": day, **query},
        headers=finance,
    )
    body = response.get_data(as_text=True)  # read it all: the CSV is a stream
    assert response.status_code == 200, body
    return response


def stand_in_get(standin: StripeStandIn, path: str) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{standin.url}{path}", headers={"Authorization": f"Bearer {SECRET_KEY}"}
    )
    with urllib.request.urlopen(request, timeout=5) as answer:
        return dict(json.loads(answer.read()))


def stand_in_post(standin: StripeStandIn, path: str, data: str) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{standin.url}{path}",
        data=data.encode(),
        headers={"Authorization": f"Bearer {SECRET_KEY}"},
    )
    with urllib.request.urlopen(request, timeout=5) as answer:
        return dict(json.loads(answer.read()))


# The sync copies what Stripe moved ---------------------------------------------------


def test_sync_stores_a_balance_transaction_for_each_charge_and_refund(
    stripe_app, paid_and_refunded
) -> None:
    result = run_cli(stripe_app)
    assert result.exit_code == 0, result.output
    assert "synced 4 balance transactions, 4 new" in result.output

    charges, refunds = stripe_ids(stripe_app)
    assert len(charges) == 3 and len(refunds) == 1
    by_source = {row.source: row for row in stored(stripe_app).values()}
    assert set(by_source) == {*charges, *refunds}
    for charge_id in charges:
        row = by_source[charge_id]
        assert (row.type, row.amount, row.currency) == ("charge", 50000, "usd")
        assert row.net == row.amount - row.fee
    (refund_id,) = refunds
    row = by_source[refund_id]
    assert (row.type, row.amount, row.currency) == ("refund", -10000, "usd")


def test_synced_payments_and_refund_all_reconcile_as_matched(
    stripe_app, stripe_client, finance, paid_and_refunded
) -> None:
    day = today()
    assert run_cli(stripe_app).exit_code == 0
    charges, refunds = stripe_ids(stripe_app)

    response = reconciliation(stripe_client, finance, day, format="csv")
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    response.close()
    # The streamed CSV holds its connection until its session is garbage collected (see
    # tests/api/test_reconciliation.py): free it before the app's engine is disposed.
    gc.collect()
    assert {row["status"] for row in rows} == {"matched"}
    assert sorted(row["stripe_source"] for row in rows) == sorted([*charges, *refunds])
    assert all(row["ledger_entry_id"] and row["stripe_transaction_id"] for row in rows)
    assert sorted(int(row["ledger_amount"]) for row in rows) == [-10000, 50000, 50000, 50000]


def test_synced_day_reconciles_in_the_json_report_too(
    stripe_app, stripe_client, finance, paid_and_refunded
) -> None:
    day = today()
    assert run_cli(stripe_app).exit_code == 0
    report = reconciliation(stripe_client, finance, day).json
    assert len(report["matched"]) == 4
    assert report["missing_in_stripe"] == report["missing_in_ledger"] == []
    assert report["mismatched"] == []
    assert report["totals"]["ledger"] == {
        "usd": {"gross": 150000, "refunds": 10000, "disputes": 0, "received": 0}
    }
    assert report["totals"]["stripe"]["usd"]["gross"] == 150000
    assert report["totals"]["stripe"]["usd"]["refunds"] == 10000


def test_second_sync_adds_nothing(stripe_app, paid_and_refunded) -> None:
    first = run_cli(stripe_app)
    assert first.exit_code == 0, first.output
    before = stored_count(stripe_app)

    second = run_cli(stripe_app)
    assert second.exit_code == 0, second.output
    assert "0 new" in second.output
    assert "resumed" not in second.output
    assert stored_count(stripe_app) == before == 4


def test_a_refund_the_cards_bank_returns_reconciles_as_matched_on_both_its_entries(
    stripe_app, stripe_client, staff, finance, open_invoice, standin
) -> None:
    """Stripe's test card 4000000000005126: a refund of its charge is made, then fails
    (the stand-in does what Stripe does). Our ledger has the refund and its failure,
    Stripe's balance the refund and a refund_failure naming the same refund: each pairs
    with its own, all matched, and the reports count nothing as refunded."""
    invoice_id = open_invoice("4000000000005126")
    pay(stripe_client, staff, invoice_id)
    refund(stripe_client, staff, invoice_id, 10000)  # made: succeeded, for now

    told = ("charge.refund.updated", "refund.updated", "refund.failed")

    def failure_applied() -> bool:
        with stripe_app.app_context():
            session = db.session()
            handled = session.scalars(
                select(StripeEvent.type).where(
                    StripeEvent.type.in_(told), StripeEvent.processed_at.is_not(None)
                )
            ).all()
            (ours,) = session.scalars(select(Refund).where(Refund.invoice_id == invoice_id))
            return sorted(handled) == sorted(told) and ours.status == "failed"

    eventually(failure_applied)
    with stripe_app.app_context():
        (ours,) = db.session().scalars(select(Refund).where(Refund.invoice_id == invoice_id))
        assert ours.failure_code == "expired_or_canceled_card"
    invoice = stripe_client.get(f"/v1/invoices/{invoice_id}", headers=staff).json
    assert (invoice["status"], invoice["amount_refunded"]) == ("paid", 0)
    at_stripe = stand_in_get(standin, f"/v1/refunds/{ours.stripe_refund_id}")
    assert (at_stripe["status"], at_stripe["failure_reason"]) == (
        "failed",
        "expired_or_canceled_card",
    )

    assert run_cli(stripe_app).exit_code == 0
    by_type = {row.type: row for row in stored(stripe_app).values()}
    assert sorted(by_type) == ["charge", "refund", "refund_failure"]
    assert (by_type["refund"].source, by_type["refund"].amount) == (ours.stripe_refund_id, -10000)
    failure = by_type["refund_failure"]
    assert (failure.source, failure.amount, failure.net) == (ours.stripe_refund_id, 10000, 10000)
    assert at_stripe["failure_balance_transaction"] == failure.id

    report = reconciliation(stripe_client, finance, today()).json
    assert report["missing_in_stripe"] == report["missing_in_ledger"] == []
    assert report["mismatched"] == []
    matched = sorted(
        (row["kind"], row["stripe_type"], row["ledger_amount"]) for row in report["matched"]
    )
    assert matched == [
        ("charge", "charge", 50000),
        ("refund", "refund", -10000),
        ("refund_failure", "refund_failure", 10000),
    ]
    assert report["totals"]["ledger"] == {
        "usd": {"gross": 50000, "refunds": 0, "disputes": 0, "received": 0}
    }
    assert report["totals"]["stripe"]["usd"]["refunds"] == 0
    listed = stripe_client.get(
        "/v1/reports/refunds-disputes",
        query_string={"from": today(), "to": today()},
        headers=finance,
    ).json
    assert sorted(row["amount"] for row in listed["refunds"]) == [-10000, 10000]


# Interruption and resumption ---------------------------------------------------------


def fail_on_call(gateway: Any, monkeypatch: pytest.MonkeyPatch, failing_call: int) -> list[Any]:
    """Make the gateway's `failing_call`-th balance_transactions call fail as Stripe
    being unreachable does; returns the list of calls made."""
    real = gateway.balance_transactions
    calls: list[Any] = []

    def flaky(starting_after: str | None, limit: int = 100) -> Any:
        calls.append(starting_after)
        if len(calls) == failing_call:
            raise ServiceUnavailable("stripe_unavailable", "boom")
        return real(starting_after, limit)

    monkeypatch.setattr(gateway, "balance_transactions", flaky)
    return calls


def test_interrupted_sync_resumes_after_its_cursor_and_stores_each_transaction_once(
    stripe_app, monkeypatch, paid_and_refunded
) -> None:
    gateway = stripe_app.extensions["billing.stripe"]
    calls = fail_on_call(gateway, monkeypatch, failing_call=3)

    with stripe_app.app_context():
        session = db.session()
        with pytest.raises(ServiceUnavailable):
            sync(session, gateway, page_size=1)
        state = session.get(SyncState, BALANCE)
        assert state is not None and state.cursor is not None
        assert state.finished_at is None
        cursor = state.cursor
        assert stored_count(stripe_app) == 2  # the two pages read before the failure

        result = sync(session, gateway, page_size=1)

    assert result.resumed is True
    assert calls[3] == cursor  # the first call of the second pass starts after the cursor
    assert (result.seen, result.added) == (2, 2)
    assert stored_count(stripe_app) == 4  # 3 charges and 1 refund, each once
    charges, refunds = stripe_ids(stripe_app)
    assert sorted(row.source for row in stored(stripe_app).values()) == sorted([*charges, *refunds])
    with stripe_app.app_context():
        state = db.session().get(SyncState, BALANCE)
        assert state is not None
        assert state.cursor is None and state.finished_at is not None


def test_interrupted_cli_sync_says_to_run_again_and_the_next_run_resumes(
    stripe_app, monkeypatch, paid_and_refunded
) -> None:
    gateway = stripe_app.extensions["billing.stripe"]
    fail_on_call(gateway, monkeypatch, failing_call=1)
    failed = run_cli(stripe_app)
    assert failed.exit_code == 1
    assert "Run the command again to resume." in failed.output

    # Stopped before any page: nothing stored, and nothing to resume from.
    assert stored_count(stripe_app) == 0
    monkeypatch.undo()
    again = run_cli(stripe_app)
    assert again.exit_code == 0, again.output
    assert "4 new" in again.output
    assert stored_count(stripe_app) == 4


def test_pass_interrupted_mid_way_is_finished_by_the_next_cli_run(
    stripe_app, monkeypatch, paid_and_refunded
) -> None:
    gateway = stripe_app.extensions["billing.stripe"]
    with stripe_app.app_context():
        fail_on_call(gateway, monkeypatch, failing_call=2)
        with pytest.raises(ServiceUnavailable):
            sync(db.session(), gateway, page_size=1)
    monkeypatch.undo()
    assert stored_count(stripe_app) == 1

    again = run_cli(stripe_app)
    assert again.exit_code == 0, again.output
    assert "3 new (resumed an interrupted run)" in again.output
    assert stored_count(stripe_app) == 4


# Payouts on the stand-in --------------------------------------------------------------


def test_sync_with_no_payouts_at_the_stand_in_links_nothing_and_says_nothing(
    stripe_app, paid_and_refunded
) -> None:
    with stripe_app.app_context():
        result = sync(db.session(), stripe_app.extensions["billing.stripe"])
    assert (result.payouts, result.payouts_linked, result.note) == (0, 0, None)
    assert (result.added, result.seen) == (4, 4)


def test_paid_payout_the_stand_in_cannot_itemise_is_stored_unlinked_with_a_note(
    stripe_app, standin, paid_and_refunded
) -> None:
    # localstripe makes payouts in eur only, and cannot list a payout's transactions.
    payout = stand_in_post(standin, "/v1/payouts", "amount=12345&currency=eur&status=paid")

    result = run_cli(stripe_app)
    assert result.exit_code == 0, result.output
    assert "1 payouts, 0 linked" in result.output
    assert "payouts left unlinked" in result.output

    with stripe_app.app_context():
        session = db.session()
        outcome = sync(session, stripe_app.extensions["billing.stripe"])
        row = session.get(StripePayout, payout["id"])
        assert row is not None
        assert (row.amount, row.currency, row.status) == (12345, "eur", "paid")
        assert row.linked_at is None
        linked = session.scalar(
            select(func.count())
            .select_from(StripeBalanceTransaction)
            .where(StripeBalanceTransaction.payout_id.is_not(None))
        )
    assert (outcome.payouts, outcome.payouts_linked) == (1, 0)
    assert outcome.note is not None and "payouts" in outcome.note
    assert linked == 0
    assert stored_count(stripe_app) == 4  # the balance transactions were all kept
