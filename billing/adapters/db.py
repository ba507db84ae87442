"""The database: one engine per app, one session per request (or CLI command)."""

from __future__ import annotations

import sqlite3
from typing import Any

from flask import Flask, current_app, g
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker


class Database:
    """The engine and session factory of one app."""

    def __init__(self, url: str, pool_size: int = 5) -> None:
        options: dict[str, Any] = {}
        if url.startswith("sqlite"):
            options["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            # No pre-ping (a round trip per request); recycle instead of trusting old links.
            # Sessions speak UTC, so reports group days the same way on every server.
            options.update(
                pool_size=pool_size,
                max_overflow=pool_size * 2,
                pool_recycle=1800,
                connect_args={"options": "-c timezone=UTC"},
            )
        self.url = url
        self.engine: Engine = create_engine(url, **options)
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_postgresql(self) -> bool:
        return self.engine.dialect.name == "postgresql"


def _sqlite_pragmas(connection: sqlite3.Connection, _record: object) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def init_app(app: Flask, database: Database) -> None:
    app.extensions["billing.db"] = database
    app.teardown_appcontext(_close_session)


def database() -> Database:
    db: Database = current_app.extensions["billing.db"]
    return db


def session() -> Session:
    """The current request's session, opened on first use and closed at teardown."""
    if "db_session" not in g:
        g.db_session = database().sessionmaker()
    current: Session = g.db_session
    return current


def _close_session(_exc: BaseException | None) -> None:
    current = g.pop("db_session", None)
    if current is None:
        return
    try:
        current.close()  # rolls back what the request left open
    except DBAPIError:
        # The connection died under us (an operator ended it, the server restarted): the
        # answer already stands, so drop the connection rather than fail the request.
        current.invalidate()


def dialect_insert(session: Session) -> Any:
    """The INSERT that knows ON CONFLICT DO NOTHING on this session's database."""
    bind = session.get_bind()
    return postgresql.insert if bind.dialect.name == "postgresql" else sqlite.insert
