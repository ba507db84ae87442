"""Finance reports over a planted ledger and planted Stripe balance transactions.

The scene is built straight in the database (invoices through the API, then ledger
entries and Stripe's balance transactions as rows), so every pair the reconciliation
should find, and every one it should not, is known in advance.
"""

from __future__ import annotations

import csv
import gc
import io
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask

from billing.adapters import db
from billing.adapters.models import (
    Invoice,
    LedgerEntry,
    StripeBalanceTransaction,
    StripePayout,
    utcnow,
)
from billing.services.access.staff import create_staff_user
from billing.services.finance.reconciliation import CSV_COLUMNS
from tests.conftest import in_days

OCTOBER = {"from": "2026-10-01", "to": "2026-10-31"}
TOP_LEVEL_KEYS = {
    "matched",
    "missing_in_stripe",
    "missing_in_ledger",
    "mismatched",
    "outside_stripe",
    "by_day",
    "by_payout",
    "by_session_type",
    "overpayments",
    "totals",
}
DISCREPANCIES = ("missing_in_stripe", "missing_in_ledger", "mismatched")
LISTS = ("matched", *DISCREPANCIES, "outside_stripe")
REPORT_ENDPOINTS = (
    "/v1/reports/reconciliation?from=2026-10-01&to=2026-10-31",
    "/v1/reports/aging",
    "/v1/reports/refunds-disputes?from=2026-10-01&to=2026-10-31",
    "/v1/reports/month-end?month=2026-10",
)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


@pytest.fixture
def booking_system(make_key) -> dict[str, str]:
    return make_key("quotes:write", "invoices:write", "invoices:read")


@pytest.fixture
def finance(make_key) -> dict[str, str]:
    return make_key("reports:read")


# Scene set-up -----------------------------------------------------------------------


def make_invoices(
    client, headers, session_type: str, patients: list[str], currency: str = "usd"
) -> list[dict]:
    quote = client.post(
        "/v1/quotes",
        headers=headers,
        json={
            "booking_id": f"BK-{patients[0]}",
            "session_type": session_type,
            "scheduled_at": in_days(5),
            "currency": currency,
            "patients": [
                {"patient_id": p, "name": f"Patient {p}", "prior_iv_sessions": 2} for p in patients
            ],
        },
    )
    assert quote.status_code == 201, quote.json
    invoices = client.post("/v1/invoices", headers=headers, json={"quote_id": quote.json["id"]})
    assert invoices.status_code == 201, invoices.json
    return list(invoices.json["data"])


def iv_invoice(client, headers, patient: str, currency: str = "usd") -> dict:
    (invoice,) = make_invoices(client, headers, "iv_individual", [patient], currency)
    return invoice


def set_invoice(app: Flask, invoice_id: str, **values: Any) -> None:
    with app.app_context():
        session = db.session()
        invoice = session.get(Invoice, invoice_id)
        assert invoice is not None
        for name, value in values.items():
            setattr(invoice, name, value)
        session.commit()


def add_ledger(
    app: Flask, invoice: dict, kind: str, amount: int, ref: str, when: str, copies: bool = False
) -> int:
    """A ledger row as the payment, refund or dispute code writes it: amount positive,
    in the invoice's currency, naming the Stripe object its balance transaction has; with
    `copies`, also its copies of the invoice's number, session type and total, as
    `ledger.record` writes them (without, as a row written before those copies were)."""
    with app.app_context():
        session = db.session()
        copied = session.get(Invoice, invoice["id"]) if copies else None
        entry = LedgerEntry(
            invoice_number=copied.number if copied else None,
            session_type=copied.session_type if copied else None,
            invoice_total=copied.total if copied else None,
            invoice_id=invoice["id"],
            kind=kind,
            amount=amount,
            currency=invoice["currency"],
            stripe_object_id=f"pi_for_{ref}" if kind == "charge" else ref,
            stripe_charge_id=ref if kind == "charge" else None,
            stripe_ref=ref,
            occurred_at=at(when),
        )
        session.add(entry)
        session.commit()
        return int(entry.id)


def add_stripe(
    app: Flask,
    txn_id: str,
    *,
    type: str,
    source: str,
    amount: int,
    created: str,
    fee: int = 0,
    currency: str = "usd",
    payout_id: str | None = None,
) -> str:
    """A balance transaction as `stripe sync` stores it: amount signed, net = amount - fee."""
    with app.app_context():
        session = db.session()
        session.add(
            StripeBalanceTransaction(
                id=txn_id,
                type=type,
                source=source,
                amount=amount,
                fee=fee,
                net=amount - fee,
                currency=currency,
                created=at(created),
                available_on=at(created) + timedelta(days=2),
                payout_id=payout_id,
            )
        )
        session.commit()
    return txn_id


def add_payout(app: Flask, payout_id: str, amount: int, created: str) -> None:
    with app.app_context():
        session = db.session()
        session.add(
            StripePayout(
                id=payout_id,
                amount=amount,
                currency="usd",
                status="paid",
                arrival_date=at(created) + timedelta(days=2),
                created=at(created),
                linked_at=at(created) + timedelta(days=3),
            )
        )
        session.commit()


@dataclass
class Planted:
    """What was planted: the invoices, and each pair as (ledger entry id, Stripe txn id)."""

    invoices: dict[str, dict] = field(default_factory=dict)
    pairs: dict[str, tuple[int | None, str | None]] = field(default_factory=dict)


@pytest.fixture
def planted(app: Flask, client, booking_system) -> Planted:
    """October 2026: three matched pairs carried by a payout, one of each discrepancy, a
    pair across the month's end, and rows outside the month that must stay out of it."""
    scene = Planted()
    invoices = scene.invoices
    for name in ("iv_paid", "iv_amount", "iv_currency", "iv_boundary", "iv_september"):
        invoices[name] = iv_invoice(client, booking_system, f"P-{name}")
    invoices["group_paid"], invoices["group_unsettled"] = make_invoices(
        client, booking_system, "im_group", ["P-group-1", "P-group-2"]
    )
    for invoice in invoices.values():
        set_invoice(app, invoice["id"], created_at=at("2026-10-02T09:00:00Z"), status="paid")
    set_invoice(app, invoices["iv_paid"]["id"], status="partially_refunded")
    set_invoice(app, invoices["iv_september"]["id"], created_at=at("2026-09-15T09:00:00Z"))
    pairs = scene.pairs

    # Matched: an IV charge, a group charge and a refund, all carried by one payout.
    add_payout(app, "po_october", 62765, "2026-10-20T02:00:00Z")
    pairs["iv_charge"] = (
        add_ledger(app, invoices["iv_paid"], "charge", 50000, "ch_iv", "2026-10-05T10:00:00Z"),
        add_stripe(
            app,
            "txn_iv",
            type="charge",
            source="ch_iv",
            amount=50000,
            fee=1480,
            created="2026-10-05T10:00:03Z",
            payout_id="po_october",
        ),
    )
    pairs["group_charge"] = (
        add_ledger(
            app, invoices["group_paid"], "charge", 25000, "ch_group", "2026-10-05T11:00:00Z"
        ),
        add_stripe(
            app,
            "txn_group",
            type="charge",
            source="ch_group",
            amount=25000,
            fee=755,
            created="2026-10-05T11:00:01Z",
            payout_id="po_october",
        ),
    )
    pairs["refund"] = (
        add_ledger(app, invoices["iv_paid"], "refund", 10000, "re_iv", "2026-10-12T08:59:58Z"),
        add_stripe(
            app,
            "txn_refund",
            type="refund",
            source="re_iv",
            amount=-10000,
            created="2026-10-12T09:00:00Z",
            payout_id="po_october",
        ),
    )
    # The payout's own line in Stripe's balance: neither a charge, a refund nor a dispute.
    add_stripe(
        app,
        "txn_payout",
        type="payout",
        source="po_october",
        amount=-62765,
        created="2026-10-20T02:00:00Z",
    )

    # One of each discrepancy.
    pairs["missing_in_stripe"] = (
        add_ledger(
            app,
            invoices["group_unsettled"],
            "charge",
            25000,
            "ch_ledger_only",
            "2026-10-14T15:00:00Z",
        ),
        None,
    )
    pairs["missing_in_ledger"] = (
        None,
        add_stripe(
            app,
            "txn_stripe_only",
            type="charge",
            source="ch_stripe_only",
            amount=7000,
            fee=233,
            created="2026-10-15T12:00:00Z",
        ),
    )
    pairs["amount_differs"] = (
        add_ledger(
            app, invoices["iv_amount"], "charge", 50000, "ch_amount", "2026-10-18T10:00:00Z"
        ),
        add_stripe(
            app,
            "txn_amount",
            type="charge",
            source="ch_amount",
            amount=49000,
            fee=1451,
            created="2026-10-18T10:00:01Z",
        ),
    )
    pairs["currency_differs"] = (
        add_ledger(app, invoices["iv_currency"], "charge", 50000, "ch_eur", "2026-10-19T10:00:00Z"),
        add_stripe(
            app,
            "txn_eur",
            type="charge",
            source="ch_eur",
            amount=50000,
            fee=1480,
            currency="eur",
            created="2026-10-19T10:00:01Z",
        ),
    )

    # Across the month's end, 3 seconds apart: one pair, matched.
    pairs["boundary"] = (
        add_ledger(
            app, invoices["iv_boundary"], "charge", 50000, "ch_boundary", "2026-10-31T23:59:59Z"
        ),
        add_stripe(
            app,
            "txn_boundary",
            type="charge",
            source="ch_boundary",
            amount=50000,
            fee=1480,
            created="2026-11-01T00:00:02Z",
        ),
    )

    # Outside October: a matched pair in September with its payout, a lone ledger refund
    # inside the slack before October, a lone ledger charge and a lone Stripe charge in
    # November.
    old = invoices["iv_september"]
    add_payout(app, "po_september", 48520, "2026-09-22T02:00:00Z")
    add_ledger(app, old, "charge", 50000, "ch_september", "2026-09-20T10:00:00Z")
    add_stripe(
        app,
        "txn_september",
        type="charge",
        source="ch_september",
        amount=50000,
        fee=1480,
        created="2026-09-20T10:00:01Z",
        payout_id="po_september",
    )
    add_ledger(app, old, "refund", 5000, "re_september", "2026-09-29T12:00:00Z")
    add_ledger(app, old, "charge", 50000, "ch_november", "2026-11-15T10:00:00Z")
    add_stripe(
        app,
        "txn_november",
        type="charge",
        source="ch_stripe_nov",
        amount=5000,
        fee=175,
        created="2026-11-10T10:00:00Z",
    )
    return scene


def reconcile(client, headers, **query: str) -> Any:
    response = client.get(
        "/v1/reports/reconciliation", query_string={**OCTOBER, **query}, headers=headers
    )
    body = response.get_data(as_text=True)
    assert response.status_code == 200, body
    return response


def csv_rows(client, headers, **query: str) -> tuple[Any, list[dict[str, str]]]:
    """The CSV report read to its end, as (response, rows)."""
    response = reconcile(client, headers, **query)
    reader = csv.DictReader(io.StringIO(response.get_data(as_text=True)))
    rows = list(reader)
    assert tuple(reader.fieldnames or ()) == CSV_COLUMNS
    response.close()
    return response, rows


def pairs_of(report: dict, status: str) -> set[tuple[int | None, str | None]]:
    return {(row["ledger_entry_id"], row["stripe_transaction_id"]) for row in report[status]}


def one_row(report: dict, status: str, stripe_id: str) -> dict:
    (row,) = [r for r in report[status] if r["stripe_transaction_id"] == stripe_id]
    return row


def expected_statuses(planted: Planted) -> set[tuple[str, int | None, str | None]]:
    status = {
        "iv_charge": "matched",
        "group_charge": "matched",
        "refund": "matched",
        "boundary": "matched",
        "missing_in_stripe": "missing_in_stripe",
        "missing_in_ledger": "missing_in_ledger",
        "amount_differs": "mismatched",
        "currency_differs": "mismatched",
    }
    return {(status[name], *pair) for name, pair in planted.pairs.items()}


# The reconciliation, as JSON ---------------------------------------------------------


def test_report_has_exactly_the_documented_top_level_keys(client, finance, planted) -> None:
    response = reconcile(client, finance)
    assert set(response.json) == TOP_LEVEL_KEYS
    assert response.content_length == len(response.get_data()) > 1000  # sent in chunks


def test_empty_period_gives_empty_lists_and_zero_totals(client, finance) -> None:
    report = reconcile(client, finance).json
    assert set(report) == TOP_LEVEL_KEYS
    assert all(report[name] == [] for name in TOP_LEVEL_KEYS - {"totals"})
    assert report["totals"] == {
        "currencies": [],
        "ledger": {},
        "stripe": {},
        "counts": {status: 0 for status in (*LISTS, "overpayments")},
    }


def test_every_pair_falls_in_exactly_the_list_it_was_planted_for(client, finance, planted) -> None:
    report = reconcile(client, finance).json
    found = {(status, *pair) for status in LISTS for pair in pairs_of(report, status)}
    assert found == expected_statuses(planted)
    assert sum(len(report[status]) for status in LISTS) == len(found)  # no pair twice
    assert report["totals"]["counts"] == {
        "matched": 4,
        "missing_in_stripe": 1,
        "missing_in_ledger": 1,
        "mismatched": 2,
        "outside_stripe": 0,
        "overpayments": 0,
    }


def test_overpayments_of_entries_carrying_their_invoice_total(
    app: Flask, client, finance, booking_system
) -> None:
    """Entries as the service writes them, with their invoice's total: an invoice that
    collected its total is not listed; one charged again in October (first in September)
    is; a void one charged once is; one charged again in November is November's."""
    names = ("exact", "again", "void", "november")
    invoices = {name: iv_invoice(client, booking_system, f"P-over-{name}") for name in names}
    for name in ("exact", "again", "november"):
        set_invoice(app, invoices[name]["id"], status="paid")
    set_invoice(app, invoices["void"]["id"], status="void")
    total = invoices["exact"]["total"]
    charges = [
        ("exact", "2026-10-05T10:00:00Z"),
        ("again", "2026-09-28T10:00:00Z"),
        ("again", "2026-10-06T10:00:00Z"),
        ("void", "2026-10-07T10:00:00Z"),
        ("november", "2026-10-08T10:00:00Z"),
        ("november", "2026-11-02T10:00:00Z"),
    ]
    for number, (name, when) in enumerate(charges):
        add_ledger(app, invoices[name], "charge", total, f"ch_over_{number}", when, copies=True)

    def listed(**query: str) -> list[tuple[str, str, int, int]]:
        shown = reconcile(client, finance, **query).json["overpayments"]
        return [(r["invoice_id"], r["status"], r["collected"], r["excess"]) for r in shown]

    assert listed() == [
        (invoices["again"]["id"], "paid", 2 * total, total),
        (invoices["void"]["id"], "void", total, total),
    ]
    assert listed(**{"from": "2026-11-01", "to": "2026-11-30"}) == [
        (invoices["november"]["id"], "paid", 2 * total, total)
    ]


def test_matched_rows_name_both_sides_with_signed_amounts(client, finance, planted) -> None:
    report = reconcile(client, finance).json
    paid = planted.invoices["iv_paid"]
    charge = one_row(report, "matched", "txn_iv")
    assert charge["ledger_entry_id"] == planted.pairs["iv_charge"][0]
    assert (charge["invoice_id"], charge["invoice_number"]) == (paid["id"], paid["number"])
    assert charge["stripe_source"] == "ch_iv"
    assert (charge["kind"], charge["stripe_type"]) == ("charge", "charge")
    assert (charge["ledger_amount"], charge["stripe_amount"]) == (50000, 50000)
    assert (charge["stripe_fee"], charge["stripe_net"]) == (1480, 48520)

    refund = one_row(report, "matched", "txn_refund")
    assert refund["ledger_entry_id"] == planted.pairs["refund"][0]
    assert (refund["invoice_id"], refund["invoice_number"]) == (paid["id"], paid["number"])
    assert refund["stripe_source"] == "re_iv"
    assert (refund["kind"], refund["stripe_type"]) == ("refund", "refund")
    assert refund["ledger_amount"] == refund["stripe_amount"] == -10000


def test_pair_straddling_the_period_end_within_the_slack_is_matched(
    client, finance, planted
) -> None:
    report = reconcile(client, finance).json
    row = one_row(report, "matched", "txn_boundary")
    assert row["ledger_entry_id"] == planted.pairs["boundary"][0]
    assert row["invoice_number"] == planted.invoices["iv_boundary"]["number"]
    assert row["occurred_at"] == "2026-10-31T23:59:59+00:00"
    assert row["stripe_created"] == "2026-11-01T00:00:02+00:00"
    reported = {r["stripe_source"] for status in DISCREPANCIES for r in report[status]}
    assert "ch_boundary" not in reported


def test_ledger_charge_without_stripe_transaction_is_missing_in_stripe(
    client, finance, planted
) -> None:
    (row,) = reconcile(client, finance).json["missing_in_stripe"]
    invoice = planted.invoices["group_unsettled"]
    assert row["ledger_entry_id"] == planted.pairs["missing_in_stripe"][0]
    assert (row["invoice_id"], row["invoice_number"]) == (invoice["id"], invoice["number"])
    assert (row["kind"], row["ledger_amount"], row["ledger_currency"]) == ("charge", 25000, "usd")
    assert row["stripe_transaction_id"] is None
    assert row["stripe_source"] is None
    assert row["stripe_amount"] is None


def test_stripe_charge_no_ledger_row_names_is_missing_in_ledger(client, finance, planted) -> None:
    (row,) = reconcile(client, finance).json["missing_in_ledger"]
    assert row["stripe_transaction_id"] == "txn_stripe_only"
    assert row["stripe_source"] == "ch_stripe_only"
    assert (row["stripe_amount"], row["stripe_fee"], row["stripe_net"]) == (7000, 233, 6767)
    assert row["ledger_entry_id"] is None
    assert row["invoice_id"] is None
    assert row["invoice_number"] is None
    assert row["ledger_amount"] is None


@pytest.mark.parametrize(
    ("pair", "stripe_id", "source", "invoice", "ledger_side", "stripe_side"),
    [
        ("amount_differs", "txn_amount", "ch_amount", "iv_amount", (50000, "usd"), (49000, "usd")),
        ("currency_differs", "txn_eur", "ch_eur", "iv_currency", (50000, "usd"), (50000, "eur")),
    ],
    ids=["amount", "currency"],
)
def test_pair_differing_in_amount_or_currency_is_mismatched(
    client,
    finance,
    planted,
    pair,
    stripe_id,
    source,
    invoice,
    ledger_side,
    stripe_side,
) -> None:
    row = one_row(reconcile(client, finance).json, "mismatched", stripe_id)
    assert row["ledger_entry_id"] == planted.pairs[pair][0]
    assert row["invoice_id"] == planted.invoices[invoice]["id"]
    assert row["invoice_number"] == planted.invoices[invoice]["number"]
    assert row["stripe_source"] == source
    assert (row["ledger_amount"], row["ledger_currency"]) == ledger_side
    assert (row["stripe_amount"], row["stripe_currency"]) == stripe_side


def test_rows_outside_the_period_and_payout_lines_are_not_reported(
    client, finance, planted
) -> None:
    report = reconcile(client, finance).json
    rows = [row for status in LISTS for row in report[status]]
    assert not {"txn_september", "txn_november", "txn_payout"} & {
        row["stripe_transaction_id"] for row in rows
    }
    assert not {"ch_september", "re_september", "ch_november", "ch_stripe_nov", "po_october"} & {
        row["stripe_source"] for row in rows
    }
    assert planted.invoices["iv_september"]["id"] not in {row["invoice_id"] for row in rows}


def test_by_day_sums_what_stripe_moved_each_day(client, finance, planted) -> None:
    by_day = reconcile(client, finance).json["by_day"]
    days = {(row["day"], row["currency"]): row for row in by_day}
    assert set(days) == {
        ("2026-10-05", "usd"),
        ("2026-10-12", "usd"),
        ("2026-10-15", "usd"),
        ("2026-10-18", "usd"),
        ("2026-10-19", "eur"),
        ("2026-10-20", "usd"),
    }
    two_charges = days["2026-10-05", "usd"]
    assert {k: two_charges[k] for k in ("gross", "refunds", "disputes", "fees", "net")} == {
        "gross": 50000 + 25000,
        "refunds": 0,
        "disputes": 0,
        "fees": 1480 + 755,
        "net": 48520 + 24245,
    }
    refund_day = days["2026-10-12", "usd"]
    assert (refund_day["gross"], refund_day["refunds"], refund_day["net"]) == (0, 10000, -10000)
    payout_day = days["2026-10-20", "usd"]  # money sent to the bank is not revenue
    assert (payout_day["gross"], payout_day["fees"], payout_day["net"]) == (0, 0, 0)


def test_by_payout_sums_the_transactions_linked_to_each_payout_of_the_period(
    client, finance, planted
) -> None:
    (payout,) = reconcile(client, finance).json["by_payout"]
    assert payout["payout_id"] == "po_october"
    assert (payout["status"], payout["currency"]) == ("paid", "usd")
    assert payout["arrival_date"] == "2026-10-22T02:00:00+00:00"
    assert (payout["gross"], payout["refunds"], payout["disputes"]) == (75000, 10000, 0)
    assert payout["fees"] == 1480 + 755
    assert payout["net"] == 48520 + 24245 - 10000 == payout["payout_amount"]


def test_revenue_by_session_type_is_charges_less_refunds_per_paid_invoice(
    client, finance, planted
) -> None:
    rows = reconcile(client, finance).json["by_session_type"]
    assert rows == [
        {
            "session_type": "im_group",
            "currency": "usd",
            "gross": 25000 + 25000,
            "refunds": 0,
            "revenue": 50000,
            "sessions": 2,
        },
        {
            "session_type": "iv_individual",
            "currency": "usd",
            "gross": 4 * 50000,
            "refunds": 10000,
            "revenue": 190000,
            "sessions": 4,
        },
    ]


def test_one_iv_and_one_group_invoice_are_one_session_each(
    app, client, booking_system, finance
) -> None:
    iv = iv_invoice(client, booking_system, "P-IV")
    group, _unpaid = make_invoices(client, booking_system, "im_group", ["P-G1", "P-G2"])
    add_ledger(app, iv, "charge", 50000, "ch_iv", "2026-08-03T10:00:00Z")
    add_ledger(app, iv, "refund", 20000, "re_iv", "2026-08-04T10:00:00Z")
    add_ledger(app, group, "charge", 25000, "ch_group", "2026-08-03T11:00:00Z")
    august = {"from": "2026-08-01", "to": "2026-08-31"}
    rows = reconcile(client, finance, **august).json["by_session_type"]
    summary = {row["session_type"]: (row["revenue"], row["sessions"]) for row in rows}
    assert summary == {"iv_individual": (30000, 1), "im_group": (25000, 1)}


def test_dispute_matches_stripes_adjustment_and_is_summed_as_a_dispute(
    app, client, booking_system, finance
) -> None:
    invoice = iv_invoice(client, booking_system, "P-DISPUTE")
    add_ledger(app, invoice, "charge", 50000, "ch_disputed", "2026-07-02T10:00:00Z")
    add_stripe(
        app,
        "txn_charge",
        type="charge",
        source="ch_disputed",
        amount=50000,
        fee=1480,
        created="2026-07-02T10:00:01Z",
    )
    dispute = add_ledger(app, invoice, "dispute", 50000, "dp_1", "2026-07-10T10:00:00Z")
    add_stripe(
        app,
        "txn_dispute",
        type="adjustment",
        source="dp_1",
        amount=-50000,
        fee=1500,
        created="2026-07-10T10:00:01Z",
    )
    july = {"from": "2026-07-01", "to": "2026-07-31"}
    report = reconcile(client, finance, **july).json
    assert all(report[status] == [] for status in DISCREPANCIES)
    row = one_row(report, "matched", "txn_dispute")
    assert (row["ledger_entry_id"], row["kind"], row["stripe_source"]) == (
        dispute,
        "dispute",
        "dp_1",
    )
    assert row["ledger_amount"] == row["stripe_amount"] == -50000
    totals = report["totals"]
    assert totals["ledger"]["usd"]["disputes"] == totals["stripe"]["usd"]["disputes"] == 50000
    day = {row["day"]: row for row in report["by_day"]}["2026-07-10"]
    assert (day["gross"], day["disputes"], day["fees"], day["net"]) == (0, 50000, 1500, -51500)

    listed = client.get("/v1/reports/refunds-disputes", query_string=july, headers=finance).json
    assert listed["refunds"] == []
    (disputed,) = listed["disputes"]
    assert (disputed["stripe_dispute_id"], disputed["amount"]) == ("dp_1", 50000)
    assert disputed["invoice_number"] == invoice["number"]


def test_a_refund_that_failed_matches_on_both_its_entries_and_reports_show_the_net_refund(
    app, client, booking_system, finance
) -> None:
    """A refund counted while pending (Stripe's `refund`), then failed (our
    `refund_failure`, Stripe's `refund_failure`, the money back): each entry matches its
    own transaction though all four name the same refund, and every report counts only
    the refund that stood."""
    invoice = iv_invoice(client, booking_system, "P-REFUND-FAILED")
    add_ledger(app, invoice, "charge", 50000, "ch_rf", "2026-07-02T10:00:00Z", copies=True)
    add_stripe(
        app,
        "txn_rf_charge",
        type="charge",
        source="ch_rf",
        amount=50000,
        fee=1480,
        created="2026-07-02T10:00:01Z",
    )
    refunded = add_ledger(app, invoice, "refund", 20000, "re_rf", "2026-07-03T10:00:00Z")
    add_stripe(
        app,
        "txn_rf_refund",
        type="refund",
        source="re_rf",
        amount=-20000,
        created="2026-07-03T10:00:01Z",
    )
    add_ledger(app, invoice, "refund", 5000, "re_ok", "2026-07-04T10:00:00Z", copies=True)
    add_stripe(
        app,
        "txn_ok_refund",
        type="refund",
        source="re_ok",
        amount=-5000,
        created="2026-07-04T10:00:01Z",
    )
    failed = add_ledger(
        app, invoice, "refund_failure", 20000, "re_rf", "2026-07-06T10:00:00Z", copies=True
    )
    add_stripe(
        app,
        "txn_rf_failure",
        type="refund_failure",
        source="re_rf",
        amount=20000,
        created="2026-07-06T10:00:01Z",
    )
    july = {"from": "2026-07-01", "to": "2026-07-31"}

    report = reconcile(client, finance, **july).json
    assert all(report[status] == [] for status in DISCREPANCIES), report
    assert len(report["matched"]) == 4
    refund_row = one_row(report, "matched", "txn_rf_refund")
    assert (refund_row["ledger_entry_id"], refund_row["kind"]) == (refunded, "refund")
    assert refund_row["ledger_amount"] == refund_row["stripe_amount"] == -20000
    failure_row = one_row(report, "matched", "txn_rf_failure")
    assert (failure_row["ledger_entry_id"], failure_row["kind"]) == (failed, "refund_failure")
    assert (failure_row["stripe_type"], failure_row["stripe_source"]) == ("refund_failure", "re_rf")
    assert failure_row["ledger_amount"] == failure_row["stripe_amount"] == 20000
    _, rows = csv_rows(client, finance, **july, format="csv")
    assert sorted((r["status"], r["kind"], r["stripe_transaction_id"]) for r in rows) == [
        ("matched", "charge", "txn_rf_charge"),
        ("matched", "refund", "txn_ok_refund"),
        ("matched", "refund", "txn_rf_refund"),
        ("matched", "refund_failure", "txn_rf_failure"),
    ]

    totals = report["totals"]
    assert totals["ledger"]["usd"] == {
        "gross": 50000,
        "refunds": 5000,
        "disputes": 0,
        "received": 0,
    }
    assert totals["stripe"]["usd"]["refunds"] == 5000
    assert totals["stripe"]["usd"]["net"] == 50000 - 1480 - 5000
    by_day = {row["day"]: row for row in report["by_day"]}
    assert (by_day["2026-07-06"]["refunds"], by_day["2026-07-06"]["net"]) == (-20000, 20000)
    (revenue,) = report["by_session_type"]
    assert (revenue["gross"], revenue["refunds"], revenue["revenue"]) == (50000, 5000, 45000)

    listed = client.get("/v1/reports/refunds-disputes", query_string=july, headers=finance)
    assert listed.status_code == 200, listed.json
    refunds = [(r["stripe_refund_id"], r["amount"]) for r in listed.json["refunds"]]
    assert refunds == [("re_rf", 20000), ("re_ok", 5000), ("re_rf", -20000)]
    assert sum(amount for _, amount in refunds) == 5000
    exported = client.get(
        "/v1/reports/refunds-disputes", query_string={**july, "format": "csv"}, headers=finance
    )
    lines = list(csv.DictReader(io.StringIO(exported.get_data(as_text=True))))
    assert [(r["kind"], r["stripe_id"], r["amount"]) for r in lines] == [
        ("refund", "re_rf", "20000"),
        ("refund", "re_ok", "5000"),
        ("refund_failure", "re_rf", "-20000"),
    ]

    month = client.get("/v1/reports/month-end?month=2026-07", headers=finance).json
    assert (month["currencies"]["usd"]["collected"], month["currencies"]["usd"]["refunded"]) == (
        50000,
        5000,
    )
    assert all(count == 0 for count in month["discrepancies"].values())


def test_totals_sum_each_side_over_the_period(client, finance, planted) -> None:
    totals = reconcile(client, finance).json["totals"]
    # The planted currency mismatch puts eur on Stripe's side only.
    assert totals["currencies"] == ["eur", "usd"]
    usd = {"gross": 6 * 50000 - 2 * 25000, "refunds": 10000, "disputes": 0, "received": 0}
    nothing = {"gross": 0, "refunds": 0, "disputes": 0, "received": 0}
    assert totals["ledger"] == {"eur": nothing, "usd": usd}
    assert (totals["stripe"]["usd"]["refunds"], totals["stripe"]["usd"]["disputes"]) == (10000, 0)


def test_no_report_adds_amounts_of_different_currencies(
    app, client, make_key, booking_system, finance
) -> None:
    catalog = make_key("catalog:write")
    cad = client.post(
        "/v1/catalog/prices",
        headers=catalog,
        json={"iv_individual_amount": 50000, "currency": "cad"},
    )
    assert cad.status_code == 201, cad.json
    usd_invoice = iv_invoice(client, booking_system, "P-USD")
    cad_invoice = iv_invoice(client, booking_system, "P-CAD", currency="cad")
    for invoice in (usd_invoice, cad_invoice):
        set_invoice(app, invoice["id"], created_at=at("2026-10-02T09:00:00Z"))
    open_usd = iv_invoice(client, booking_system, "P-USD-OPEN")
    open_cad = iv_invoice(client, booking_system, "P-CAD-OPEN", currency="cad")
    for invoice in (open_usd, open_cad):
        set_invoice(app, invoice["id"], created_at=at("2026-10-03T09:00:00Z"))
    for invoice, ref in ((usd_invoice, "ch_usd"), (cad_invoice, "ch_cad")):
        set_invoice(app, invoice["id"], status="paid")
        add_ledger(app, invoice, "charge", 50000, ref, "2026-10-05T10:00:00Z")
        add_stripe(
            app,
            f"txn_{ref}",
            type="charge",
            source=ref,
            amount=50000,
            fee=1500,
            currency=invoice["currency"],
            created="2026-10-05T10:00:01Z",
        )
    # 500.00 usd and 500.00 cad are not 1000.00 of anything: each stays in its currency.
    totals = reconcile(client, finance).json["totals"]
    assert totals["currencies"] == ["cad", "usd"]
    for currency in ("cad", "usd"):
        assert totals["ledger"][currency]["gross"] == 50000
        assert totals["stripe"][currency]["gross"] == 50000
        assert totals["stripe"][currency]["fees"] == 1500

    month_end = client.get("/v1/reports/month-end?month=2026-10", headers=finance).json
    assert month_end["invoices_issued"] == 4
    for currency in ("cad", "usd"):
        figures = month_end["currencies"][currency]
        assert (figures["billed"], figures["collected"], figures["stripe_fees"]) == (
            100000,
            50000,
            1500,
        )
        assert figures["open_amount"] == 50000
    assert month_end["open_invoices"] == 2

    aging = client.get("/v1/reports/aging", headers=finance).json
    owed = [bucket for bucket in aging["buckets"].values() if bucket["count"]]
    assert owed == [{"count": 2, "totals": {"cad": 50000, "usd": 50000}}]

    page = finance_dashboard(app, client, "2026-10-01", "2026-10-31")
    assert 'data-currency="cad"' in page and 'data-currency="usd"' in page
    assert "CA$500.00" in page or "CAD 500.00" in page or "500.00 CAD" in page
    assert "$1,000.00" not in page


def finance_dashboard(app, client, start: str, end: str) -> str:
    """The dashboard's HTML, signed in as a finance clerk (over HTTPS: the cookie is Secure)."""
    with app.app_context():
        create_staff_user(db.session(), "clerk@example.org", "a long enough password")
    https = {"base_url": "https://localhost"}
    login = client.get("/finance/login", **https).get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', login)
    assert token is not None
    signed_in = client.post(
        "/finance/login",
        data={
            "email": "clerk@example.org",
            "password": "a long enough password",
            "csrf_token": token.group(1),
        },
        **https,
    )
    assert signed_in.status_code == 303, signed_in.get_data(as_text=True)
    page = client.get(f"/finance?from={start}&to={end}", **https)
    assert page.status_code == 200
    return str(page.get_data(as_text=True))


# The reconciliation, as CSV ----------------------------------------------------------

AS_CSV = pytest.mark.parametrize(
    ("query", "headers"),
    [({}, {"Accept": "text/csv"}), ({"format": "csv"}, {})],
    ids=["accept-header", "format-param"],
)


def csv_pair(row: dict[str, str]) -> tuple[str, int | None, str | None]:
    """(status, ledger entry id, Stripe transaction id); CSV writes a missing side empty."""
    ledger_id = int(row["ledger_entry_id"]) if row["ledger_entry_id"] else None
    return row["status"], ledger_id, row["stripe_transaction_id"] or None


def amount_sum(values: list[Any]) -> int:
    return sum(int(v) for v in values if v not in (None, ""))


@AS_CSV
def test_csv_lists_every_planted_pair_with_its_status(
    client, finance, planted, query, headers
) -> None:
    response, rows = csv_rows(client, {**finance, **headers}, **query)
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"].startswith("attachment;")
    found = {csv_pair(row) for row in rows}
    assert found == expected_statuses(planted)
    assert len(rows) == len(found)


@AS_CSV
def test_csv_has_one_row_per_pair_of_the_json_and_the_same_sums(
    client, finance, planted, query, headers
) -> None:
    report = reconcile(client, finance).json
    _, rows = csv_rows(client, {**finance, **headers}, **query)
    json_rows = [row for status in LISTS for row in report[status]]
    assert len(rows) == len(json_rows) == 8
    for column in ("ledger_amount", "stripe_amount"):
        assert amount_sum([r[column] for r in rows]) == amount_sum([r[column] for r in json_rows])
    # Ledger: 500 + 250 - 100 + 500 (matched), 250 (missing), 500 + 500 (mismatched).
    assert amount_sum([r["ledger_amount"] for r in rows]) == 240000
    # Stripe: 500 + 250 - 100 + 500 (matched), 70 (missing), 490 + 500 eur (mismatched).
    assert amount_sum([r["stripe_amount"] for r in rows]) == 221000


def test_format_json_wins_over_an_accept_header_asking_for_csv(client, finance) -> None:
    response = reconcile(client, {**finance, "Accept": "text/csv"}, format="json")
    assert response.mimetype == "application/json"
    assert set(response.json) == TOP_LEVEL_KEYS


def test_streamed_csv_gives_its_connection_back(app, client, finance, planted) -> None:
    pool = app.extensions["billing.db"].engine.pool
    gc.disable()  # the garbage collector would hide the leak by freeing the session
    try:
        assert pool.checkedout() == 0
        response = reconcile(client, finance, format="csv")
        response.close()
        assert pool.checkedout() == 0
    finally:
        gc.enable()
        gc.collect()


def test_csv_file_name_names_the_first_and_last_day_asked_for(client, finance) -> None:
    response, _ = csv_rows(client, finance, format="csv")
    disposition = response.headers["Content-Disposition"]
    assert disposition == 'attachment; filename="reconciliation-2026-10-01-2026-10-31.csv"'


# Access and validation ---------------------------------------------------------------


@pytest.mark.parametrize("url", REPORT_ENDPOINTS)
def test_booking_system_key_without_reports_read_is_forbidden(client, booking_system, url) -> None:
    response = client.get(url, headers=booking_system)
    assert response.status_code == 403
    assert response.json["code"] == "insufficient_scope"


@pytest.mark.parametrize("url", REPORT_ENDPOINTS)
def test_reports_read_key_reads_every_report(client, finance, url) -> None:
    response = client.get(url, headers=finance)
    response.get_data()
    assert response.status_code == 200


@pytest.mark.parametrize("path", ["/v1/reports/reconciliation", "/v1/reports/refunds-disputes"])
@pytest.mark.parametrize(
    ("query", "field_name"),
    [
        ({"from": "2026-10-31", "to": "2026-10-01"}, "to"),
        ({"from": "2026-01-01", "to": "2027-02-06"}, "to"),
        ({"from": "2026-10-1x", "to": "2026-10-31"}, "from"),
        ({"from": "2026-10-01", "to": "31/10/2026"}, "to"),
        ({"to": "2026-10-31"}, "from"),
        ({"from": "2026-10-01"}, "to"),
    ],
    ids=["to-before-from", "over-400-days", "bad-from", "bad-to", "no-from", "no-to"],
)
def test_bad_period_is_422_naming_the_field(client, finance, path, query, field_name) -> None:
    response = client.get(path, query_string=query, headers=finance)
    assert response.status_code == 422
    assert response.json["code"] == "validation_error"
    assert set(response.json["errors"]) == {field_name}


def test_period_of_exactly_400_days_is_accepted(client, finance) -> None:
    query = {"from": "2026-01-01", "to": "2027-02-05"}
    assert reconcile(client, finance, **query).json["matched"] == []


@pytest.mark.parametrize("month", ["2026-13", "2026-1", "october", ""])
def test_bad_month_is_422_naming_the_field(client, finance, month) -> None:
    response = client.get("/v1/reports/month-end", query_string={"month": month}, headers=finance)
    assert response.status_code == 422
    assert set(response.json["errors"]) == {"month"}


# Ageing, refunds and disputes, month end ---------------------------------------------


def test_aging_buckets_unpaid_invoices_by_age_and_leaves_out_paid_and_void(
    app, client, booking_system, finance
) -> None:
    ages = {"P-10": 10, "P-45": 45, "P-75": 75, "P-120": 120, "P-paid": 50, "P-void": 50}
    invoices = {patient: iv_invoice(client, booking_system, patient) for patient in ages}
    for patient, days in ages.items():
        set_invoice(app, invoices[patient]["id"], created_at=utcnow() - timedelta(days=days))
    set_invoice(app, invoices["P-paid"]["id"], status="paid")
    voided = client.post(f"/v1/invoices/{invoices['P-void']['id']}/void", headers=booking_system)
    assert voided.status_code == 200, voided.json

    response = client.get("/v1/reports/aging", headers=finance)
    assert response.status_code == 200
    listed = {
        row["patient_id"]: (row["age_days"], row["bucket"]) for row in response.json["invoices"]
    }
    assert listed == {
        "P-10": (10, "0-30"),
        "P-45": (45, "31-60"),
        "P-75": (75, "61-90"),
        "P-120": (120, "90+"),
    }
    assert response.json["buckets"] == {
        name: {"count": 1, "totals": {"usd": 50000}} for name in ("0-30", "31-60", "61-90", "90+")
    }


def test_refunds_report_lists_the_refund_of_the_period_with_its_invoice(
    client, finance, planted
) -> None:
    response = client.get("/v1/reports/refunds-disputes", query_string=OCTOBER, headers=finance)
    assert response.status_code == 200
    (refund,) = response.json["refunds"]
    assert refund["stripe_refund_id"] == "re_iv"
    assert (refund["amount"], refund["currency"]) == (10000, "usd")
    assert refund["occurred_at"] == "2026-10-12T08:59:58+00:00"
    assert refund["invoice_number"] == planted.invoices["iv_paid"]["number"]
    assert response.json["disputes"] == []


def test_month_end_agrees_with_what_was_planted(client, finance, planted) -> None:
    response = client.get("/v1/reports/month-end?month=2026-10", headers=finance)
    assert response.status_code == 200
    summary = response.json
    october_invoices = [i for name, i in planted.invoices.items() if name != "iv_september"]
    assert summary["month"] == "2026-10"
    assert summary["invoices_issued"] == len(october_invoices) == 6
    usd = summary["currencies"]["usd"]
    assert list(summary["currencies"]) == ["eur", "usd"]  # eur: the planted mismatch
    assert summary["currencies"]["eur"]["billed"] == 0
    assert usd["billed"] == sum(i["total"] for i in october_invoices) == 250000
    assert usd["collected"] == 6 * 50000 - 2 * 25000
    assert usd["refunded"] == 10000
    assert usd["disputed"] == 0
    assert (summary["open_invoices"], usd["open_amount"]) == (0, 0)
    assert summary["discrepancies"] == {
        "missing_in_stripe": 1,
        "missing_in_ledger": 1,
        "mismatched": 2,
        "overpayments": 0,
    }
    by_type = {row["session_type"]: row["revenue"] for row in summary["by_session_type"]}
    assert by_type == {"im_group": 50000, "iv_individual": 190000}


def test_month_end_takes_fees_and_net_from_stripe_and_leaves_out_void_invoices(
    app, client, booking_system, finance
) -> None:
    paid, void, unpaid = (
        iv_invoice(client, booking_system, p) for p in ("P-paid", "P-void", "P-open")
    )
    assert client.post(f"/v1/invoices/{void['id']}/void", headers=booking_system).status_code == 200
    for invoice in (paid, void, unpaid):
        set_invoice(app, invoice["id"], created_at=at("2026-08-02T09:00:00Z"))
    set_invoice(app, paid["id"], status="partially_refunded")
    add_ledger(app, paid, "charge", 50000, "ch_paid", "2026-08-03T10:00:00Z")
    add_ledger(app, paid, "refund", 5000, "re_paid", "2026-08-04T10:00:00Z")
    add_stripe(
        app,
        "txn_paid",
        type="charge",
        source="ch_paid",
        amount=50000,
        fee=1480,
        created="2026-08-03T10:00:01Z",
    )
    add_stripe(
        app,
        "txn_refund",
        type="refund",
        source="re_paid",
        amount=-5000,
        created="2026-08-04T10:00:01Z",
    )
    summary = client.get("/v1/reports/month-end?month=2026-08", headers=finance).json
    usd = summary["currencies"]["usd"]
    assert (summary["invoices_issued"], usd["billed"]) == (2, 100000)
    assert (usd["collected"], usd["refunded"]) == (50000, 5000)
    assert (usd["stripe_fees"], usd["net"]) == (1480, 50000 - 1480 - 5000)
    assert (summary["open_invoices"], usd["open_amount"]) == (1, 50000)
    assert summary["discrepancies"] == {
        "missing_in_stripe": 0,
        "missing_in_ledger": 0,
        "mismatched": 0,
        "overpayments": 0,
    }
