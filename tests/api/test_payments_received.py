"""Money the front desk takes outside Stripe (cash, checks, another terminal), in part or
in full, on SQLite and PostgreSQL: the balance it leaves, the events, the reversal of a
check that bounced, never beyond what is owed (two at once included), and where it shows
(reconciliation as outside Stripe, the journal, ageing, month end)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask

from tests.integrations.feed import wait_until_settled


@pytest.fixture
def desk(make_key) -> dict[str, str]:
    """The front desk: quotes, invoices, and money received at the desk."""
    return make_key("quotes:write", "invoices:write", "invoices:read", "payments:record")


def new_invoice(client, desk: dict[str, str], booking, patient: str = "P-7001") -> dict[str, Any]:
    made = client.post(
        "/v1/quotes",
        json=booking(
            session_type="iv_individual",
            booking_id=f"BK-{patient}",
            patients=[{"patient_id": patient, "name": "Cass Tran", "prior_iv_sessions": 1}],
        ),
        headers=desk,
    )
    assert made.status_code == 201, made.json
    invoiced = client.post("/v1/invoices", json={"quote_id": made.json["id"]}, headers=desk)
    assert invoiced.status_code == 201, invoiced.json
    return dict(invoiced.json["data"][0])


def receive(client, desk: dict[str, str], invoice_id: str, key: str, **body: Any) -> Any:
    return client.post(
        f"/v1/invoices/{invoice_id}/payments",
        json={"method": "cash", **body},
        headers={**desk, "Idempotency-Key": key},
    )


def invoice_of(client, desk: dict[str, str], invoice_id: str) -> dict[str, Any]:
    return dict(client.get(f"/v1/invoices/{invoice_id}", headers=desk).json)


def money(client, desk: dict[str, str], invoice_id: str) -> tuple[str, int, int]:
    """The invoice's status, what it was paid and what it still owes."""
    now = invoice_of(client, desk, invoice_id)
    return now["status"], now["amount_paid"], now["balance_due"]


def at_once(app: Flask, desk: dict[str, str], invoice_id: str, *keys: str) -> list[Any]:
    """Record the whole balance in cash once per key, all at the same moment."""
    barrier = threading.Barrier(len(keys))
    answers: list[Any] = []

    def pay(key: str) -> None:
        local = app.test_client()
        barrier.wait()
        answers.append(receive(local, desk, invoice_id, key))

    threads = [threading.Thread(target=pay, args=(key,)) for key in keys]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return answers


def events_of(app: Flask, client, make_key, *types: str) -> list[dict[str, Any]]:
    wait_until_settled(app)
    reader = make_key("events:read")
    found = []
    for event_type in types:
        found += client.get("/v1/events", query_string={"type": event_type}, headers=reader).json[
            "data"
        ]
    return found


def test_cash_pays_part_and_a_check_the_rest(app: Flask, client, desk, booking, make_key) -> None:
    invoice = new_invoice(client, desk, booking)
    assert (invoice["total"], invoice["balance_due"]) == (50000, 50000)

    cash = receive(client, desk, invoice["id"], "cash-1", amount=20000)
    assert cash.status_code == 201, cash.json
    assert cash.json["method"] == "cash" and cash.json["status"] == "succeeded"
    assert cash.json["amount"] == 20000 and cash.json["invoice_status"] == "partially_paid"
    assert cash.json["recorded_by"] and cash.json["received_at"]
    again = receive(client, desk, invoice["id"], "cash-1", amount=20000)  # a retry
    assert (again.status_code, again.json["id"]) == (201, cash.json["id"])
    now = invoice_of(client, desk, invoice["id"])
    assert (now["status"], now["amount_paid"], now["balance_due"]) == (
        "partially_paid",
        20000,
        30000,
    )

    check = receive(client, desk, invoice["id"], "check-1", method="check", reference="1042")
    assert check.status_code == 201, check.json
    assert (check.json["amount"], check.json["reference"]) == (30000, "1042")  # the balance
    now = invoice_of(client, desk, invoice["id"])
    assert (now["status"], now["amount_paid"], now["balance_due"]) == ("paid", 50000, 0)

    partly = events_of(app, client, make_key, "invoice.partially_paid")
    assert [e["data"]["object"]["id"] for e in partly] == [invoice["id"]]
    assert partly[0]["data"]["object"]["balance_due"] == 30000
    recorded = events_of(app, client, make_key, "payment.recorded")
    assert sorted(e["data"]["object"]["method"] for e in recorded) == ["cash", "check"]
    assert all("recorded_by" not in e["data"]["object"] for e in recorded)  # withheld
    assert len(events_of(app, client, make_key, "invoice.paid")) == 1


def test_what_is_not_owed_is_refused_with_the_field(client, desk, booking, make_key) -> None:
    invoice = new_invoice(client, desk, booking)
    too_much = receive(client, desk, invoice["id"], "k1", amount=50001)
    assert too_much.status_code == 422 and too_much.json["code"] == "amount_exceeds_balance"
    assert "amount" in too_much.json["errors"]
    no_number = receive(client, desk, invoice["id"], "k2", method="check")
    assert no_number.status_code == 422 and no_number.json["code"] == "reference_required"
    assert "reference" in no_number.json["errors"]
    numbered = receive(client, desk, invoice["id"], "k2", method="check", reference="1", amount=1)
    assert numbered.status_code == 201, numbered.json  # the refusal did not keep the key
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    later = receive(client, desk, invoice["id"], "k3", received_at=future)
    assert later.status_code == 422 and "received_at" in later.json["errors"]
    long_ago = (datetime.now(UTC) - timedelta(days=30)).isoformat()
    before = receive(client, desk, invoice["id"], "k4", received_at=long_ago)
    assert before.status_code == 422 and before.json["code"] == "received_before_invoice"
    odd = receive(client, desk, invoice["id"], "k5", reference="line\nbreak")
    assert odd.status_code == 422 and "reference" in odd.json["errors"]
    card_words = client.post(
        f"/v1/invoices/{invoice['id']}/payments",
        json={"method": "card_on_file", "reference": "x"},
        headers={**desk, "Idempotency-Key": "k6"},
    )
    assert card_words.status_code == 422 and "reference" in card_words.json["errors"]
    assert receive(client, desk, invoice["id"], "k7").status_code == 201  # all of it
    paid = receive(client, desk, invoice["id"], "k8", amount=100)
    assert paid.status_code == 409 and paid.json["code"] == "invoice_not_payable"
    assert invoice_of(client, desk, invoice["id"])["amount_paid"] == 50000  # nothing lost


def test_money_at_the_desk_has_a_scope_of_its_own(client, desk, booking, make_key) -> None:
    invoice = new_invoice(client, desk, booking)
    cards_only = make_key("payments:write")
    refused = receive(client, cards_only, invoice["id"], "s1")
    assert refused.status_code == 403 and refused.json["code"] == "insufficient_scope"
    cash_only = make_key("payments:record")
    card = client.post(
        f"/v1/invoices/{invoice['id']}/payments",
        json={"method": "card_on_file"},
        headers={**cash_only, "Idempotency-Key": "s2"},
    )
    assert card.status_code == 403 and card.json["code"] == "insufficient_scope"
    assert invoice_of(client, desk, invoice["id"])["amount_paid"] == 0


def test_a_bounced_check_is_reversed_and_its_money_is_owed_again(
    app: Flask, client, desk, booking, make_key
) -> None:
    invoice = new_invoice(client, desk, booking)
    receive(client, desk, invoice["id"], "cash", amount=10000)
    check = receive(client, desk, invoice["id"], "check", method="check", reference="77").json
    assert invoice_of(client, desk, invoice["id"])["status"] == "paid"

    path = f"/v1/invoices/{invoice['id']}/payments/{check['id']}/reversals"
    reversal = {"reason": "returned: insufficient funds"}
    bounced = client.post(path, json=reversal, headers={**desk, "Idempotency-Key": "r1"})
    assert bounced.status_code == 201, bounced.json
    assert bounced.json["status"] == "reversed" and bounced.json["reversed_at"]
    assert bounced.json["reversal_reason"] == "returned: insufficient funds"
    now = invoice_of(client, desk, invoice["id"])
    assert (now["status"], now["amount_paid"], now["balance_due"]) == (
        "partially_paid",
        10000,
        40000,
    )
    twice = client.post(path, json=reversal, headers={**desk, "Idempotency-Key": "r2"})
    assert twice.status_code == 201 and twice.json["status"] == "reversed"
    assert invoice_of(client, desk, invoice["id"])["balance_due"] == 40000  # once only

    reversed_events = events_of(app, client, make_key, "payment.reversed")
    assert [e["data"]["object"]["id"] for e in reversed_events] == [check["id"]]
    assert "reversal_reason" not in reversed_events[0]["data"]["object"]
    audit = client.get(
        "/v1/audit-events",
        query_string={"object_id": invoice["id"]},
        headers=make_key("audit:read"),
    ).json["data"]
    assert "invoice.reopened" in [event["action"] for event in audit]

    other = client.post(
        f"/v1/invoices/{invoice['id']}/payments/pay_{'0' * 24}/reversals",
        json=reversal,
        headers={**desk, "Idempotency-Key": "r3"},
    )
    assert other.status_code == 404 and other.json["code"] == "payment_not_found"
    paid_again = receive(client, desk, invoice["id"], "cash-2")
    assert paid_again.status_code == 201 and paid_again.json["amount"] == 40000


def test_two_payments_of_the_whole_balance_at_once_collect_it_once(
    app: Flask, client, desk, booking
) -> None:
    for trial in range(3):
        invoice = new_invoice(client, desk, booking, patient=f"P-72{trial:02d}")
        answers = at_once(app, desk, invoice["id"], f"race-{trial}-1", f"race-{trial}-2")
        assert sorted(a.status_code for a in answers) == [201, 409], [a.json for a in answers]
        now = invoice_of(client, desk, invoice["id"])
        assert (now["amount_paid"], now["balance_due"], now["status"]) == (50000, 0, "paid")


def test_money_at_the_desk_shows_outside_stripe_in_every_report(
    app: Flask, client, desk, booking, make_key
) -> None:
    invoice = new_invoice(client, desk, booking)
    cash = receive(client, desk, invoice["id"], "c1", amount=20000).json
    check = receive(client, desk, invoice["id"], "c2", method="check", reference="9", amount=5000)
    client.post(
        f"/v1/invoices/{invoice['id']}/payments/{check.json['id']}/reversals",
        json={"reason": "bounced"},
        headers={**desk, "Idempotency-Key": "c3"},
    )
    finance = make_key("reports:read")
    today = datetime.now(UTC).date().isoformat()
    report = client.get(
        "/v1/reports/reconciliation", query_string={"from": today, "to": today}, headers=finance
    ).json
    assert [(r["kind"], r["ledger_amount"]) for r in report["outside_stripe"]] == [
        ("received", 20000),
        ("received", 5000),
        ("reversal", -5000),
    ]
    assert report["missing_in_stripe"] == [] and report["matched"] == []
    assert report["totals"]["counts"]["outside_stripe"] == 3
    assert report["totals"]["ledger"]["usd"]["received"] == 20000
    assert report["totals"]["ledger"]["usd"]["gross"] == 0  # nothing through Stripe
    (revenue,) = report["by_session_type"]
    assert (revenue["session_type"], revenue["revenue"]) == ("iv_individual", 20000)

    csv = client.get(
        "/v1/reports/reconciliation",
        query_string={"from": today, "to": today, "format": "csv"},
        headers=finance,
    ).get_data(as_text=True)
    assert csv.count("outside_stripe") == 3

    aging = client.get("/v1/reports/aging", headers=finance).json
    (owing,) = [row for row in aging["invoices"] if row["id"] == invoice["id"]]
    assert (owing["status"], owing["balance_due"]) == ("partially_paid", 30000)
    assert aging["buckets"]["0-30"]["totals"] == {"usd": 30000}

    month = today[:7]
    month_end = client.get(
        "/v1/reports/month-end", query_string={"month": month}, headers=finance
    ).json["currencies"]["usd"]
    assert (month_end["collected"], month_end["received_outside_stripe"]) == (20000, 20000)
    assert month_end["open_amount"] == 30000

    journal = client.get("/v1/reports/journal", query_string={"month": month}, headers=finance).json
    lines = [line for entry in journal["journals"] for line in entry["lines"]]
    undeposited = [line for line in lines if line["account_name"] == "Undeposited Funds"]
    assert sum(line["debit"] - line["credit"] for line in undeposited) == 20000
    assert cash["id"]


def test_each_part_is_announced_and_no_part_leaves_less_than_a_card_can_pay(
    app: Flask, client, desk, booking, make_key
) -> None:
    invoice = new_invoice(client, desk, booking)
    assert receive(client, desk, invoice["id"], "p1", amount=10000).status_code == 201
    assert receive(client, desk, invoice["id"], "p2", amount=10000).status_code == 201
    partly = events_of(app, client, make_key, "invoice.partially_paid")
    assert sorted(e["data"]["object"]["balance_due"] for e in partly) == [30000, 40000]
    crumbs = receive(client, desk, invoice["id"], "p3", amount=29980)  # would leave 20 cents
    assert crumbs.status_code == 422 and crumbs.json["code"] == "remainder_too_small"
    assert "amount" in crumbs.json["errors"]
    assert receive(client, desk, invoice["id"], "p4", amount=29950).status_code == 201
    assert money(client, desk, invoice["id"]) == ("partially_paid", 49950, 50)
