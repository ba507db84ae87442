"""POST/GET /v1/invoices and void, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from billing.adapters import db
from billing.adapters.models import Invoice


@pytest.fixture
def headers(make_key):
    return make_key("quotes:write", "invoices:write", "invoices:read", "catalog:write")


def make_quote(client, headers, payload: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/quotes", json=payload, headers=headers)
    assert response.status_code == 201, response.json
    return response.json


def invoice_quote(client, headers, quote_id: str) -> list[dict[str, Any]]:
    response = client.post("/v1/invoices", json={"quote_id": quote_id}, headers=headers)
    assert response.status_code == 201, response.json
    return response.json["data"]


def iv_booking(booking, patient_id: str, booking_id: str = "BK-IV-1") -> dict[str, Any]:
    patients = [{"patient_id": patient_id, "name": "Iva Vance", "email": "iva@example.org"}]
    return booking(session_type="iv_individual", booking_id=booking_id, patients=patients)


def list_invoices(client, headers, **query: Any) -> Any:
    return client.get("/v1/invoices", query_string=query, headers=headers)


def set_status(app: Flask, invoice_id: str, status: str) -> None:
    """What a settled payment does to an invoice, without going through Stripe."""
    with app.app_context():
        session = db.session()
        invoice = session.get(Invoice, invoice_id)
        assert invoice is not None
        invoice.status = status
        session.commit()


def invoice_count(app: Flask) -> int:
    with app.app_context():
        return int(db.session().scalar(select(func.count()).select_from(Invoice)) or 0)


def numeric_part(number: str) -> int:
    return int(number.split("-")[1])


# --- creating invoices ----------------------------------------------------------------------


def test_group_quote_becomes_one_open_invoice_per_patient(client, headers, booking) -> None:
    quote = make_quote(client, headers, booking())
    response = client.post("/v1/invoices", json={"quote_id": quote["id"]}, headers=headers)
    assert response.status_code == 201, response.json
    assert response.json["has_more"] is False
    invoices = response.json["data"]
    assert [inv["patient_id"] for inv in invoices] == ["P-1001", "P-1002"]
    assert [inv["patient_name"] for inv in invoices] == ["Ana Ruiz", "Ben Okafor"]
    line_amounts = {line["patient_id"]: line["amount"] for line in quote["lines"]}
    for invoice in invoices:
        assert invoice["id"].startswith("in_")
        assert re.fullmatch(r"\d{4}-\d{6}", invoice["number"])
        assert invoice["status"] == "open"
        assert invoice["quote_id"] == quote["id"]
        assert invoice["booking_id"] == "BK-2026-0412"
        assert invoice["session_type"] == "im_group"
        assert invoice["currency"] == "usd"
        assert invoice["total"] == line_amounts[invoice["patient_id"]] == 25000
        assert invoice["lines"] == [
            {
                "description": "Group IM ketamine session",
                "session_type": "im_group",
                "billing_code": "KET-IM-GROUP",
                "amount": 25000,
                "base_amount": None,
                "discounts": [],
                "credits_used": 0.0,
            }
        ]
        assert invoice["amount_paid"] == 0
        assert invoice["amount_refunded"] == 0
        assert invoice["voided_at"] is None
        assert datetime.fromisoformat(invoice["created_at"]).utcoffset() == timedelta(0)
    assert len({inv["id"] for inv in invoices}) == 2


def test_invoice_keeps_the_quote_price_after_a_price_change(client, headers, booking) -> None:
    quote = make_quote(client, headers, booking())
    change = client.post(
        "/v1/catalog/prices",
        json={"iv_individual_amount": 60000, "currency": "usd"},
        headers=headers,
    )
    assert change.status_code == 201, change.json
    assert make_quote(client, headers, booking(booking_id="BK-NEW"))["total"] == 60000
    invoices = invoice_quote(client, headers, quote["id"])
    assert [inv["total"] for inv in invoices] == [25000, 25000]
    assert [inv["lines"][0]["amount"] for inv in invoices] == [25000, 25000]


def test_new_invoice_reads_back_with_nothing_paid_or_refunded(client, headers, booking) -> None:
    created = invoice_quote(client, headers, make_quote(client, headers, booking())["id"])[0]
    response = client.get(f"/v1/invoices/{created['id']}", headers=headers)
    assert response.status_code == 200
    assert response.json == created
    assert response.json["amount_paid"] == 0
    assert response.json["amount_refunded"] == 0


def test_invoicing_a_quote_twice_returns_the_same_invoices(app, client, headers, booking) -> None:
    quote = make_quote(client, headers, booking())
    first = client.post("/v1/invoices", json={"quote_id": quote["id"]}, headers=headers)
    second = client.post("/v1/invoices", json={"quote_id": quote["id"]}, headers=headers)
    assert first.status_code == 201
    assert second.status_code == 200
    assert second.json == first.json
    listed = list_invoices(client, headers)
    assert len(listed.json["data"]) == 2
    assert listed.json["has_more"] is False
    assert invoice_count(app) == 2


def test_expired_quote_is_refused_and_invoices_nothing(app, client, headers, booking) -> None:
    app.config["QUOTE_TTL_HOURS"] = 0
    quote = make_quote(client, headers, booking())
    response = client.post("/v1/invoices", json={"quote_id": quote["id"]}, headers=headers)
    assert response.status_code == 409
    assert response.mimetype == "application/problem+json"
    assert response.json["code"] == "quote_expired"
    assert list_invoices(client, headers).json["data"] == []
    assert invoice_count(app) == 0


def test_unknown_quote_is_404(app, client, headers) -> None:
    response = client.post("/v1/invoices", json={"quote_id": "qt_nope"}, headers=headers)
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
    assert response.json["code"] == "quote_not_found"
    assert invoice_count(app) == 0


def test_missing_quote_id_is_422(client, headers) -> None:
    response = client.post("/v1/invoices", json={}, headers=headers)
    assert response.status_code == 422
    assert "quote_id" in response.json["errors"]


def test_unknown_invoice_is_404(client, headers) -> None:
    response = client.get("/v1/invoices/in_nope", headers=headers)
    assert response.status_code == 404
    assert response.json["code"] == "invoice_not_found"


def test_numbers_are_sequential_per_year_without_gaps(app, client, headers, booking) -> None:
    year = datetime.now(UTC).year

    def numbers_of(quote: dict[str, Any]) -> list[str]:
        return [i["number"] for i in invoice_quote(client, headers, quote["id"])]

    iv_quote = make_quote(client, headers, iv_booking(booking, "P-2001"))
    numbers = numbers_of(make_quote(client, headers, booking(booking_id="BK-1")))
    numbers += numbers_of(iv_quote)
    # Neither a replay nor a refused (expired) quote uses up a number.
    replay = client.post("/v1/invoices", json={"quote_id": iv_quote["id"]}, headers=headers)
    assert replay.status_code == 200
    app.config["QUOTE_TTL_HOURS"] = 0
    expired = make_quote(client, headers, booking(booking_id="BK-EXPIRED"))
    refused = client.post("/v1/invoices", json={"quote_id": expired["id"]}, headers=headers)
    assert refused.status_code == 409
    app.config["QUOTE_TTL_HOURS"] = 24
    numbers += numbers_of(make_quote(client, headers, booking(booking_id="BK-3")))

    assert numbers == [f"{year}-{n:06d}" for n in range(1, 6)]


# --- listing --------------------------------------------------------------------------------


@pytest.fixture
def three_batches(client, headers, booking) -> list[list[dict[str, Any]]]:
    """Five invoices from three quotes, made one after the other: 2 + 1 + 2."""
    payloads = [
        booking(booking_id="BK-A"),
        iv_booking(booking, "P-2001", booking_id="BK-B"),
        booking(booking_id="BK-C"),
    ]
    return [invoice_quote(client, headers, make_quote(client, headers, p)["id"]) for p in payloads]


def _newest_first(invoices: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(
        invoices, key=lambda i: (datetime.fromisoformat(i["created_at"]), i["id"]), reverse=True
    )


def test_list_is_newest_first(client, headers, three_batches) -> None:
    first, second, third = three_batches
    response = list_invoices(client, headers)
    assert response.status_code == 200
    data = response.json["data"]
    assert response.json["has_more"] is False
    assert [i["booking_id"] for i in data] == ["BK-C", "BK-C", "BK-B", "BK-A", "BK-A"]
    assert data == _newest_first(first + second + third)


def test_list_filters_by_status_patient_and_booking(client, headers, three_batches) -> None:
    first, second, _ = three_batches
    voided = first[1]["id"]
    assert client.post(f"/v1/invoices/{voided}/void", headers=headers).status_code == 200

    def ids(**query: Any) -> set[str]:
        response = list_invoices(client, headers, **query)
        assert response.status_code == 200, response.json
        return {i["id"] for i in response.json["data"]}

    assert ids(status="void") == {voided}
    assert len(ids(status="open")) == 4 and voided not in ids(status="open")
    assert ids(status="paid") == set()
    assert ids(patient_id="P-2001") == {second[0]["id"]}
    assert len(ids(patient_id="P-1002")) == 2
    assert ids(booking_id="BK-A") == {first[0]["id"], voided}
    assert ids(booking_id="BK-A", status="open") == {first[0]["id"]}
    assert ids(booking_id="BK-A", patient_id="P-2001") == set()


def test_list_filters_by_created_range(client, headers, three_batches) -> None:
    first, second, third = three_batches
    india = timezone(timedelta(hours=5, minutes=30))  # a '+' offset, URL-encoded as %2B

    def at(invoice: dict[str, Any]) -> str:
        return datetime.fromisoformat(invoice["created_at"]).astimezone(india).isoformat()

    def bookings(**query: Any) -> list[str]:
        response = list_invoices(client, headers, **query)
        assert response.status_code == 200, response.json
        return [i["booking_id"] for i in response.json["data"]]

    assert bookings(created_gte=at(second[0])) == ["BK-C", "BK-C", "BK-B"]
    assert bookings(created_lt=at(second[0])) == ["BK-A", "BK-A"]
    assert bookings(created_gte=at(second[0]), created_lt=at(third[0])) == ["BK-B"]
    assert bookings(created_gte=at(first[0]), created_lt=at(first[0])) == []


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"status": "settled"}, "status"),
        ({"created_gte": "2026-01-01T00:00:00"}, "created_gte"),  # no offset
        ({"patient_id": "bad id!"}, "patient_id"),
    ],
)
def test_bad_list_filter_is_422_naming_it(client, headers, query, field) -> None:
    response = list_invoices(client, headers, **query)
    assert response.status_code == 422
    assert field in response.json["errors"]


@pytest.mark.parametrize("limit", [0, 501])
def test_limit_out_of_range_is_422(client, headers, limit) -> None:
    response = list_invoices(client, headers, limit=limit)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert "limit" in response.json["errors"]


@pytest.mark.parametrize("limit", [1, 500])
def test_limit_in_range_is_accepted(client, headers, three_batches, limit) -> None:
    response = list_invoices(client, headers, limit=limit)
    assert response.status_code == 200, response.json
    assert len(response.json["data"]) == min(limit, 5)


def test_starting_after_continues_after_that_invoice(client, headers, three_batches) -> None:
    everything = list_invoices(client, headers).json["data"]
    rest = list_invoices(client, headers, starting_after=everything[1]["id"])
    assert rest.status_code == 200
    assert rest.json["data"] == everything[2:]
    assert rest.json["has_more"] is False


def test_cursor_pagination_walks_every_invoice_once(client, headers, three_batches) -> None:
    everything = list_invoices(client, headers).json["data"]
    assert len(everything) == 5
    seen: list[dict[str, Any]] = []
    more_flags: list[bool] = []
    query: dict[str, Any] = {"limit": 2}
    while True:
        response = list_invoices(client, headers, **query)
        assert response.status_code == 200, response.json
        page = response.json
        assert 1 <= len(page["data"]) <= 2
        seen += page["data"]
        more_flags.append(page["has_more"])
        if not page["has_more"]:
            break
        query["starting_after"] = page["data"][-1]["id"]
    assert more_flags == [True, True, False]
    assert seen == everything
    assert len({i["id"] for i in seen}) == 5


# --- voiding --------------------------------------------------------------------------------


def test_void_open_invoice_and_again(client, headers, booking) -> None:
    first, other = invoice_quote(client, headers, make_quote(client, headers, booking())["id"])
    response = client.post(f"/v1/invoices/{first['id']}/void", headers=headers)
    assert response.status_code == 200, response.json
    assert response.json["status"] == "void"
    voided_at = datetime.fromisoformat(response.json["voided_at"])
    assert voided_at.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - voided_at) < timedelta(minutes=1)

    again = client.post(f"/v1/invoices/{first['id']}/void", headers=headers)
    assert again.status_code == 200
    assert again.json["status"] == "void"
    assert again.json["voided_at"] == response.json["voided_at"]

    assert client.get(f"/v1/invoices/{first['id']}", headers=headers).json["status"] == "void"
    # The other patient's invoice of the same quote is untouched.
    assert client.get(f"/v1/invoices/{other['id']}", headers=headers).json["status"] == "open"


def test_paid_invoice_cannot_be_voided(app, client, headers, booking) -> None:
    invoice = invoice_quote(client, headers, make_quote(client, headers, booking())["id"])[0]
    set_status(app, invoice["id"], "paid")
    response = client.post(f"/v1/invoices/{invoice['id']}/void", headers=headers)
    assert response.status_code == 409
    assert response.mimetype == "application/problem+json"
    assert response.json["code"] == "invoice_paid"
    read_back = client.get(f"/v1/invoices/{invoice['id']}", headers=headers).json
    assert read_back["status"] == "paid"
    assert read_back["voided_at"] is None


def test_void_unknown_invoice_is_404(client, headers) -> None:
    response = client.post("/v1/invoices/in_nope/void", headers=headers)
    assert response.status_code == 404
    assert response.json["code"] == "invoice_not_found"


# --- concurrency (PostgreSQL) ---------------------------------------------------------------


def _post_together(app: Flask, bodies: list[dict[str, Any]], headers) -> list[Any]:
    """POST each body to /v1/invoices from its own thread, all released at once."""
    barrier = threading.Barrier(len(bodies))
    responses: list[Any] = [None] * len(bodies)
    errors: list[BaseException] = []

    def send(index: int) -> None:
        try:
            client = app.test_client()
            barrier.wait()
            responses[index] = client.post("/v1/invoices", json=bodies[index], headers=headers)
        except BaseException as error:  # reported below, not lost in the thread
            errors.append(error)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert all(not thread.is_alive() for thread in threads)
    return responses


@pytest.mark.postgresql
@pytest.mark.parametrize("app", ["postgresql"], indirect=True)
def test_hundred_concurrent_invoices_get_consecutive_numbers(app, client, headers, booking) -> None:
    quotes = [
        make_quote(client, headers, iv_booking(booking, f"P-{i:04d}", booking_id=f"BK-{i}"))
        for i in range(100)
    ]
    responses = _post_together(app, [{"quote_id": q["id"]} for q in quotes], headers)

    assert [r.status_code for r in responses] == [201] * 100
    numbers = [r.json["data"][0]["number"] for r in responses]
    assert len(set(numbers)) == 100
    year = datetime.now(UTC).year
    assert {n.split("-")[0] for n in numbers} == {str(year)}
    assert sorted(numeric_part(n) for n in numbers) == list(range(1, 101))
    assert invoice_count(app) == 100


@pytest.mark.postgresql
@pytest.mark.parametrize("app", ["postgresql"], indirect=True)
def test_ten_concurrent_invoicings_of_one_quote_make_one_set(app, client, headers, booking) -> None:
    quote = make_quote(client, headers, booking())
    responses = _post_together(app, [{"quote_id": quote["id"]}] * 10, headers)

    assert sorted(r.status_code for r in responses) == [200] * 9 + [201]
    assert len({tuple(i["id"] for i in r.json["data"]) for r in responses}) == 1
    assert invoice_count(app) == 2
    # The losers took no numbers: the next invoice follows straight on.
    year = datetime.now(UTC).year
    assert sorted(i["number"] for i in responses[0].json["data"]) == [
        f"{year}-000001",
        f"{year}-000002",
    ]
    following = invoice_quote(
        client, headers, make_quote(client, headers, iv_booking(booking, "P-9999"))["id"]
    )
    assert following[0]["number"] == f"{year}-000003"
