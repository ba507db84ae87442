"""The other reports finance asks for: ageing of open invoices, refunds and disputes,
and a month-end summary."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from billing.adapters.account_models import AccountBalance, AccountMovement
from billing.adapters.db import clinic_day
from billing.adapters.models import (
    Invoice,
    InvoiceAdjustment,
    LedgerEntry,
    Refund,
    StripeBalanceTransaction,
    utcnow,
)
from billing.domain import credits, statuses
from billing.domain.dates import UTC_ZONE, day_of, days_span, month_span
from billing.domain.money import Money
from billing.services.access import audit
from billing.services.finance import journal, memberships, packages
from billing.services.finance.reconciliation import (
    STRIPE_CHARGES,
    STRIPE_REFUND_FAILURES,
    Period,
    money_sum,
    reconciliation,
)
from billing.services.invoicing.ledger import (
    FROM_CREDIT,
    MOVES,
    RECEIVED,
    REFUND,
    REFUND_FAILURE,
    TO_CREDIT,
    paid_net,
)

AGING_BUCKETS = (("0-30", 0, 30), ("31-60", 31, 60), ("61-90", 61, 90), ("90+", 91, None))
UNPAID = statuses.UNPAID


def bucket_of(age_days: int) -> str:
    for name, low, high in AGING_BUCKETS:
        if age_days >= low and (high is None or age_days <= high):
            return name
    return AGING_BUCKETS[0][0]


def owed_now() -> Any:
    """What an invoice still owes, in SQL: its total less credit notes, write-offs and
    what was paid."""
    return Invoice.amount_owed - Invoice.amount_paid


def adjustments_in(session: Session, period: Period) -> dict[str, dict[str, int]]:
    """Credit notes and write-offs made in the period, credit kept from and applied to
    invoices (the ledger's `to_credit`, `from_credit`) and goodwill credit granted, per
    currency; and the credit held at its end."""
    found: dict[str, dict[str, int]] = {}

    def put(currency: str, name: str, amount: Any) -> None:
        found.setdefault(currency, dict.fromkeys(ADJUSTMENT_FIGURES, 0))[name] = int(amount or 0)

    for currency, kind, amount in session.execute(
        select(
            InvoiceAdjustment.currency, InvoiceAdjustment.kind, money_sum(InvoiceAdjustment.amount)
        )
        .where(*_within(period, InvoiceAdjustment.created_at))
        .group_by(InvoiceAdjustment.currency, InvoiceAdjustment.kind)
    ):
        put(currency, "credit_notes" if kind == "credit_note" else "written_off", amount)
    for currency, kind, amount in session.execute(
        select(LedgerEntry.currency, LedgerEntry.kind, money_sum(LedgerEntry.amount))
        .where(
            LedgerEntry.kind.in_((TO_CREDIT, FROM_CREDIT)),
            *_within(period, LedgerEntry.occurred_at),
        )
        .group_by(LedgerEntry.currency, LedgerEntry.kind)
    ):
        put(currency, "credit_kept" if kind == TO_CREDIT else "credit_applied", amount)
    held = case((LedgerEntry.kind == TO_CREDIT, LedgerEntry.amount), else_=-LedgerEntry.amount)
    for currency, amount in session.execute(
        select(LedgerEntry.currency, money_sum(held))
        .where(LedgerEntry.kind.in_((TO_CREDIT, FROM_CREDIT)), LedgerEntry.occurred_at < period.end)
        .group_by(LedgerEntry.currency)
    ):
        put(currency, "credit_held", amount)
    granted = AccountMovement.kind == "goodwill"  # credit no money paid: no ledger entry
    for currency, in_period, before_end in session.execute(
        select(
            AccountMovement.currency,
            money_sum(AccountMovement.amount, and_(*_within(period, AccountMovement.created_at))),
            money_sum(AccountMovement.amount),
        )
        .where(granted, AccountMovement.created_at < period.end)
        .group_by(AccountMovement.currency)
    ):
        put(currency, "credit_granted", in_period)
        found[currency]["credit_held"] += int(before_end or 0)
    return found


ADJUSTMENT_FIGURES = (
    "credit_notes",
    "written_off",
    "credit_kept",
    "credit_granted",
    "credit_applied",
    "credit_held",
)


def aging(
    session: Session, now: datetime | None = None, zone: ZoneInfo = UTC_ZONE
) -> dict[str, Any]:
    """Every unpaid invoice with its age in the clinic's days and what it still owes
    (`balance_due`), and what the invoices of each bucket owe."""
    now = now or utcnow()
    today = day_of(now, zone)
    rows = session.execute(
        select(
            Invoice.id,
            Invoice.number,
            Invoice.patient_id,
            Invoice.total,
            Invoice.currency,
            Invoice.status,
            Invoice.created_at,
            owed_now().label("balance_due"),
        )
        .where(Invoice.status.in_(UNPAID))
        .order_by(Invoice.created_at)
    ).mappings()
    invoices = []
    counts = dict.fromkeys((name for name, _, _ in AGING_BUCKETS), 0)
    owed: dict[str, dict[str, Money]] = {name: {} for name, _, _ in AGING_BUCKETS}
    for row in rows:
        age = (today - day_of(row["created_at"], zone)).days
        bucket = bucket_of(age)
        invoices.append({**row, "age_days": age, "bucket": bucket})
        counts[bucket] += 1
        currency = row["currency"]
        owed[bucket][currency] = owed[bucket].get(currency, Money.zero(currency)) + Money(
            row["balance_due"], currency
        )
    buckets = {
        name: {
            "count": counts[name],
            "totals": {currency: money.amount for currency, money in sorted(owed[name].items())},
        }
        for name in counts
    }
    credits = session.execute(
        select(AccountBalance.patient_id, AccountBalance.currency, AccountBalance.credit)
        .where(AccountBalance.credit > 0)
        .order_by(AccountBalance.patient_id, AccountBalance.currency)
    ).mappings()
    return {
        "as_of": now,
        "buckets": buckets,
        "invoices": invoices,
        "credits": [dict(row) for row in credits],
    }


def refunds_and_disputes(session: Session, period: Period) -> dict[str, Any]:
    """Refunds and disputes recorded in the period, with their invoices and reasons. A
    refund that failed after it was counted is listed again when it failed, with its
    amount negative (the money came back), so that the refunds sum to what was refunded."""
    refunds = session.execute(
        select(
            LedgerEntry.stripe_object_id.label("stripe_refund_id"),
            case(
                (LedgerEntry.kind == REFUND_FAILURE, -LedgerEntry.amount),
                else_=LedgerEntry.amount,
            ).label("amount"),
            LedgerEntry.currency,
            LedgerEntry.occurred_at,
            Invoice.id.label("invoice_id"),
            Invoice.number.label("invoice_number"),
            Refund.id.label("refund_id"),
            Refund.reason,
        )
        .join(Invoice, Invoice.id == LedgerEntry.invoice_id)
        .outerjoin(Refund, Refund.stripe_refund_id == LedgerEntry.stripe_object_id)
        .where(
            LedgerEntry.kind.in_((REFUND, REFUND_FAILURE)),
            *_within(period, LedgerEntry.occurred_at),
        )
        .order_by(LedgerEntry.occurred_at, LedgerEntry.id)
    ).mappings()
    disputes = session.execute(
        select(
            LedgerEntry.stripe_object_id.label("stripe_dispute_id"),
            LedgerEntry.kind,
            LedgerEntry.amount,
            LedgerEntry.currency,
            LedgerEntry.occurred_at,
            Invoice.id.label("invoice_id"),
            Invoice.number.label("invoice_number"),
        )
        .join(Invoice, Invoice.id == LedgerEntry.invoice_id)
        .where(  # a bank debit's return is Stripe's dispute of it
            LedgerEntry.kind.in_(("dispute", "bank_return")),
            *_within(period, LedgerEntry.occurred_at),
        )
        .order_by(LedgerEntry.occurred_at)
    ).mappings()
    return {"refunds": [dict(r) for r in refunds], "disputes": [dict(d) for d in disputes]}


def month_end(session: Session, year: int, month: int, zone: ZoneInfo = UTC_ZONE) -> dict[str, Any]:
    """A month of the clinic's calendar in one page, per currency: billed, collected,
    refunded, disputed, fees, net, still owed; and the counts of invoices and discrepancies."""
    start, end = month_span(year, month, zone)
    period = Period(start, end, zone)
    billed = _counted_by_currency(
        session, Invoice.status != statuses.VOID, *_within(period, Invoice.created_at)
    )
    owed = _counted_by_currency(
        session, Invoice.status.in_(UNPAID), Invoice.created_at < end, owed=True
    )
    txn = StripeBalanceTransaction
    fees = {
        str(currency): int(fee)
        for currency, fee in session.execute(
            select(txn.currency, money_sum(txn.fee))
            .where(txn.type.in_(STRIPE_CHARGES), *_within(period, txn.created))
            .group_by(txn.currency)
        )
    }
    report = reconciliation(session, period)
    totals = report["totals"]
    credit_figures = packages.package_figures(session, period)
    adjusted = adjustments_in(session, period)
    month_key = f"{year:04d}-{month:02d}"
    members = memberships.figures(session, month_key, zone, journal.closed_through(session))
    no_members = {"membership_revenue": 0, "membership_deferred": 0}
    no_adjustments = dict.fromkeys(ADJUSTMENT_FIGURES, 0)
    currencies = sorted(
        set(totals["currencies"])
        | set(billed)
        | set(owed)
        | set(fees)
        | set(credit_figures)
        | set(adjusted)
        | set(members)
    )
    no_credits = {"half_credits_redeemed": 0, "credit_value": 0, "deferred_revenue": 0}
    none = {"gross": 0, "refunds": 0, "disputes": 0, "received": 0, "net": 0}
    return {
        "month": month_key,
        "invoices_issued": sum(count for count, _ in billed.values()),
        "open_invoices": sum(count for count, _ in owed.values()),
        "currencies": {
            currency: {
                "billed": billed.get(currency, (0, 0))[1],
                "collected": totals["ledger"].get(currency, none)["gross"]
                + totals["ledger"].get(currency, none)["received"],
                "received_outside_stripe": totals["ledger"].get(currency, none)["received"],
                "refunded": totals["ledger"].get(currency, none)["refunds"],
                "disputed": totals["ledger"].get(currency, none)["disputes"],
                "stripe_fees": int(fees.get(currency, 0)),
                "net": totals["stripe"].get(currency, none)["net"],
                "open_amount": owed.get(currency, (0, 0))[1],
                "credits_redeemed": credits.as_credits(
                    credit_figures.get(currency, no_credits)["half_credits_redeemed"]
                ),
                "credit_redemption_value": credit_figures.get(currency, no_credits)["credit_value"],
                "deferred_revenue": credit_figures.get(currency, no_credits)["deferred_revenue"],
                **members.get(currency, no_members),
                **adjusted.get(currency, no_adjustments),
            }
            for currency in currencies
        },
        "discrepancies": {
            key: totals["counts"][key]
            for key in ("missing_in_stripe", "missing_in_ledger", "mismatched", "overpayments")
        },
        "overpayments": report["overpayments"],
        "by_session_type": report["by_session_type"],
        "revenue": packages.revenue_by_session_type(session, period),
    }


def _counted_by_currency(
    session: Session, *conditions: Any, owed: bool = False
) -> dict[str, tuple[int, int]]:
    """Invoices matching `conditions`: (how many, their total) per currency; with `owed`,
    what they still owe instead of their total."""
    amount = owed_now() if owed else Invoice.total
    rows = session.execute(
        select(Invoice.currency, func.count(), money_sum(amount))
        .where(*conditions)
        .group_by(Invoice.currency)
    )
    return {str(currency): (int(count), int(total)) for currency, count, total in rows}


def _within(period: Period, column: Any) -> tuple[Any, Any]:
    return column >= period.start, column < period.end


def day_range(first: date, last: date, zone: ZoneInfo = UTC_ZONE) -> Period:
    """From the start of the clinic's day `first` to the end of `last` (both included)."""
    return Period(*days_span(first, last, zone), zone)


def daily_by_session_type(session: Session, period: Period) -> list[dict[str, Any]]:
    """Per clinic day, session type and currency: gross (charges) and net (after refunds,
    net of those that failed, disputes and Stripe's fees on the matching transactions)."""
    signed = case(
        (LedgerEntry.kind.in_(("charge", REFUND_FAILURE, RECEIVED)), LedgerEntry.amount),
        else_=-LedgerEntry.amount,
    )
    gross = paid_net(LedgerEntry.kind, LedgerEntry.amount)  # money received at the desk too
    fee = func.coalesce(StripeBalanceTransaction.fee, 0)
    day = clinic_day(LedgerEntry.occurred_at, period.zone)
    rows = session.execute(
        select(
            day.label("day"),
            Invoice.session_type,
            LedgerEntry.currency,
            func.sum(gross).label("gross"),
            (func.sum(signed) - func.sum(fee)).label("net"),
        )
        .join(Invoice, Invoice.id == LedgerEntry.invoice_id)
        .outerjoin(
            StripeBalanceTransaction,
            (StripeBalanceTransaction.source == LedgerEntry.stripe_ref)
            # a refund and its failure name the same refund: each with its own
            & (
                (LedgerEntry.kind == REFUND_FAILURE)
                == StripeBalanceTransaction.type.in_(STRIPE_REFUND_FAILURES)
            ),
        )
        .where(
            *_within(period, LedgerEntry.occurred_at),
            # Moves to and from credit and gift cards: no money came in or went out.
            LedgerEntry.kind.not_in(MOVES),
        )
        .group_by(day, Invoice.session_type, LedgerEntry.currency)
        .order_by(day)
    ).mappings()
    return [
        {**row, "day": str(row["day"]), "gross": int(row["gross"]), "net": int(row["net"])}
        for row in rows
    ]


def fees_by_month(session: Session, period: Period) -> list[dict[str, Any]]:
    """Late-cancellation and no-show fees invoiced in the period, per month of the clinic's
    calendar and currency: how much was invoiced, charged (collected, less refunds),
    waived (voided, or given back when attendance was corrected) and is still owed."""
    fees = session.scalars(
        select(Invoice).where(Invoice.kind == "fee", *_within(period, Invoice.created_at))
    ).all()
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for fee in fees:
        day = day_of(fee.created_at, period.zone)
        row = rows.setdefault(
            (f"{day:%Y-%m}", fee.currency),
            {
                "month": f"{day:%Y-%m}",
                "currency": fee.currency,
                "count": 0,
                "invoiced": 0,
                "charged": 0,
                "waived": 0,
                "owed": 0,
            },
        )
        row["count"] += 1
        row["invoiced"] += fee.total
        row["charged"] += fee.amount_paid - fee.amount_refunded
        if fee.status == statuses.VOID:
            row["waived"] += fee.total
        else:  # refunded, lowered by a credit note or written off: not collected
            row["waived"] += fee.amount_refunded + fee.amount_credited + fee.amount_written_off
        if fee.status in UNPAID:
            row["owed"] += fee.balance_due
    return [rows[key] for key in sorted(rows)]


def stripe_mismatches(session: Session, period: Period) -> list[dict[str, Any]]:
    """What Stripe reported of PaymentIntents that did not match the payments they named
    (another currency or amount, another intent), kept instead of applied: for review."""
    page = audit.list_events(
        session,
        limit=500,
        action="stripe.mismatch",
        occurred_gte=period.start,
        occurred_lt=period.end,
    )
    return [
        {
            "occurred_at": row.occurred_at,
            "payment_id": row.object_id,
            **audit.as_dict(row)["details"],
        }
        for row in page.data
    ]
