"""The accounting journal of a month of the clinic's calendar, and closing a month so that
its journal never changes.

An open month's journal is made from the books as they stand: charges by session type,
refunds and disputes from our ledger; fees and payouts from Stripe's balance. Closing a
month stores its lines and marks every ledger entry and Stripe transaction it posted. What
arrives later for a closed month (dated in it, recorded after it closed) is posted in the
first open month, on its first day, as "late for" its own month. Months close in order: a
month cannot close while an earlier one with money in it is open, or "the first open
month" would lie before a closed one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from billing.adapters.account_models import AccountMovement
from billing.adapters.journal_models import ClosedJournalLine, ClosedMonth, JournalPosting
from billing.adapters.models import Invoice, LedgerEntry, StripeBalanceTransaction, utcnow
from billing.domain.dates import day_of, first_day, month_of, next_month, span_of_month
from billing.domain.errors import Conflict
from billing.domain.journal import Account, Item, Journal, Line, grouped, journals
from billing.domain.money import Money
from billing.domain.policy import MEMBERSHIP
from billing.services.access import audit
from billing.services.finance import memberships as membership_revenue

# Stripe's balance lines that move money between Stripe and the clinic's bank, and those
# that are Stripe's own fees in full (besides the fee a charge or a dispute carries).
PAYOUT_TYPES = ("payout", "payout_cancel", "payout_failure")
FEE_TYPES = ("stripe_fee", "stripe_fx_fee")


@dataclass(frozen=True, slots=True)
class MonthJournal:
    month: str
    status: str  # open, or closed (its journal as stored when it closed)
    closed_at: datetime | None
    closed_by: str | None
    time_zone: str
    journals: list[Journal]


@dataclass(frozen=True, slots=True)
class Closing:
    month: str
    closed_at: datetime
    closed_by: str
    time_zone: str
    created: bool  # False when the month was closed already


def closed_through(session: Session) -> str | None:
    """The latest closed month: it and every month before it no longer change."""
    latest: str | None = session.scalar(select(func.max(ClosedMonth.month)))
    return latest


def month_journal(
    session: Session,
    month: str,
    zone: ZoneInfo,
    chart: dict[str, Account],
    currency: str | None = None,
) -> MonthJournal:
    """The month's journals (those in `currency`, if given): as they were stored when the
    month closed, else as the books stand."""
    through = closed_through(session)
    if through is not None and month <= through:
        report = _stored(session, month)
    else:
        items, _ = _open_items(session, month, zone, through)
        report = MonthJournal(month, "open", None, None, zone.key, journals(items, chart))
    if currency is None:
        return report
    return replace(report, journals=[j for j in report.journals if j.currency == currency])


def _stored(session: Session, month: str) -> MonthJournal:
    """A closed month's journal, line for line as it was when the month closed."""
    closing = _closing_of(session, month)
    rows = session.scalars(
        select(ClosedJournalLine)
        .where(ClosedJournalLine.month == month)
        .order_by(ClosedJournalLine.position)
    )
    lines = grouped(_line(row) for row in rows)
    return MonthJournal(
        month, "closed", closing.closed_at, closing.closed_by, closing.time_zone, lines
    )


def check_closable(
    session: Session, month: str, zone: ZoneInfo, now: datetime | None = None
) -> bool:
    """Whether closing `month` would close it now (False: it is closed already); a Conflict
    says why it cannot: it is not over, or an earlier month with money in it is open."""
    through = closed_through(session)
    if through is not None and month <= through:
        return False
    start, end = span_of_month(month, zone)
    if end > (now or utcnow()):
        raise Conflict(
            "month_not_over", f"{month} is not over yet: it ends at {end.isoformat()} ({zone.key})."
        )
    if through is None or month != next_month(through):
        earlier = _earliest_open_month(session, start, zone, through)
        if earlier is not None:
            raise Conflict(
                "earlier_month_open",
                f"Close {earlier} first: money moved in it and it is still open "
                "(months close in order).",
            )
    return True


def close_month(
    session: Session,
    month: str,
    zone: ZoneInfo,
    chart: dict[str, Account],
    now: datetime | None = None,
) -> Closing:
    """Close a month that is over: store its journal and what it posted. Closing it again
    changes nothing; an earlier month with money in it must close first."""
    now = now or utcnow()
    through = closed_through(session)
    if through is not None and month <= through:
        return _closing_of(session, month)
    check_closable(session, month, zone, now)
    items, postings = _open_items(session, month, zone, through)
    made = journals(items, chart)
    membership_revenue.record(session, month, membership_revenue.earned_in(session, month, zone))
    actor = audit.current_actor().name[:254]
    session.add(ClosedMonth(month=month, closed_at=now, closed_by=actor, time_zone=zone.key))
    session.flush()
    lines = [line for journal in made for line in journal.lines]
    session.add_all(_row(month, position, line) for position, line in enumerate(lines))
    session.add_all(JournalPosting(month=month, **posted) for posted in postings)
    audit.record(
        session,
        "month.closed",
        "month",
        month,
        journals=len(made),
        lines=len(lines),
        late=sum(1 for item in items if item.late_for),
        time_zone=zone.key,
    )
    try:
        session.commit()
    except IntegrityError:  # closed at the same moment elsewhere: that closing stands
        session.rollback()
        return _closing_of(session, month)
    return Closing(month, now, actor, zone.key, created=True)


def _closing_of(session: Session, month: str) -> Closing:
    """The closing that closed `month`: its own, or for a month without money that an
    earlier closing passed over, the first closing after it."""
    row = session.scalars(
        select(ClosedMonth).where(ClosedMonth.month >= month).order_by(ClosedMonth.month)
    ).first()
    if row is None:
        raise LookupError(f"{month} is not closed")
    return Closing(month, row.closed_at, row.closed_by, row.time_zone, created=False)


def _unposted_ledger() -> Any:
    return (
        select(
            LedgerEntry.id,
            LedgerEntry.kind,
            LedgerEntry.amount,
            LedgerEntry.currency,
            LedgerEntry.occurred_at.label("at"),
            LedgerEntry.method,
            Invoice.session_type,
        )
        .join(Invoice, Invoice.id == LedgerEntry.invoice_id)
        .outerjoin(JournalPosting, JournalPosting.ledger_entry_id == LedgerEntry.id)
        .where(JournalPosting.id.is_(None))
    )


def _unposted_grants() -> Any:
    """Goodwill credit granted (no ledger entry moves for it) and not yet posted."""
    return (
        select(
            AccountMovement.id,
            AccountMovement.amount,
            AccountMovement.currency,
            AccountMovement.created_at.label("at"),
        )
        .outerjoin(JournalPosting, JournalPosting.account_movement_id == AccountMovement.id)
        .where(AccountMovement.kind == "goodwill", JournalPosting.id.is_(None))
    )


def _unposted_stripe() -> Any:
    """Stripe's balance lines the journal posts: those with a fee, fees, and payouts."""
    txn = StripeBalanceTransaction
    posted = or_(txn.fee != 0, txn.type.in_(PAYOUT_TYPES + FEE_TYPES))
    return (
        select(txn.id, txn.type, txn.amount, txn.fee, txn.currency, txn.created.label("at"))
        .outerjoin(JournalPosting, JournalPosting.stripe_transaction_id == txn.id)
        .where(JournalPosting.id.is_(None), posted)
    )


def _open_items(
    session: Session, month: str, zone: ZoneInfo, through: str | None
) -> tuple[list[Item], list[dict[str, Any]]]:
    """What the open month's journal posts, and what is behind it (ledger entries, Stripe
    transactions, grants of goodwill credit), as the postings that will say so. The first
    open month also takes what came late for a closed one."""
    start, end = span_of_month(month, zone)
    takes_late = through is not None and month == next_month(through)
    ledger, txn = LedgerEntry.occurred_at, StripeBalanceTransaction.created
    granted = AccountMovement.created_at
    grant_rows = session.execute(
        _unposted_grants()
        .where(granted < end, *(() if takes_late else (granted >= start,)))
        .order_by(granted, AccountMovement.id)
    ).mappings()
    ledger_rows = session.execute(
        _unposted_ledger()
        .where(ledger < end, *(() if takes_late else (ledger >= start,)))
        .order_by(ledger, LedgerEntry.id)
    ).mappings()
    stripe_rows = session.execute(
        _unposted_stripe()
        .where(txn < end, *(() if takes_late else (txn >= start,)))
        .order_by(txn, StripeBalanceTransaction.id)
    ).mappings()
    items: list[Item] = []

    def item(
        kind: str, row: Any, amount: int, session_type: str | None = None, method: str | None = None
    ) -> Item:
        late = row["at"] < start
        return Item(
            kind,
            first_day(month) if late else day_of(row["at"], zone),
            Money(int(amount), row["currency"]),
            session_type,
            month_of(row["at"], zone) if late else None,
            method,
        )

    postings: list[dict[str, Any]] = []
    for row in ledger_rows:
        items.append(item(row["kind"], row, row["amount"], row["session_type"], row["method"]))
        postings.append({"ledger_entry_id": int(row["id"])})
    for row in stripe_rows:
        fee = row["fee"] - (row["amount"] if row["type"] in FEE_TYPES else 0)
        if fee:
            items.append(item("fee", row, fee))
        if row["type"] in PAYOUT_TYPES:
            items.append(item("payout", row, row["amount"]))
        postings.append({"stripe_transaction_id": str(row["id"])})
    for row in grant_rows:
        items.append(item("goodwill", row, row["amount"]))
        postings.append({"account_movement_id": str(row["id"])})
    last_day = first_day(next_month(month)) - timedelta(days=1)
    for earned in membership_revenue.earned_in(session, month, zone):
        money = Money(earned.amount, earned.currency)
        items.append(Item("membership_earned", last_day, money, MEMBERSHIP))
    return items, postings


def _earliest_open_month(
    session: Session, before: datetime, zone: ZoneInfo, through: str | None
) -> str | None:
    """The first open month with money in it before `before`; None when there is none.
    Money that came late for a closed month belongs to the first open month."""
    candidates = (
        _unposted_ledger().where(LedgerEntry.occurred_at < before),
        _unposted_stripe().where(StripeBalanceTransaction.created < before),
        _unposted_grants().where(AccountMovement.created_at < before),
    )
    firsts = [session.scalar(select(func.min(query.subquery().c.at))) for query in candidates]
    found = [moment for moment in firsts if moment is not None]
    if not found:
        return None
    earliest = month_of(min(found), zone)
    if through is not None and earliest <= through:
        return next_month(through)
    return earliest


def _row(month: str, position: int, line: Line) -> ClosedJournalLine:
    return ClosedJournalLine(
        month=month,
        position=position,
        journal_date=line.day,
        currency=line.currency,
        account=line.account.key,
        account_name=line.account.name,
        account_code=line.account.code,
        tax_rate=line.account.tax_rate,
        description=line.description,
        debit=line.debit,
        credit=line.credit,
    )


def _line(row: ClosedJournalLine) -> Line:
    account = Account(row.account, row.account_name, row.account_code, row.tax_rate)
    return Line(row.journal_date, row.currency, account, row.description, row.debit, row.credit)
