"""Several replicas starting together migrate the database once (a PostgreSQL advisory
lock), and the schema ends at head; data from before a migration comes through it."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from alembic import command
from sqlalchemy import column, create_engine, insert, table

from billing import create_app
from billing.adapters import db
from billing.adapters.migrate import alembic_config, head_revision, upgrade
from billing.adapters.models import UTCDateTime
from billing.config import normalise_database_url
from billing.services.access import keys
from billing.services.pricing import catalog
from tests.conftest import POSTGRES_ADMIN


@pytest.mark.postgresql
def test_replicas_starting_together_migrate_once(postgresql_url: str) -> None:
    name = f"billing_migrate_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = POSTGRES_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    failures: list[BaseException] = []

    def replica() -> None:
        try:
            upgrade(url)
        except BaseException as error:  # noqa: BLE001 - reported below
            failures.append(error)

    try:
        replicas = [threading.Thread(target=replica) for _ in range(4)]
        for thread in replicas:
            thread.start()
        for thread in replicas:
            thread.join(timeout=120)
        assert failures == []
        with psycopg.connect(url) as connection:
            versions = connection.execute("SELECT version_num FROM alembic_version").fetchall()
        assert versions == [(head_revision(),)]
    finally:
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _fresh_database(kind: str, tmp_path: Any) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'legacy.sqlite3'}"
        return
    name = f"billing_legacy_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield POSTGRES_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.parametrize(
    "kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)]
)
def test_bookings_invoiced_before_the_lifecycle_are_kept_as_they_were(
    kind: str, tmp_path: Any
) -> None:
    """Migration 0011 makes a booking of each booking invoiced before it, standing on its
    newest invoiced quote; an older quote's paid invoice is left alone, not given back."""
    for url in _fresh_database(kind, tmp_path):
        upgrade(url, "0010")
        engine = create_engine(normalise_database_url(url))
        now = datetime.now(UTC).replace(microsecond=0)
        quotes = table(
            "quotes",
            *(
                column(c)
                for c in ("id", "booking_id", "session_type", "currency", "price_version", "total")
            ),
            column("scheduled_at", UTCDateTime()),
            column("created_at", UTCDateTime()),
            column("expires_at", UTCDateTime()),
        )
        invoices = table(
            "invoices",
            *(
                column(c)
                for c in (
                    "id",
                    "number",
                    "quote_id",
                    "booking_id",
                    "patient_id",
                    "patient_name",
                    "session_type",
                    "currency",
                    "total",
                    "status",
                )
            ),
            column("scheduled_at", UTCDateTime()),
            column("created_at", UTCDateTime()),
            column("updated_at", UTCDateTime()),
        )
        prices = table(
            "price_versions",
            column("version"),
            column("currency"),
            column("iv_individual_amount"),
            column("effective_at", UTCDateTime()),
            column("created_at", UTCDateTime()),
        )
        with engine.begin() as connection:
            connection.execute(
                insert(prices).values(
                    version=1,
                    currency="usd",
                    iv_individual_amount=50000,
                    effective_at=now - timedelta(days=30),
                    created_at=now - timedelta(days=30),
                )
            )
            for number, (quote_id, age, status) in enumerate(
                (("qt_old", 3, "paid"), ("qt_new", 2, "open")), start=1
            ):
                connection.execute(
                    insert(quotes).values(
                        id=quote_id,
                        booking_id="BK-OLD",
                        session_type="iv_individual",
                        currency="usd",
                        price_version=1,
                        total=50000,
                        scheduled_at=now + timedelta(days=5),
                        created_at=now - timedelta(days=age),
                        expires_at=now - timedelta(days=age - 1),
                    )
                )
                connection.execute(
                    insert(invoices).values(
                        id=f"in_{quote_id}",
                        number=f"2026-00000{number}",
                        quote_id=quote_id,
                        booking_id="BK-OLD",
                        patient_id="P-1",
                        patient_name="Ana",
                        session_type="iv_individual",
                        currency="usd",
                        total=50000,
                        status=status,
                        scheduled_at=now + timedelta(days=5),
                        created_at=now - timedelta(days=age),
                        updated_at=now - timedelta(days=age),
                    )
                )
        engine.dispose()

        upgrade(url)
        app = create_app({"TESTING": True, "DATABASE_URL": url})
        with app.app_context():
            _, plain = keys.create_key(db.session(), "desk", ["invoices:write", "invoices:read"])
        headers = {"Authorization": f"Bearer {plain}"}
        client = app.test_client()
        booking = client.get("/v1/bookings/BK-OLD", headers=headers)
        assert booking.status_code == 200, booking.json
        assert booking.json["quote_id"] == "qt_new" and booking.json["state"] == "active"
        assert [seat["invoice_id"] for seat in booking.json["patients"]] == ["in_qt_new"]
        assert booking.json["cancellation_policy"]["notice_hours"] == 48
        # Invoicing an old quote again still answers with its invoices, and changes nothing.
        again = client.post("/v1/invoices", json={"quote_id": "qt_old"}, headers=headers)
        assert again.status_code == 200, again.json
        assert client.get("/v1/invoices/in_qt_old", headers=headers).json["status"] == "paid"
        app.extensions["billing.db"].engine.dispose()


@pytest.mark.parametrize(
    "kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)]
)
def test_ledger_entries_from_before_0016_get_their_invoice_total(kind: str, tmp_path: Any) -> None:
    """Migration 0016 copies each existing ledger entry's invoice total (and goes back down);
    an invoice charged twice before it is still among the month's overpayments."""
    for url in _fresh_database(kind, tmp_path):
        upgrade(url)
        app = create_app({"TESTING": True, "DATABASE_URL": url})
        with app.app_context():
            catalog.seed_default(db.session())
            _, plain = keys.create_key(
                db.session(), "desk", ["quotes:write", "invoices:write", "reports:read"]
            )
        headers = {"Authorization": f"Bearer {plain}"}
        client = app.test_client()
        when = (datetime.now(UTC) + timedelta(days=5)).replace(microsecond=0)
        quote = client.post(
            "/v1/quotes",
            headers=headers,
            json={
                "booking_id": "BK-TWICE",
                "session_type": "iv_individual",
                "scheduled_at": when.isoformat(),
                "currency": "usd",
                "patients": [{"patient_id": "P-1", "name": "Ana Ruiz"}],
            },
        )
        assert quote.status_code == 201, quote.json
        made = client.post("/v1/invoices", headers=headers, json={"quote_id": quote.json["id"]})
        assert made.status_code == 201, made.json
        (invoice,) = made.json["data"]
        app.extensions["billing.db"].engine.dispose()

        command.downgrade(alembic_config(normalise_database_url(url)), "0015")
        engine = create_engine(normalise_database_url(url))
        ledger = table(
            "ledger_entries",
            *(
                column(c)
                for c in (
                    "invoice_id",
                    "kind",
                    "amount",
                    "currency",
                    "stripe_object_id",
                    "stripe_charge_id",
                    "stripe_ref",
                    "invoice_number",
                    "session_type",
                )
            ),
            column("occurred_at", UTCDateTime()),
            column("created_at", UTCDateTime()),
        )
        charged_at = datetime(2026, 10, 5, 12, tzinfo=UTC)
        with engine.begin() as connection:
            for n in (1, 2):  # the desk and the pay page, both at Stripe
                connection.execute(
                    insert(ledger).values(
                        invoice_id=invoice["id"],
                        kind="charge",
                        amount=invoice["total"],
                        currency="usd",
                        stripe_object_id=f"pi_{n}",
                        stripe_charge_id=f"ch_{n}",
                        stripe_ref=f"ch_{n}",
                        invoice_number=invoice["number"],
                        session_type="iv_individual",
                        occurred_at=charged_at + timedelta(minutes=n),
                        created_at=charged_at + timedelta(minutes=n),
                    )
                )
        engine.dispose()

        upgrade(url)
        engine = create_engine(normalise_database_url(url))
        with engine.connect() as connection:
            copied = connection.execute(
                table("ledger_entries", column("invoice_total")).select()
            ).scalars()
            assert list(copied) == [invoice["total"]] * 2
        engine.dispose()
        app = create_app({"TESTING": True, "DATABASE_URL": url})
        report = app.test_client().get(
            "/v1/reports/reconciliation?from=2026-10-01&to=2026-10-31", headers=headers
        )
        assert report.status_code == 200, report.json
        assert [(r["invoice_id"], r["excess"]) for r in report.json["overpayments"]] == [
            (invoice["id"], invoice["total"])
        ]
        app.extensions["billing.db"].engine.dispose()
