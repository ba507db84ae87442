"""Run Alembic from the app, so `flask --app billing db upgrade` needs no alembic.ini."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

# migrations/ beside the package in a checkout; billing/migrations once installed.
_CHECKOUT = Path(__file__).resolve().parent.parent / "migrations"
MIGRATIONS = _CHECKOUT if (_CHECKOUT / "env.py").exists() else Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the database at `database_url` up to `revision`."""
    command.upgrade(alembic_config(database_url), revision)
