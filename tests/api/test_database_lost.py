"""PostgreSQL connections dropped mid-request: a clean 503 problem+json, never a 500, no
half-written rows, and the next request works."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
from sqlalchemy import func, select

from billing.adapters import db
from billing.adapters.models import Invoice, InvoiceCounter
from tests.conftest import POSTGRES_ADMIN

pytestmark = [
    pytest.mark.postgresql,
    pytest.mark.parametrize("app", ["postgresql"], indirect=True),
]


def database_of(app) -> str:
    return str(app.extensions["billing.db"].engine.url.database)


def terminate_backends(app, only_waiting: bool = False) -> int:
    """What an operator's pg_terminate_backend (or a failover) does to the app's links."""
    condition = "AND wait_event_type = 'Lock'" if only_waiting else ""
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = %s AND pid <> pg_backend_pid() {condition}",
            (database_of(app),),
        ).fetchall()
    return len(rows)


def quote(client, headers, booking) -> str:
    response = client.post("/v1/quotes", headers=headers, json=booking())
    assert response.status_code == 201, response.json
    return str(response.json["id"])


def test_connections_dropped_between_requests_give_one_clean_503(
    app, client, make_key, booking
) -> None:
    headers = make_key("quotes:write", "invoices:read", "invoices:write")
    quote(client, headers, booking)  # the pool now holds a live connection
    assert terminate_backends(app) >= 1

    lost = client.get("/v1/invoices", headers=headers)
    assert lost.status_code == 503, lost.json
    assert lost.content_type == "application/problem+json"
    assert lost.json["code"] == "database_unavailable"
    assert lost.headers["Retry-After"] == "1"
    assert "Traceback" not in lost.get_data(as_text=True)
    assert client.get("/v1/invoices", headers=headers).status_code == 200  # reconnected


def test_connection_dropped_mid_invoice_leaves_nothing_half_written(
    app, client, make_key, booking
) -> None:
    headers = make_key("quotes:write", "invoices:read", "invoices:write")
    quote_id = quote(client, headers, booking)
    answers: list = []
    with psycopg.connect(app.extensions["billing.db"].url.replace("+psycopg", "")) as blocker:
        # Hold the invoice counter so the request stops half-way through its transaction.
        blocker.execute(
            "INSERT INTO invoice_counters (year, last_number) VALUES (2026, 0), "
            "(2027, 0) ON CONFLICT DO NOTHING"
        )
        blocker.commit()
        blocker.execute("SELECT * FROM invoice_counters FOR UPDATE")
        worker = threading.Thread(
            target=lambda: answers.append(
                app.test_client().post("/v1/invoices", headers=headers, json={"quote_id": quote_id})
            )
        )
        worker.start()
        deadline = time.monotonic() + 10
        while not terminate_backends(app, only_waiting=True):
            assert time.monotonic() < deadline, "the request never reached the counter"
            time.sleep(0.05)
        worker.join(timeout=10)
        blocker.rollback()

    [lost] = answers
    assert lost.status_code == 503, lost.json
    assert lost.json["code"] == "database_unavailable"
    with app.app_context():
        session = db.session()
        assert session.scalar(select(func.count()).select_from(Invoice)) == 0
        assert set(session.scalars(select(InvoiceCounter.last_number))) == {0}

    retried = client.post("/v1/invoices", headers=headers, json={"quote_id": quote_id})
    assert retried.status_code == 201, retried.json
    numbers = [invoice["number"] for invoice in retried.json["data"]]
    assert [number.split("-")[1] for number in numbers] == ["000001", "000002"]  # no gap


def test_connection_dropped_after_the_answer_was_ready_still_answers(app, client, make_key) -> None:
    headers = make_key("invoices:read")

    @app.after_request
    def operator_ends_the_connection(response):  # the read's transaction is still open
        terminate_backends(app)
        return response

    answer = client.get("/v1/invoices", headers=headers)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.json == {"data": [], "has_more": False}


def test_everyday_quote_on_a_dropped_connection_is_a_clean_503_then_works(
    app, client, make_key, booking
) -> None:
    """The everyday quote goes to PostgreSQL through the driver, not SQLAlchemy's
    Session (db.execute_alone): a dead connection must still be a 503, and dropped."""
    headers = make_key("quotes:write")
    quote(client, headers, booking)  # keys and prices cached, a connection in the pool
    # Nothing else in the request touches the database: only the quote's own statement
    # meets the dead connection.
    app.extensions["billing.cache_generation"].check_seconds = 3600
    assert terminate_backends(app) >= 1

    lost = client.post("/v1/quotes", headers=headers, json=booking())
    assert lost.status_code == 503, lost.get_data(as_text=True)
    assert lost.content_type == "application/problem+json"
    assert lost.json["code"] == "database_unavailable"
    assert quote(client, headers, booking)  # the dead connections were dropped
    app.extensions["billing.db"].engine.dispose()  # the session's pool met none of them yet
