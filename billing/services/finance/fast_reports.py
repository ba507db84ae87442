"""The reconciliation report built by PostgreSQL: the same pairs as `reconciliation.pairs`,
turned into JSON (`row_to_json`, `string_agg`) or CSV (`COPY ... TO STDOUT`) by the
database, so that Python never makes a dict of each of a month's 85,000 pairs, nor a
year's million.

What comes out reads exactly as the portable path's (tests compare them row for row):
the same keys and columns in the same order, the same numbers and nulls, and timestamps
as Python's `datetime.isoformat()` writes an aware UTC time (`2026-10-01T12:00:00+00:00`,
with `.ffffff` only when there are microseconds). SQLite keeps the portable path.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import datetime
from typing import Any

import psycopg
from psycopg import ClientCursor
from sqlalchemy import ColumnElement, String, Text, cast, func, literal_column, select, text, true
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import Label

from billing.adapters.models import StripeBalanceTransaction, StripePayout
from billing.services.finance import reconciliation as portable
from billing.services.finance.reconciliation import CSV_COLUMNS, STATUSES, Period

TIMES = ("occurred_at", "stripe_created")
CHUNK_BYTES = 64 * 1024
SLICES = 2  # the pairs on one connection; the overpayments and the rest on two more
PAIRS_WORK_MEM = "32MB"  # per sort or hash of a slice of the month's pairs
SNAPSHOT_ID = re.compile(r"^[0-9A-F]+-[0-9A-F]+(-[0-9]+)?$")


def available(session: Session, wanted: bool = True) -> bool:
    """Whether this path serves `session`'s database (PostgreSQL, unless not `wanted`)."""
    return wanted and session.get_bind().dialect.name == "postgresql"


def _iso(column: Any) -> ColumnElement[Any]:
    """`column` (timestamptz) as `datetime.isoformat()` writes it in UTC: microseconds
    only when there are some."""
    written = func.to_char(func.timezone("UTC", column), 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')
    return func.replace(written, ".000000+", "+")


def _pairs(period: Period) -> tuple[Any, list[Label[Any]], list[ColumnElement[Any]]]:
    """The pairs as a subquery, their columns as the report shows them, and their order."""
    pairs = portable.pairs(period).order_by(None).subquery("p")
    shown = [
        _iso(pairs.c[name]).label(name) if name in TIMES else pairs.c[name].label(name)
        for name in CSV_COLUMNS
    ]
    order = [
        func.coalesce(pairs.c.occurred_at, pairs.c.stripe_created),
        pairs.c.ledger_entry_id,
        pairs.c.stripe_transaction_id,
    ]
    return pairs, shown, order


def pair_items(
    session: Session,
    period: Period,
    after: datetime | None = None,
    before: datetime | None = None,
) -> tuple[dict[str, bytes], dict[str, int]]:
    """Each status's pairs as the items of a JSON array (UTF-8, in the report's order,
    `, ` between them, no brackets), and how many; only the pairs whose place in that
    order lies from `after` until `before`."""
    pairs, shown, order = _pairs(period)
    rows = select(*shown, *(key.label(f"sort_{i}") for i, key in enumerate(order))).subquery("r")
    keys = [rows.c[f"sort_{i}"] for i in range(len(order))]
    # Each pair as a reconciliation_pair (migration 0016: its fields are the report's
    # columns), which row_to_json writes faster than json_build_object builds the same
    # object, and than a subquery per pair names an anonymous record's fields.
    record: ColumnElement[Any] = literal_column(
        "CAST(ROW(" + ", ".join(f"r.{name}" for name in CSV_COLUMNS) + ") AS reconciliation_pair)"
    )
    statement = select(
        rows.c.status,
        func.count(),
        # Items without their brackets: a status's items from every slice are sent one
        # after the other, never copied into one string (a month's are 42 MB).
        func.string_agg(
            cast(func.row_to_json(record), Text),
            aggregate_order_by(literal_column("', '"), *keys),
        ),
    ).group_by(rows.c.status)
    if after is not None:
        statement = statement.where(keys[0] >= after)
    if before is not None:
        statement = statement.where(keys[0] < before)
    items = dict.fromkeys(STATUSES, b"")
    counts = dict.fromkeys(STATUSES, 0)
    for status, count, text_ in session.execute(statement):
        items[status], counts[status] = text_.encode(), int(count)
    return items, counts


def reconciliation_json(session: Session, period: Period, slices: int = SLICES) -> list[bytes]:
    """The whole report as JSON (UTF-8, in chunks to send one after the other), as
    `json.dumps(reconciliation(...))` would write it.

    The pairs (most of the work, cut into `slices` by time), the overpayments and the rest
    run at once, each on its own connection, all sharing one snapshot (REPEATABLE READ,
    `pg_export_snapshot`): PostgreSQL works on every CPU, and every part sees the same
    books."""
    bind = session.get_bind()
    counts = dict.fromkeys((*STATUSES, "overpayments"), 0)
    span = (period.end - period.start) / slices
    cuts = [None, *(period.start + span * i for i in range(1, slices)), None]
    with ExitStack() as stack:
        sessions = [stack.enter_context(Session(bind)) for _ in range(slices + 2)]
        snapshot = _repeatable(sessions[0]).scalar(text("SELECT pg_export_snapshot()"))
        if not isinstance(snapshot, str) or not SNAPSHOT_ID.match(snapshot):
            raise RuntimeError(f"unexpected snapshot id {snapshot!r}")
        for other in sessions[1:]:
            _repeatable(other).execute(text(f"SET TRANSACTION SNAPSHOT '{snapshot}'"))
        for each in sessions:
            # Each part is one backend on one CPU: parallel workers would only take CPUs
            # from the other parts (the overpayments' scan took three to gain nothing).
            each.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))
        # The overpayments merge the period's charged invoices with every charge, read in
        # invoice order from ix_ledger_entries_charges alone. PostgreSQL's estimates can
        # put hashing a scan of the whole table a little cheaper, which measured 25-35 %
        # slower (a tenth of the month): on their connection, no hash join.
        sessions[0].execute(text("SET LOCAL enable_hashjoin = off"))
        for mine in sessions[2:]:
            # A slice's pairs as JSON (a month's half: 21 MB) are sorted in memory rather
            # than on disk, and its join is hashed in one batch: 5 % of the month.
            mine.execute(text(f"SET LOCAL work_mem = '{PAIRS_WORK_MEM}'"))
        with ThreadPoolExecutor(max_workers=len(sessions)) as pool:
            over = pool.submit(portable.overpayments, sessions[0], period)
            rest = pool.submit(_the_rest, sessions[1], period, counts)
            cut = [
                pool.submit(pair_items, mine, period, cuts[i], cuts[i + 1])
                for i, mine in enumerate(sessions[2:])
            ]
            pieces = [future.result() for future in cut]
            parts = rest.result()
            overpayments = over.result()
    for _, found in pieces:
        for status, count in found.items():
            counts[status] += count
    counts["overpayments"] = len(overpayments)
    chunks = [b"{"]
    for status in STATUSES:
        items = [found[status] for found, _ in pieces if found[status]]
        chunks += [f"{json.dumps(status)}: [".encode(), *_between(items, b", "), b"], "]
    totals = parts.pop("totals")
    parts = {**parts, "overpayments": overpayments, "totals": totals}
    rest_of_it = ", ".join(f"{json.dumps(key)}: {_dumps(value)}" for key, value in parts.items())
    chunks.append(rest_of_it.encode() + b"}")
    return chunks


def _between(items: list[bytes], separator: bytes) -> list[bytes]:
    """`items` with `separator` between each two."""
    spaced = [separator] * (2 * len(items) - 1) if items else []
    spaced[::2] = items
    return spaced


def _repeatable(session: Session) -> Any:
    connection = session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    return connection


def _the_rest(session: Session, period: Period, counts: dict[str, int]) -> dict[str, Any]:
    """The money per day, payout and session type, and the totals (`counts` is filled in
    later), in the report's order; the overpayments go between them."""
    return {
        "by_day": portable.by_day(session, period),
        "by_payout": by_payout(session, period),
        "by_session_type": portable.by_session_type(session, period),
        "totals": portable.totals(session, period, counts),
    }


def by_payout(session: Session, period: Period) -> list[dict[str, Any]]:
    """`reconciliation.by_payout`, each payout's sums taken from the index on payout_id
    (LATERAL): joined, PostgreSQL read every balance transaction ever for a month's 21
    payouts (130 ms of a year's million; this: 11 ms)."""
    txn = StripeBalanceTransaction
    sums = select(*portable.stripe_money(txn)).where(txn.payout_id == StripePayout.id).lateral()
    rows = session.execute(
        select(*portable.payout_columns(), *sums.c)
        .join(sums, true())
        .where(portable.in_period(period, StripePayout.created))
        .order_by(StripePayout.created, StripePayout.id)
    ).mappings()
    return [dict(row) for row in rows]


def _dumps(value: Any) -> str:
    return json.dumps(value, default=lambda v: v.isoformat())


# `billing.domain.spreadsheet.neutralise` in PostgreSQL's words, for the text cell `{cell}`:
# a ' before text a spreadsheet would run as a formula (CSV injection), plain numbers as
# they are, so that COPY writes the bytes the portable path writes. The first character
# by its code (ascii(): TAB 9, CR 13, + 43, - 45, = 61, @ 64; 0 for ''): a regular
# expression on every cell made a year's CSV a second slower. `$` is only the very end.
NEUTRALISED_SQL = (
    "CASE WHEN ascii({cell}) IN (9, 13, 43, 45, 61, 64)"
    r" AND {cell} !~ '^-?[0-9]+(\.[0-9]+)?$' THEN '''' || {cell} ELSE {cell} END"
)


def copy_csv(session: Session, period: Period) -> Iterator[bytes]:
    """The pairs as CSV with its header, streamed from `COPY ... TO STDOUT` in the
    chunks PostgreSQL sends; lines end in CRLF as Python's csv module ends them, and text
    cells neutralised as `exports.csv_lines` neutralises them."""
    pairs, shown, order = _pairs(period)
    cells = [
        literal_column(NEUTRALISED_SQL.format(cell=f"{pairs.name}.{column.name}")).label(
            column.name
        )
        if isinstance(column.type, String)
        else column
        for column in shown
    ]
    statement = select(*cells).order_by(*order)
    connection = session.connection()
    compiled = statement.compile(
        dialect=connection.dialect, compile_kwargs={"render_postcompile": True}
    )
    driver = connection.connection.driver_connection
    assert isinstance(driver, psycopg.Connection)
    query = ClientCursor(driver).mogrify(str(compiled), compiled.params)
    with driver.cursor() as cursor:
        with cursor.copy(f"COPY ({query}) TO STDOUT WITH (FORMAT csv, HEADER)") as copy:
            # PostgreSQL sends a row at a time: pass them on some 64 kB at once.
            batch: list[bytes] = []
            size = 0
            for chunk in copy:
                batch.append(bytes(chunk))
                size += len(chunk)
                if size >= CHUNK_BYTES:
                    yield b"".join(batch).replace(b"\n", b"\r\n")
                    batch, size = [], 0
            if batch:
                yield b"".join(batch).replace(b"\n", b"\r\n")
