"""Finance reports, computed in SQL over whole sets: our ledger against Stripe's records.

The ledger and Stripe's balance transactions are joined on the Stripe object both name
(the charge, refund or dispute), in a FULL OUTER JOIN, so each pair falls in exactly one
of: matched, missing_in_stripe, missing_in_ledger, mismatched (amount or currency). A
refund that failed names its refund twice on each side, a refund and its failure (our
`refund_failure` entry, Stripe's `refund_failure` transaction): each pairs with its own.
Money the front desk received outside Stripe (cash, checks, another terminal) and its
reversals have nothing at Stripe to pair with: they are listed as `outside_stripe`, never
as missing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import BigInteger, Select, case, cast, func, literal, or_, select
from sqlalchemy.orm import Session

from billing.adapters.account_models import AccountMovement
from billing.adapters.db import clinic_day
from billing.adapters.models import (
    Invoice,
    LedgerEntry,
    Payment,
    Refund,
    StripeBalanceTransaction,
    StripePayout,
)
from billing.domain.dates import UTC_ZONE, day_of
from billing.domain.statuses import VOID
from billing.services.invoicing.ledger import (
    BANK_RETURN,
    MOVES,
    RECEIVED,
    REFUND_FAILURE,
    REVERSAL,
    paid_net,
    refunded_net,
)

# Our ledger and Stripe may date the same charge a moment apart: pairs are looked for
# this far outside the period, and kept when either side falls inside it.
SLACK = timedelta(days=3)
STRIPE_CHARGES = ("charge", "payment")
STRIPE_REFUNDS = ("refund", "payment_refund")
STRIPE_DISPUTES = ("adjustment", "dispute")
# A refund that failed after Stripe counted it: the money back in the balance (positive).
STRIPE_REFUND_FAILURES = ("refund_failure",)
MATCHABLE = STRIPE_CHARGES + STRIPE_REFUNDS + STRIPE_REFUND_FAILURES + STRIPE_DISPUTES
STATUSES = ("matched", "missing_in_stripe", "missing_in_ledger", "mismatched", "outside_stripe")
OUTSIDE = (RECEIVED, REVERSAL)  # ledger entries of money that never went through Stripe
CSV_COLUMNS = (
    "status",
    "ledger_entry_id",
    "invoice_id",
    "invoice_number",
    "kind",
    "ledger_amount",
    "ledger_currency",
    "occurred_at",
    "stripe_transaction_id",
    "stripe_source",
    "stripe_type",
    "stripe_amount",
    "stripe_fee",
    "stripe_net",
    "stripe_currency",
    "stripe_created",
)


@dataclass(frozen=True, slots=True)
class Period:
    """Whole days of the clinic's calendar, as the moments (UTC) they begin and end."""

    start: datetime
    end: datetime  # exclusive
    zone: ZoneInfo = UTC_ZONE

    @property
    def first_day(self) -> date:
        return day_of(self.start, self.zone)

    @property
    def last_day(self) -> date:
        return day_of(self.end, self.zone) - timedelta(days=1)


def pairs(period: Period) -> Select[Any]:
    """Every ledger entry and Stripe transaction of the period, paired where they agree."""
    signed = case(
        (LedgerEntry.kind.in_(("charge", REFUND_FAILURE, RECEIVED)), LedgerEntry.amount),
        else_=-LedgerEntry.amount,
    )
    ledger = (
        select(
            LedgerEntry.id.label("ledger_entry_id"),
            LedgerEntry.invoice_id,
            LedgerEntry.kind,
            LedgerEntry.stripe_ref.label("ref"),
            # A refund and its failure name the same refund: each pairs with its own.
            case((LedgerEntry.kind == REFUND_FAILURE, 1), else_=0).label("reversal"),
            signed.label("amount"),
            LedgerEntry.currency,
            LedgerEntry.occurred_at,
            LedgerEntry.invoice_number,
        )
        .where(
            LedgerEntry.occurred_at >= period.start - SLACK,
            LedgerEntry.occurred_at < period.end + SLACK,
            # Moves between an invoice and the patient's credit are no money of anyone's.
            LedgerEntry.kind.not_in(MOVES),
        )
        .subquery("l")
    )
    txn = StripeBalanceTransaction
    stripe = (
        select(
            txn.id,
            txn.source,
            case((txn.type.in_(STRIPE_REFUND_FAILURES), 1), else_=0).label("reversal"),
            txn.type,
            txn.amount,
            txn.fee,
            txn.net,
            txn.currency,
            txn.created,
        )
        .where(
            txn.type.in_(MATCHABLE),
            txn.created >= period.start - SLACK,
            txn.created < period.end + SLACK,
        )
        .subquery("s")
    )
    status = case(
        (ledger.c.kind.in_(OUTSIDE), literal("outside_stripe")),
        (stripe.c.id.is_(None), literal("missing_in_stripe")),
        (ledger.c.ledger_entry_id.is_(None), literal("missing_in_ledger")),
        (
            (ledger.c.amount != stripe.c.amount) | (ledger.c.currency != stripe.c.currency),
            literal("mismatched"),
        ),
        else_=literal("matched"),
    )
    either_side_in = or_(
        (ledger.c.occurred_at >= period.start) & (ledger.c.occurred_at < period.end),
        (stripe.c.created >= period.start) & (stripe.c.created < period.end),
    )
    return (
        select(
            status.label("status"),
            ledger.c.ledger_entry_id,
            ledger.c.invoice_id,
            invoice_copy(ledger.c.invoice_number, Invoice.number, ledger.c.invoice_id).label(
                "invoice_number"
            ),
            ledger.c.kind,
            ledger.c.amount.label("ledger_amount"),
            ledger.c.currency.label("ledger_currency"),
            ledger.c.occurred_at,
            stripe.c.id.label("stripe_transaction_id"),
            stripe.c.source.label("stripe_source"),
            stripe.c.type.label("stripe_type"),
            stripe.c.amount.label("stripe_amount"),
            stripe.c.fee.label("stripe_fee"),
            stripe.c.net.label("stripe_net"),
            stripe.c.currency.label("stripe_currency"),
            stripe.c.created.label("stripe_created"),
        )
        .select_from(
            ledger.join(
                stripe,
                (ledger.c.ref == stripe.c.source) & (ledger.c.reversal == stripe.c.reversal),
                full=True,
            )
        )
        .where(either_side_in)
        .order_by(
            func.coalesce(ledger.c.occurred_at, stripe.c.created),
            ledger.c.ledger_entry_id,
            stripe.c.id,
        )
    )


def invoice_copy(copied: Any, original: Any, invoice_id: Any) -> Any:
    """A ledger entry's copy of its invoice's `original` column, or (for a row written
    without the copy) the invoice's own, looked up only then."""
    lookup = select(original).where(Invoice.id == invoice_id).scalar_subquery()
    return func.coalesce(copied, lookup)


def pair_rows(session: Session, period: Period) -> Iterator[dict[str, Any]]:
    """The pairs, streamed in batches so a year of them never sits in memory."""
    result = session.execute(pairs(period).execution_options(stream_results=True, yield_per=2000))
    for row in result.mappings():
        yield dict(row)


def reconciliation(session: Session, period: Period) -> dict[str, Any]:
    """The whole report: the four lists, and the money per day, payout and session type."""
    report: dict[str, Any] = {status: [] for status in STATUSES}
    for row in pair_rows(session, period):
        report[row["status"]].append(row)
    report["by_day"] = by_day(session, period)
    report["by_payout"] = by_payout(session, period)
    report["by_session_type"] = by_session_type(session, period)
    report["overpayments"] = overpayments(session, period)
    counts = {s: len(report[s]) for s in (*STATUSES, "overpayments")}
    report["totals"] = totals(session, period, counts)
    return report


def overpayments(session: Session, period: Period) -> list[dict[str, Any]]:
    """Invoices that collected more than they owe (anything at all, when void), with a
    charge in the period: a race at Stripe. Both charges match Stripe, so only this list
    shows them; `outstanding` is what has not yet gone back to the card."""
    last_charge_at = func.max(LedgerEntry.occurred_at)
    charges = (
        select(
            LedgerEntry.invoice_id,
            money_sum(paid_net(LedgerEntry.kind, LedgerEntry.amount)).label("collected"),
            last_charge_at.label("last_charge_at"),
            # The invoice's total as its entries copied it; -1 when one was written
            # without the copy, which makes the invoice a candidate below.
            func.min(func.coalesce(LedgerEntry.invoice_total, -1)).label("total_copy"),
        )
        .where(
            # Less a bank debit that came back: the clinic never kept it.
            LedgerEntry.kind.in_(("charge", BANK_RETURN, *OUTSIDE)),
            # Only invoices charged in the period can have their last charge in it: the
            # index on occurred_at finds them, rather than summing every charge ever.
            LedgerEntry.invoice_id.in_(
                select(LedgerEntry.invoice_id).where(
                    LedgerEntry.kind.in_(("charge", RECEIVED)),
                    in_period(period, LedgerEntry.occurred_at),
                )
            ),
        )
        .group_by(LedgerEntry.invoice_id)
        .having(in_period(period, last_charge_at))
        .subquery()
    )
    # Only an invoice that collected more than its total, or a void one, can have
    # collected more than it owes: only those are looked up (a month's 72,000 lookups of
    # invoices that owe what they collected were half of this query's time).
    candidates = (
        select(charges)
        .where(
            (charges.c.collected > charges.c.total_copy)
            | charges.c.invoice_id.in_(select(Invoice.id).where(Invoice.status == VOID))
        )
        .subquery()
    )
    given_back = (
        select(Refund.invoice_id, money_sum(Refund.amount).label("given_back"))
        .where(Refund.kind == "overpayment", Refund.status == "succeeded")
        .group_by(Refund.invoice_id)
        .subquery()
    )
    # What was kept as the patient's credit instead (OVERPAYMENTS=credit): not owed back.
    kept = (
        select(AccountMovement.invoice_id, money_sum(AccountMovement.amount).label("kept"))
        .where(AccountMovement.kind == "overpayment")
        .group_by(AccountMovement.invoice_id)
        .subquery()
    )
    # What a payment of several bills (from the portal) collected on its oldest bill for
    # the others: on its way to them through credit, never collected twice.
    shared = (
        select(AccountMovement.invoice_id, money_sum(AccountMovement.amount).label("shared"))
        .join(Payment, Payment.id == AccountMovement.payment_id)
        .where(AccountMovement.kind == "overpayment", Payment.method == "balance")
        .group_by(AccountMovement.invoice_id)
        .subquery()
    )
    for_others = func.coalesce(shared.c.shared, 0)
    owed = case((Invoice.status == VOID, 0), else_=Invoice.amount_owed)
    returned = func.coalesce(given_back.c.given_back, 0)
    kept_as_credit = func.coalesce(kept.c.kept, 0) - for_others
    # What credit or a gift card paid of a void invoice went back to credit with the rest.
    collected = candidates.c.collected - for_others
    left = collected - owed - returned - kept_as_credit
    outstanding = case((left < 0, 0), else_=left)
    rows = session.execute(
        select(
            Invoice.id.label("invoice_id"),
            Invoice.number.label("invoice_number"),
            Invoice.status,
            Invoice.currency,
            Invoice.total,
            cast(collected, BigInteger).label("collected"),
            cast(collected - owed, BigInteger).label("excess"),
            cast(returned, BigInteger).label("given_back"),
            cast(kept_as_credit, BigInteger).label("kept_as_credit"),
            cast(outstanding, BigInteger).label("outstanding"),
            candidates.c.last_charge_at,
        )
        .join(candidates, candidates.c.invoice_id == Invoice.id)
        .outerjoin(given_back, given_back.c.invoice_id == Invoice.id)
        .outerjoin(kept, kept.c.invoice_id == Invoice.id)
        .outerjoin(shared, shared.c.invoice_id == Invoice.id)
        .where(collected > owed)
        .order_by(candidates.c.last_charge_at, Invoice.id)
    ).mappings()
    return [dict(row) for row in rows]


def money_sum(value: Any, condition: Any = None) -> Any:
    """SUM as an integer: PostgreSQL sums bigints as numeric, which Python sees as Decimal."""
    summed = value if condition is None else case((condition, value), else_=0)
    return cast(func.coalesce(func.sum(summed), 0), BigInteger)


def stripe_money(txn: type[StripeBalanceTransaction]) -> list[Any]:
    return [
        money_sum(txn.amount, txn.type.in_(STRIPE_CHARGES)).label("gross"),
        # net of refunds that failed (their refund_failure gives the money back)
        money_sum(-txn.amount, txn.type.in_(STRIPE_REFUNDS + STRIPE_REFUND_FAILURES)).label(
            "refunds"
        ),
        money_sum(-txn.amount, txn.type.in_(STRIPE_DISPUTES)).label("disputes"),
        money_sum(txn.fee).label("fees"),
        money_sum(txn.net, txn.type.in_(MATCHABLE)).label("net"),
    ]


def in_period(period: Period, column: Any) -> Any:
    return (column >= period.start) & (column < period.end)


def by_day(session: Session, period: Period) -> list[dict[str, Any]]:
    """What Stripe moved each of the clinic's days: gross, refunds, disputes, fees, net."""
    txn = StripeBalanceTransaction
    day = clinic_day(txn.created, period.zone)
    rows = session.execute(
        select(day.label("day"), txn.currency, *stripe_money(txn))
        .where(in_period(period, txn.created))
        .group_by(day, txn.currency)
        .order_by(day, txn.currency)
    ).mappings()
    return [{**row, "day": str(row["day"])} for row in rows]


def payout_columns() -> list[Any]:
    """A payout as the report shows it, before its sums."""
    return [
        StripePayout.id.label("payout_id"),
        StripePayout.amount.label("payout_amount"),
        StripePayout.arrival_date,
        StripePayout.status,
        StripePayout.currency,
    ]


def by_payout(session: Session, period: Period) -> list[dict[str, Any]]:
    """Per payout of the period: what it carried, in gross, refunds, fees and net."""
    txn = StripeBalanceTransaction
    rows = session.execute(
        select(*payout_columns(), *stripe_money(txn))
        .join(txn, txn.payout_id == StripePayout.id, isouter=True)
        .where(in_period(period, StripePayout.created))
        .group_by(StripePayout.id)
        .order_by(StripePayout.created, StripePayout.id)
    ).mappings()
    return [dict(row) for row in rows]


def by_session_type(session: Session, period: Period) -> list[dict[str, Any]]:
    """Revenue (charges less refunds, net of those that failed) and sessions paid, per
    session type."""
    charges = money_sum(paid_net(LedgerEntry.kind, LedgerEntry.amount))
    refunds = money_sum(refunded_net(LedgerEntry.kind, LedgerEntry.amount))
    session_type = invoice_copy(
        LedgerEntry.session_type, Invoice.session_type, LedgerEntry.invoice_id
    ).label("session_type")
    charged = case((LedgerEntry.kind.in_(("charge", RECEIVED)), LedgerEntry.invoice_id))
    rows = session.execute(
        select(
            session_type,
            LedgerEntry.currency,
            charges.label("gross"),
            refunds.label("refunds"),
            (charges - refunds).label("revenue"),
            func.count(func.distinct(charged)).label("sessions"),
        )
        .where(
            in_period(period, LedgerEntry.occurred_at),
            LedgerEntry.kind.in_(("charge", "refund", REFUND_FAILURE, BANK_RETURN, *OUTSIDE)),
        )
        .group_by(session_type, LedgerEntry.currency)
        .order_by(session_type)
    ).mappings()
    return [dict(row) for row in rows]


def totals(session: Session, period: Period, counts: dict[str, int]) -> dict[str, Any]:
    """The period's sums on both sides, per currency (never added across currencies), and
    how many pairs fell in each list."""
    txn = StripeBalanceTransaction

    def ledger_sum(kind: str) -> Any:
        return money_sum(LedgerEntry.amount, LedgerEntry.kind == kind)

    stripe = _by_currency(
        session.execute(
            select(txn.currency, *stripe_money(txn))
            .where(in_period(period, txn.created))
            .group_by(txn.currency)
        )
    )
    ledger = _by_currency(
        session.execute(
            select(
                LedgerEntry.currency,
                ledger_sum("charge").label("gross"),
                money_sum(refunded_net(LedgerEntry.kind, LedgerEntry.amount)).label("refunds"),
                money_sum(  # a bank debit's return is Stripe's dispute of it
                    LedgerEntry.amount, LedgerEntry.kind.in_(("dispute", "bank_return"))
                ).label("disputes"),
                # Received at the desk, less reversals: beside Stripe's, never in it.
                money_sum(
                    paid_net(LedgerEntry.kind, LedgerEntry.amount), LedgerEntry.kind.in_(OUTSIDE)
                ).label("received"),
            )
            .where(in_period(period, LedgerEntry.occurred_at))
            .group_by(LedgerEntry.currency)
        )
    )
    currencies = sorted(set(ledger) | set(stripe))
    no_ledger = dict.fromkeys(("gross", "refunds", "disputes", "received"), 0)
    no_stripe = dict.fromkeys(("gross", "refunds", "disputes", "fees", "net"), 0)
    return {
        "currencies": currencies,
        "ledger": {c: ledger.get(c, no_ledger) for c in currencies},
        "stripe": {c: stripe.get(c, no_stripe) for c in currencies},
        "counts": counts,
    }


def _by_currency(result: Any) -> dict[str, dict[str, int]]:
    """Rows of sums with a `currency` column, as {currency: {name: amount}}."""
    return {
        str(row["currency"]): {k: int(v) for k, v in row.items() if k != "currency"}
        for row in result.mappings()
    }
