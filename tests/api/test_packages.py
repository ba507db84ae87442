"""Packages and credits on SQLite and PostgreSQL: versioned in the catalogue, sold as an
invoice, usable once it is paid, held by quotes, used by invoices, returned by a timely
cancellation or carried by a re-quote, expired, and never spent twice under concurrency.
(The money of a package, paid and refunded at Stripe, is in tests/stripe.)"""

from __future__ import annotations

import io
import threading
from datetime import datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from pypdf import PdfReader
from sqlalchemy import select

from billing.adapters import db
from billing.adapters.credit_models import CreditHold
from billing.adapters.models import Invoice, utcnow
from billing.services.finance.packages import package_figures
from billing.services.finance.reconciliation import Period
from billing.services.invoicing import ledger, paid
from billing.services.packages import credits
from tests.conftest import in_days, in_hours

ANA = {"patient_id": "P-3001", "name": "Ana Ruiz", "prior_iv_sessions": 2}
BEN = {"patient_id": "P-3002", "name": "Ben Okafor", "prior_iv_sessions": 1}
SIX = {
    "code": "induction6",
    "name": "Induction series",
    "iv_credits": 6,
    "amount": 270000,
    "currency": "usd",
    "valid_days": 120,
}


@pytest.fixture
def desk(make_key) -> dict[str, str]:
    return make_key(
        "catalog:write",
        "quotes:write",
        "invoices:write",
        "invoices:read",
        "bookings:write",
    )


def pay(app: Flask, invoice_id: str) -> None:
    """What a Stripe charge of the invoice does to it (its webhook or the card on file)."""
    with app.app_context():
        session = db.session()
        invoice = session.get(Invoice, invoice_id)
        assert invoice is not None
        before = invoice.status
        ledger.record(session, invoice, ledger.CHARGE, invoice.total, f"ch_{invoice.id}")
        paid.announce_paid(session, invoice, before)
        session.commit()


def sell(client, desk, patient: dict[str, Any], app: Flask | None = None, **package: Any) -> Any:
    client.post("/v1/catalog/packages", json={**SIX, **package}, headers=desk)
    sold = client.post(
        f"/v1/patients/{patient['patient_id']}/packages",
        json={"code": package.get("code", SIX["code"]), "name": patient["name"]},
        headers=desk,
    )
    assert sold.status_code == 201, sold.json
    if app is not None:
        pay(app, sold.json["invoice_id"])
    return sold.json


def quote(client, desk, *patients: dict[str, Any], booking: str = "BK-C", **extra: Any) -> Any:
    body = {
        "booking_id": booking,
        "session_type": "im_group" if len(patients) > 1 else "iv_individual",
        "scheduled_at": extra.pop("scheduled_at", in_days(9)),
        "currency": "usd",
        "patients": list(patients),
        **extra,
    }
    return client.post("/v1/quotes", json=body, headers=desk)


def balance(client, desk, patient_id: str) -> dict[str, Any]:
    made = client.get(f"/v1/patients/{patient_id}/credits", headers=desk)
    assert made.status_code == 200, made.json
    assert sum(m["credits"] for m in made.json["movements"]) == made.json["available"]
    return dict(made.json)


def test_a_new_version_of_a_package_replaces_the_old_for_sale_only(client, desk) -> None:
    first = client.post("/v1/catalog/packages", json=SIX, headers=desk)
    assert first.status_code == 201, first.json
    assert (first.json["code"], first.json["version"]) == ("INDUCTION6", 1)
    sold = client.post(
        "/v1/patients/P-3001/packages", json={"code": "INDUCTION6", "name": "Ana"}, headers=desk
    ).json
    second = client.post("/v1/catalog/packages", json={**SIX, "amount": 290000}, headers=desk).json
    assert second["version"] == 2
    on_sale = client.get("/v1/catalog/packages", headers=desk).json["data"]
    assert [(p["code"], p["version"], p["amount"]) for p in on_sale] == [("INDUCTION6", 2, 290000)]
    assert sold["amount"] == 270000 and sold["invoice"]["total"] == 270000
    later = client.post(
        "/v1/patients/P-3002/packages", json={"code": "induction6", "name": "Ben"}, headers=desk
    ).json
    assert later["invoice"]["total"] == 290000


def test_a_sold_package_is_an_invoice_whose_credits_wait_for_payment(app, client, desk) -> None:
    sold = sell(client, desk, ANA)
    invoice = sold["invoice"]
    assert (invoice["kind"], invoice["status"], invoice["session_type"]) == (
        "package",
        "open",
        "package",
    )
    assert invoice["quote_id"] is None and invoice["booking_id"] is None
    assert invoice["lines"][0]["billing_code"] == "KET-PKG"
    assert invoice["lines"][0]["description"] == "Induction series (6 IV credits)"
    assert sold["status"] == "awaiting_payment" and sold["credits"]["available"] == 0

    refused = quote(client, desk, {**ANA, "pay_with": "credits"})
    assert refused.status_code == 409, refused.json
    assert refused.json["code"] == "insufficient_credits"
    assert "patients.0.pay_with" in refused.json["errors"]

    pay(app, invoice["id"])
    now = balance(client, desk, "P-3001")
    assert now["available"] == 6 and now["packages"][0]["status"] == "active"
    assert now["packages"][0]["expires_at"] is not None
    assert [m["kind"] for m in now["movements"]] == ["purchased"]


def test_a_credit_pays_an_iv_session_and_half_a_credit_a_group_seat(app, client, desk) -> None:
    sell(client, desk, ANA, app)
    sell(client, desk, BEN, app)
    iv = quote(client, desk, {**ANA, "pay_with": "credits"}, booking="BK-IV")
    assert iv.status_code == 201, iv.json
    line = iv.json["lines"][0]
    assert (line["amount"], line["base_amount"], line["credits_used"]) == (0, 50000, 1.0)
    assert iv.json["total"] == 0
    assert balance(client, desk, "P-3001")["available"] == 5  # held by the quote

    group = quote(client, desk, {**ANA, "pay_with": "credits"}, BEN, booking="BK-G")
    assert group.status_code == 201, group.json
    ana, ben = group.json["lines"]
    assert (ana["amount"], ana["credits_used"]) == (0, 0.5)
    assert (ben["amount"], ben["credits_used"]) == (25000, 0.0)
    assert group.json["total"] == 25000
    assert balance(client, desk, "P-3001")["available"] == 4.5

    invoiced = client.post("/v1/invoices", json={"quote_id": iv.json["id"]}, headers=desk)
    assert invoiced.status_code == 201, invoiced.json
    paid = invoiced.json["data"][0]
    assert (paid["status"], paid["total"], paid["lines"][0]["credits_used"]) == ("paid", 0, 1.0)
    after = balance(client, desk, "P-3001")
    assert after["available"] == 4.5
    assert after["packages"][0]["credits"]["used"] == 1
    assert after["packages"][0]["credits"]["reserved"] == 0.5
    kinds = [m["kind"] for m in after["movements"]]
    assert kinds == ["purchased", "reserved", "reserved", "used"]


def test_credits_and_a_discount_do_not_go_together(client, desk) -> None:
    made = quote(
        client,
        desk,
        {
            **ANA,
            "pay_with": "credits",
            "discount": {"percent": 10, "reason": "r", "approved_by": "Jo"},
        },
    )
    assert made.status_code == 422, made.json
    assert "discount" in str(made.json["errors"])


def test_a_quote_left_to_expire_gives_its_credits_back(app, client, desk) -> None:
    sell(client, desk, ANA, app)
    held = quote(client, desk, {**ANA, "pay_with": "credits"}).json
    with app.app_context():
        later = credits.statement(db.session(), "P-3001", utcnow() + timedelta(days=8))
    assert later.available == 12  # half-credits
    assert [m["kind"] for m in later.movements] == ["purchased", "reserved", "released"]
    assert later.movements[-1]["quote_id"] == held["id"]


def test_credits_expire_unless_a_quote_already_holds_them(app, client, desk) -> None:
    sell(client, desk, ANA, app, valid_days=1)
    held = quote(client, desk, {**ANA, "pay_with": "credits"}).json  # holds 1 for 24 hours
    with app.app_context():
        session = db.session()
        package = credits.statement(session, "P-3001").packages[0].package
        quote_expires = datetime.fromisoformat(held["expires_at"])
        assert package.expires_at < quote_expires
        between = package.expires_at + (quote_expires - package.expires_at) / 2
        made = credits.statement(session, "P-3001", between)
        later = credits.statement(session, "P-3001", quote_expires + timedelta(minutes=1))
    expired = made.packages[0]
    assert expired.status == "expired"
    assert (expired.balance.available, expired.balance.expired, expired.balance.reserved) == (
        0,
        10,
        2,
    )
    assert made.movements[-1]["kind"] == "expired" and made.movements[-1]["credits"] == -5
    # Once the quote has lapsed unused, its credit has expired with the rest.
    assert (later.packages[0].balance.expired, later.available) == (12, 0)
    assert sum(m["half_credits"] for m in later.movements) == 0


def test_cancelling_in_time_returns_the_credit_late_costs_the_fee(app, client, desk) -> None:
    sell(client, desk, ANA, app)
    early = quote(client, desk, {**ANA, "pay_with": "credits"}, booking="BK-EARLY").json
    client.post("/v1/invoices", json={"quote_id": early["id"]}, headers=desk)
    cancelled = client.post(
        "/v1/bookings/BK-EARLY/cancellations",
        json={"by": "patient"},
        headers={**desk, "Idempotency-Key": "c-early"},
    )
    assert cancelled.status_code == 200, cancelled.json
    assert cancelled.json["fees"] == []
    assert cancelled.json["invoices"][0]["status"] == "void"
    now = balance(client, desk, "P-3001")
    assert now["available"] == 6
    assert [m["kind"] for m in now["movements"]][-1] == "returned"

    late = quote(
        client, desk, {**ANA, "pay_with": "credits"}, booking="BK-LATE", scheduled_at=in_hours(5)
    ).json
    client.post("/v1/invoices", json={"quote_id": late["id"]}, headers=desk)
    cancelled = client.post(
        "/v1/bookings/BK-LATE/cancellations",
        json={"by": "patient"},
        headers={**desk, "Idempotency-Key": "c-late"},
    )
    assert cancelled.status_code == 200, cancelled.json
    (fee,) = cancelled.json["fees"]
    assert (fee["total"], fee["fee_reason"]) == (25000, "late_cancellation")  # 50% of P
    assert balance(client, desk, "P-3001")["available"] == 6


def test_a_re_quote_carries_the_credit_of_the_place(app, client, desk) -> None:
    sell(client, desk, ANA, app, iv_credits=1, amount=50000)
    first = quote(client, desk, {**ANA, "pay_with": "credits"}, booking="BK-MOVE").json
    client.post("/v1/invoices", json={"quote_id": first["id"]}, headers=desk)
    assert balance(client, desk, "P-3001")["available"] == 0

    moved = quote(
        client, desk, {**ANA, "pay_with": "credits"}, booking="BK-MOVE", scheduled_at=in_days(12)
    )
    assert moved.status_code == 201, moved.json  # the one credit is the place's already
    invoiced = client.post("/v1/invoices", json={"quote_id": moved.json["id"]}, headers=desk)
    assert invoiced.status_code == 201, invoiced.json
    assert invoiced.json["data"][0]["status"] == "paid"
    view = client.get("/v1/bookings/BK-MOVE", headers=desk).json
    statuses = {i["quote_id"]: i["status"] for i in view["invoices"]}
    assert statuses == {first["id"]: "void", moved.json["id"]: "paid"}
    now = balance(client, desk, "P-3001")
    assert now["available"] == 0 and now["packages"][0]["credits"]["used"] == 1
    # Used when the place was first invoiced: the month it was redeemed stays that month.
    (used,) = [m for m in now["movements"] if m["kind"] == "used"]
    assert used["invoice_id"] == invoiced.json["data"][0]["id"]
    assert used["at"] < invoiced.json["data"][0]["created_at"]

    # Another booking cannot have it.
    other = quote(client, desk, {**ANA, "pay_with": "credits"}, booking="BK-OTHER")
    assert other.status_code == 409 and other.json["code"] == "insufficient_credits"


def two_credit_quotes_at_once(app: Flask, desk: dict[str, str], booking: str) -> list[Any]:
    """Ana's place in two bookings, quoted from two threads at the same moment."""
    answers: list[Any] = []
    start = threading.Barrier(2)

    def race(booking_id: str) -> None:
        with app.test_client() as own:
            start.wait()
            answers.append(quote(own, desk, {**ANA, "pay_with": "credits"}, booking=booking_id))

    threads = [threading.Thread(target=race, args=(f"{booking}{i}",)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def test_two_quotes_racing_for_the_last_credit_one_wins(app, client, desk) -> None:
    sell(client, desk, ANA, app, iv_credits=1, amount=50000)
    answers = two_credit_quotes_at_once(app, desk, "BK-R")
    assert sorted(a.status_code for a in answers) == [201, 409], [a.json for a in answers]
    loser = next(a for a in answers if a.status_code == 409)
    assert loser.json["code"] == "insufficient_credits"
    assert balance(client, desk, "P-3001")["available"] == 0


def test_two_quotes_that_both_read_the_last_credit_free_cannot_both_hold_it(
    app, client, desk, monkeypatch
) -> None:
    """The worst interleaving, forced: each quote waits (up to a second) after reading
    the balance for the other to have read it too. Locked, the second cannot read until
    the first has held the credit and committed, so the wait times out and it finds none."""
    sell(client, desk, ANA, app, iv_credits=1, amount=50000)
    both_read = threading.Barrier(2, timeout=1.0)
    read_balances = credits.balances

    def then_wait(*args: Any) -> Any:
        found = read_balances(*args)
        try:
            both_read.wait()
        except threading.BrokenBarrierError:
            pass
        return found

    monkeypatch.setattr(credits, "balances", then_wait)
    answers = two_credit_quotes_at_once(app, desk, "BK-L")
    assert sorted(a.status_code for a in answers) == [201, 409], [a.json for a in answers]
    assert balance(client, desk, "P-3001")["available"] == 0


def test_a_package_needs_a_name_for_a_patient_never_quoted(client, desk) -> None:
    client.post("/v1/catalog/packages", json=SIX, headers=desk)
    refused = client.post("/v1/patients/P-NEW/packages", json={"code": "INDUCTION6"}, headers=desk)
    assert refused.status_code == 422 and refused.json["code"] == "patient_name_required"
    unknown = client.post(
        "/v1/patients/P-NEW/packages", json={"code": "NOPE", "name": "X"}, headers=desk
    )
    assert unknown.status_code == 422 and unknown.json["code"] == "package_not_found"
    quote(client, desk, ANA)
    named = client.post("/v1/patients/P-3001/packages", json={"code": "INDUCTION6"}, headers=desk)
    assert named.status_code == 201 and named.json["invoice"]["patient_name"] == "Ana Ruiz"


def test_selling_again_with_the_same_key_sells_once(app, client, desk) -> None:
    client.post("/v1/catalog/packages", json=SIX, headers=desk)
    headers = {**desk, "Idempotency-Key": "sell-once"}
    body = {"code": "INDUCTION6", "name": "Ana"}
    first = client.post("/v1/patients/P-3001/packages", json=body, headers=headers)
    again = client.post("/v1/patients/P-3001/packages", json=body, headers=headers)
    assert (first.status_code, again.status_code) == (201, 201)
    assert first.json["id"] == again.json["id"]
    with app.app_context():
        sold = db.session().scalars(select(Invoice).where(Invoice.kind == "package")).all()
    assert len(sold) == 1


def test_month_end_shows_package_sales_redemptions_discounts_and_deferred_revenue(
    app, client, desk, make_key
) -> None:
    sell(client, desk, ANA, app)  # 6 IV credits for $2,700.00: $225.00 a half-credit
    used = quote(client, desk, {**ANA, "pay_with": "credits"}, booking="BK-M1").json
    client.post("/v1/invoices", json={"quote_id": used["id"]}, headers=desk)
    hardship = {"percent": 20, "reason": "sliding scale", "approved_by": "Jo Park"}
    discounted = quote(client, desk, {**BEN, "discount": hardship}, booking="BK-M2").json
    client.post("/v1/invoices", json={"quote_id": discounted["id"]}, headers=desk)
    month = utcnow().strftime("%Y-%m")
    report = client.get(f"/v1/reports/month-end?month={month}", headers=make_key("reports:read"))
    assert report.status_code == 200, report.json
    usd = report.json["currencies"]["usd"]
    assert usd["credits_redeemed"] == 1
    assert usd["credit_redemption_value"] == 45000
    assert usd["deferred_revenue"] == 270000 - 45000
    rows = {row["session_type"]: row for row in report.json["revenue"]}
    assert rows["package"]["collected"] == 270000
    assert rows["iv_individual"]["credits_redeemed"] == 1
    assert rows["iv_individual"]["discounts"] == 10000
    assert rows["iv_individual"]["collected"] == 0
    csv = client.get(
        f"/v1/reports/month-end?month={month}&format=csv", headers=make_key("reports:read")
    )
    header, line = csv.get_data(as_text=True).splitlines()[:2]
    assert "credits_redeemed,credit_redemption_value,deferred_revenue," in header
    assert line.endswith(",1.0,45000,225000,0,0")


def refund_outside(
    app: Flask, invoice_id: str, amount: int, ref: str, at: datetime | None = None
) -> None:
    """What a refund made in Stripe's dashboard of the package's charge does to its ledger."""
    with app.app_context():
        session = db.session()
        invoice = session.get(Invoice, invoice_id)
        assert invoice is not None
        ledger.record(session, invoice, ledger.REFUND, amount, ref, "ch_x", occurred_at=at)
        session.commit()


def deferred_at(app: Flask, end: datetime) -> int:
    """The month-end report's deferred revenue (USD) for a period ending at `end`."""
    with app.app_context():
        figures = package_figures(db.session(), Period(end - timedelta(days=30), end))
    return int(figures["usd"]["deferred_revenue"])


def test_credits_held_past_their_package_expiry_stay_deferred_until_used_or_lapsed(
    app, client, desk
) -> None:
    sell(client, desk, ANA, app, valid_days=1)  # $2,700.00 for 6 IV credits
    held = quote(client, desk, {**ANA, "pay_with": "credits"}).json  # 1 credit, 24 hours
    with app.app_context():
        package = credits.statement(db.session(), "P-3001").packages[0].package
        assert package.expires_at is not None
        expiry = package.expires_at
    lapses = datetime.fromisoformat(held["expires_at"])
    assert expiry < lapses
    assert deferred_at(app, expiry - timedelta(minutes=1)) == 270000
    # Expired, but the quote can still be invoiced: its credit is still owed in a session.
    assert deferred_at(app, expiry + (lapses - expiry) / 2) == 45000
    assert deferred_at(app, lapses + timedelta(minutes=1)) == 0


def test_a_package_whose_money_left_another_way_defers_only_what_quotes_hold(
    app, client, desk
) -> None:
    sold = sell(client, desk, ANA, app, iv_credits=2, amount=100000)  # $250.00 a half-credit
    held = quote(client, desk, {**ANA, "pay_with": "credits"}, booking="BK-W3").json
    soon = utcnow() + timedelta(minutes=1)
    assert deferred_at(app, soon) == 100000
    refund_outside(app, sold["invoice_id"], 30000, "re_dashboard")
    assert deferred_at(app, soon) == 50000  # the credit the quote holds; the other is withdrawn
    # A second refund, a day after that period: the period reads the same.
    refund_outside(app, sold["invoice_id"], 10000, "re_later", soon + timedelta(days=1))
    assert deferred_at(app, soon) == 50000
    used = client.post("/v1/invoices", json={"quote_id": held["id"]}, headers=desk)
    assert used.status_code == 201, used.json
    assert deferred_at(app, utcnow() + timedelta(minutes=1)) == 0


def test_receipts_show_the_credit_that_paid_and_the_package_code(app, client, desk) -> None:
    sold = sell(client, desk, ANA, app)
    used = quote(client, desk, {**ANA, "pay_with": "credits"}, booking="BK-RCPT").json
    invoice = client.post("/v1/invoices", json={"quote_id": used["id"]}, headers=desk).json["data"][
        0
    ]

    def text_of(invoice_id: str) -> str:
        pdf = client.get(f"/v1/invoices/{invoice_id}/receipt.pdf", headers=desk)
        assert pdf.status_code == 200, pdf.get_data(as_text=True)[:200]
        return " ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.data)).pages)

    session_receipt = text_of(invoice["id"])
    assert "Paid with 1 IV credit of a package" in session_receipt
    assert "-$500.00" in session_receipt and "J3490" in session_receipt
    package_receipt = text_of(sold["invoice_id"])
    assert "KET-PKG" in package_receipt and "$2,700.00" in package_receipt
    assert "J3490" not in package_receipt


def test_an_estimate_of_a_course_from_a_package_adds_boosters_at_the_session_price(
    app, client, desk
) -> None:
    client.post("/v1/catalog/packages", json=SIX, headers=desk)
    made = quote(client, desk, ANA, booking="BK-GFE", scheduled_at=in_days(20)).json
    path = f"/v1/quotes/{made['id']}/estimate"
    course = {"package": "induction6", "sessions": 8, "months": 4}
    asked = client.post(path, json=course, headers=desk)
    assert asked.status_code == 201, asked.json
    estimate = asked.json
    assert (estimate["sessions"], estimate["package_code"]) == (8, "INDUCTION6")
    package, boosters = estimate["items"]
    assert (package["quantity"], package["amount"]) == (1, 270000)
    assert "KET-PKG" in package["codes"] and "6 sessions" in package["description"]
    assert (boosters["quantity"], boosters["unit_amount"], boosters["amount"]) == (2, 50000, 100000)
    assert estimate["total"] == 370000
    again = client.post(path, json={**course, "package": "INDUCTION6"}, headers=desk).json
    assert again["id"] == estimate["id"]
    read = client.get(f"{path}?package=INDUCTION6&sessions=8&months=4", headers=desk).json
    assert read["id"] == estimate["id"]
    plain = client.post(path, json={"sessions": 8, "months": 4}, headers=desk).json
    assert plain["id"] != estimate["id"] and plain["total"] == 400000
    pdf = client.get(f"{path}?package=INDUCTION6&sessions=8&months=4&format=pdf", headers=desk)
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.data)).pages)
    assert "Induction series" in text and "$3,700.00" in text
    refused = client.post(path, json={"package": "INDUCTION6"}, headers=desk)
    assert refused.status_code == 422 and "months" in refused.json["errors"]
    unknown = client.post(path, json={"package": "NONE", "months": 2}, headers=desk)
    assert unknown.status_code == 422 and unknown.json["code"] == "package_not_found"


def test_a_hold_that_lapsed_while_invoicing_waited_is_not_used(app, client, desk) -> None:
    """Invoicing can wait on a lock past the quote's expiry; by then the hold's credit may
    be another quote's. The invoice is refused (409), and the credit is spent once."""
    sell(client, desk, ANA, app, iv_credits=1, amount=50000)
    first = quote(client, desk, {**ANA, "pay_with": "credits"}, booking="BK-LAPSE").json
    with app.app_context():
        session = db.session()
        held = session.scalars(select(CreditHold).where(CreditHold.quote_id == first["id"])).one()
        held.expires_at = utcnow() - timedelta(seconds=1)  # lapsed; the quote not yet seen so
        session.commit()
    second = quote(client, desk, {**ANA, "pay_with": "credits"}, booking="BK-OTHER2")
    assert second.status_code == 201, second.json
    refused = client.post("/v1/invoices", json={"quote_id": first["id"]}, headers=desk)
    assert refused.status_code == 409 and refused.json["code"] == "quote_expired", refused.json
    taken = client.post("/v1/invoices", json={"quote_id": second.json["id"]}, headers=desk)
    assert taken.status_code == 201, taken.json
    now = balance(client, desk, "P-3001")
    assert (now["available"], now["packages"][0]["credits"]["used"]) == (0, 1)


def test_money_leaving_a_package_another_way_withdraws_its_unused_credits(
    app, client, desk
) -> None:
    """A refund made in Stripe's dashboard (or a dispute) of a package's charge: its
    credits not used or held no longer stand on money, and cannot be used."""
    sold = sell(client, desk, ANA, app, iv_credits=2, amount=100000)
    held = quote(client, desk, {**ANA, "pay_with": "credits"}, booking="BK-W1").json
    refund_outside(app, sold["invoice_id"], 30000, "re_dashboard")
    now = balance(client, desk, "P-3001")
    package = now["packages"][0]
    assert package["status"] == "withdrawn"
    assert (package["credits"]["reserved"], package["credits"]["withdrawn"]) == (1, 1)
    assert now["available"] == 0 and now["movements"][-1]["kind"] == "withdrawn"
    refused = quote(client, desk, {**ANA, "pay_with": "credits"}, booking="BK-W2")
    assert refused.status_code == 409 and refused.json["code"] == "insufficient_credits"
    # The place held before keeps its credit.
    kept = client.post("/v1/invoices", json={"quote_id": held["id"]}, headers=desk)
    assert kept.status_code == 201 and kept.json["data"][0]["status"] == "paid"
