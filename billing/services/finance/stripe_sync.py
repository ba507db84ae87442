"""`stripe sync`: copy Stripe's balance transactions and payouts into our tables.

Resumable: each page is stored in the same transaction as the cursor after it, so an
interrupted pass continues where it stopped. Idempotent: rows are keyed by Stripe's
ids, so running twice stores nothing twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from billing.adapters.db import dialect_insert
from billing.adapters.models import StripeBalanceTransaction, StripePayout, SyncState, utcnow
from billing.adapters.stripe_gateway import BalanceTransaction, StripeGateway
from billing.domain.errors import ServiceError

log = logging.getLogger("billing.sync")
BALANCE = "balance_transactions"
# A later pass re-reads this much before the newest transaction it already has, so that
# transactions Stripe dates a little in the past are not missed.
OVERLAP = timedelta(days=3)


@dataclass(frozen=True, slots=True)
class SyncResult:
    added: int
    seen: int
    resumed: bool
    payouts: int
    payouts_linked: int
    note: str | None = None


def sync(
    session: Session,
    gateway: StripeGateway,
    since: datetime | None = None,
    page_size: int = 100,
    on_page: Callable[[int, int], None] = lambda seen, added: None,
) -> SyncResult:
    """Pull balance transactions (newest first, down to `since`), then payouts."""
    state = _state(session)
    resumed = state.cursor is not None
    if not resumed:
        state.since = since or (state.newest_seen - OVERLAP if state.newest_seen else None)
        state.started_at, state.finished_at = utcnow(), None
    start, cursor = state.since, state.cursor
    session.commit()

    seen = added = 0
    while True:
        page = gateway.balance_transactions(cursor, page_size)
        rows = [t for t in page.items if start is None or t.created >= start]
        added += _store(session, rows)
        seen += len(rows)
        if page.items:
            cursor = page.items[-1].id
        _state(session).cursor = cursor
        session.commit()  # the page and the cursor after it, together
        on_page(seen, added)
        if not page.has_more or not page.items or len(rows) < len(page.items):
            break

    state = _state(session)
    state.cursor = None
    state.finished_at = utcnow()
    state.newest_seen = session.scalar(select(func.max(StripeBalanceTransaction.created)))
    session.commit()
    payouts, linked, note = _sync_payouts(session, gateway, page_size)
    return SyncResult(added, seen, resumed, payouts, linked, note)


def _state(session: Session) -> SyncState:
    state = session.get(SyncState, BALANCE)
    if state is None:
        state = SyncState(name=BALANCE)
        session.add(state)
        session.flush()
    return state


def _store(session: Session, rows: list[BalanceTransaction]) -> int:
    if not rows:
        return 0
    insert = dialect_insert(session)
    values = [
        {
            "id": t.id,
            "type": t.type,
            "source": t.source,
            "amount": t.amount,
            "fee": t.fee,
            "net": t.net,
            "currency": t.currency,
            "created": t.created,
            "available_on": t.available_on,
            "synced_at": utcnow(),
        }
        for t in rows
    ]
    inserted = session.execute(
        insert(StripeBalanceTransaction)
        .values(values)
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(StripeBalanceTransaction.id)
    )
    return len(inserted.all())


def _sync_payouts(
    session: Session, gateway: StripeGateway, page_size: int
) -> tuple[int, int, str | None]:
    """Store payouts and link each paid one to the balance transactions it carried."""
    insert = dialect_insert(session)
    cursor, count = None, 0
    while True:
        page = gateway.payouts(cursor, page_size)
        for payout in page.items:
            session.execute(
                insert(StripePayout)
                .values(
                    id=payout.id,
                    amount=payout.amount,
                    currency=payout.currency,
                    status=payout.status,
                    arrival_date=payout.arrival_date,
                    created=payout.created,
                )
                .on_conflict_do_update(index_elements=["id"], set_={"status": payout.status})
            )
        session.commit()
        count += len(page.items)
        if not page.has_more or not page.items:
            break
        cursor = page.items[-1].id

    unlinked = list(
        session.scalars(
            select(StripePayout.id).where(
                StripePayout.status == "paid", StripePayout.linked_at.is_(None)
            )
        )
    )
    session.commit()
    linked = 0
    for payout_id in unlinked:
        try:
            ids = gateway.payout_transaction_ids(payout_id)
        except ServiceError as error:
            note = f"payouts left unlinked: listing a payout's transactions failed: {error.detail}"
            log.warning(note)
            return count, linked, note
        session.execute(
            update(StripeBalanceTransaction)
            .where(StripeBalanceTransaction.id.in_(ids))
            .values(payout_id=payout_id)
        )
        session.execute(
            update(StripePayout).where(StripePayout.id == payout_id).values(linked_at=utcnow())
        )
        session.commit()
        linked += 1
    return count, linked, None
