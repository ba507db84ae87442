"""Shared fixtures: the app on SQLite and on a throwaway PostgreSQL database."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from billing import create_app
from billing.adapters import db
from billing.adapters.migrate import upgrade
from billing.adapters.models import Base
from billing.services.access import keys
from billing.services.pricing import catalog

pytest_plugins = ["tests.fixtures_stripe", "tests.integrations.smtp"]

POSTGRES_ADMIN = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


# The longest tests, started first: pytest-xdist shares the first tests out to its workers
# in turn, so these run beside the rest, not at the end with the other workers idle.
LONGEST_FIRST = (
    "tests/api/test_openapi_contract.py::test_no_response_differs_from_the_document",
    "tests/docs/test_guides.py",
    "tests/e2e/",
    "tests/integrations/test_broker_outage.py",
    "tests/integrations/test_worker.py",
    "tests/stripe/test_collect_interleavings.py",
    "tests/stripe/test_typed_client.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        found = (n for n, start in enumerate(LONGEST_FIRST) if item.nodeid.startswith(start))
        return next(found, len(LONGEST_FIRST))

    items.sort(key=rank)  # stable: the rest keep their order


def _postgres_unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"PostgreSQL is required under CI: {reason}")
    pytest.skip(f"PostgreSQL tests skipped: {reason}")


@pytest.fixture(scope="session")
def postgresql_url() -> Iterator[str]:
    """A new database on the local PostgreSQL, migrated with Alembic, dropped afterwards."""
    name = f"billing_test_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(POSTGRES_ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as error:
        _postgres_unavailable(f"cannot connect to {POSTGRES_ADMIN} ({error})")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = POSTGRES_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    try:
        upgrade(url)
        yield url
    finally:
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'billing.sqlite3'}"
    upgrade(url)
    return url


def _empty_tables(app: Flask, attempts: int = 5) -> None:
    """Every table emptied. A Stripe webhook the stand-in sent late may be writing the
    same rows as the test ends: a deadlock with it is retried, not a failed teardown."""
    engine = app.extensions["billing.db"].engine
    for attempt in range(attempts):
        try:
            with engine.begin() as connection:
                if engine.dialect.name == "postgresql":
                    # Between tests only: the ledger's append-only trigger would refuse it.
                    connection.execute(text("SET LOCAL session_replication_role = replica"))
                for table in reversed(Base.metadata.sorted_tables):
                    connection.execute(text(f"DELETE FROM {table.name}"))
            return
        except OperationalError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 * (attempt + 1))


@pytest.fixture
def app_settings() -> dict[str, object]:
    """Settings the `app` fixture adds to its own: a module overrides this to change them
    (the clinic's time zone, say)."""
    return {}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
def app(request: pytest.FixtureRequest, app_settings: dict[str, object]) -> Iterator[Flask]:
    """The app on each database, seeded with the default price list."""
    url = request.getfixturevalue(f"{request.param}_url")
    app = create_app({"TESTING": True, "DATABASE_URL": url, **app_settings})
    _empty_tables(app)
    with app.app_context():
        catalog.seed_default(db.session())
    yield app
    _empty_tables(app)
    app.extensions["billing.db"].engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def make_key(app: Flask) -> Callable[..., dict[str, str]]:
    """Create an API key with the given scopes; returns its Authorization header."""
    counter = iter(range(1_000_000))

    def make(*scopes: str, name: str | None = None) -> dict[str, str]:
        with app.app_context():
            _, plain = keys.create_key(
                db.session(), name or f"test-{next(counter)}", list(scopes) or ["quotes:write"]
            )
        return {"Authorization": f"Bearer {plain}"}

    return make


def in_days(days: int) -> str:
    """An RFC 3339 time `days` from now, with a Pacific offset as a booking system sends it."""
    pacific = timezone(timedelta(hours=-8))
    return (
        (datetime.now(UTC) + timedelta(days=days))
        .astimezone(pacific)
        .replace(microsecond=0)
        .isoformat()
    )


def in_hours(hours: float) -> str:
    """An RFC 3339 time `hours` from now (negative: ago), with a Pacific offset."""
    pacific = timezone(timedelta(hours=-8))
    return (
        (datetime.now(UTC) + timedelta(hours=hours))
        .astimezone(pacific)
        .replace(microsecond=0)
        .isoformat()
    )


@pytest.fixture
def booking() -> Callable[..., dict[str, object]]:
    """A valid booking payload; keyword arguments replace its fields. Its time is fixed
    for the test: two payloads made a second apart are still the same booking (a replay
    of one Idempotency-Key must send the same body)."""
    scheduled_at = in_days(9)

    def make(**overrides: object) -> dict[str, object]:
        payload: dict[str, object] = {
            "booking_id": "BK-2026-0412",
            "session_type": "im_group",
            "scheduled_at": scheduled_at,
            "currency": "usd",
            "patients": [
                {
                    "patient_id": "P-1001",
                    "name": "Ana Ruiz",
                    "email": "ana@example.org",
                    "prior_iv_sessions": 2,
                },
                {
                    "patient_id": "P-1002",
                    "name": "Ben Okafor",
                    "email": "ben@example.org",
                    "iv_exemption": {"reason": "difficult_venous_access", "approved_by": "Dr. Lee"},
                },
            ],
        }
        payload.update(overrides)
        return payload

    return make
