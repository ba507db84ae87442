"""Several replicas starting together migrate the database once (a PostgreSQL advisory
lock), and the schema ends at head."""

from __future__ import annotations

import threading
import uuid

import psycopg
import pytest

from billing.adapters.migrate import head_revision, upgrade
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
