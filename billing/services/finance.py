"""The other reports finance asks for: ageing of open invoices, refunds and disputes,
and a month-end summary."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from billing import statuses
from billing.models import Invoice, LedgerEntry, Refund, StripeBalanceTransaction, utcnow
from billing.services.reports import STRIPE_CHARGES, Period, reconciliation

AGING_BUCKETS = (("0-30", 0, 30), ("31-60", 31, 60), ("61-90", 61, 90), ("90+", 91, None))
UNPAID = (statuses.OPEN, statuses.PROCESSING)


def bucket_of(age_days: int) -> str:
    for name, low, high in AGING_BUCKETS:
        if age_days >= low and (high is None or age_days <= high):
            return name
    return AGING_BUCKETS[0][0]


def aging(session: Session, now: datetime | None = None) -> dict[str, Any]:
    """Every unpaid invoice with its age in days, and the totals per bucket."""
    now = now or utcnow()
    rows = session.execute(
        select(
            Invoice.id,
            Invoice.number,
            Invoice.patient_id,
            Invoice.total,
            Invoice.currency,
            Invoice.status,
            Invoice.created_at,
        )
        .where(Invoice.status.in_(UNPAID))
        .order_by(Invoice.created_at)
    ).mappings()
    invoices = []
    buckets = {name: {"count": 0, "total": 0} for name, _, _ in AGING_BUCKETS}
    for row in rows:
        age = (now - row["created_at"]).days
        bucket = bucket_of(age)
        invoices.append({**row, "age_days": age, "bucket": bucket})
        buckets[bucket]["count"] += 1
        buckets[bucket]["total"] += row["total"]
    return {"as_of": now, "buckets": buckets, "invoices": invoices}


def refunds_and_disputes(session: Session, period: Period) -> dict[str, Any]:
    """Refunds and disputes recorded in the period, with their invoices and reasons."""
    refunds = session.execute(
        select(
            LedgerEntry.stripe_object_id.label("stripe_refund_id"),
            LedgerEntry.amount,
            LedgerEntry.currency,
            LedgerEntry.occurred_at,
            Invoice.id.label("invoice_id"),
            Invoice.number.label("invoice_number"),
            Refund.id.label("refund_id"),
            Refund.reason,
        )
        .join(Invoice, Invoice.id == LedgerEntry.invoice_id)
        .outerjoin(Refund, Refund.stripe_refund_id == LedgerEntry.stripe_object_id)
        .where(LedgerEntry.kind == "refund", *_within(period, LedgerEntry.occurred_at))
        .order_by(LedgerEntry.occurred_at)
    ).mappings()
    disputes = session.execute(
        select(
            LedgerEntry.stripe_object_id.label("stripe_dispute_id"),
            LedgerEntry.amount,
            LedgerEntry.currency,
            LedgerEntry.occurred_at,
            Invoice.id.label("invoice_id"),
            Invoice.number.label("invoice_number"),
        )
        .join(Invoice, Invoice.id == LedgerEntry.invoice_id)
        .where(LedgerEntry.kind == "dispute", *_within(period, LedgerEntry.occurred_at))
        .order_by(LedgerEntry.occurred_at)
    ).mappings()
    return {"refunds": [dict(r) for r in refunds], "disputes": [dict(d) for d in disputes]}


def month_end(session: Session, year: int, month: int) -> dict[str, Any]:
    """A month in one page: billed, collected, refunded, disputed, fees, net, still owed."""
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
    period = Period(start, end)
    billed = session.execute(
        select(func.count(), func.coalesce(func.sum(Invoice.total), 0)).where(
            Invoice.status != statuses.VOID, *_within(period, Invoice.created_at)
        )
    ).one()
    report = reconciliation(session, period)
    fees = session.scalar(
        select(func.coalesce(func.sum(StripeBalanceTransaction.fee), 0)).where(
            StripeBalanceTransaction.type.in_(STRIPE_CHARGES),
            *_within(period, StripeBalanceTransaction.created),
        )
    )
    owed = session.execute(
        select(func.count(), func.coalesce(func.sum(Invoice.total), 0)).where(
            Invoice.status.in_(UNPAID), Invoice.created_at < end
        )
    ).one()
    ledger = report["totals"]["ledger"]
    return {
        "month": f"{year:04d}-{month:02d}",
        "invoices_issued": int(billed[0]),
        "billed": int(billed[1]),
        "collected": ledger["gross"],
        "refunded": ledger["refunds"],
        "disputed": ledger["disputes"],
        "stripe_fees": int(fees or 0),
        "net": report["totals"]["stripe"]["net"],
        "open_invoices": int(owed[0]),
        "open_amount": int(owed[1]),
        "discrepancies": {
            key: report["totals"]["counts"][key]
            for key in ("missing_in_stripe", "missing_in_ledger", "mismatched", "overpayments")
        },
        "overpayments": report["overpayments"],
        "by_session_type": report["by_session_type"],
    }


def _within(period: Period, column: Any) -> tuple[Any, Any]:
    return column >= period.start, column < period.end


def day_range(first: datetime, last: datetime) -> Period:
    """From the start of `first` to the end of `last` (both days included)."""
    return Period(first, last + timedelta(days=1))


def daily_by_session_type(session: Session, period: Period) -> list[dict[str, Any]]:
    """Per day and session type: gross (charges) and net (after refunds, disputes and
    Stripe's fees on the matching transactions)."""
    signed = case((LedgerEntry.kind == "charge", LedgerEntry.amount), else_=-LedgerEntry.amount)
    gross = case((LedgerEntry.kind == "charge", LedgerEntry.amount), else_=0)
    fee = func.coalesce(StripeBalanceTransaction.fee, 0)
    day = func.date(LedgerEntry.occurred_at)
    rows = session.execute(
        select(
            day.label("day"),
            Invoice.session_type,
            func.sum(gross).label("gross"),
            (func.sum(signed) - func.sum(fee)).label("net"),
        )
        .join(Invoice, Invoice.id == LedgerEntry.invoice_id)
        .outerjoin(
            StripeBalanceTransaction,
            StripeBalanceTransaction.source == LedgerEntry.stripe_ref,
        )
        .where(*_within(period, LedgerEntry.occurred_at))
        .group_by(day, Invoice.session_type)
        .order_by(day)
    ).mappings()
    return [
        {**row, "day": str(row["day"]), "gross": int(row["gross"]), "net": int(row["net"])}
        for row in rows
    ]
