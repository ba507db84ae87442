"""The database: one engine per app, one session per request (or CLI command)."""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import Flask, current_app, g
from sqlalchemy import (
    Date,
    Engine,
    SQLColumnExpression,
    create_engine,
    event,
    literal_column,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

AUTOCOMMIT_ENGINE = "billing.autocommit_engine"  # session.info: the engine execute_alone uses


class Database:
    """The engine and session factory of one app."""

    def __init__(self, url: str, pool_size: int = 5) -> None:
        options: dict[str, Any] = {}
        if url.startswith("sqlite"):
            options["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            # No pre-ping (a round trip per request); recycle instead of trusting old links.
            # Sessions speak UTC, so reports group days the same way on every server. No
            # JIT: the service's queries are short, and a report's estimate can cross the
            # JIT threshold and spend more compiling (130 ms measured) than running.
            options.update(
                pool_size=pool_size,
                max_overflow=pool_size * 2,
                pool_recycle=1800,
                connect_args={"options": "-c timezone=UTC -c jit=off"},
            )
        self.url = url
        self.engine: Engine = create_engine(url, **options)
        info: dict[str, Any] = {}
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            # For statements atomic by themselves (execute_alone): connections that stay
            # in autocommit, so none is switched there and back, or rolled back when it
            # returns to the pool. Opened as needed (a sync worker uses one).
            autocommit = create_engine(
                url, isolation_level="AUTOCOMMIT", pool_reset_on_return=None, **options
            )
            event.listen(self.engine, "engine_disposed", lambda _engine: autocommit.dispose())
            info[AUTOCOMMIT_ENGINE] = autocommit
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False, info=info)

    @property
    def is_postgresql(self) -> bool:
        return self.engine.dialect.name == "postgresql"


def _sqlite_pragmas(connection: sqlite3.Connection, _record: object) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
    # SQLite knows no time zones: the clinic's day of a stored UTC time is Python's answer.
    connection.create_function("clinic_day", 2, _sqlite_clinic_day, deterministic=True)


def _sqlite_clinic_day(stored: str | None, zone: str) -> str | None:
    if stored is None:
        return None
    moment = datetime.fromisoformat(stored).replace(tzinfo=UTC)
    return moment.astimezone(ZoneInfo(zone)).date().isoformat()


ZONE_NAME = re.compile(r"^[A-Za-z0-9_+\-/]{1,64}$")


class clinic_day(FunctionElement[date]):
    """The clinic's calendar day of a UTC time column, the same on PostgreSQL and SQLite.

    The zone is written into the SQL as text (it is part of the statement's cache key), so
    PostgreSQL sees the same expression in SELECT and GROUP BY."""

    type = Date()
    inherit_cache = True

    def __init__(self, column: SQLColumnExpression[datetime], zone: ZoneInfo) -> None:
        if not ZONE_NAME.match(zone.key):
            raise ValueError(f"not a time zone name: {zone.key!r}")
        super().__init__(column, literal_column(f"'{zone.key}'"))


@compiles(clinic_day, "postgresql")
def _clinic_day_postgresql(element: clinic_day, compiler: SQLCompiler, **kw: Any) -> str:
    column, zone = element.clauses
    return f"date(timezone({compiler.process(zone, **kw)}, {compiler.process(column, **kw)}))"


@compiles(clinic_day, "sqlite")
def _clinic_day_sqlite(element: clinic_day, compiler: SQLCompiler, **kw: Any) -> str:
    return f"clinic_day({compiler.process(element.clauses, **kw)})"


def init_app(app: Flask, database: Database) -> None:
    app.extensions["billing.db"] = database
    app.teardown_appcontext(_close_session)


def database() -> Database:
    db: Database = current_app.extensions["billing.db"]
    return db


def session() -> Session:
    """The current request's session, opened on first use and closed at teardown."""
    here = g._get_current_object()
    current: Session | None = here.get("db_session")
    if current is None:
        current = here.db_session = database().sessionmaker()
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


def execute_alone(session: Session, statement: str, parameters: dict[str, Any]) -> None:
    """Run one statement that is atomic by itself (PostgreSQL), outside any transaction
    and straight through the driver, on a pooled connection kept in autocommit; then tell
    the session's after-commit listeners, as its own commit would.

    For the hottest write (the everyday quote, one INSERT of a few tables), SQLAlchemy's
    Session and Connection around a single autocommitted statement (beginning the
    session's transaction, switching the connection's isolation level and back,
    compiling the parameters, the result's set-up, the rollback when the connection
    returns to the pool) cost more CPU than the statement itself. `statement` is in the
    driver's own style (`%(name)s` placeholders). Errors come out as SQLAlchemy's (a lost
    database is a 503), and a connection found dead is dropped with the pool's older
    ones, as SQLAlchemy itself would do."""
    engine = session.info.get(AUTOCOMMIT_ENGINE) or session.get_bind()
    assert isinstance(engine, Engine) and engine.dialect.name == "postgresql"
    switch = AUTOCOMMIT_ENGINE not in session.info  # a session made elsewhere (tests)
    dbapi = engine.dialect.loaded_dbapi
    try:
        pooled = engine.raw_connection()
    except dbapi.Error as error:  # no connection could be made: the database is away
        raise DBAPIError.instance(
            statement, parameters, error, dbapi.Error, dialect=engine.dialect
        ) from error
    driver = pooled.driver_connection
    assert driver is not None
    dead = False
    try:
        if switch:
            driver.autocommit = True
        _cursor_of(pooled.info, driver).execute(statement, parameters)
    except dbapi.Error as error:
        dead = engine.dialect.is_disconnect(error, pooled.dbapi_connection, None)
        if dead:  # this one and every pooled connection as old: what SQLAlchemy does
            engine.pool._invalidate(pooled, error)
        raise DBAPIError.instance(
            statement,
            parameters,
            error,
            dbapi.Error,
            connection_invalidated=dead,
            dialect=engine.dialect,
        ) from error
    finally:
        if switch and not dead:
            try:
                driver.autocommit = False
            except dbapi.Error:
                pooled.invalidate()
        pooled.close()
    session.dispatch.after_commit(session)


_CURSOR = "billing.cursor"  # a pooled connection's info: the cursor execute_alone reuses


def _cursor_of(info: dict[Any, Any], driver: Any) -> Any:
    """The connection's own cursor for execute_alone, made once: making one (its
    transformer, its adapters) cost a third of the driver's CPU for a quote's INSERT.
    Kept beside the driver connection it belongs to, so a reconnected record gets a
    new one."""
    kept = info.get(_CURSOR)
    if kept is None or kept[0] is not driver or kept[1].closed:
        kept = info[_CURSOR] = (driver, driver.cursor())
    return kept[1]


def dialect_insert(session: Session) -> Any:
    """The INSERT that knows ON CONFLICT DO NOTHING on this session's database."""
    bind = session.get_bind()
    return postgresql.insert if bind.dialect.name == "postgresql" else sqlite.insert


def lock_for_write(session: Session) -> None:
    """On SQLite, take the database's write lock now, for the rest of the transaction.

    SQLite has no row locks (it ignores FOR UPDATE) and reads outside a write transaction,
    so two requests could both read a row as it was and both act on it. A write that
    changes nothing comes first: whoever holds the lock goes alone and reads what the one
    before committed. PostgreSQL's FOR UPDATE does this per row; there this does nothing.
    """
    if session.get_bind().dialect.name == "sqlite":
        session.execute(text("UPDATE cache_state SET id = id WHERE 0 = 1"))


def next_version(session: Session, model: Any, code: str, now: datetime) -> int:
    """In the caller's transaction: the number of a catalogue item's next version (a package,
    a membership; `model` has code, version and retired_at), the code's versions on sale
    retired as of `now`. The latest version is locked, so two new versions of one code at
    once are numbered one after the other (the second waits)."""
    latest = session.scalars(
        select(model)
        .where(model.code == code)
        .order_by(model.version.desc())
        .limit(1)
        .with_for_update()
    ).first()
    if latest is None:
        return 1
    session.execute(
        update(model).where(model.code == code, model.retired_at.is_(None)).values(retired_at=now)
    )
    return int(latest.version) + 1
