"""Run Alembic from the app, so `flask --app billing db upgrade` needs no alembic.ini."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from billing.config import normalise_database_url

# Every replica takes this PostgreSQL advisory lock around its migrations, so N
# containers starting together migrate once and the others find the schema at head.
MIGRATION_LOCK = 7_261_690_157

# migrations/ beside the package in a checkout; billing/migrations once installed.
_PACKAGE = Path(__file__).resolve().parents[1]  # billing/
_CHECKOUT = _PACKAGE.parent / "migrations"
MIGRATIONS = _CHECKOUT if (_CHECKOUT / "env.py").exists() else _PACKAGE / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the database at `database_url` up to `revision`; one migrator at a time."""
    url = normalise_database_url(database_url)
    if not url.startswith("postgresql"):
        command.upgrade(alembic_config(database_url), revision)
        return
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as lock:
            lock.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
            try:
                command.upgrade(alembic_config(database_url), revision)
            finally:
                lock.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
    finally:
        engine.dispose()


def head_revision() -> str:
    """The newest migration this code carries."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head
