"""PostgreSQL builds the reconciliation report's JSON and CSV itself (row_to_json, COPY): on
generated data, row for row, what it writes is what the portable path writes."""

from __future__ import annotations

import csv
import io
import json
import random
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from sqlalchemy import insert

from billing.adapters import db
from billing.adapters.models import Invoice, LedgerEntry, StripeBalanceTransaction, StripePayout
from billing.services.finance import fast_reports
from billing.services.finance import reconciliation as portable
from billing.services.finance.reports import day_range
from billing.web.exports import csv_lines, jsonable

pytestmark = [pytest.mark.postgresql, pytest.mark.parametrize("app", ["postgresql"], indirect=True)]
START = datetime(2026, 10, 1, tzinfo=UTC)
DAY = timedelta(days=1)


def _generate(app: Flask, rows: int, seed: int) -> None:
    """Invoices with charges, refunds (some failed later), disputes and money received at
    the desk (some of it reversed) over October and its edges, Stripe's copies of most
    (some a dollar off, some in another currency, some missing), Stripe transactions the
    ledger never saw, times with and without microseconds; payouts (two made at the same
    moment, one that carried nothing, one before October); invoices charged twice, some
    of them once in September, and void invoices charged once."""
    rng = random.Random(seed)
    invoices, ledger, stripe = [], [], []
    for n in range(rows):
        when = START + timedelta(seconds=rng.randint(-4 * 86400, 34 * 86400))
        if rng.random() < 0.3:
            when = when.replace(microsecond=rng.choice([0, 1, 120000, 999999]))
        amount = rng.choice([2500, 25000, 50000, 12345])
        currency = rng.choice(["usd", "usd", "usd", "eur"])
        invoice_id = f"in_{n:024x}"
        invoices.append(
            {
                "id": invoice_id,
                "number": f"2026-{n:06d}",
                "quote_id": None,
                "booking_id": None,
                "patient_id": f"P-{n}",
                "patient_name": 'Pat, "the" patient',
                "session_type": rng.choice(["iv_individual", "im_group", "package"]),
                "scheduled_at": when,
                "currency": currency,
                "total": amount,
                "status": "paid",
                "kind": "session",
                "created_at": when,
                "updated_at": when,
            }
        )
        if rng.random() < 0.08:  # cash or a check at the desk: nothing at Stripe
            paid = f"pay_{n}"
            received = {
                "invoice_id": invoice_id,
                "kind": "received",
                "amount": amount,
                "currency": currency,
                "stripe_object_id": paid,
                "stripe_charge_id": None,
                "stripe_ref": None,
                "method": rng.choice(["cash", "check", "external"]),
                "occurred_at": when,
                "created_at": when,
            }
            ledger.append(received)
            if rng.random() < 0.3:  # the check bounced
                ledger.append({**received, "kind": "reversal", "occurred_at": when + DAY})
            continue
        kind = rng.choice(["charge", "charge", "refund", "dispute"])
        ref = f"{kind[:2]}_{n}"
        ledger.append(
            {
                "invoice_id": invoice_id,
                "kind": kind,
                "amount": amount,
                "currency": currency,
                "stripe_object_id": ref,
                "stripe_charge_id": ref if kind == "charge" else None,
                "stripe_ref": ref,
                "method": None,
                "occurred_at": when,
                "created_at": when,
            }
        )
        fate = rng.random()
        if fate < 0.1:
            continue  # missing in Stripe
        signed = amount if kind == "charge" else -amount
        if fate < 0.15:
            signed += 100  # mismatched
        stripe_type = {"charge": "charge", "refund": "refund", "dispute": "adjustment"}[kind]
        stripe.append(
            {
                "id": f"txn_{n}",
                "type": stripe_type,
                "source": ref,
                "amount": signed,
                "fee": 30 if kind == "charge" else 0,
                "net": signed - (30 if kind == "charge" else 0),
                "currency": "eur" if fate < 0.17 and currency == "usd" else currency,
                "created": when - timedelta(seconds=rng.randint(0, 5)),
                "available_on": when + timedelta(days=2),
                "payout_id": rng.choice(["po_1", "po_2", "po_3", "po_0", None]),
            }
        )
        if rng.random() < 0.05:  # a charge the ledger does not know
            stripe.append({**stripe[-1], "id": f"txn_x{n}", "source": f"ch_unknown_{n}"})
        if kind == "refund" and rng.random() < 0.3:  # it failed: its money came back
            failed_at = when + timedelta(days=rng.choice([0, 1, 5]), seconds=1)
            ledger.append({**ledger[-1], "kind": "refund_failure", "occurred_at": failed_at})
            if rng.random() < 0.9:
                stripe.append(
                    {
                        **stripe[-1],
                        "id": f"txn_f{n}",
                        "type": "refund_failure",
                        "source": ref,
                        "amount": amount,
                        "fee": 0,
                        "net": amount,
                        "created": failed_at,
                    }
                )
        if kind == "charge" and rng.random() < 0.1:  # voided, or charged again
            if rng.random() < 0.3:
                invoices[-1]["status"] = "void"
            else:
                again = when - timedelta(days=rng.choice([0, 0, 20, 40]), seconds=7)
                ledger.append({**ledger[-1], "stripe_object_id": f"{ref}b", "occurred_at": again})
    with app.app_context():
        session = db.session()
        session.execute(insert(Invoice), invoices)
        session.execute(insert(LedgerEntry), ledger)
        session.execute(
            insert(StripePayout),
            [
                {"id": po, "amount": 1, "currency": "usd", "status": "paid", "created": created}
                for po, created in [
                    ("po_0", START - timedelta(days=3)),
                    ("po_1", START),
                    ("po_2", START + timedelta(days=9)),
                    ("po_3", START + timedelta(days=9)),
                    ("po_4", START + timedelta(days=20)),
                ]
            ],
        )
        session.execute(insert(StripeBalanceTransaction), stripe)
        session.commit()


@pytest.mark.parametrize("seed", [1, 2])
def test_postgresql_writes_the_report_the_portable_path_writes(app: Flask, seed: int) -> None:
    _generate(app, 600, seed)
    period = day_range(START.date(), datetime(2026, 10, 31).date())
    with app.app_context():
        session = db.session()
        expected = jsonable(portable.reconciliation(session, period))
        made = json.loads(b"".join(fast_reports.reconciliation_json(session, period)))
        assert list(made) == list(expected)
        for status in portable.STATUSES:
            assert len(made[status]) == len(expected[status]) > 0, status
            for ours, theirs in zip(made[status], expected[status], strict=True):
                assert list(ours.items()) == list(theirs.items())
        assert made == expected
        assert len(made["overpayments"]) >= 5
        assert {"void", "paid"} <= {row["status"] for row in made["overpayments"]}
        assert [row["payout_id"] for row in made["by_payout"]] == ["po_1", "po_2", "po_3", "po_4"]
        assert made["by_payout"][-1]["gross"] == 0  # it carried nothing
        assert any("." in row["occurred_at"] for row in made["matched"])
        assert any("." not in row["occurred_at"] for row in made["matched"])

        year = day_range(datetime(2026, 9, 1).date(), datetime(2026, 11, 30).date())
        written = "".join(csv_lines(portable.pair_rows(session, year)))
        copied = b"".join(fast_reports.copy_csv(session, year)).decode()
    assert copied == written
    rows = list(csv.reader(io.StringIO(copied)))
    assert rows[0] == list(portable.CSV_COLUMNS) and len(rows) > 600
