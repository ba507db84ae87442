"""Sliding-scale discounts and promotion codes on SQLite and PostgreSQL: capped, approved
by a named person, shared across lines to the cent, within their limits under
concurrency, and shown on invoices and receipts."""

from __future__ import annotations

import io
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from pypdf import PdfReader
from sqlalchemy import select

from billing.adapters import db
from billing.adapters.models import AuditEvent, Invoice
from tests.conftest import in_days

ANA = {"patient_id": "P-1001", "name": "Ana Ruiz", "prior_iv_sessions": 2}
BEN = {"patient_id": "P-1002", "name": "Ben Okafor", "prior_iv_sessions": 1}
HARDSHIP = {"percent": 30, "reason": "sliding scale: income", "approved_by": "Jo Park"}


@pytest.fixture
def headers(make_key):
    return make_key("quotes:write", "invoices:write", "invoices:read", "catalog:write")


def quote(client, headers, *patients: dict, code: str | None = None, booking: str = "BK-D") -> Any:
    body: dict[str, Any] = {
        "booking_id": booking,
        "session_type": "im_group" if len(patients) > 1 else "iv_individual",
        "scheduled_at": in_days(9),
        "currency": "usd",
        "patients": list(patients),
    }
    if code:
        body["promotion_code"] = code
    return client.post("/v1/quotes", json=body, headers=headers)


def promotion(client, headers, **terms: Any) -> Any:
    now = datetime.now(UTC)
    body = {
        "code": "WINTER",
        "starts_at": (now - timedelta(days=1)).isoformat(),
        "ends_at": (now + timedelta(days=30)).isoformat(),
        **terms,
    }
    return client.post("/v1/catalog/promotions", json=body, headers=headers)


def test_a_sliding_scale_discount_is_taken_from_its_line_and_audited(app, client, headers) -> None:
    made = quote(client, headers, {**ANA, "discount": HARDSHIP}, BEN)
    assert made.status_code == 201, made.json
    ana, ben = made.json["lines"]
    assert (ana["base_amount"], ana["amount"]) == (25000, 17500)  # half of P, then 30% off
    assert ana["discounts"] == [
        {
            "kind": "sliding_scale",
            "description": "Sliding-scale discount (30%)",
            "amount": 7500,
            "percent": 30,
            "code": None,
            "reason": "sliding scale: income",
            "approved_by": "Jo Park",
        }
    ]
    assert (ben["base_amount"], ben["amount"], ben["discounts"]) == (None, 25000, [])
    assert made.json["total"] == 42500
    read = client.get(f"/v1/quotes/{made.json['id']}", headers=headers).json
    assert read["lines"] == made.json["lines"] and read["total"] == 42500
    with app.app_context():
        action = (
            db.session()
            .scalars(select(AuditEvent.action).where(AuditEvent.object_id == made.json["id"]))
            .all()
        )
    assert "quote.discounted" in action


def test_a_discount_above_the_maximum_is_refused_with_its_field(client, headers) -> None:
    refused = quote(client, headers, {**ANA, "discount": {**HARDSHIP, "percent": 60}}, BEN)
    assert refused.status_code == 422 and refused.json["code"] == "discount_above_maximum"
    assert "patients.0.discount.percent" in refused.json["errors"]
    unnamed = quote(client, headers, {**ANA, "discount": {"percent": 10, "reason": "x"}}, BEN)
    assert (
        unnamed.status_code == 422 and "patients.0.discount.approved_by" in unnamed.json["errors"]
    )


def test_a_promotion_stacks_after_the_sliding_scale_and_adds_up(client, headers) -> None:
    assert promotion(client, headers, percent_off=20).status_code == 201
    made = quote(client, headers, {**ANA, "discount": HARDSHIP}, BEN, code="winter")
    assert made.status_code == 201, made.json
    ana, ben = made.json["lines"]
    assert [d["amount"] for d in ana["discounts"]] == [7500, 3500]  # 30% of 25000, 20% of 17500
    assert ana["amount"] == 14000 and ben["amount"] == 20000
    assert made.json["total"] == 34000 == ana["amount"] + ben["amount"]
    assert made.json["promotion_code"] == "WINTER"


def test_an_amount_off_is_allocated_across_lines_to_the_cent(client, headers) -> None:
    promotion(client, headers, code="TENOFF", amount_off=10001, currency="usd")
    made = quote(client, headers, ANA, BEN, code="TENOFF").json
    shares = [line["discounts"][0]["amount"] for line in made["lines"]]
    assert shares == [5001, 5000] and made["total"] == 50000 - 10001
    invoices = client.post("/v1/invoices", json={"quote_id": made["id"]}, headers=headers).json
    for invoice in invoices["data"]:
        (line,) = invoice["lines"]
        assert (
            invoice["total"]
            == line["amount"]
            == line["base_amount"] - line["discounts"][0]["amount"]
        )


@pytest.mark.parametrize(
    "terms, code",
    [
        (
            {
                "percent_off": 10,
                "starts_at": "2026-01-01T00:00:00Z",
                "ends_at": "2026-02-01T00:00:00Z",
            },
            "promotion_invalid",
        ),
        ({"amount_off": 1000, "currency": "cad"}, "promotion_not_applicable"),
    ],
)
def test_a_promotion_that_does_not_apply_is_refused_with_its_field(
    client, headers, terms, code
) -> None:
    assert promotion(client, headers, **terms).status_code == 201
    refused = quote(client, headers, ANA, BEN, code="WINTER")
    assert refused.status_code == 422 and refused.json["code"] == code
    assert "promotion_code" in refused.json["errors"]
    unknown = quote(client, headers, ANA, BEN, code="NOPE")
    assert unknown.status_code == 422 and unknown.json["code"] == "promotion_invalid"


def test_a_promotion_is_used_at_most_as_often_as_it_allows(client, headers) -> None:
    promotion(client, headers, percent_off=10, max_redemptions=2, max_per_patient=1)
    assert quote(client, headers, ANA, code="WINTER", booking="BK-1").status_code == 201
    again = quote(client, headers, ANA, code="WINTER", booking="BK-2")
    assert again.status_code == 409 and again.json["code"] == "promotion_exhausted"
    assert quote(client, headers, BEN, code="WINTER", booking="BK-3").status_code == 201
    spent = quote(client, headers, {**BEN, "patient_id": "P-1009"}, code="WINTER", booking="BK-4")
    assert spent.status_code == 409 and spent.json["code"] == "promotion_exhausted"


def test_promotions_are_checked_as_finance_makes_them(client, headers) -> None:
    assert promotion(client, headers, percent_off=10).status_code == 201
    assert promotion(client, headers, percent_off=10).json["code"] == "promotion_exists"
    for terms, field in (
        ({"code": "BOTH", "percent_off": 10, "amount_off": 100, "currency": "usd"}, "percent_off"),
        ({"code": "NOCUR", "amount_off": 100}, "currency"),
        ({"code": "BACK", "percent_off": 10, "ends_at": "2020-01-01T00:00:00Z"}, "ends_at"),
    ):
        refused = promotion(client, headers, **terms)
        assert refused.status_code == 422 and field in refused.json["errors"], (terms, refused.json)
    listed = client.get("/v1/catalog/promotions", headers=headers).json["data"]
    assert [p["code"] for p in listed] == ["WINTER"]


def test_the_receipt_shows_the_discount(app, client, headers) -> None:
    made = quote(client, headers, {**ANA, "discount": HARDSHIP}).json
    (invoice,) = client.post("/v1/invoices", json={"quote_id": made["id"]}, headers=headers).json[
        "data"
    ]
    with app.app_context():  # what a settled payment does, without Stripe
        db.session().get(Invoice, invoice["id"]).status = "paid"
        db.session().commit()
    pdf = client.get(f"/v1/invoices/{invoice['id']}/receipt.pdf", headers=headers)
    text = " ".join(
        "".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.data)).pages).split()
    )
    assert "$500.00" in text and "Sliding-scale discount (30%)" in text and "-$150.00" in text


def race_for(app: Flask, headers, code: str, *bookings: tuple[str, dict]) -> list[Any]:
    """Quote every booking with `code` at the same moment; the answers."""
    barrier = threading.Barrier(len(bookings))
    answers: list[Any] = []

    def one(booking: str, patient: dict) -> None:
        local = app.test_client()
        barrier.wait()
        answers.append(quote(local, headers, patient, code=code, booking=booking))

    threads = [threading.Thread(target=one, args=booking) for booking in bookings]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return answers


@pytest.mark.parametrize("app", ["sqlite", "postgresql"], indirect=True)
def test_two_quotes_racing_for_the_last_redemption_one_wins(app: Flask, client, headers) -> None:
    """On both databases: SQLite ignores the row lock, so the count is taken under its
    database write lock there. Four codes, four races, each with one winner."""
    for trial in range(4):
        code = f"WINTER{trial}"
        made = promotion(client, headers, code=code, percent_off=10, max_redemptions=1)
        assert made.status_code == 201, made.json
        answers = race_for(app, headers, code, (f"BK-A{trial}", ANA), (f"BK-B{trial}", BEN))
        assert sorted(a.status_code for a in answers) == [201, 409], (trial, answers)
        assert [a.json["code"] for a in answers if a.status_code == 409] == ["promotion_exhausted"]


def test_a_requoted_booking_keeps_its_one_redemption(client, headers) -> None:
    promotion(client, headers, percent_off=10, max_redemptions=1, max_per_patient=1)
    first = quote(client, headers, ANA, code="WINTER", booking="BK-R").json
    client.post("/v1/invoices", json={"quote_id": first["id"]}, headers=headers)
    again = quote(client, headers, ANA, code="WINTER", booking="BK-R")  # rescheduled
    assert again.status_code == 201, again.json
    other = quote(client, headers, BEN, code="WINTER", booking="BK-OTHER")
    assert other.status_code == 409 and other.json["code"] == "promotion_exhausted"


def test_an_invoice_keeps_who_approved_its_discount(client, headers) -> None:
    made = quote(client, headers, {**ANA, "discount": HARDSHIP}).json
    (invoice,) = client.post("/v1/invoices", json={"quote_id": made["id"]}, headers=headers).json[
        "data"
    ]
    (discount,) = invoice["lines"][0]["discounts"]
    assert (discount["approved_by"], discount["reason"]) == ("Jo Park", "sliding scale: income")
