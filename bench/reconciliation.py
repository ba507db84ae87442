"""Benchmark the finance reconciliation report on a year of generated data.

Run it on demand, never from the test suite:

    .venv/bin/python bench/reconciliation.py
    .venv/bin/python bench/reconciliation.py --ledger-rows 100000 --stripe-rows 100000 --keep

It needs the local PostgreSQL server (127.0.0.1:5432, user postgres, trust auth; see
--postgres). It creates a throwaway database, migrates it, and generates a year of data
(2025-12-01 .. 2026-11-30) with set-based SQL: invoices (one per charge), the ledger
(about 85 % charges, 12 % refunds, 3 % disputes) and Stripe's balance transactions, which
mirror the ledger but for planted discrepancies (about 0.1 % of the ledger missing in
Stripe, 0.1 % of Stripe missing in the ledger, 0.1 % amount mismatches), and about 250
payouts that the transactions are linked to. Then it times, in-process through the Flask
test client and an API key with scope reports:read:

- GET /v1/reports/reconciliation for one month (October 2026) as JSON: the first (cold)
  request, and the best of three;
- the same for the whole year as CSV (format=csv), in a fresh subprocess that reads the
  streamed body chunk by chunk without keeping it (counting bytes, rows and each status),
  and reports its peak resident memory: a high-water mark, so only a fresh process
  measures one export (VmHWM, see peak_rss_mb()).

It also breaks a warm monthly report down into its steps. Should the JSON endpoint fail,
it says why and times the endpoint's steps in-process instead, so the figures still come.

Targets: the monthly report under 1 s; the yearly CSV export under 8 s, with a peak
under 200 MB.
With --explain it also prints PostgreSQL's plan of the month's pairs query.
The database is dropped at the end, also on error or Ctrl-C (unless --keep).

Exit status: 0 when both targets are met, 1 when one is missed, 2 when the run is not
valid (a failed set-up, an endpoint that fails, CSV pairs other than those planted),
130 when interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from flask import Flask
from psycopg import sql

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # the billing package is used from the checkout, not installed

from common import (  # noqa: E402
    EXIT_INTERRUPTED,
    EXIT_INVALID,
    EXIT_MET,
    EXIT_MISSED,
    BenchError,
    ignore_interrupts,
    interrupt,
    throwaway_database,
)

from billing import create_app  # noqa: E402
from billing.adapters import db  # noqa: E402
from billing.adapters.migrate import upgrade  # noqa: E402
from billing.config import normalise_database_url  # noqa: E402
from billing.services.access.keys import create_key  # noqa: E402
from billing.services.finance import fast_reports  # noqa: E402
from billing.services.finance import reconciliation as reports  # noqa: E402

try:  # the endpoint's own encoder, wherever it lives
    from billing.web.exports import jsonable
except ImportError:
    from billing.web.api.reports import jsonable

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"

# The generated year, and the periods the report is asked for (both days included).
YEAR_START = "2025-12-01"
YEAR_DAYS = 365
YEAR = ("2025-12-01", "2026-11-30")
MONTH = ("2026-10-01", "2026-10-31")
PAYOUTS = 250
QUOTES = 10  # reused by every invoice: quote = invoice % 10, patient = invoice / 10
REPORT_RUNS = 3

# Planted discrepancies, as fractions.
MISSING_IN_STRIPE = 0.001  # of the ledger
MISSING_IN_LEDGER = 0.001  # of Stripe's transactions
MISMATCHED = 0.001  # of the ledger entries Stripe has: Stripe's amount is $1 more

# Targets.
MAX_REPORT_S = 1.0
MAX_CSV_S = 8.0
MAX_CSV_PEAK_MB = 200.0
PATH_NAMES = {False: "portable path", True: "in PostgreSQL"}

CHILD_FLAG = "--csv-child"  # the entry point of the CSV export's subprocess


# --- The database ----------------------------------------------------------------------


# --- Generating a year -----------------------------------------------------------------
#
# Every statement is set-based. `bench_gen` (an unlogged scratch table, dropped at the end)
# holds one row per ledger entry with what the later statements need: its kind, time,
# amount, the charge (and so the invoice) it belongs to, and the Stripe ids. Charge n
# belongs to invoice n; a refund or dispute points back to a charge some days earlier.
# Ids are md5-based, so they are as unordered as Stripe's.

SETUP = """
SET synchronous_commit = off;
SET work_mem = '256MB';
SET maintenance_work_mem = '512MB';
SET timezone = 'UTC';
SELECT setseed(0.412);
"""

QUOTES_SQL = """
INSERT INTO price_versions (version, currency, iv_individual_amount, effective_at, created_at)
VALUES (1, 'usd', 45000, '2025-01-01', '2025-01-01');
INSERT INTO quotes (
    id, booking_id, session_type, currency, price_version, total,
    scheduled_at, created_at, expires_at
)
SELECT 'qt_' || substr(md5('qt' || q), 1, 24), 'BK-BENCH-' || q,
       CASE WHEN q < 4 THEN 'iv_individual' ELSE 'im_group' END, 'usd', 1,
       CASE WHEN q < 4 THEN 45000 ELSE 4 * 15000 END,
       %(start)s::timestamptz, %(start)s::timestamptz - interval '1 day', %(start)s::timestamptz
FROM generate_series(0, {quotes} - 1) AS q;
"""

GEN_SQL = """
CREATE UNLOGGED TABLE bench_gen AS
WITH drawn AS (
    SELECT i, random() AS r_kind, random() AS r_time, random() AS r_amount, random() AS r_lag,
           random() AS r_plant, random() AS r_delay
    FROM generate_series(1, %(rows)s::bigint) AS i
), kinded AS (
    SELECT i, r_amount, r_lag, r_plant, r_delay,
           CASE WHEN r_kind < 0.85 THEN 'charge' WHEN r_kind < 0.97 THEN 'refund'
                ELSE 'dispute' END AS kind,
           %(start)s::timestamptz
               + (i - 1 + r_time) * (interval '1 day' * %(days)s / %(rows)s) AS t
    FROM drawn
), numbered AS (
    SELECT kinded.*,
           row_number() OVER (PARTITION BY kind ORDER BY i) AS ordinal,
           count(*) OVER (PARTITION BY kind) AS of_kind,
           count(*) FILTER (WHERE kind = 'charge') OVER () AS charges
    FROM kinded
), linked AS (
    -- A refund comes 1 to 10 days after its charge, a dispute 1 to 30 days: about
    -- 2,300 charges a day at a million rows a year.
    SELECT numbered.*,
           CASE WHEN kind = 'charge' THEN ordinal
                ELSE floor(ordinal::numeric * charges / of_kind)::bigint
                     - floor((charges / %(days)s)
                             * (1 + r_lag * CASE WHEN kind = 'refund' THEN 9 ELSE 29 END))::bigint
           END AS back
    FROM numbered
), charged AS (
    SELECT i, kind, t, ordinal, r_amount, r_plant, r_delay,
           CASE WHEN back >= 1 THEN back
                ELSE greatest(1, ceil(ordinal::numeric * charges / of_kind))::bigint
           END AS charge_no
    FROM linked
)
SELECT i, kind, t, ordinal, charge_no, r_plant, r_delay,
       CASE WHEN charge_no %% {quotes} < 4 THEN 'iv_individual' ELSE 'im_group' END
           AS session_type,
       CASE WHEN charge_no %% {quotes} < 4 THEN 45000 ELSE 15000 END AS total,
       CASE WHEN kind = 'refund' AND r_amount >= 0.6
            THEN CASE WHEN charge_no %% {quotes} < 4 THEN 22500 ELSE 7500 END
            ELSE CASE WHEN charge_no %% {quotes} < 4 THEN 45000 ELSE 15000 END
       END AS amount,
       'in_' || substr(md5('in' || charge_no), 1, 24) AS invoice_id,
       'ch_' || substr(md5('ch' || charge_no), 1, 24) AS charge_id,
       CASE kind WHEN 'charge' THEN 'pi_' || substr(md5('pi' || ordinal), 1, 24)
                 WHEN 'refund' THEN 're_' || substr(md5('re' || ordinal), 1, 24)
                 ELSE 'dp_' || substr(md5('dp' || ordinal), 1, 24) END AS object_id
FROM charged;
CREATE INDEX ON bench_gen (charge_no) WHERE kind <> 'charge';
ANALYZE bench_gen;
"""

INVOICES_SQL = """
INSERT INTO invoices (
    id, number, quote_id, booking_id, patient_id, patient_name, patient_email, session_type,
    scheduled_at, currency, total, status, created_at, updated_at, voided_at, disputed_at
)
SELECT g.invoice_id,
       to_char(g.t - interval '2 days', 'YYYY') || '-' || lpad(
           (row_number() OVER (
               PARTITION BY date_part('year', g.t - interval '2 days') ORDER BY g.ordinal
           ))::text, 7, '0'),
       'qt_' || substr(md5('qt' || g.charge_no %% {quotes}), 1, 24),
       'BK-BENCH-' || g.charge_no %% {quotes},
       'P-' || (100000 + g.charge_no / {quotes}),
       'Patient ' || (100000 + g.charge_no / {quotes}),
       'patient' || (100000 + g.charge_no / {quotes}) || '@example.org',
       g.session_type, g.t - interval '1 hour', 'usd', g.total,
       CASE WHEN coalesce(b.refunded, 0) >= g.total THEN 'refunded'
            WHEN b.refunded > 0 THEN 'partially_refunded' ELSE 'paid' END,
       g.t - interval '2 days', greatest(g.t, b.last_at), NULL, b.disputed_at
FROM bench_gen AS g
LEFT JOIN (
    SELECT charge_no,
           sum(amount) FILTER (WHERE kind = 'refund') AS refunded,
           min(t) FILTER (WHERE kind = 'dispute') AS disputed_at,
           max(t) AS last_at
    FROM bench_gen WHERE kind <> 'charge' GROUP BY charge_no
) AS b USING (charge_no)
WHERE g.kind = 'charge'
ORDER BY g.ordinal;
INSERT INTO invoice_counters (year, last_number)
SELECT split_part(number, '-', 1)::int, max(split_part(number, '-', 2)::int)
FROM invoices GROUP BY 1;
"""

LEDGER_SQL = """
INSERT INTO ledger_entries (
    invoice_id, kind, amount, currency, stripe_object_id, stripe_charge_id, stripe_ref,
    occurred_at, created_at, invoice_number, session_type, invoice_total
)
SELECT g.invoice_id, g.kind, g.amount, 'usd', g.object_id, g.charge_id,
       CASE WHEN g.kind = 'charge' THEN g.charge_id ELSE g.object_id END, g.t,
       g.t + interval '2 seconds', invoices.number, invoices.session_type, invoices.total
FROM bench_gen AS g JOIN invoices ON invoices.id = g.invoice_id ORDER BY g.i;
"""

# Stripe dates the charge a few seconds before our webhook records it; the money becomes
# available two days later at midnight UTC, and goes out in the payout whose window
# (a year cut into PAYOUTS equal windows) holds that day.
PAYOUT_OF = """
    CASE WHEN {available} < %(start)s::timestamptz + interval '1 day' * %(days)s
         THEN 'po_' || substr(md5('po' || (1 + floor(
             extract(epoch FROM {available} - %(start)s::timestamptz)
             / (86400.0 * %(days)s / %(payouts)s)))::int), 1, 24)
    END
"""

MIRROR_SQL = """
INSERT INTO stripe_balance_transactions (
    id, type, source, amount, fee, net, currency, created, available_on, payout_id, synced_at
)
SELECT id, type, source, amount, fee, amount - fee, 'usd', created, available_on,
       {payout_of}, created + interval '1 hour'
FROM (
    SELECT 'txn_' || substr(md5('txn' || i), 1, 24) AS id,
           CASE kind WHEN 'charge' THEN 'charge' WHEN 'refund' THEN 'refund'
                ELSE 'adjustment' END AS type,
           CASE WHEN kind = 'charge' THEN charge_id ELSE object_id END AS source,
           CASE WHEN kind = 'charge' THEN amount ELSE -amount END
               + CASE WHEN r_plant < %(mismatched)s + %(missing)s THEN 100 ELSE 0 END
               AS amount,
           CASE kind WHEN 'charge' THEN round(amount * 0.029)::bigint + 30
                     WHEN 'refund' THEN 0 ELSE 1500 END AS fee,
           t - r_delay * interval '30 seconds' AS created,
           date_trunc('day', t - r_delay * interval '30 seconds') + interval '2 days'
               AS available_on
    FROM bench_gen
    WHERE r_plant >= %(missing)s AND i <= %(last)s
    ORDER BY i
) AS mirrored;
"""

# Charges Stripe has and the ledger does not (made in the dashboard, say).
ORPHANS_SQL = """
INSERT INTO stripe_balance_transactions (
    id, type, source, amount, fee, net, currency, created, available_on, payout_id, synced_at
)
SELECT id, 'charge', source, amount, fee, amount - fee, 'usd', created, available_on,
       {payout_of}, created + interval '1 hour'
FROM (
    SELECT 'txn_' || substr(md5('orphan-txn' || n), 1, 24) AS id,
           'ch_' || substr(md5('orphan-ch' || n), 1, 24) AS source,
           CASE WHEN n %% 10 < 4 THEN 45000 ELSE 15000 END AS amount,
           round(CASE WHEN n %% 10 < 4 THEN 45000 ELSE 15000 END * 0.029)::bigint + 30 AS fee,
           created, date_trunc('day', created) + interval '2 days' AS available_on
    FROM (
        SELECT n, %(start)s::timestamptz
                      + random() * interval '1 day' * %(days)s AS created
        FROM generate_series(1, %(orphans)s::bigint) AS n
    ) AS drawn
) AS orphans;
"""

PAYOUTS_SQL = """
INSERT INTO stripe_payouts (id, amount, currency, status, arrival_date, created, linked_at)
SELECT 'po_' || substr(md5('po' || p), 1, 24), coalesce(carried.net, 0), 'usd',
       CASE WHEN p = %(payouts)s THEN 'in_transit' ELSE 'paid' END,
       created + interval '2 days', created, created + interval '1 hour'
FROM (
    SELECT p, %(start)s::timestamptz + p * interval '1 day' * %(days)s / %(payouts)s AS created
    FROM generate_series(1, %(payouts)s) AS p
) AS windows
LEFT JOIN (
    SELECT payout_id, sum(net) AS net FROM stripe_balance_transactions
    WHERE payout_id IS NOT NULL GROUP BY payout_id
) AS carried ON carried.payout_id = 'po_' || substr(md5('po' || p), 1, 24);
INSERT INTO stripe_balance_transactions (
    id, type, source, amount, fee, net, currency, created, available_on, payout_id, synced_at
)
SELECT 'txn_' || substr(md5('txn-' || id), 1, 24), 'payout', id, -amount, 0, -amount, 'usd',
       created, created, NULL, created + interval '1 hour'
FROM stripe_payouts;
"""


def _timed(label: str, work: Callable[[], Any]) -> Any:
    print(f"  {label} ...", end="", flush=True)
    started = time.perf_counter()
    result = work()
    print(f" {time.perf_counter() - started:.1f} s")
    return result


def generate(database_url: str, ledger_rows: int, stripe_rows: int) -> dict[str, int]:
    """Fill the migrated database with a year; returns what was made and planted."""
    params: dict[str, Any] = {
        "start": YEAR_START,
        "days": YEAR_DAYS,
        "rows": ledger_rows,
        "payouts": PAYOUTS,
        "missing": MISSING_IN_STRIPE,
        "mismatched": MISMATCHED,
    }
    payout_of = PAYOUT_OF.format(available="available_on")
    with psycopg.connect(database_url, autocommit=True) as conn:

        def run(statement: str, **extra: Any) -> int:
            """Each `;`-separated statement in turn (bound parameters allow only one)."""
            total = 0
            for part in filter(str.strip, statement.split(";")):
                cursor = conn.execute(part.encode(), {**params, **extra})
                total += max(cursor.rowcount, 0)
            return total

        def scalar(query: str, **extra: Any) -> int:
            row = conn.execute(query.encode(), {**params, **extra}).fetchone()
            return int(row[0]) if row and row[0] is not None else 0

        run(SETUP)
        _timed("price version and quotes", lambda: run(QUOTES_SQL.format(quotes=QUOTES)))
        _timed(
            f"scratch table of {ledger_rows:,} entries", lambda: run(GEN_SQL.format(quotes=QUOTES))
        )
        invoices = _timed("invoices", lambda: run(INVOICES_SQL.format(quotes=QUOTES)))
        ledger = _timed("ledger_entries", lambda: run(LEDGER_SQL))
        # Stripe mirrors the ledger but for the planted missing, up to the rows asked for:
        # the last ledger entry it mirrors is `last`.
        wanted = stripe_rows - round(stripe_rows * MISSING_IN_LEDGER)
        last = scalar(
            "SELECT max(i) FROM (SELECT i FROM bench_gen WHERE r_plant >= %(missing)s"
            " ORDER BY i LIMIT %(wanted)s) AS mirrored",
            wanted=wanted,
        )
        mirrored = _timed(
            "stripe_balance_transactions mirroring the ledger",
            lambda: run(MIRROR_SQL.format(payout_of=payout_of), last=last),
        )
        mismatched = scalar(
            "SELECT count(*) FROM bench_gen WHERE i <= %(last)s AND r_plant >= %(missing)s"
            " AND r_plant < %(missing)s + %(mismatched)s",
            last=last,
        )
        orphans = stripe_rows - mirrored
        _timed(
            f"{orphans:,} Stripe-only charges",
            lambda: run(ORPHANS_SQL.format(payout_of=payout_of), orphans=orphans),
        )
        _timed(f"{PAYOUTS} payouts and their own balance transactions", lambda: run(PAYOUTS_SQL))
        conn.execute("DROP TABLE bench_gen")
        _timed("VACUUM ANALYZE", lambda: conn.execute("VACUUM ANALYZE"))
        # The load's dirty pages written out now, not by the checkpointer while the
        # report is timed: a finance user's report does not run behind a bulk load.
        _timed("CHECKPOINT", lambda: conn.execute("CHECKPOINT"))
    return {
        "invoices": invoices,
        "ledger": ledger,
        "mirrored": mirrored,
        "missing_in_stripe": ledger - mirrored,
        "missing_in_ledger": orphans,
        "mismatched": mismatched,
    }


def table_counts(database_url: str) -> dict[str, int]:
    tables = ("quotes", "invoices", "ledger_entries", "stripe_balance_transactions")
    counts = {}
    with psycopg.connect(database_url) as conn:
        for table in (*tables, "stripe_payouts"):
            row = conn.execute(
                sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
            ).fetchone()
            counts[table] = int(row[0]) if row else 0
    return counts


# --- Timing the report -----------------------------------------------------------------


def make_app(database_url: str, in_database: bool = True) -> Flask:
    # A fixed SECRET_KEY so the app does not write one into the instance folder.
    return create_app(
        {
            "DATABASE_URL": normalise_database_url(database_url),
            "SECRET_KEY": "bench-reconciliation",
            "LOG_LEVEL": "WARNING",
            "REPORTS_IN_DATABASE": in_database,
        }
    )


def api_key_for(app: Flask) -> str:
    with app.app_context():
        _, plain = create_key(db.session(), "bench-reconciliation", ["reports:read"])
    return plain


def report_url(period: tuple[str, str], fmt: str = "json") -> str:
    return f"/v1/reports/reconciliation?from={period[0]}&to={period[1]}&format={fmt}"


@dataclass
class Monthly:
    cold: float  # the process's first request
    seconds: list[float] = field(default_factory=list)  # REPORT_RUNS runs, cold included
    size: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    failure: str | None = None  # why the endpoint itself could not be timed


def time_monthly(app: Flask, api_key: str) -> Monthly:
    """The month's JSON report, REPORT_RUNS times; the first is the process's first request.

    Should the endpoint fail, the runs time what it does instead, in the same process:
    reports.reconciliation(), then the endpoint's jsonable() and json.dumps(), with the
    offending values (see diagnose()) encoded as integers.
    """
    client = app.test_client()
    headers = {"Authorization": f"Bearer {api_key}"}
    monthly = Monthly(cold=0.0)
    for run in range(REPORT_RUNS):
        started = time.perf_counter()
        if monthly.failure is None:
            response = client.get(report_url(MONTH), headers=headers)
            body = response.get_data()
            elapsed = time.perf_counter() - started
            if run == 0:
                monthly.cold = elapsed
            if response.status_code != 200:
                monthly.failure = f"HTTP {response.status_code} ({diagnose(app)})"
                print(f"  run {run + 1}: {monthly.failure}, after {elapsed:.2f} s")
                print(
                    "  timing the endpoint's steps in-process instead: reports.reconciliation(),"
                    " jsonable(), json.dumps() with Decimal as int"
                )
                started = time.perf_counter()
        if monthly.failure is not None:
            try:
                body = service_report(app)
            except Exception as error:
                raise BenchError(f"the monthly report fails in-process too: {error!r}") from error
            elapsed = time.perf_counter() - started
        monthly.seconds.append(elapsed)
        monthly.size = len(body)
        monthly.counts = json.loads(body)["totals"]["counts"]
        print(f"  run {run + 1}: {elapsed:.2f} s, {monthly.size / 1e6:.1f} MB of JSON")
    return monthly


def service_report(app: Flask) -> bytes:
    with app.app_context():
        report = reports.reconciliation(db.session(), period_of(MONTH))
        return json.dumps(jsonable(report), default=_decimal_as_int).encode()


def _decimal_as_int(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def diagnose(app: Flask) -> str:
    """Why the month's report does not encode: the error, and where its values are."""
    with app.app_context():
        report = jsonable(reports.reconciliation(db.session(), period_of(MONTH)))
    try:
        json.dumps(report)
    except (TypeError, ValueError) as error:
        grouped: dict[tuple[str, str], set[str]] = {}
        for path, kind in _unencodable(report, ""):
            parent, _, key = path.rpartition(".")
            grouped.setdefault((parent, kind), set()).add(key)
        where = [
            f"{parent}.{{{','.join(sorted(keys))}}} ({kind})"
            for (parent, kind), keys in sorted(grouped.items())
        ]
        return f"{type(error).__name__}: {error}; at {', '.join(where) or '?'}"
    return "the report encodes in-process; see the app's log"


def _unencodable(value: Any, path: str) -> set[tuple[str, str]]:
    if isinstance(value, dict):
        return set().union(*(_unencodable(v, f"{path}.{k}".lstrip(".")) for k, v in value.items()))
    if isinstance(value, list):
        return set().union(*(_unencodable(item, f"{path}[]") for item in value))
    if isinstance(value, str | int | float | bool) or value is None:
        return set()
    return {(path, type(value).__name__)}


def period_of(days: tuple[str, str]) -> reports.Period:
    """The period the API makes of `from` and `to`: whole UTC days, `to` included."""
    first, last = (datetime.fromisoformat(day).replace(tzinfo=UTC) for day in days)
    return reports.Period(first, last + timedelta(days=1))


def fast_breakdown(app: Flask) -> list[tuple[str, float]]:
    """The PostgreSQL path's steps: the four lists as JSON text, then the rest."""
    period = period_of(MONTH)
    with app.app_context():
        session = db.session()
        started = time.perf_counter()
        fast_reports.pair_items(session, period)
        lists_s = time.perf_counter() - started
        started = time.perf_counter()
        fast_reports.reconciliation_json(session, period)
        whole_s = time.perf_counter() - started
    return [("pairs as JSON text", lists_s), ("whole report", whole_s)]


def breakdown(app: Flask) -> list[tuple[str, float]]:
    """Where a warm monthly report spends its time, step by step, without HTTP."""
    period = period_of(MONTH)
    timings = []

    def step(label: str, work: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        result = work()
        timings.append((label, time.perf_counter() - started))
        return result

    with app.app_context():
        session = db.session()
        rows = step("pairs -> dicts", lambda: list(reports.pair_rows(session, period)))
        report: dict[str, Any] = {status: [] for status in reports.STATUSES}
        for row in rows:
            report[row["status"]].append(row)
        report["by_day"] = step("by_day", lambda: reports.by_day(session, period))
        report["by_payout"] = step("by_payout", lambda: reports.by_payout(session, period))
        report["by_session_type"] = step(
            "by_session_type", lambda: reports.by_session_type(session, period)
        )
        counts = {status: len(report[status]) for status in reports.STATUSES}
        report["totals"] = step("totals", lambda: reports.totals(session, period, counts))
    encoded = step("jsonable()", lambda: jsonable(report))
    step("json.dumps()", lambda: json.dumps(encoded, default=_decimal_as_int))
    return timings


def explain_pairs(app: Flask) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of the query reports.pairs() builds for the month."""
    period = period_of(MONTH)
    with app.app_context():
        engine = db.database().engine
        compiled = reports.pairs(period).compile(
            dialect=engine.dialect, compile_kwargs={"literal_binds": True}
        )
        with engine.connect() as conn:
            plan = conn.exec_driver_sql(
                "EXPLAIN (ANALYZE, BUFFERS) " + str(compiled).replace("%", "%%")
            ).all()
            cursor_plan = conn.exec_driver_sql(
                "EXPLAIN DECLARE bench_cursor NO SCROLL CURSOR FOR "
                + str(compiled).replace("%", "%%")
            ).all()
    return (
        f"-- the query reports.pairs({period}) builds:\n"
        f"{compiled}\n\n-- EXPLAIN (ANALYZE, BUFFERS):\n"
        + "\n".join(row[0] for row in plan)
        + "\n\n-- EXPLAIN of the same as a server-side cursor (what stream_results runs):\n"
        + "\n".join(row[0] for row in cursor_plan)
    )


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MB.

    On Linux, VmHWM of /proc/self/status: the high-water mark of this program's own
    memory. ru_maxrss would do but for one catch: Linux carries it across execve(), so a
    subprocess started by a large parent begins at the parent's high-water mark.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def csv_child() -> int:
    """The subprocess: one yearly CSV export, read chunk by chunk; prints a JSON line."""
    app = make_app(
        os.environ["BENCH_DATABASE_URL"], os.environ.get("BENCH_IN_DATABASE", "1") == "1"
    )
    client = app.test_client()
    baseline_mb = peak_rss_mb()
    started = time.perf_counter()
    response = client.get(
        report_url(YEAR, "csv"),
        headers={"Authorization": f"Bearer {os.environ['BENCH_API_KEY']}"},
        buffered=False,
    )
    size = lines = chunks = 0
    first_byte = None
    statuses: Counter[bytes] = Counter()
    partial = b""  # a line cut by the chunk's end
    try:
        for chunk in response.iter_encoded():
            if first_byte is None:
                first_byte = time.perf_counter() - started
            chunks += 1
            size += len(chunk)
            lines += chunk.count(b"\n")
            *whole, partial = (partial + chunk).split(b"\n")
            statuses.update(line.split(b",", 1)[0] for line in whole)
    finally:
        response.close()
    statuses.pop(b"status", None)  # the header
    seconds = time.perf_counter() - started
    peak_mb = peak_rss_mb()
    print(
        json.dumps(
            {
                "status": response.status_code,
                "content_type": response.headers.get("Content-Type"),
                "seconds": seconds,
                "first_byte_seconds": first_byte,
                "bytes": size,
                "rows": max(lines - 1, 0),  # less the header
                "statuses": {key.decode(): n for key, n in statuses.items()},
                "chunks": chunks,
                "baseline_mb": baseline_mb,
                "peak_mb": peak_mb,
                "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )
    return 0


def time_csv(database_url: str, api_key: str, in_database: bool = True) -> dict[str, Any]:
    env = {
        **os.environ,
        "BENCH_DATABASE_URL": database_url,
        "BENCH_API_KEY": api_key,
        "BENCH_IN_DATABASE": "1" if in_database else "0",
    }
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), CHILD_FLAG],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0 or not done.stdout.strip():
        raise BenchError(f"the CSV export subprocess failed:\n{done.stdout}{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if result["status"] != 200:
        raise BenchError(f"the CSV export answered {result['status']}")
    return result


# --- Main ------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--ledger-rows",
        type=int,
        default=1_000_000,
        help="ledger entries to generate (default 1,000,000)",
    )
    parser.add_argument(
        "--stripe-rows",
        type=int,
        default=1_000_000,
        help="Stripe balance transactions of charges, refunds and disputes to generate "
        "(default 1,000,000); each payout adds its own",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the database at the end and print its URL"
    )
    parser.add_argument(
        "--compare",
        action="store_true",
        help="time the portable path (REPORTS_IN_DATABASE=false) first, on the same data",
    )
    parser.add_argument(
        "--explain",
        action="store_true",
        help="also print EXPLAIN (ANALYZE, BUFFERS) of the month's pairs query",
    )
    parser.add_argument(
        "--postgres",
        default=DEFAULT_POSTGRES,
        help=f"admin URL of the PostgreSQL server to create the database on ({DEFAULT_POSTGRES})",
    )
    args = parser.parse_args(argv)
    if args.ledger_rows < 1000 or args.stripe_rows < 1000:
        parser.error("--ledger-rows and --stripe-rows must be at least 1000")
    return args


def verdict(met: bool) -> str:
    return "PASS" if met else "MISSED"


def run(args: argparse.Namespace, stack: ExitStack) -> int:
    print("creating and migrating a throwaway database ...")
    database_url = stack.enter_context(
        throwaway_database(args.postgres, "billing_bench_recon", args.keep)
    )
    upgrade(normalise_database_url(database_url))

    print(
        f"generating a year ({YEAR[0]} .. {YEAR[1]}): {args.ledger_rows:,} ledger entries, "
        f"{args.stripe_rows:,} Stripe balance transactions ..."
    )
    started = time.perf_counter()
    planted = generate(database_url, args.ledger_rows, args.stripe_rows)
    generation_s = time.perf_counter() - started
    counts = table_counts(database_url)
    print(f"generated in {generation_s:.1f} s")
    for table, count in counts.items():
        print(f"  {table:<30}{count:>12,}")
    print(
        f"  planted: {planted['missing_in_stripe']:,} missing in Stripe, "
        f"{planted['missing_in_ledger']:,} missing in the ledger, "
        f"{planted['mismatched']:,} amount mismatches"
    )

    paths = [False, True] if args.compare else [True]
    api_key = api_key_for(make_app(database_url))
    results: dict[bool, tuple[Monthly, dict[str, Any]]] = {}
    for in_database in paths:
        label = PATH_NAMES[in_database]
        app = make_app(database_url, in_database)
        print(f"[{label}] monthly report: GET {report_url(MONTH)} ...")
        monthly = time_monthly(app, api_key)
        if not in_database:
            print("  breakdown of a warm run, in-process (the endpoint's steps):")
            for step, step_s in breakdown(app):
                print(f"    {step:<20}{step_s:>8.2f} s")
        else:
            print("  breakdown of a warm run, in-process:")
            for step, step_s in fast_breakdown(app):
                print(f"    {step:<20}{step_s:>8.2f} s")
        if args.explain:
            print()
            print(explain_pairs(app))
            print()
        print(
            f"[{label}] yearly CSV export: GET {report_url(YEAR, 'csv')}, in a fresh subprocess ..."
        )
        results[in_database] = (monthly, time_csv(database_url, api_key, in_database))

    print()
    print(f"host:        {os.cpu_count()} CPUs, shared with PostgreSQL")
    print(f"data:        {', '.join(f'{t} {n:,}' for t, n in counts.items())}")
    print(f"generation:  {generation_s:.1f} s (incl. VACUUM ANALYZE and CHECKPOINT)")
    for in_database, (monthly, export) in results.items():
        cold, best = monthly.cold, min(monthly.seconds)
        how = (
            "over HTTP"
            if monthly.failure is None
            else "the endpoint FAILED: cold is its failed first request, which ran every query "
            "and failed while encoding; best is of the in-process runs"
        )
        print(f"[{PATH_NAMES[in_database]}]")
        print(
            f"month JSON:  cold {cold:.2f} s, best of {REPORT_RUNS} {best:.2f} s ({how}), "
            f"{monthly.size / 1e6:.1f} MB; pairs: "
            + ", ".join(f"{s} {monthly.counts.get(s, 0):,}" for s in reports.STATUSES)
        )
        print(
            f"year CSV:    {export['seconds']:.2f} s "
            f"(first byte after {export['first_byte_seconds']:.2f} s), "
            f"{export['bytes']:,} bytes, {export['rows']:,} rows in {export['chunks']:,} "
            f"chunks; peak RSS {export['peak_mb']:.0f} MB (app loaded, before the export: "
            f"{export['baseline_mb']:.0f} MB)"
        )
        print(
            "             pairs: "
            + ", ".join(f"{s} {export['statuses'].get(s, 0):,}" for s in reports.STATUSES)
        )
    monthly, export = results[True]
    cold, best = monthly.cold, min(monthly.seconds)
    report_met = best < MAX_REPORT_S
    csv_met = export["seconds"] < MAX_CSV_S
    memory_met = export["peak_mb"] < MAX_CSV_PEAK_MB
    print()
    print(
        f"target: monthly report under {MAX_REPORT_S:.0f} s: {verdict(report_met)} "
        f"(best {best:.2f} s, cold {cold:.2f} s)"
    )
    print(
        f"target: yearly CSV export under {MAX_CSV_S:.0f} s: {verdict(csv_met)} "
        f"({export['seconds']:.2f} s)"
    )
    print(
        f"target: yearly CSV export peak memory under {MAX_CSV_PEAK_MB:.0f} MB: "
        f"{verdict(memory_met)} ({export['peak_mb']:.0f} MB)"
    )

    expected = {
        "matched": planted["mirrored"] - planted["mismatched"],
        "missing_in_stripe": planted["missing_in_stripe"],
        "missing_in_ledger": planted["missing_in_ledger"],
        "mismatched": planted["mismatched"],
    }
    problems = []
    if args.compare and results[False][0].counts != results[True][0].counts:
        problems.append("the two paths' monthly reports count different pairs")
    if monthly.failure is not None:
        problems.append(
            f"GET {report_url(MONTH)} failed: {monthly.failure}. The monthly figures time "
            "the endpoint's steps in-process, not the endpoint."
        )
    if export["statuses"] != expected:
        problems.append(f"the yearly CSV's pairs are {export['statuses']}; planted: {expected}")
    for problem in problems:
        print()
        print("!" * 78)
        print(f"!!! INVALID: {problem}")
        print("!" * 78)
    if problems:
        return EXIT_INVALID
    return EXIT_MET if report_met and csv_met and memory_met else EXIT_MISSED


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv == [CHILD_FLAG]:
        return csv_child()
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, interrupt)
    try:
        with ExitStack() as stack:
            try:
                return run(args, stack)
            finally:
                ignore_interrupts()
    except BenchError as error:
        print(f"bench: error: {error}", file=sys.stderr)
        return EXIT_INVALID
    except KeyboardInterrupt:
        print("bench: interrupted; database dropped", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
